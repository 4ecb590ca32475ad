"""An alert's pictures as self-contained SVG: the reach curve, outcomes by call, the zone map.

Pure functions from gateway.core.alert_figures' figures to markup, with no I/O and no request:
the alert page swaps them in live (web/static/allerta.js) and the after-action report prints
the same ones. The strict CSP forbids style attributes, so colours are SVG presentation
attributes (``fill=``, ``stroke=``, which are not styles) and each element also carries a
class for allerta.css to refine: a picture printed or opened on its own still has its colours.
Every picture has a <title> and <desc> and says its numbers in text too, not only in colour.
Text from users (zone names) goes through ``escape``; numbers through the panel's locale.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from flask_babel import format_decimal, format_percent, gettext as _, ngettext
from markupsafe import Markup, escape
from shapely.errors import ShapelyError
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

from gateway.core.alert_figures import AttemptOutcomes, Curve, Projection, ReachSeries, ZoneReach
from gateway.core.geometry import zone_geometry
from web.labels import label

# Colours of the channels' curves: (first measure, second measure), the panel's blue and amber.
CURVE_COLOURS = {"sms_sent": "#8fb3e0", "sms_delivered": "#1f4e8c",
                 "voice_answered": "#e0b27a", "voice_confirmed": "#a15c00"}
OTHER_COLOUR = "#555555"
ANSWERED_COLOUR, CONFIRMED_COLOUR = "#e0b27a", "#a15c00"
# Share reached: (upper bound, class, fill), the last one open-ended; red to green, each with a text label.
SHARE_CLASSES = ((0.25, "share-0", "#b3261e"), (0.5, "share-1", "#e07b39"), (0.75, "share-2", "#e6c440"),
                 (None, "share-3", "#3a8f4f"))
NO_SHARE = ("share-none", "#d0d0d0")
FONT = "system-ui, DejaVu Sans, sans-serif"


def _number(value: int) -> str:
    return format_decimal(value)


def _attrs(**attrs: object) -> str:
    """Attributes escaped, in order; ``class_`` is ``class``; None leaves one out."""
    return "".join(f' {name.rstrip("_").replace("_", "-")}="{escape(value)}"'
                   for name, value in attrs.items() if value is not None)


def _text(x: float, y: float, content: str, *, cls: str, anchor: str = "start", size: int = 12,
          halo: bool = False) -> str:
    """A label; ``halo``: outlined in white, readable on any fill (the stroke is painted under the letters)."""
    outline = {"stroke": "#ffffff", "stroke_width": 3, "paint_order": "stroke"} if halo else {}
    return (f"<text{_attrs(x=f'{x:.1f}', y=f'{y:.1f}', class_=cls, text_anchor=anchor, font_size=size, **outline)}>"
            f"{escape(content)}</text>")


def _svg(kind: str, width: float, height: float, title: str, desc: str, body: Iterable[str]) -> Markup:
    """The outer element: sized, scalable (viewBox), labelled for screen readers."""
    head = (f'<svg xmlns="http://www.w3.org/2000/svg"{_attrs(class_=f"picture {kind}", width=int(width), height=int(height), viewBox=f"0 0 {int(width)} {int(height)}", role="img", aria_labelledby=f"{kind}-title {kind}-desc", font_family=FONT)}>'
            f'<title id="{kind}-title">{escape(title)}</title><desc id="{kind}-desc">{escape(desc)}</desc>')
    return Markup(head + "".join(body) + "</svg>")


# --- reach curve -------------------------------------------------------------------------------
def duration_label(seconds: float) -> str:
    """A time axis label: seconds under two minutes, minutes under two hours, then hours and minutes."""
    seconds = int(round(seconds))
    if seconds < 120:
        return _("%(n)s s", n=seconds)
    if seconds < 7200:
        return _("%(n)s min", n=seconds // 60)
    hours, minutes = divmod(seconds // 60, 60)
    return _("%(h)s h %(m)02d", h=hours, m=minutes)


def _count_step(top: float, ticks: int = 6) -> int:
    """A whole step of 1, 2 or 5 times a power of ten giving at most ``ticks`` ticks up to ``top``: people are
    counted in whole numbers, so an axis never reads 0, 0, 1, 1."""
    raw = max(top / ticks, 1.0)
    magnitude = 10 ** math.floor(math.log10(raw))
    for multiple in (1, 2, 5, 10):
        if raw <= multiple * magnitude:
            return int(multiple * magnitude)
    return int(10 * magnitude)


def _time_step(span: float) -> float:
    for step in (10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400):
        if span / step <= 6:
            return step
    return 86400 * math.ceil(span / 86400 / 6)


def curve_label(curve_key: str) -> str:
    return {"sms_sent": _("SMS sent"), "sms_delivered": _("SMS delivered"),
            "voice_answered": _("calls answered (answering machines included)"), "voice_confirmed": _("calls confirmed (pressed 1)")
            }.get(curve_key, curve_key)


def channel_label(channel: str) -> str:
    return label(channel, "channel")


def _projection_text(p: Projection) -> str:
    if p.eta_seconds is None:
        return _("%(channel)s: no line up, cannot estimate", channel=channel_label(p.channel))
    if p.eta_seconds == 0:
        return _("%(channel)s: nothing left to send", channel=channel_label(p.channel))
    return _("%(channel)s: the rest (%(left)s) done in about %(time)s at %(rate)s a minute",
             channel=channel_label(p.channel), left=_number(p.total - p.done), time=duration_label(p.eta_seconds),
             rate=format_decimal(round(p.rate_per_minute, 1)))


def reach_curve_svg(series: ReachSeries | None, *, width: int = 640, height: int = 300) -> Markup:
    """People reached over time per channel, with each channel's projection to its end (dashed)."""
    title = _("People reached over time")
    if series is None:
        return _svg("reach-curve", width, 60, title, _("No such alert."), [_text(8, 30, _("No such alert."), cls="empty")])
    curves = [c for c in series.curves]
    projections = list(series.projections)
    summary = "; ".join([*(f"{curve_label(c.key)}: {_number(c.last)}" for c in curves),
                         *(_projection_text(p) for p in projections)])
    if not curves and not projections:
        return _svg("reach-curve", width, 60, title, _("Nothing has gone out yet."),
                    [_text(8, 30, _("Nothing has gone out yet."), cls="empty")])
    legend_rows = len(curves) + len(projections)
    left, right, top = 64, 16, 12
    plot_h = height - top - 40
    total_h = height + 16 * legend_rows + 8
    plot_w = width - left - right
    ends = [series.end_seconds, *(p.end_seconds for p in projections if p.end_seconds is not None)]
    x_max = max([*ends, *(c.points[-1][0] for c in curves if c.points), 60.0])
    y_max = max([*series.totals.values(), *(c.last for c in curves), 1])
    y_step = _count_step(y_max)
    y_top = math.ceil(y_max / y_step) * y_step

    def x(seconds: float) -> float:
        return left + plot_w * min(seconds, x_max) / x_max

    def y(count: float) -> float:
        return top + plot_h - plot_h * count / y_top

    body = [f'<rect{_attrs(class_="plot", x=left, y=top, width=plot_w, height=plot_h, fill="#ffffff", stroke="#c9c9c9")}/>']
    tick = 0.0
    while tick <= y_top + 1e-9:
        body.append(f'<line{_attrs(class_="grid", x1=left, x2=left + plot_w, y1=f"{y(tick):.1f}", y2=f"{y(tick):.1f}", stroke="#e6e6e6")}/>')
        body.append(_text(left - 6, y(tick) + 4, _number(int(tick)), cls="tick", anchor="end", size=11))
        tick += y_step
    t_step = _time_step(x_max)
    tick = 0.0
    while tick <= x_max + 1e-9:
        body.append(_text(x(tick), top + plot_h + 16, duration_label(tick), cls="tick", anchor="middle", size=11))
        tick += t_step
    body.append(_text(left + plot_w / 2, top + plot_h + 32, _("time since the first message"), cls="axis",
                      anchor="middle", size=11))
    for channel, total in series.totals.items():
        body.append(f'<line{_attrs(class_=f"total {channel}", x1=left, x2=left + plot_w, y1=f"{y(total):.1f}", y2=f"{y(total):.1f}", stroke="#999999", stroke_dasharray="2 3")}/>')
    if series.running:
        body.append(f'<line{_attrs(class_="now", x1=f"{x(series.end_seconds):.1f}", x2=f"{x(series.end_seconds):.1f}", y1=top, y2=top + plot_h, stroke="#bbbbbb")}/>')
    for p in projections:
        if p.end_seconds is None or p.eta_seconds == 0:
            continue
        colour = CURVE_COLOURS.get(f"{p.channel}_{'delivered' if p.channel == 'sms' else 'confirmed'}", OTHER_COLOUR)
        body.append(f'<path{_attrs(class_=f"projection {p.channel}", d=f"M{x(p.now_seconds):.1f},{y(p.done):.1f} L{x(p.end_seconds):.1f},{y(p.total):.1f}", fill="none", stroke=colour, stroke_width=2, stroke_dasharray="6 4")}/>')
    for c in curves:
        points = " L".join(f"{x(t):.1f},{y(n):.1f}" for t, n in _stepped(c.points, series.end_seconds))
        body.append(f'<path{_attrs(class_=f"curve {c.key}", d="M" + points, fill="none", stroke=CURVE_COLOURS.get(c.key, OTHER_COLOUR), stroke_width=3 if c.measure in ("delivered", "confirmed") else 2)}>'
                    f'<title>{escape(curve_label(c.key))}: {escape(_number(c.last))}</title></path>')
    row = height + 4
    for c in curves:
        body.append(f'<line{_attrs(class_=f"legend-key {c.key}", x1=left, x2=left + 24, y1=row - 4, y2=row - 4, stroke=CURVE_COLOURS.get(c.key, OTHER_COLOUR), stroke_width=3)}/>')
        body.append(_text(left + 30, row, f"{curve_label(c.key)}: {_number(c.last)} / {_number(series.totals.get(c.channel, 0))}",
                          cls="legend", size=12))
        row += 16
    for p in projections:
        body.append(f'<line{_attrs(class_=f"legend-key projection {p.channel}", x1=left, x2=left + 24, y1=row - 4, y2=row - 4, stroke=OTHER_COLOUR, stroke_width=2, stroke_dasharray="6 4")}/>')
        body.append(_text(left + 30, row, _projection_text(p), cls="legend projection-text", size=12))
        row += 16
    return _svg("reach-curve", width, total_h, title, summary, body)


def _stepped(points: Sequence[tuple[float, int]], end: float) -> list[tuple[float, int]]:
    """A cumulative count drawn flat until it changes, and on to the right edge."""
    out: list[tuple[float, int]] = []
    for t, n in points:
        if out:
            out.append((t, out[-1][1]))
        out.append((t, n))
    if out and end > out[-1][0]:
        out.append((end, out[-1][1]))
    return out


# --- outcomes by call ----------------------------------------------------------------------------
def attempts_svg(outcomes: AttemptOutcomes | None, *, width: int = 640, height: int = 240) -> Markup:
    """Per call (1st, 2nd...): how many numbers were first answered and how many confirmed on it."""
    title = _("Answered and confirmed, by call")
    if outcomes is None or not outcomes.rows:
        message = (_("No such alert.") if outcomes is None else
                   _("No call answered yet.") if outcomes.called else _("No calls in this alert yet."))
        return _svg("attempts", width, 60, title, message, [_text(8, 30, message, cls="empty")])
    footer = _("called: %(called)s · never answered: %(never)s · not called yet: %(waiting)s",
               called=_number(outcomes.called), never=_number(outcomes.never_answered),
               waiting=_number(outcomes.not_called))
    desc = "; ".join([*(_("call %(n)s: %(answered)s answered, %(confirmed)s confirmed", n=r.attempt,
                          answered=_number(r.answered), confirmed=_number(r.confirmed)) for r in outcomes.rows),
                      footer])
    left, right, top, bottom = 64, 16, 20, 74
    plot_w, plot_h = width - left - right, height - top - bottom
    y_max = max(max(max(r.answered, r.confirmed) for r in outcomes.rows), 1)
    y_step = _count_step(y_max, 4)
    y_top = math.ceil(y_max / y_step) * y_step
    group = plot_w / len(outcomes.rows)
    bar = min(40.0, group * 0.35)

    def y(count: float) -> float:
        return top + plot_h - plot_h * count / y_top

    body = []
    tick = 0.0
    while tick <= y_top + 1e-9:
        body.append(f'<line{_attrs(class_="grid", x1=left, x2=left + plot_w, y1=f"{y(tick):.1f}", y2=f"{y(tick):.1f}", stroke="#e6e6e6")}/>')
        body.append(_text(left - 6, y(tick) + 4, _number(int(tick)), cls="tick", anchor="end", size=11))
        tick += y_step
    for i, r in enumerate(outcomes.rows):
        centre = left + group * (i + 0.5)
        for offset, kind, count, colour, name in ((-bar, "answered", r.answered, ANSWERED_COLOUR, _("answered")),
                                                  (0.0, "confirmed", r.confirmed, CONFIRMED_COLOUR, _("confirmed"))):
            bar_x = centre + offset
            body.append(f'<rect{_attrs(class_=f"bar {kind}", x=f"{bar_x:.1f}", y=f"{y(count):.1f}", width=f"{bar:.1f}", height=f"{y(0) - y(count):.1f}", fill=colour)}>'
                        f'<title>{escape(name)}: {escape(_number(count))}</title></rect>')
            body.append(_text(bar_x + bar / 2, y(count) - 3, _number(count), cls="value", anchor="middle", size=11))
        body.append(_text(centre, top + plot_h + 16, ordinal_call(r.attempt), cls="tick", anchor="middle", size=11))
    body.append(f'<line{_attrs(class_="axis", x1=left, x2=left + plot_w, y1=f"{y(0):.1f}", y2=f"{y(0):.1f}", stroke="#777777")}/>')
    legend_y = height - bottom + 40
    for i, (kind, colour, name) in enumerate((("answered", ANSWERED_COLOUR, _("first answered on this call")),
                                             ("confirmed", CONFIRMED_COLOUR, _("confirmed on this call")))):
        lx = left + i * 260
        body.append(f'<rect{_attrs(class_=f"legend-key {kind}", x=lx, y=legend_y - 10, width=12, height=12, fill=colour)}/>')
        body.append(_text(lx + 18, legend_y, name, cls="legend", size=12))
    body.append(_text(left, legend_y + 20, footer, cls="legend footer", size=12))
    return _svg("attempts", width, height, title, desc, body)


def ordinal_call(n: int) -> str:
    return _("call %(n)s", n=n)


# --- zone map --------------------------------------------------------------------------------------
def share_class(share: float | None) -> tuple[str, str]:
    """(CSS class, fill) of a share reached, 0..1; grey for a zone the alert sent nothing to."""
    if share is None:
        return NO_SHARE
    for upper, cls, fill in SHARE_CLASSES:
        if upper is None or share < upper:
            return cls, fill
    return SHARE_CLASSES[-1][1:]


def share_class_labels() -> list[tuple[str, str, str]]:
    """(class, fill, label) of each share class, for the legend."""
    out, lower = [], 0.0
    for upper, cls, fill in SHARE_CLASSES:
        label = (_("under %(upper)s", upper=format_percent(upper)) if lower == 0 else
                 _("%(lower)s to %(upper)s", lower=format_percent(lower), upper=format_percent(upper))
                 if upper is not None else _("%(lower)s or more", lower=format_percent(lower)))
        out.append((cls, fill, label))
        lower = upper or lower
    out.append((*NO_SHARE, _("no recipients")))
    return out


def zone_label(zone: ZoneReach) -> str:
    return zone.name if zone.name is not None else _("no zone")


def zone_summary(zone: ZoneReach) -> str:
    """A zone's figures in one line: the tooltip, the list beside the map, the description."""
    share = format_percent(zone.share) if zone.share is not None else "-"
    parts = [_("%(reached)s of %(recipients)s reached (%(share)s)", reached=_number(zone.reached),
               recipients=_number(zone.recipients), share=share)]
    if zone.help_requests:
        parts.append(ngettext("%(count)s help request", "%(count)s help requests", zone.help_requests,
                              count=_number(zone.help_requests)))
    if zone.unreached_vulnerable:
        parts.append(ngettext("%(count)s vulnerable person not reached", "%(count)s vulnerable people not reached",
                              zone.unreached_vulnerable, count=_number(zone.unreached_vulnerable)))
    return " · ".join(parts)


def _shape(zone: ZoneReach) -> BaseGeometry | None:
    if not zone.geometry:
        return None
    try:
        shape = zone_geometry(zone.geometry)
    except (ValueError, TypeError, KeyError, ShapelyError):
        return None  # a stored geometry that no longer reads: listed beside the map, not drawn wrong
    return shape if not shape.is_empty else None


def _polygons(shape: BaseGeometry) -> list[Polygon]:
    if isinstance(shape, Polygon):
        return [shape]
    if isinstance(shape, MultiPolygon):
        return list(shape.geoms)
    return [g for g in getattr(shape, "geoms", ()) if isinstance(g, Polygon)]


def zone_map_svg(zones: Sequence[ZoneReach], *, width: int = 640, map_height: int = 420) -> Markup:
    """Zones drawn from their geometry, coloured by share reached; zones without one listed beside it.

    An equirectangular projection scaled to the zones' bounds: at a town's scale (a few km)
    lon/lat times cos(latitude) is as true as any map projection."""
    title = _("Share reached by zone")
    shapes = [(z, _shape(z)) for z in zones]
    drawn = [(z, s) for z, s in shapes if s is not None]
    listed = [z for z, s in shapes if s is None]
    desc = "; ".join(f"{zone_label(z)}: {zone_summary(z)}" for z in zones) or _("No zones.")
    list_w = 300 if listed else 0
    map_w = (width - list_w - 16) if drawn else 0
    body: list[str] = []
    if drawn:
        drawing, map_height = _map(drawn, map_w, map_height)
        body.extend(drawing)
    else:
        body.append(_text(8, 24, _("No zone of this alert has a geometry: see the list."), cls="empty"))
    legend_x = 8
    legend_y = (map_height if drawn else 40) + 16
    legend = share_class_labels()
    for i, (cls, fill, label) in enumerate(legend):
        lx = legend_x + (i % 3) * 200
        ly = legend_y + (i // 3) * 18
        body.append(f'<rect{_attrs(class_=f"legend-key {cls}", x=lx, y=ly - 10, width=12, height=12, fill=fill, stroke="#777777")}/>')
        body.append(_text(lx + 18, ly, label, cls="legend", size=12))
    height = legend_y + 18 * math.ceil(len(legend) / 3) + 4
    if listed:
        lx = (map_w + 16) if drawn else 8
        ly = 16 if drawn else legend_y + 18 * math.ceil(len(legend) / 3) + 8
        body.append(_text(lx, ly, _("Zones without a geometry"), cls="list-title", size=13))
        ly += 20
        body.append('<g class="unmapped">')
        for z in listed:
            cls, fill = share_class(z.share)
            body.append(f'<g{_attrs(class_=f"zone-row {cls}")}>'
                        f'<rect{_attrs(x=lx, y=ly - 10, width=12, height=12, fill=fill, stroke="#777777")}/>'
                        + _text(lx + 18, ly, zone_label(z), cls="zone-name", size=12)
                        + _text(lx + 18, ly + 15, zone_summary(z), cls="zone-figures", size=11) + "</g>")
            ly += 36
        body.append("</g>")
        height = max(height, ly + 4)
    return _svg("zone-map", width, height, title, desc, body)


def _map(drawn: list[tuple[ZoneReach, BaseGeometry]], map_w: float, map_h: float) -> tuple[list[str], float]:
    """The zones' paths and labels, and the height they take (at most ``map_h``: a wide town is not padded)."""
    minx = min(s.bounds[0] for _z, s in drawn)
    miny = min(s.bounds[1] for _z, s in drawn)
    maxx = max(s.bounds[2] for _z, s in drawn)
    maxy = max(s.bounds[3] for _z, s in drawn)
    squeeze = math.cos(math.radians((miny + maxy) / 2))
    span_x = max((maxx - minx) * squeeze, 1e-9)
    span_y = max(maxy - miny, 1e-9)
    pad = 8
    scale = min((map_w - 2 * pad) / span_x, (map_h - 2 * pad) / span_y)
    off_x = pad + ((map_w - 2 * pad) - span_x * scale) / 2
    off_y = pad
    used_h = span_y * scale + 2 * pad

    def point(lon: float, lat: float) -> str:
        return f"{off_x + (lon - minx) * squeeze * scale:.1f},{off_y + (maxy - lat) * scale:.1f}"

    def ring(coords: Iterable[tuple[float, ...]]) -> str:
        return "M" + " L".join(point(c[0], c[1]) for c in coords) + " Z"

    body = [f'<g{_attrs(class_="map")}>']
    for zone, shape in drawn:
        cls, fill = share_class(zone.share)
        d = " ".join(ring(part) for polygon in _polygons(shape)
                     for part in (polygon.exterior.coords, *(i.coords for i in polygon.interiors)))
        body.append(f'<g{_attrs(class_=f"zone {cls}")}>'
                    f'<path{_attrs(d=d, fill=fill, fill_rule="evenodd", stroke="#333333", stroke_width=1)}>'
                    f'<title>{escape(zone_label(zone))}: {escape(zone_summary(zone))}</title></path></g>')
    for zone, shape in drawn:
        at = shape.representative_point()
        x, y = (float(v) for v in point(at.x, at.y).split(","))
        share = format_percent(zone.share) if zone.share is not None else "-"
        body.append(_text(x, y, zone_label(zone), cls="zone-name", anchor="middle", size=12, halo=True))
        body.append(_text(x, y + 14, share, cls="zone-figures", anchor="middle", size=11, halo=True))
        extra = [*([_("help: %(n)s", n=_number(zone.help_requests))] if zone.help_requests else []),
                 *([_("vulnerable: %(n)s", n=_number(zone.unreached_vulnerable))] if zone.unreached_vulnerable
                   else [])]
        if extra:
            body.append(_text(x, y + 28, " · ".join(extra), cls="zone-figures", anchor="middle", size=11, halo=True))
    body.append("</g>")
    return body, used_h
