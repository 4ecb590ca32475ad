"""Our alerts as CAP 1.2 documents and an Atom feed, for local radio, signage, neighbouring
towns and the provincial operations room. No I/O: the caller gathers a ``Publication``.

- One <info> per language: the Italian text as it-IT, each version in another language
  with its own code; the description is the whole text, the headline its start.
- A drill is status Exercise; a correction is msgType Update and an all-clear msgType
  Cancel (responseType AllClear), both with <references> to the alert they follow, which
  is how ``gateway.core.cap_mapping`` reads them back.
- <area>: the zones reached, by <geocode> (valueName ISTAT for six-digit codes, ALLERTA for
  our own) and, for a zone with a geometry but no code, by <polygon>.
"""
from __future__ import annotations

import datetime as dt
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from gateway.core.cap_xml import NAMESPACE, Reference
from gateway.core.geometry import cap_polygon_text

ATOM = "http://www.w3.org/2005/Atom"
HEADLINE_LENGTH = 100
ISTAT = re.compile(r"\d{6}")


@dataclass(frozen=True)
class PublishedZone:
    name: str
    code: str | None
    geometry: str | None


@dataclass(frozen=True)
class Publication:
    alert_id: int
    sender: str
    sender_name: str
    created_at: dt.datetime                      # naive UTC
    drill: bool
    follow_up: str | None                        # None | correction | all_clear
    references: tuple[Reference, ...]
    texts: dict[str, str]                        # language -> text; "it" first
    zones: tuple[PublishedZone, ...]
    area_description: str
    deadline: dt.datetime | None
    category: str
    event: str
    urgency: str
    severity: str
    certainty: str

    @property
    def reference(self) -> Reference:
        return alert_reference(self.sender, self.alert_id, self.created_at)

    @property
    def identifier(self) -> str:
        return self.reference.identifier

    @property
    def sent(self) -> str:
        return self.reference.sent


def alert_reference(sender: str, alert_id: int, created_at: dt.datetime) -> Reference:
    """The CAP identity of our alert ``alert_id``: what its follow-ups' <references> name."""
    return Reference(sender, f"allerta-{alert_id}", cap_time(created_at))


def cap_time(moment: dt.datetime) -> str:
    """Naive UTC as a CAP dateTime: a numeric zone, whole seconds (CAP 1.2, 3.3.2)."""
    return moment.replace(microsecond=0).isoformat() + "+00:00"


def cap_document(p: Publication) -> bytes:
    ET.register_namespace("", NAMESPACE)
    root = ET.Element(_q("alert"))
    msg_type = {"correction": "Update", "all_clear": "Cancel"}.get(p.follow_up or "", "Alert")
    _add(root, "identifier", p.identifier)
    _add(root, "sender", p.sender)
    _add(root, "sent", p.sent)
    _add(root, "status", "Exercise" if p.drill else "Actual")
    _add(root, "msgType", msg_type)
    _add(root, "scope", "Public")
    if p.drill:
        _add(root, "note", "Esercitazione: nessuna emergenza in corso.")
    if p.references:
        _add(root, "references", " ".join(reference.text() for reference in p.references))
    for language, text in p.texts.items():
        info = ET.SubElement(root, _q("info"))
        _add(info, "language", "it-IT" if language == "it" else language)
        _add(info, "category", p.category)
        _add(info, "event", p.event)
        if p.follow_up == "all_clear":
            _add(info, "responseType", "AllClear")
        _add(info, "urgency", p.urgency)
        _add(info, "severity", p.severity)
        _add(info, "certainty", p.certainty)
        if p.deadline is not None:
            _add(info, "expires", cap_time(p.deadline))
        _add(info, "senderName", p.sender_name)
        _add(info, "headline", _headline(text))
        _add(info, "description", text)
        area = ET.SubElement(info, _q("area"))
        _add(area, "areaDesc", p.area_description)
        for zone in p.zones:
            if zone.code is None and zone.geometry:
                for polygon in cap_polygon_text(zone.geometry):
                    _add(area, "polygon", polygon)
        for zone in p.zones:
            if zone.code:
                geocode = ET.SubElement(area, _q("geocode"))
                _add(geocode, "valueName", "ISTAT" if ISTAT.fullmatch(zone.code) else "ALLERTA")
                _add(geocode, "value", zone.code)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def atom_feed(publications: list[Publication], *, title: str, feed_url: str,
              document_url) -> bytes:  # noqa: ANN001 - document_url: Publication -> absolute URL
    """An Atom 1.0 feed (RFC 4287) with one entry per CAP document, newest first."""
    ET.register_namespace("", ATOM)
    feed = ET.Element(f"{{{ATOM}}}feed")
    _atom(feed, "id", feed_url)
    _atom(feed, "title", title)
    newest = max((p.created_at for p in publications), default=dt.datetime(2000, 1, 1))
    _atom(feed, "updated", cap_time(newest))
    ET.SubElement(feed, f"{{{ATOM}}}link", rel="self", href=feed_url)
    author = ET.SubElement(feed, f"{{{ATOM}}}author")
    _atom(author, "name", title)
    for p in sorted(publications, key=lambda p: p.created_at, reverse=True):
        entry = ET.SubElement(feed, f"{{{ATOM}}}entry")
        _atom(entry, "id", document_url(p))
        _atom(entry, "title", ("[ESERCITAZIONE] " if p.drill else "") + _headline(p.texts.get("it", "")))
        _atom(entry, "updated", p.sent)
        ET.SubElement(entry, f"{{{ATOM}}}link", rel="alternate", type="application/cap+xml", href=document_url(p))
    return ET.tostring(feed, encoding="utf-8", xml_declaration=True)


def _headline(text: str) -> str:
    first = " ".join(text.split())
    return first if len(first) <= HEADLINE_LENGTH else first[:HEADLINE_LENGTH - 3].rstrip() + "..."


def _q(name: str) -> str:
    return f"{{{NAMESPACE}}}{name}"


def _add(parent: ET.Element, name: str, text: str) -> ET.Element:
    element = ET.SubElement(parent, _q(name))
    element.text = text
    return element


def _atom(parent: ET.Element, name: str, text: str) -> None:
    ET.SubElement(parent, f"{{{ATOM}}}{name}").text = text
