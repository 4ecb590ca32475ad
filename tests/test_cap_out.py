"""Our alerts in CAP 1.2 (gateway/core/cap_out.py): every document passes our own validator and reads back
as the same text, languages, zones and drill flag; follow-ups carry <references>."""
from __future__ import annotations

import datetime as dt

from hypothesis import given, settings, strategies as st

from gateway.core.cap_mapping import KnownZone, plan_draft
from gateway.core.cap_out import Publication, PublishedZone, alert_reference, atom_feed, cap_document
from gateway.core.cap_xml import parse_cap

ZONES = (PublishedZone("Fiumicino", "058120", None),
         PublishedZone("Isola Sacra", None, '{"type":"Polygon","coordinates":[[[12.2,41.75],[12.25,41.75],'
                                            '[12.25,41.8],[12.2,41.8],[12.2,41.75]]]}'))
KNOWN = [KnownZone(z.name, z.code, z.geometry) for z in ZONES] + [
    KnownZone("Roma", "058091", '{"type":"Polygon","coordinates":[[[12.3,41.75],[12.6,41.75],[12.6,41.95],'
                                '[12.3,41.95],[12.3,41.75]]]}')]
# What an operator can write: letters, digits, punctuation, accents, line breaks; no control characters.
TEXT = st.text(st.characters(categories=("L", "N", "P", "Zs"), exclude_characters="\x85\u2028\u2029"),
               min_size=1, max_size=300).map(lambda t: "\n".join(" ".join(line.split()) for line in t.splitlines()
                                                                   if line.strip())).filter(bool)


def _publication(texts: dict[str, str], *, drill: bool = False, follow_up: str | None = None) -> Publication:
    references = () if follow_up is None else (alert_reference("allerta.fiumicino", 7, dt.datetime(2026, 10, 1, 8)),)
    return Publication(alert_id=9, sender="allerta.fiumicino", sender_name="Comune di Fiumicino",
                       created_at=dt.datetime(2026, 10, 14, 11, 30, 15, 123456), drill=drill, follow_up=follow_up,
                       references=references, texts=texts, zones=ZONES, area_description="Fiumicino, Isola Sacra",
                       deadline=dt.datetime(2026, 10, 14, 14, 30), category="Met", event="Avviso di protezione civile",
                       urgency="Immediate", severity="Severe", certainty="Likely")


@settings(max_examples=30, deadline=None)
@given(italian=TEXT, english=TEXT, drill=st.booleans())
def test_what_we_publish_is_valid_cap_and_reads_back_as_the_same_draft(italian, english, drill):
    alert = parse_cap(cap_document(_publication({"it": italian, "en": english}, drill=drill)))
    assert (alert.status, alert.msg_type, alert.identifier, alert.sent) == (
        "Exercise" if drill else "Actual", "Alert", "allerta-9", "2026-10-14T11:30:15+00:00")
    plan = plan_draft(alert, KNOWN, lambda text: True)
    assert (plan.text, plan.translations, plan.drill) == (italian, {"en": english}, drill)
    assert sorted(plan.zones) == ["Fiumicino", "Isola Sacra"] and plan.unmapped_areas == ()   # Roma only touches it
    assert plan.deadline == dt.datetime(2026, 10, 14, 14, 30)


def test_corrections_and_all_clears_reference_the_alert_they_follow():
    update = parse_cap(cap_document(_publication({"it": "Rettifica"}, follow_up="correction")))
    cancel = parse_cap(cap_document(_publication({"it": "Cessato allarme"}, follow_up="all_clear")))
    assert (update.msg_type, cancel.msg_type) == ("Update", "Cancel")
    assert update.references[0].text() == "allerta.fiumicino,allerta-7,2026-10-01T08:00:00+00:00"
    assert cancel.infos[0].response_types == ("AllClear",)


def test_the_feed_lists_every_document_newest_first():
    older = _publication({"it": "Primo"})
    newer = Publication(**{**older.__dict__, "alert_id": 10, "created_at": dt.datetime(2026, 10, 15, 9)})
    feed = atom_feed([older, newer], title="Allerta Fiumicino", feed_url="http://x/cap/feed.atom",
                     document_url=lambda p: f"http://x/cap/alerts/{p.alert_id}.xml").decode()
    assert feed.index("http://x/cap/alerts/10.xml") < feed.index("http://x/cap/alerts/9.xml")
