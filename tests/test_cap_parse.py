"""CAP 1.2 in, as pure code (gateway/core/cap_xml.py, cap_mapping.py): real-world Italian documents
mapped to drafts, and hostile or invalid XML refused with the element and the rule."""
from __future__ import annotations

import pytest

from gateway.core.cap_feed import FeedError, feed_links
from gateway.core.cap_mapping import KnownZone, cut_to_fit, plan_draft
from gateway.core.cap_xml import CapError, parse_cap
from gateway.core.geometry import parse_feature_collection
from tests.cap_support import CAP_DATA, cap_document

ZONES = [KnownZone(s.name, s.code, s.geometry) for s in parse_feature_collection(
    (CAP_DATA / "zones.geojson").read_text(encoding="utf-8"), name_property="COMUNE", code_property="PRO_COM_T")]
MINIMAL = """<?xml version="1.0"?>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
  <identifier>X-1</identifier><sender>a@b.example</sender><sent>2026-10-14T13:30:00+02:00</sent>
  <status>Actual</status><msgType>Alert</msgType><scope>Public</scope>{extra}
  <info><category>Met</category><event>Vento</event><urgency>Expected</urgency><severity>Moderate</severity>
    <certainty>Likely</certainty><area><areaDesc>Roma</areaDesc></area></info>
</alert>"""


def _fits(text: str) -> bool:
    return len(text) <= 160


def test_a_regional_hydraulic_warning_maps_municipalities_by_istat_code_and_reports_the_rest():
    alert = parse_cap(cap_document("allerta_meteo_idraulico.xml"))
    plan = plan_draft(alert, ZONES, lambda text: len(text) <= 600)
    assert plan.zones == ("Fiumicino", "Roma", "Ladispoli")
    assert plan.unmapped_areas == ("Comune di Cerveteri (ISTAT 058029)",)
    assert plan.text.startswith("Allerta ARANCIONE per rischio idraulico dalle 00:00 del 15/10\nPrecipitazioni")
    assert plan.text.endswith("Non sostare su ponti e argini.")
    assert (plan.facts["severity"], plan.facts["urgency"], plan.facts["certainty"]) == ("Severe", "Expected", "Likely")
    assert plan.facts["event"] == "Allerta meteo arancione per rischio idraulico"
    assert plan.facts["sender_name"] == "Centro Funzionale Regionale del Lazio"
    assert plan.cap_category == "Met" and not plan.drill
    assert plan.deadline.isoformat() == "2099-10-15T21:59:00"   # expires, in UTC


def test_a_polygon_only_warning_reaches_the_zones_it_covers_not_the_neighbours_it_touches():
    plan = plan_draft(parse_cap(cap_document("solo_poligono.xml")), ZONES, _fits)
    assert plan.zones == ("Fiumicino",)      # Roma shares Fiumicino's border at lon 12.30, not the polygon
    assert plan.unmapped_areas == ("Specchio d'acqua antistante",)   # the circle at sea


def test_every_language_becomes_a_version_and_italian_is_the_main_text():
    plan = plan_draft(parse_cap(cap_document("multilingua.xml")), ZONES, lambda text: len(text) <= 400)
    assert plan.text.startswith("Ondata di calore livello 3\n")
    assert sorted(plan.translations) == ["de", "en"]
    assert plan.translations["de"] == "Hitzewelle Stufe 3\nBis Freitag bis zu 39 Grad."


def test_an_exercise_is_a_drill_and_update_and_cancel_carry_their_references():
    assert plan_draft(parse_cap(cap_document("esercitazione.xml")), ZONES, _fits).drill
    cancel = parse_cap(cap_document("revoca.xml"))
    assert cancel.msg_type == "Cancel"
    assert [r.identifier for r in cancel.references] == ["CFR-LAZIO-2026-0412", "CFR-LAZIO-2026-0413"]


def test_a_text_too_long_for_the_sms_plan_is_cut_at_a_word_and_marked():
    text, cut = cut_to_fit("parola " * 100, _fits)
    assert cut and text.endswith("parola...") and len(text) <= 160


@pytest.mark.parametrize("document, element, rule", [
    (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
     b'<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">&lol2;</alert>', "!DOCTYPE", "not allowed"),
    (b'<?xml version="1.0"?><!DOCTYPE alert [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
     b'<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>&xxe;</identifier></alert>',
     "!DOCTYPE", "not allowed"),
    (MINIMAL.replace("cap:1.2", "cap:1.1").format(extra="").encode(), "alert", "namespace must be"),
    (MINIMAL.format(extra="").replace("<sender>a@b.example</sender>", "").encode(), "sender", "required"),
    (MINIMAL.format(extra="").replace("<event>Vento</event>", "").encode(), "event", "required"),
    (MINIMAL.format(extra="").replace("Actual", "Real").encode(), "status", "not one of"),
    (MINIMAL.format(extra="").replace("Moderate", "High").encode(), "severity", "not one of"),
    (MINIMAL.format(extra="").replace("+02:00", "Z").encode(), "sent", "'Z' is not allowed"),
    (MINIMAL.format(extra="<references>a@b.example,X-0</references>").encode(), "references",
     "not sender,identifier,sent"),
    (MINIMAL.format(extra="").replace("<identifier>X-1", "<identifier>X 1").encode(), "identifier", "spaces"),
    (MINIMAL.format(extra="").replace("<scope>Public</scope>", "<scope>Restricted</scope>").encode(),
     "restriction", "required when <scope> is Restricted"),
    (MINIMAL.format(extra="").replace("<status>Actual</status><msgType>Alert</msgType>",
                                      "<msgType>Alert</msgType><status>Actual</status>").encode(), "status",
     "out of order"),
    (MINIMAL.format(extra="").replace("<areaDesc>Roma</areaDesc>",
                                      "<areaDesc>Roma</areaDesc><polygon>41.7,12.2 41.8,12.3</polygon>").encode(),
     "polygon", "at least 4"),
    (b"<alert", "alert", "not well-formed"),
    (MINIMAL.format(extra="").replace("<identifier>X-1</identifier>", "<identifier><b>X</b></identifier>").encode(),
     "identifier", "must hold text"),
])
def test_hostile_and_invalid_documents_are_refused_naming_the_element_and_the_rule(document, element, rule):
    with pytest.raises(CapError) as refused:
        parse_cap(document)
    assert refused.value.element == element and rule in refused.value.rule, str(refused.value)


def test_a_50_mb_document_is_refused_by_its_size_before_it_is_parsed():
    big = MINIMAL.format(extra="<note>" + "x" * (50 * 1024 * 1024) + "</note>").encode()
    with pytest.raises(CapError) as refused:
        parse_cap(big)
    assert refused.value.element == "alert" and "limit is 1048576" in refused.value.rule


def test_feeds_list_their_documents_atom_and_rss_and_refuse_entities():
    atom = b"""<feed xmlns="http://www.w3.org/2005/Atom"><entry><link rel="alternate" href="/a.html"/>
        <link type="application/cap+xml" href="/cap/1.xml"/></entry><entry><link href="2.xml"/></entry></feed>"""
    assert feed_links(atom, "http://cfr.example.it/cap/feed", max_bytes=10_000) == [
        "http://cfr.example.it/cap/1.xml", "http://cfr.example.it/cap/2.xml"]
    rss = b"<rss><channel><item><link> http://p.example.it/w/9.xml </link></item></channel></rss>"
    assert feed_links(rss, "http://p.example.it/rss", max_bytes=10_000) == ["http://p.example.it/w/9.xml"]
    with pytest.raises(FeedError, match="not a feed"):
        feed_links(b'<!DOCTYPE f [<!ENTITY e "x">]><feed>&e;</feed>', "http://x", max_bytes=10_000)


def test_a_block_in_a_language_no_contact_can_have_is_left_out_with_a_note():
    document = cap_document("multilingua.xml").replace(b"<language>de-DE</language>", b"<language>x-klingon</language>")
    plan = plan_draft(parse_cap(document), ZONES, lambda text: len(text) <= 400)
    assert sorted(plan.translations) == ["en"] and "<info> in x-klingon is not used" in plan.notes[0]
