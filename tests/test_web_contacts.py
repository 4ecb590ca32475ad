"""Contacts in the panel: search, pagination, create, edit, delete with erasure, CSV import."""
from __future__ import annotations

import io
import os
import re
import time
from pathlib import Path

from sqlalchemy import func, select, update

from gateway.core.alerts import AlertRequest, Target
from gateway.core.hotline import Caller, Register
from gateway.core.hotline_store import HotlineStore
from gateway.core.models import Contact, Delivery, PhoneNumberRow
from gateway.core.models_panel import ErasedContacts
from tests.support import DATA
from tests.web_support import client_for, post


def test_search_by_name_number_and_zone(app):
    viewer = client_for(app, "viewer")
    html = viewer.get("/contacts/?q=rossi").get_data(as_text=True)
    assert "Mario Rossi" in html and "Anna Rossi" in html and "Ion Popescu" not in html
    html = viewer.get("/contacts/?q=765 4321").get_data(as_text=True)
    assert "Ion Popescu" in html and "Mario Rossi" not in html
    html = viewer.get("/contacts/?zone=Fregene").get_data(as_text=True)
    assert "Giulia Verdi" in html and "Mario Rossi" not in html
    html = viewer.get("/contacts/?q=%25").get_data(as_text=True)  # LIKE wildcards are literal
    assert "0 contatti trovati" in html


def test_pagination(app, panel):
    with panel.sessions.begin() as s:
        for i in range(120):
            s.add(Contact(name=f"Zeta {i:03d}"))
    viewer = client_for(app, "viewer")
    first = viewer.get("/contacts/?q=zeta").get_data(as_text=True)
    assert "124" not in first and "120 contatti trovati" in first and "pagina 1 di 3" in first
    third = viewer.get("/contacts/?q=zeta&page=3").get_data(as_text=True)
    assert "Zeta 119" in third and "Zeta 000" not in third


def test_create_edit_and_validation(app, panel):
    operator = client_for(app, "operator")
    form = {"name": "Nuova Persona", "numbers": "333 999 0000\n06 1234 5678", "zone": "Maccarese",
            "groups": "volontari, scuole", "language": "ro", "vulnerable": "1", "needs": "voice_only",
            "address": "Via Roma 1", "consent_date": "2026-01-15", "consent_source": "modulo web"}
    response = post(operator, "/contacts/new", form)
    assert response.status_code == 302
    with panel.sessions() as s:
        contact = s.scalar(select(Contact).where(Contact.name == "Nuova Persona"))
        assert {n.e164: n.kind for n in contact.numbers} == {"+393339990000": "mobile", "+390612345678": "landline"}
        assert contact.zone.name == "Maccarese" and {g.name for g in contact.groups} == {"volontari", "scuole"}
        assert contact.vulnerable and contact.needs == "voice_only" and contact.language == "ro"
        contact_id = contact.id
    response = post(operator, f"/contacts/{contact_id}", {**form, "name": "Persona Rinominata", "numbers": "3339990000"})
    assert response.status_code == 302
    with panel.sessions() as s:
        contact = s.get(Contact, contact_id)
        assert contact.name == "Persona Rinominata" and [n.e164 for n in contact.numbers] == ["+393339990000"]
    for bad, expected in (({**form, "numbers": "12"}, "12"), ({**form, "name": " "}, "obbligatorio"),
                          ({**form, "numbers": ""}, "almeno un numero"), ({**form, "consent_date": "ieri"}, "data")):
        response = post(operator, "/contacts/new", bad)
        assert response.status_code == 400 and expected in response.get_data(as_text=True), bad
    viewer = client_for(app, "viewer")
    assert post(viewer, f"/contacts/{contact_id}", form).status_code == 403


def test_hostile_names_are_escaped(app, panel):
    operator = client_for(app, "operator")
    post(operator, "/contacts/new", {"name": "<script>alert(1)</script>", "numbers": "3330000099",
                                     "zone": "<img src=x onerror=alert(2)>"})
    for path in ("/contacts/", "/contacts/?q=script", "/alerts/new"):
        html = operator.get(path).get_data(as_text=True)
        assert "<script>alert(1)" not in html and "<img src=x" not in html, path
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in operator.get("/contacts/?q=script").get_data(as_text=True)


def test_delete_erases_personal_data_and_keeps_counts(app, panel):
    services = panel.services
    alert_id, _ = services.alerts.create(AlertRequest(text="Prova", target=Target(zones=("Fregene",))))
    earlier_id, _ = services.alerts.create(AlertRequest(text="Prima", target=Target(zones=("Isola Sacra",))))
    with panel.sessions.begin() as s:
        ion = s.scalar(select(Contact).where(Contact.name == "Ion Popescu"))
        ion_id, ion_number = ion.id, ion.numbers[0].id
        mario = s.scalar(select(Contact).where(Contact.name == "Mario Rossi"))
        mario_id = mario.id
        mario_mobile = next(n.id for n in mario.numbers if n.kind == "mobile")
        # Mario's earlier SMS went out; the Fregene alert is still pending for Ion.
        s.execute(update(Delivery).where(Delivery.alert_id == earlier_id, Delivery.number_id == mario_mobile)
                  .values(state="delivered"))
    operator = client_for(app, "operator")
    assert post(operator, f"/contacts/{ion_id}/delete").status_code == 302
    assert post(operator, f"/contacts/{mario_id}/delete").status_code == 302
    with panel.sessions() as s:
        assert s.get(Contact, ion_id) is None
        assert s.scalar(select(func.count()).select_from(PhoneNumberRow).where(
            PhoneNumberRow.e164 == "+393207654321")) == 0
        # The alert keeps its counts, not the number; the engine sends to Delivery.e164, so what was
        # pending is cancelled first and nothing pending is left holding "erased".
        delivery = s.scalar(select(Delivery).where(Delivery.number_id == ion_number))
        assert delivery.e164 == "erased" and delivery.alert_id == alert_id
        assert delivery.state == "cancelled" and "deleted" in delivery.last_error
        assert s.scalar(select(func.count()).select_from(Delivery).where(Delivery.alert_id == alert_id)) == 2
        assert s.scalar(select(func.count()).select_from(Delivery).where(
            Delivery.e164.like("erased%"), Delivery.state.in_(("pending", "submitting")))) == 0
        finished = s.scalar(select(Delivery).where(Delivery.number_id == mario_mobile))
        assert finished.state == "delivered" and finished.e164 == "erased" and finished.last_error is None
        # Mario's household landline is still Anna's.
        anna = s.scalar(select(Contact).where(Contact.name == "Anna Rossi"))
        assert "+390665211234" in {n.e164 for n in anna.numbers}
        erased = list(s.scalars(select(ErasedContacts)))
        assert {(e.zone, e.numbers) for e in erased} == {("Fregene", 1), ("Isola Sacra", 2)}
    html = operator.get("/contacts/").get_data(as_text=True)
    assert "Ion Popescu" not in html and "2 persone cancellate" in html


def test_numbers_removed_in_edit_are_erased_unless_someone_else_has_them(app, panel):
    operator = client_for(app, "operator")
    form = {"name": "Nuova Persona", "numbers": "333 999 0000\n06 1234 5678\n06 6521 1234", "zone": "Maccarese"}
    assert post(operator, "/contacts/new", form).status_code == 302
    alert_id, _ = panel.services.alerts.create(AlertRequest(text="Prova", target=Target(zones=("Maccarese",))))
    with panel.sessions() as s:
        contact_id = s.scalar(select(Contact.id).where(Contact.name == "Nuova Persona"))
        mobile_id = s.scalar(select(PhoneNumberRow.id).where(PhoneNumberRow.e164 == "+393339990000"))
    # Keep only the landline shared with the Rossi household; drop the mobile (it has a pending SMS)
    # and the other landline (no delivery: an SMS alert skips landlines).
    response = post(operator, f"/contacts/{contact_id}", {**form, "numbers": "06 6521 1234"})
    assert response.status_code == 302
    with panel.sessions() as s:
        assert s.scalar(select(func.count()).select_from(PhoneNumberRow).where(
            PhoneNumberRow.e164.in_(("+393339990000", "+390612345678")))) == 0
        assert s.scalar(select(func.count()).select_from(PhoneNumberRow).where(
            PhoneNumberRow.e164 == "+390665211234")) == 1  # still the Rossi household's
        sms = s.scalar(select(Delivery).where(Delivery.alert_id == alert_id, Delivery.number_id == mobile_id))
        assert sms.state == "cancelled" and sms.e164 == "erased" and "removed" in sms.last_error
        # The row of the erased mobile stays (the delivery points at it), opted out and without the number.
        erased = s.get(PhoneNumberRow, mobile_id)
        assert erased.opted_out and erased.e164 == f"erased:{mobile_id}"


def _upload(client, data: bytes, name: str = "anagrafe.csv"):
    return post(client, "/contacts/import", {"file": (io.BytesIO(data), name)}, content_type="multipart/form-data")


def test_import_with_preview_then_confirm(app, panel):
    operator = client_for(app, "operator")
    data = (DATA / "contacts_excel_it_cp1252.csv").read_bytes()
    preview = _upload(operator, data)
    html = preview.get_data(as_text=True)
    assert preview.status_code == 200 and "Anteprima di anagrafe.csv" in html
    with panel.sessions() as s:
        before = s.scalar(select(func.count()).select_from(Contact))
    token = re.search(r'name="token" value="([0-9a-f]{32})"', html).group(1)
    with panel.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Contact)) == before  # the preview imported nothing
    done = post(operator, "/contacts/import/confirm", {"token": token, "filename": "anagrafe.csv"})
    assert done.status_code == 200 and "contatti creati" in done.get_data(as_text=True)
    with panel.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Contact)) > before
    # The token is used once.
    again = post(operator, "/contacts/import/confirm", {"token": token})
    assert again.status_code == 302
    assert post(operator, "/contacts/import/confirm", {"token": "../../etc/passwd"}).status_code == 400


def test_import_reports_the_same_row_errors_as_the_cli(app):
    from gateway.core.contacts_csv import parse_contacts_csv
    operator = client_for(app, "operator")
    data = "nome;cellulare;zona\nBuono;333 111 2222;Fregene\nCattivo;12;Fregene\nSenza numero;;Fregene\n".encode()
    html = _upload(operator, data).get_data(as_text=True)
    for error in parse_contacts_csv(data).errors:
        assert f"<td>{error.line}</td>" in html
        assert error.reason.replace("'", "&#39;").replace('"', "&#34;") in html
    assert "1 riga si può importare, 2 righe sono scartate" in html


def test_bad_csv_files(app, panel):
    operator = client_for(app, "operator")
    response = _upload(operator, b"")
    assert response.status_code == 400 and "vuoto" in response.get_data(as_text=True)
    response = _upload(operator, b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    assert response.status_code == 400 and "non si può importare" in response.get_data(as_text=True)
    response = _upload(operator, "colore;sapore\nrosso;dolce\n".encode())
    assert response.status_code == 400
    with panel.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Contact)) == 4


def _previews(panel) -> set[str]:
    uploads = Path(panel.config.general.data_dir) / "uploads"
    return {p.name for p in uploads.glob("import-*.csv")}


def _preview_token(response) -> str:
    return re.search(r'name="token" value="([0-9a-f]{32})"', response.get_data(as_text=True)).group(1)


def test_a_confirmed_or_cancelled_preview_leaves_no_file(app, panel):
    operator = client_for(app, "operator")
    data = (DATA / "contacts_excel_it_cp1252.csv").read_bytes()
    confirmed = _preview_token(_upload(operator, data))
    cancelled = _preview_token(_upload(operator, data))
    assert _previews(panel) == {f"import-{confirmed}.csv", f"import-{cancelled}.csv"}
    assert post(operator, "/contacts/import/confirm", {"token": confirmed}).status_code == 200
    assert _previews(panel) == {f"import-{cancelled}.csv"}
    response = post(operator, "/contacts/import/cancel", {"token": cancelled})
    assert response.status_code == 302 and response.location.endswith("/contacts/import")
    assert _previews(panel) == set()
    assert "annullata" in operator.get("/contacts/import").get_data(as_text=True)
    # A cancelled preview cannot be imported afterwards.
    assert post(operator, "/contacts/import/confirm", {"token": cancelled}).status_code == 302
    assert post(operator, "/contacts/import/cancel", {"token": "../allerta.db"}).status_code == 400
    assert "Annulla" in _upload(operator, data).get_data(as_text=True)  # the preview offers it


def test_a_failed_import_does_not_leave_its_file(app, panel, monkeypatch):
    operator = client_for(app, "operator")
    token = _preview_token(_upload(operator, (DATA / "contacts_excel_it_cp1252.csv").read_bytes()))

    def broken(*args, **kwargs):
        raise RuntimeError("database went away")
    monkeypatch.setattr("web.contacts.import_contacts", broken)
    app.config["PROPAGATE_EXCEPTIONS"] = False  # the panel's 500 page, as a person would see it
    assert post(operator, "/contacts/import/confirm", {"token": token}).status_code == 500
    assert _previews(panel) == set()


def test_a_new_preview_sweeps_the_ones_older_than_an_hour(app, panel):
    operator = client_for(app, "operator")
    data = (DATA / "contacts_excel_it_cp1252.csv").read_bytes()
    uploads = Path(panel.config.general.data_dir) / "uploads"
    abandoned, recent = _preview_token(_upload(operator, data)), _preview_token(_upload(operator, data))
    # Age the files by their modification time, the clock the sweep reads.
    two_hours_ago = time.time() - 2 * 3600
    os.utime(uploads / f"import-{abandoned}.csv", (two_hours_ago, two_hours_ago))
    fifty_minutes_ago = time.time() - 50 * 60
    os.utime(uploads / f"import-{recent}.csv", (fifty_minutes_ago, fifty_minutes_ago))
    other = uploads / "not-a-preview.wav"
    other.write_bytes(b"x")
    os.utime(other, (two_hours_ago, two_hours_ago))
    newest = _preview_token(_upload(operator, data))
    assert _previews(panel) == {f"import-{recent}.csv", f"import-{newest}.csv"}
    assert other.exists()  # only previews are swept
    # The abandoned one is gone for good: confirming it asks for the file again.
    assert post(operator, "/contacts/import/confirm", {"token": abandoned}).status_code == 302


def test_self_registrations_are_listed_apart(app, panel):
    HotlineStore(panel.sessions).record(Caller("+393339990001", known=False), Register("Fregene", "it"))
    html = client_for(app, "viewer").get("/contacts/?self_registered=1").get_data(as_text=True)
    assert "1 contatto trovato" in html and "solo iscritti da soli" in html
    assert "+393339990001" in html and "phone, " in html and "Mario Rossi" not in html
