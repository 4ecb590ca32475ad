"""The two-person rule without holes: who may submit, approve, share and cancel an alert (issue 10, items 1 and 10)."""
from __future__ import annotations

import json

from sqlalchemy import func, select

from gateway.core.models import Alert, Delivery
from gateway.core.models_panel import AlertApproval, AuditEntry
from tests.web_support import client_for, post
import pytest

# Run on SQLite and on PostgreSQL (conftest.py, tests/pg_support.py).
pytestmark = pytest.mark.both_databases


def _form(**overrides) -> dict:
    form = {"text": "Allerta rossa: salire ai piani alti", "zones": "Fregene", "channels": "sms", "action": "draft"}
    form.update(overrides)
    return form


def _created_id(response) -> int:
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    return int(response.location.rstrip("/").rsplit("/", 1)[1])


def _state(panel, alert_id: int) -> str:
    with panel.sessions() as s:
        return s.get(Alert, alert_id).state


def _deliveries(panel, alert_id: int) -> int:
    with panel.sessions() as s:
        return s.scalar(select(func.count()).select_from(Delivery).where(Delivery.alert_id == alert_id))


def _audit(panel, alert_id: int) -> list[tuple[str, str, dict]]:
    with panel.sessions() as s:
        rows = s.execute(select(AuditEntry.actor, AuditEntry.action, AuditEntry.details)
                         .where(AuditEntry.target == str(alert_id)).order_by(AuditEntry.id)).all()
    return [(actor, action, json.loads(details)) for actor, action, details in rows]


def test_an_approver_who_asked_for_the_approval_cannot_give_it(app, panel):
    """The bypass found: submit someone else's draft, then approve it alone."""
    draft = _created_id(post(client_for(app, "operator"), "/alerts/new", _form(shared="1")))
    approver = client_for(app, "approver")
    post(approver, f"/alerts/{draft}/submit")
    assert _state(panel, draft) == "awaiting_approval"
    with panel.sessions() as s:
        asked = s.scalar(select(AlertApproval).where(AlertApproval.alert_id == draft))
    assert asked.requested_by == "anna" and asked.requested_at is not None
    assert "Approva e invia" not in approver.get(f"/alerts/{draft}").get_data(as_text=True)
    assert "Approva e invia" in client_for(app, "admin").get(f"/alerts/{draft}").get_data(as_text=True)
    page = post(approver, f"/alerts/{draft}/approve", follow_redirects=True).get_data(as_text=True)
    assert "hai chiesto tu" in page
    assert _state(panel, draft) == "awaiting_approval" and _deliveries(panel, draft) == 0
    # The author did not ask for it: still not theirs to approve (and an operator may not approve at all);
    # a third person may.
    post(client_for(app, "admin"), f"/alerts/{draft}/approve")
    assert _state(panel, draft) == "active" and _deliveries(panel, draft) == 2
    with panel.sessions() as s:
        decided = s.scalar(select(AlertApproval).where(AlertApproval.alert_id == draft))
    assert (decided.requested_by, decided.decision, decided.decided_by) == ("anna", "approved", "ada")


def test_an_unshared_draft_is_submitted_by_its_author_only(app, panel):
    operator = client_for(app, "operator")
    draft = _created_id(post(operator, "/alerts/new", _form()))
    for role in ("approver", "admin"):
        other = client_for(app, role)
        assert "solo l'autore può inviarla" in other.get(f"/alerts/{draft}").get_data(as_text=True)
        page = post(other, f"/alerts/{draft}/submit", follow_redirects=True).get_data(as_text=True)
        assert "questa bozza è di otto" in page, role
        assert _state(panel, draft) == "draft"
        # Nor may they share it on the author's behalf.
        post(other, f"/alerts/{draft}/share", {"shared": "1"})
        with panel.sessions() as s:
            assert not s.get(Alert, draft).shared
    # The author shares it: now another may submit it, and is recorded as the one who asked.
    post(operator, f"/alerts/{draft}/share", {"shared": "1"})
    post(client_for(app, "approver"), f"/alerts/{draft}/submit")
    assert _state(panel, draft) == "awaiting_approval"
    assert [action for _actor, action, _details in _audit(panel, draft)] == ["alert.draft", "alert.share",
                                                                             "alert.request"]


def test_a_draft_made_through_the_api_is_shared(app, panel):
    import re
    admin = client_for(app, "admin")
    html = post(admin, "/admin/tokens", {"name": "meteo", "role": "operator"}).get_data(as_text=True)
    token = re.search(r'<code id="new-token">([^<]+)</code>', html).group(1)
    response = app.test_client().post("/api/v1/alerts", headers={"Authorization": f"Bearer {token}"},
                                      json={"text": "Allerta", "target": {"zones": ["Fregene"]}, "mode": "draft"})
    draft = response.get_json()["id"]
    post(client_for(app, "operator"), f"/alerts/{draft}/submit")
    assert _state(panel, draft) == "awaiting_approval"


def test_who_may_cancel(app, panel):
    operator, approver, admin = (client_for(app, role) for role in ("operator", "approver", "admin"))
    # An approver's live alert: not by a plain operator.
    live = _created_id(post(approver, "/alerts/new", _form(action="send_now", reason="argine rotto")))
    assert 'action="/alerts/{}/cancel"'.format(live) not in operator.get(f"/alerts/{live}").get_data(as_text=True)
    page = post(operator, f"/alerts/{live}/cancel", {"reason": "errore"}, follow_redirects=True)
    assert "un approvatore o un amministratore" in page.get_data(as_text=True)
    assert _state(panel, live) == "active"
    sent = _audit(panel, live)[-1]
    assert sent[:2] == ("anna", "alert.send") and sent[2]["bypassed_two_person_rule"] is True
    # An approver may, saying why.
    page = post(approver, f"/alerts/{live}/cancel", follow_redirects=True).get_data(as_text=True)
    assert "indica perché" in page and _state(panel, live) == "active"
    post(approver, f"/alerts/{live}/cancel", {"reason": "zona sbagliata"})
    assert _state(panel, live) == "cancelled"
    assert _audit(panel, live)[-1] == ("anna", "alert.cancel", {"deliveries_stopped": 2, "reason": "zona sbagliata",
                                                               "was": "active"})
    # The author may stop their own alert waiting for approval, saying why.
    waiting = _created_id(post(operator, "/alerts/new", _form(action="submit")))
    post(operator, f"/alerts/{waiting}/cancel", {"reason": "già risolto"})
    assert _state(panel, waiting) == "cancelled"
    # Someone else's unshared draft: not an approver's to throw away; an admin may, saying why.
    draft = _created_id(post(operator, "/alerts/new", _form()))
    post(approver, f"/alerts/{draft}/cancel", {"reason": "vecchia"})
    assert _state(panel, draft) == "draft"
    post(admin, f"/alerts/{draft}/cancel", {"reason": "operatore trasferito"})
    assert _state(panel, draft) == "cancelled"
    # One's own draft goes without a reason.
    mine = _created_id(post(operator, "/alerts/new", _form()))
    post(operator, f"/alerts/{mine}/cancel")
    assert _state(panel, mine) == "cancelled"
    assert _audit(panel, mine)[-1][:2] == ("otto", "alert.cancel")
