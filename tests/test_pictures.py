"""An alert's pictures as SVG (web/pictures.py): well-formed XML, the right marks, colours by class, escaped names."""
from __future__ import annotations

import datetime as dt
import json
import re

from defusedxml import ElementTree

from gateway.core.alert_figures import (AttemptOutcomes, AttemptRow, Curve, Projection, ReachSeries, ZoneReach)
from web.pictures import (SHARE_CLASSES, attempts_svg, reach_curve_svg, share_class, zone_map_svg)

SVG = "{http://www.w3.org/2000/svg}"
SQUARE = {"type": "Polygon", "coordinates": [[[12.2, 41.9], [12.3, 41.9], [12.3, 42.0], [12.2, 42.0], [12.2, 41.9]]]}
NEXT_DOOR = {"type": "MultiPolygon", "coordinates": [
    [[[12.3, 41.9], [12.4, 41.9], [12.4, 42.0], [12.3, 42.0], [12.3, 41.9]],
     [[12.32, 41.92], [12.34, 41.92], [12.34, 41.94], [12.32, 41.94], [12.32, 41.92]]]]}
HOSTILE = 'Borgo <script>alert("x")</script> & "Sole"'


def parsed(markup):
    root = ElementTree.fromstring(str(markup))
    assert root.tag == f"{SVG}svg"
    assert "style" not in str(markup)                       # the CSP forbids style attributes and elements
    title, desc = root.find(f"{SVG}title"), root.find(f"{SVG}desc")
    assert title is not None and title.text and desc is not None and desc.text
    assert root.get("aria-labelledby") == f"{title.get('id')} {desc.get('id')}"
    return root


def classes(element) -> set[str]:
    return set((element.get("class") or "").split())


def series(running: bool = True, eta: float | None = 120.0) -> ReachSeries:
    return ReachSeries(
        alert_id=7, start=dt.datetime(2026, 12, 4, 10), now=dt.datetime(2026, 12, 4, 10, 5), end_seconds=300.0,
        bucket_seconds=5, totals={"sms": 1000, "voice": 400},
        curves=(Curve("sms", "sent", ((0.0, 0), (60.0, 300), (300.0, 700))),
                Curve("sms", "delivered", ((0.0, 0), (120.0, 250), (300.0, 650))),
                Curve("voice", "answered", ((0.0, 0), (300.0, 120))),
                Curve("voice", "confirmed", ((0.0, 0), (300.0, 90)))),
        projections=(Projection("sms", 1000, 700, 300.0, eta, 150.0),
                     Projection("voice", 400, 150, 300.0, None, 0.0)),
        running=running)


def test_the_reach_curve_draws_one_path_per_curve_and_a_dashed_projection_with_text_for_each():
    root = parsed(reach_curve_svg(series()))
    paths = root.iter(f"{SVG}path")
    curves = [p for p in root.iter(f"{SVG}path") if "curve" in classes(p)]
    assert sorted(c.get("class") for c in curves) == ["curve sms_delivered", "curve sms_sent", "curve voice_answered",
                                                      "curve voice_confirmed"]
    projections = [p for p in paths if "projection" in classes(p)]
    assert [p.get("class") for p in projections] == ["projection sms"]   # voice has no line up: no line drawn
    assert projections[0].get("stroke-dasharray")
    texts = " ".join(t.text or "" for t in root.iter(f"{SVG}text"))
    assert "700" in texts and "no line up" in texts and "2 min" in texts
    # The SMS projection ends at the total, at now + ETA: the right edge of the plot.
    d = projections[0].get("d")
    (x0, y0), (x1, y1) = [tuple(map(float, pair.split(","))) for pair in re.findall(r"[\d.]+,[\d.]+", d)]
    assert x1 > x0 and y1 < y0


def test_the_reach_curve_says_so_when_nothing_went_out_and_for_no_alert():
    empty = ReachSeries(alert_id=1, start=None, now=dt.datetime(2026, 1, 1), end_seconds=0.0, bucket_seconds=1,
                        totals={}, curves=(), projections=(), running=True)
    assert "Nothing has gone out yet." in str(parsed(reach_curve_svg(empty)).find(f"{SVG}desc").text)
    assert parsed(reach_curve_svg(None)) is not None


def outcomes(rows) -> AttemptOutcomes:
    return AttemptOutcomes(alert_id=1, channel="voice", rows=tuple(rows), called=10, never_answered=2, not_called=5,
                           max_attempts=3)


def test_the_attempts_chart_has_an_answered_and_a_confirmed_bar_per_call_with_their_numbers():
    root = parsed(attempts_svg(outcomes([AttemptRow(1, 5, 4), AttemptRow(2, 2, 1), AttemptRow(3, 1, 0)])))
    bars = [r for r in root.iter(f"{SVG}rect") if "bar" in classes(r)]
    assert len(bars) == 6
    assert [sorted(classes(b) - {"bar"})[0] for b in bars] == ["answered", "confirmed"] * 3
    heights = [float(b.get("height")) for b in bars]
    assert heights[0] > heights[1] > 0 and heights[5] == 0.0
    labels = [t.text for t in root.iter(f"{SVG}text")]
    assert "call 3" in labels and "5" in labels
    assert "not called yet: 5" in " ".join(labels)
    empty = parsed(attempts_svg(outcomes([])))
    assert not [r for r in empty.iter(f"{SVG}rect") if "bar" in classes(r)]


def zone(name, recipients, reached, geometry=None, **extra) -> ZoneReach:
    return ZoneReach(name=name, recipients=recipients, reached=reached, help_requests=extra.get("help", 0),
                     help_open=0, unreached_vulnerable=extra.get("vulnerable", 0),
                     geometry=json.dumps(geometry) if geometry else None)


def test_the_map_draws_zones_with_geometry_coloured_by_share_and_lists_the_others_beside_it():
    zones = [zone("Fregene", 100, 10, SQUARE, help=2, vulnerable=3), zone("Isola Sacra", 100, 90, NEXT_DOOR),
             zone(HOSTILE, 10, 6), zone(None, 5, 0)]
    markup = str(zone_map_svg(zones))
    root = parsed(markup)
    drawn = [g for g in root.iter(f"{SVG}g") if "zone" in classes(g)]
    assert [sorted(classes(g) - {"zone"}) for g in drawn] == [["share-0"], ["share-3"]]
    assert drawn[0].find(f"{SVG}path").get("fill") == SHARE_CLASSES[0][2]
    # The hole of Isola Sacra's polygon is drawn as a second ring, cut out (even-odd).
    hole = drawn[1].find(f"{SVG}path")
    assert hole.get("d").count("M") == 2 and hole.get("fill-rule") == "evenodd"
    listed = [g for g in root.iter(f"{SVG}g") if "zone-row" in classes(g)]
    assert len(listed) == 2 and "share-2" in classes(listed[0]) and "share-0" in classes(listed[1])
    names = [t.text for t in root.iter(f"{SVG}text") if "zone-name" in classes(t)]
    assert names == ["Fregene", "Isola Sacra", HOSTILE, "no zone"]
    assert "<script>" not in markup and "&lt;script&gt;" in markup and "&amp; &#34;Sole&#34;" in markup
    texts = " ".join(t.text or "" for t in root.iter(f"{SVG}text"))
    assert "help: 2" in texts and "vulnerable: 3" in texts and "6 of 10 reached (60%)" in texts
    # Within the map's box, west to the left and north up: Fregene (west) left of Isola Sacra.
    xs = [float(re.match(r"M([\d.]+)", g.find(f"{SVG}path").get("d")).group(1)) for g in drawn]
    assert xs[0] < xs[1]


def test_share_classes_cover_nothing_to_everything_and_a_map_with_no_geometry_is_a_list():
    assert [share_class(s)[0] for s in (None, 0.0, 0.3, 0.6, 0.8, 1.0)] == [
        "share-none", "share-0", "share-1", "share-2", "share-3", "share-3"]
    root = parsed(zone_map_svg([zone("Fregene", 4, 4)]))
    assert not [g for g in root.iter(f"{SVG}g") if "zone" in classes(g)]
    assert [t.text for t in root.iter(f"{SVG}text") if "zone-name" in classes(t)] == ["Fregene"]
    assert parsed(zone_map_svg([])) is not None


def test_count_axes_have_whole_ticks():
    root = parsed(attempts_svg(outcomes([AttemptRow(1, 2, 2), AttemptRow(2, 2, 0)])))
    ticks = [t.text for t in root.iter(f"{SVG}text") if "tick" in classes(t) and not t.text.startswith("call")]
    assert ticks == ["0", "1", "2"]
    root = parsed(reach_curve_svg(series()))
    ticks = [t.text for t in root.iter(f"{SVG}text") if t.get("text-anchor") == "end"]
    assert ticks == ["0", "200", "400", "600", "800", "1000"]


def test_a_stored_geometry_that_no_longer_reads_is_listed_not_drawn():
    broken = ZoneReach(name="Passoscuro", recipients=3, reached=1, help_requests=0, help_open=0,
                       unreached_vulnerable=0, geometry='{"type": "Polygon", "coordinates": "nonsense"}')
    root = parsed(zone_map_svg([broken, zone("Fregene", 2, 2, SQUARE)]))
    assert [g.get("class") for g in root.iter(f"{SVG}g") if "zone" in classes(g)] == ["zone share-3"]
    assert "Passoscuro" in [t.text for t in root.iter(f"{SVG}text") if "zone-name" in classes(t)]
