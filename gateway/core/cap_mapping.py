"""From a validated CAP message to the draft an approver reviews. No I/O.

- Each <info> is one language: the Italian one (it, it-IT...) gives the main text, the others
  its translations; with no Italian block the first one is the main text. A second block in a
  language already taken is reported, not merged.
- The text is the headline, the description and the instruction, each once, cut to fit the SMS
  plan ([general] max_sms_segments) with "..." where it was cut: the approver sees the cut.
- <area> maps to zones by <geocode> (an ISTAT municipality code or one of our own zone codes:
  the value is compared with the zones' codes whatever the valueName) and by <polygon> and
  <circle> covering part of a zone's geometry. An area that maps to no zone is reported.
- status Exercise or Test makes a drill; <expires> the deadline.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

from gateway.core.cap_xml import SEVERITY_RANK, CapAlert, CapArea, CapInfo
from gateway.core.geometry import cap_circle, cap_polygon, overlaps, zone_geometry

MAIN_LANGUAGE = "it"
CUT_MARK = "..."


@dataclass(frozen=True)
class KnownZone:
    name: str
    code: str | None
    geometry: str | None


@dataclass
class DraftPlan:
    """What the draft will say and whom it reaches, and what the approver must be told."""
    text: str
    translations: dict[str, str]
    zones: tuple[str, ...]
    drill: bool
    deadline: dt.datetime | None
    facts: dict[str, str]                                # severity, urgency, certainty, event, sender...
    cap_category: str | None
    unmapped_areas: tuple[str, ...] = ()
    notes: list[str] = field(default_factory=list)      # cuts, extra blocks: shown with the draft


def language_of(tag: str) -> str:
    """it-IT -> it: our contacts carry a two- or three-letter language."""
    return tag.split("-")[0].lower()


def main_info(alert: CapAlert) -> CapInfo | None:
    for info in alert.infos:
        if language_of(info.language) == MAIN_LANGUAGE:
            return info
    return alert.infos[0] if alert.infos else None


def compose(info: CapInfo) -> str:
    """Headline, description, instruction, one per line: a description that starts with the
    headline (as ours do, and many senders') does not say it twice."""
    headline, description, instruction = (tidy(info.headline), tidy(info.description), tidy(info.instruction))
    stem = " ".join(headline.split()).rstrip(".… ")
    parts = []
    if headline and not (stem and " ".join(description.split()).startswith(stem)):
        parts.append(headline)
    parts += [part for part in (description, instruction) if part]
    return "\n".join(parts) or info.event


def tidy(text: str) -> str:
    """The XML's indentation and runs of spaces out, the sender's line breaks kept."""
    return "\n".join(" ".join(line.split()) for line in text.splitlines() if line.strip())


def cut_to_fit(text: str, fits: Callable[[str], bool]) -> tuple[str, bool]:
    """The longest start of ``text`` (at a word boundary where possible) that ``fits``, marked with "..."."""
    if fits(text):
        return text, False
    low, high = 0, len(text)
    while low < high:   # the longest prefix that fits, by bisection: segments only grow with length
        middle = (low + high + 1) // 2
        if fits(text[:middle].rstrip() + CUT_MARK):
            low = middle
        else:
            high = middle - 1
    prefix = text[:low]
    space = prefix.rfind(" ")
    if space > low * 0.8:
        prefix = prefix[:space]
    return prefix.rstrip() + CUT_MARK, True


def plan_draft(alert: CapAlert, zones: list[KnownZone], fits: Callable[[str], bool]) -> DraftPlan:
    main = main_info(alert)
    if main is None:
        raise ValueError("the message has no <info>: nothing to tell anyone")
    notes: list[str] = []
    by_language: dict[str, CapInfo] = {}
    for info in alert.infos:
        language = language_of(info.language)
        if info is not main and not (2 <= len(language) <= 3 and language.isalpha()):
            notes.append(f"<info> in {info.language} is not used: our contacts' languages are ISO 639 codes")
            continue
        if language in by_language:
            notes.append(f"a second <info> in {info.language} ({info.event}) is not used")
            continue
        by_language[language] = info
    main_language = language_of(main.language)
    texts = {}
    for language, info in by_language.items():
        text, cut = cut_to_fit(compose(info), fits)
        if cut:
            notes.append(f"the {info.language} text was cut to fit the SMS plan")
        texts[language] = text
    zone_names, unmapped = map_areas([area for info in alert.infos for area in info.areas], zones)
    severities = sorted({info.severity for info in alert.infos}, key=SEVERITY_RANK.get, reverse=True)
    facts = {"sender": alert.sender, "sender_name": main.sender_name, "event": main.event,
             "severity": severities[0], "urgency": main.urgency, "certainty": main.certainty,
             "status": alert.status, "msg_type": alert.msg_type, "identifier": alert.identifier, "sent": alert.sent}
    expiries = [info.expires for info in alert.infos if info.expires is not None]
    return DraftPlan(text=texts.pop(main_language), translations=texts, zones=zone_names,
                     drill=alert.status in ("Exercise", "Test"), deadline=min(expiries) if expiries else None,
                     facts={k: v for k, v in facts.items() if v}, cap_category=main.categories[0],
                     unmapped_areas=unmapped, notes=notes)


def map_areas(areas: list[CapArea], zones: list[KnownZone]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(zone names reached, descriptions of the areas that reach none)."""
    by_code = {zone.code: zone.name for zone in zones if zone.code}
    shapes = [(zone.name, zone_geometry(zone.geometry)) for zone in zones if zone.geometry]
    reached: list[str] = []
    unmapped: list[str] = []
    seen_descriptions: set[str] = set()
    for area in areas:
        names = [by_code[value.strip()] for _name, value in area.geocodes if value.strip() in by_code]
        figures = [cap_polygon(p) for p in area.polygons] + [cap_circle(c) for c in area.circles]
        names += [name for name, geometry in shapes if any(overlaps(figure, geometry) for figure in figures)]
        if not names:
            codes = ", ".join(f"{name} {value}" for name, value in area.geocodes)
            described = area.description + (f" ({codes})" if codes else "")
            if described not in seen_descriptions:   # the same area repeated in every language
                unmapped.append(described)
                seen_descriptions.add(described)
        reached += [name for name in names if name not in reached]
    return tuple(reached), tuple(unmapped)
