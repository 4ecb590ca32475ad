"""CAP 1.2 documents in: safe parsing and validation. No I/O.

OASIS Common Alerting Protocol 1.2 (1 July 2010) is the format of Italy's public warning
chain (regional functional centres, Prefectures, IT-alert). No package on the registry
ships its XSD, so the rules the standard states for the elements we read are checked
here, each refusal naming the element and the rule (``CapError``): the required
elements and their order (the XSD's sequences), the enumerations, the namespace, the
dateTime form (CAP 1.2, 3.3.2: a numeric time zone, never "Z"), the <references>
form, the restricted characters of identifiers, polygons and circles.

Parsing is hostile-input safe: the size is checked before the parser sees a byte; defusedxml
refuses any DTD, entity declaration and external reference (billion laughs, XXE), and
the parser fetches nothing from the network.
"""
from __future__ import annotations

import datetime as dt
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from gateway.core.geometry import cap_circle, cap_polygon

NAMESPACE = "urn:oasis:names:tc:emergency:cap:1.2"
DEFAULT_MAX_BYTES = 1024 * 1024

STATUSES = ("Actual", "Exercise", "System", "Test", "Draft")
MSG_TYPES = ("Alert", "Update", "Cancel", "Ack", "Error")
SCOPES = ("Public", "Restricted", "Private")
CATEGORIES = ("Geo", "Met", "Safety", "Security", "Rescue", "Fire", "Health", "Env", "Transport", "Infra",
              "CBRNE", "Other")
RESPONSE_TYPES = ("Shelter", "Evacuate", "Prepare", "Execute", "Avoid", "Monitor", "Assess", "AllClear", "None")
URGENCIES = ("Immediate", "Expected", "Future", "Past", "Unknown")
SEVERITIES = ("Extreme", "Severe", "Moderate", "Minor", "Unknown")
# "Very Likely" is CAP 1.0's, deprecated in 1.1 and still accepted by the 1.2 XSD.
CERTAINTIES = ("Observed", "Likely", "Possible", "Unlikely", "Unknown", "Very Likely")
SEVERITY_RANK = {name: rank for rank, name in enumerate(("Unknown", "Minor", "Moderate", "Severe", "Extreme"))}

# The XSD's sequences: (child, required, repeatable), in document order.
ALERT_CHILDREN = (("identifier", True, False), ("sender", True, False), ("sent", True, False),
                  ("status", True, False), ("msgType", True, False), ("source", False, False),
                  ("scope", True, False), ("restriction", False, False), ("addresses", False, False),
                  ("code", False, True), ("note", False, False), ("references", False, False),
                  ("incidents", False, False), ("info", False, True))
INFO_CHILDREN = (("language", False, False), ("category", True, True), ("event", True, False),
                 ("responseType", False, True), ("urgency", True, False), ("severity", True, False),
                 ("certainty", True, False), ("audience", False, False), ("eventCode", False, True),
                 ("effective", False, False), ("onset", False, False), ("expires", False, False),
                 ("senderName", False, False), ("headline", False, False), ("description", False, False),
                 ("instruction", False, False), ("web", False, False), ("contact", False, False),
                 ("parameter", False, True), ("resource", False, True), ("area", False, True))
AREA_CHILDREN = (("areaDesc", True, False), ("polygon", False, True), ("circle", False, True),
                 ("geocode", False, True), ("altitude", False, False), ("ceiling", False, False))
RESOURCE_CHILDREN = (("resourceDesc", True, False), ("mimeType", True, False), ("size", False, False),
                     ("uri", False, False), ("derefUri", False, False), ("digest", False, False))
PAIR_CHILDREN = (("valueName", True, False), ("value", True, False))
COMPLEX = frozenset({"info", "area", "resource", "geocode", "parameter", "eventCode"})

# CAP 1.2, 3.3.2: "2002-05-24T16:49:00-07:00"; the time zone is numeric, "Z" is not allowed.
DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?[+-]\d{2}:\d{2}")
# identifier and sender: "MUST NOT include spaces, commas or restricted characters (< and &)".
RESTRICTED = re.compile(r"[\s,<&]")


class CapError(ValueError):
    """A document refused: ``element`` is where, ``rule`` what it breaks."""

    def __init__(self, element: str, rule: str, *, malformed: bool = False) -> None:
        self.element = element
        self.rule = rule
        self.malformed = malformed      # not even XML we accept (size, DTD, syntax), not a CAP rule
        super().__init__(f"<{element}>: {rule}")


@dataclass(frozen=True)
class Reference:
    sender: str
    identifier: str
    sent: str

    def text(self) -> str:
        return f"{self.sender},{self.identifier},{self.sent}"


@dataclass(frozen=True)
class CapArea:
    description: str
    polygons: tuple[str, ...] = ()
    circles: tuple[str, ...] = ()
    geocodes: tuple[tuple[str, str], ...] = ()   # (valueName, value)


@dataclass(frozen=True)
class CapInfo:
    language: str
    categories: tuple[str, ...]
    event: str
    urgency: str
    severity: str
    certainty: str
    response_types: tuple[str, ...] = ()
    expires: dt.datetime | None = None
    sender_name: str = ""
    headline: str = ""
    description: str = ""
    instruction: str = ""
    areas: tuple[CapArea, ...] = ()


@dataclass(frozen=True)
class CapAlert:
    identifier: str
    sender: str
    sent: str                      # as written: part of the message's identity
    status: str
    msg_type: str
    scope: str
    source: str = ""
    note: str = ""
    references: tuple[Reference, ...] = ()
    infos: tuple[CapInfo, ...] = field(default_factory=tuple)


def parse_cap(data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> CapAlert:
    """A validated CAP 1.2 <alert>; CapError naming the element and the rule."""
    if len(data) > max_bytes:
        raise CapError("alert", f"the document is {len(data)} bytes; the limit is {max_bytes} "
                                "([cap] max_document_kb)", malformed=True)
    try:
        root = fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise CapError("!DOCTYPE", f"DTDs, entity declarations and external references are not allowed "
                                   f"({type(exc).__name__})", malformed=True) from None
    except ET.ParseError as exc:
        raise CapError("alert", f"not well-formed XML: {exc}", malformed=True) from None
    namespace, _, local = root.tag[1:].partition("}") if root.tag.startswith("{") else ("", "", root.tag)
    if local != "alert":
        raise CapError(local, "the root element must be <alert>")
    if namespace != NAMESPACE:
        raise CapError("alert", f"the namespace must be {NAMESPACE} (CAP 1.2), not {namespace or 'none'}")
    values = _sequence(root, "alert", ALERT_CHILDREN)
    identifier, sender = values["identifier"], values["sender"]
    for name in ("identifier", "sender"):
        if RESTRICTED.search(values[name]):
            raise CapError(name, "must not contain spaces, commas, '<' or '&'")
    sent = values["sent"]
    _date_time("sent", sent)
    status = _enumerated("status", values["status"], STATUSES)
    msg_type = _enumerated("msgType", values["msgType"], MSG_TYPES)
    scope = _enumerated("scope", values["scope"], SCOPES)
    if scope == "Restricted" and not values.get("restriction"):
        raise CapError("restriction", "required when <scope> is Restricted")
    if scope == "Private" and not values.get("addresses"):
        raise CapError("addresses", "required when <scope> is Private")
    references = _references(values.get("references", ""))
    infos = tuple(_info(element) for element in _children(root, "info"))
    return CapAlert(identifier=identifier, sender=sender, sent=sent, status=status, msg_type=msg_type,
                    scope=scope, source=values.get("source", ""), note=values.get("note", ""),
                    references=references, infos=infos)


def parse_date_time(text: str) -> dt.datetime:
    """A CAP dateTime as naive UTC (how the database keeps times)."""
    return dt.datetime.fromisoformat(text).astimezone(dt.timezone.utc).replace(tzinfo=None)


def _tag(element: ET.Element) -> str:
    return element.tag.partition("}")[2] if element.tag.startswith("{") else element.tag


def _children(parent: ET.Element, name: str) -> list[ET.Element]:
    return parent.findall(f"{{{NAMESPACE}}}{name}")


def _sequence(parent: ET.Element, where: str, children: tuple) -> dict[str, str]:
    """Check ``parent``'s children against the XSD's sequence; the text of each simple child."""
    order = {name: index for index, (name, _required, _many) in enumerate(children)}
    repeatable = {name for name, _required, many in children if many}
    seen: dict[str, int] = {}
    last = -1
    values = {}
    for child in parent:
        name = _tag(child)
        if not child.tag.startswith(f"{{{NAMESPACE}}}"):
            raise CapError(name, f"not a CAP 1.2 element (wrong namespace) inside <{where}>")
        if name not in order:
            raise CapError(name, f"not an element of <{where}> in CAP 1.2")
        if order[name] < last:
            raise CapError(name, f"out of order inside <{where}> (CAP 1.2 fixes the order of elements)")
        last = order[name]
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1 and name not in repeatable:
            raise CapError(name, f"may appear only once inside <{where}>")
        if name not in COMPLEX and len(child):
            raise CapError(name, "must hold text, not elements")
        if name not in COMPLEX:
            text = (child.text or "").strip()
            if not text and name not in repeatable:
                raise CapError(name, "must not be empty")
            values.setdefault(name, text)
    for name, required, _many in children:
        if required and name not in seen:
            raise CapError(name, f"required inside <{where}>")
    return values


def _enumerated(name: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise CapError(name, f"{value!r} is not one of {', '.join(allowed)}")
    return value


def _date_time(name: str, value: str) -> dt.datetime:
    if not DATE_TIME.fullmatch(value):
        raise CapError(name, f"{value!r} is not a CAP dateTime such as 2026-10-14T08:00:00+02:00 "
                             "(with a numeric time zone; 'Z' is not allowed)")
    try:
        return parse_date_time(value)
    except ValueError as exc:
        raise CapError(name, f"{value!r} is not a real date and time: {exc}") from None


def _references(text: str) -> tuple[Reference, ...]:
    """<references>: space-separated "sender,identifier,sent" triples (CAP 1.2, 3.2.1)."""
    out = []
    for item in text.split():
        parts = item.split(",")
        if len(parts) != 3 or not all(parts):
            raise CapError("references", f"{item!r} is not sender,identifier,sent")
        _date_time("references", parts[2])
        out.append(Reference(*parts))
    return tuple(out)


def _info(element: ET.Element) -> CapInfo:
    values = _sequence(element, "info", INFO_CHILDREN)
    categories = tuple(_enumerated("category", (c.text or "").strip(), CATEGORIES)
                       for c in _children(element, "category"))
    responses = tuple(_enumerated("responseType", (r.text or "").strip(), RESPONSE_TYPES)
                      for r in _children(element, "responseType"))
    for name in ("effective", "onset", "expires"):
        if name in values:
            _date_time(name, values[name])
    for name in ("eventCode", "parameter"):
        for pair in _children(element, name):
            _sequence(pair, name, PAIR_CHILDREN)
    for resource in _children(element, "resource"):
        _sequence(resource, "resource", RESOURCE_CHILDREN)
    language = values.get("language", "en-US")   # CAP 1.2, 3.2.2: the default is en-US
    if not re.fullmatch(r"[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*", language):
        raise CapError("language", f"{language!r} is not an RFC 3066 language tag such as it-IT")
    return CapInfo(language=language, categories=categories, event=values["event"],
                   urgency=_enumerated("urgency", values["urgency"], URGENCIES),
                   severity=_enumerated("severity", values["severity"], SEVERITIES),
                   certainty=_enumerated("certainty", values["certainty"], CERTAINTIES),
                   response_types=responses,
                   expires=parse_date_time(values["expires"]) if "expires" in values else None,
                   sender_name=values.get("senderName", ""), headline=values.get("headline", ""),
                   description=values.get("description", ""), instruction=values.get("instruction", ""),
                   areas=tuple(_area(area) for area in _children(element, "area")))


def _area(element: ET.Element) -> CapArea:
    values = _sequence(element, "area", AREA_CHILDREN)
    if "ceiling" in values and "altitude" not in values:
        raise CapError("ceiling", "needs <altitude> (CAP 1.2, 3.2.4)")
    polygons = tuple((p.text or "").strip() for p in _children(element, "polygon"))
    circles = tuple((c.text or "").strip() for c in _children(element, "circle"))
    for name, texts, check in (("polygon", polygons, cap_polygon), ("circle", circles, cap_circle)):
        for text in texts:
            try:
                check(text)
            except ValueError as exc:
                raise CapError(name, str(exc)) from None
    geocodes = []
    for geocode in _children(element, "geocode"):
        pair = _sequence(geocode, "geocode", PAIR_CHILDREN)
        geocodes.append((pair["valueName"], pair["value"]))
    return CapArea(description=values["areaDesc"], polygons=polygons, circles=circles, geocodes=tuple(geocodes))
