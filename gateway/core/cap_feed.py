"""The CAP documents an Atom or RSS feed lists (the regional centre's, the Prefecture's, another
Allerta's /cap/feed.atom). No I/O; parsed as safely as the documents themselves."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from urllib.parse import urljoin

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

ATOM = "{http://www.w3.org/2005/Atom}"
CAP_TYPES = ("application/cap+xml", "application/xml", "text/xml")


class FeedError(ValueError):
    """Not a feed we can read; the message says why."""


def feed_links(data: bytes, base_url: str, *, max_bytes: int) -> list[str]:
    """The absolute URLs of the feed's entries, in the feed's order."""
    if len(data) > max_bytes:
        raise FeedError(f"the feed is larger than {max_bytes} bytes")
    try:
        root = fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except (DefusedXmlException, ET.ParseError) as exc:
        raise FeedError(f"not a feed: {exc}") from None
    links = []
    if root.tag == f"{ATOM}feed":
        for entry in root.iter(f"{ATOM}entry"):
            candidates = entry.findall(f"{ATOM}link")
            # A CAP-aware feed marks the document's type; a plain one has the alternate link.
            # (An Element without children is falsy: compared with None, never with `or`.)
            chosen = next((link for link in candidates if link.get("type") in CAP_TYPES), None)
            if chosen is None:
                chosen = next((link for link in candidates if link.get("rel", "alternate") == "alternate"), None)
            if chosen is not None and chosen.get("href"):
                links.append(urljoin(base_url, chosen.get("href").strip()))
    elif root.tag == "rss":
        for item in root.iter("item"):
            link = item.findtext("link")
            if link and link.strip():
                links.append(urljoin(base_url, link.strip()))
    else:
        raise FeedError(f"the root element is <{root.tag}>, neither an Atom <feed> nor an RSS <rss>")
    return links
