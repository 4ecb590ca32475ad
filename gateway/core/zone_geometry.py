"""Zones from a GIS layer: `allerta zones import-geojson`, and the list with codes and geometries.

All or nothing: a file with one bad feature changes no zone, so an office never ends up
with half a map (some zones with the new boundaries, some with the old) without knowing
which. Zones are matched by name, without regard to case, as alerts and contacts match
them; a zone the file names and the directory lacks is created (empty, ready for contacts).
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from gateway.core.audit import AuditLog
from gateway.core.control_chars import control_characters
from gateway.core.geometry import ZoneShape
from gateway.core.models import Zone
from gateway.core.zones import NAME_LENGTH, ZoneError

CODE_LENGTH = 32   # the column's length (gateway/core/models.py)


@dataclass(frozen=True)
class ImportResult:
    created: tuple[str, ...]
    updated: tuple[str, ...]


@dataclass(frozen=True)
class ZoneListing:
    id: int
    name: str
    code: str | None
    has_geometry: bool


def import_shapes(audit: AuditLog, shapes: list[ZoneShape], *, actor: str, source: str) -> ImportResult:
    """Create or update a zone per shape (name, code, geometry), in one audited transaction."""
    problems = [f"{shape.name}: {problem}" for shape in shapes for problem in _problems(shape)]
    if problems:
        raise ZoneError("%(problems)s", problems="\n".join(problems))
    created, updated = [], []
    with audit.transaction() as s:
        rows = {}
        for shape in shapes:
            row = s.scalar(select(Zone).where(func.lower(Zone.name) == shape.name.lower()))
            if row is None:
                row = Zone(name=shape.name)
                s.add(row)
                created.append(shape.name)
            else:
                updated.append(row.name)
            rows[shape.name] = row
        # Codes are unique: checked against zones the file does not touch (within the file,
        # parse_feature_collection already refused duplicates) before anything is flushed.
        for shape in shapes:
            if shape.code is None:
                continue
            owner = s.scalar(select(Zone.name).where(Zone.code == shape.code))
            if owner is not None and owner.lower() not in {sh.name.lower() for sh in shapes}:
                raise ZoneError("%(name)s: code %(code)s already belongs to zone %(owner)s",
                                name=shape.name, code=shape.code, owner=owner)
        # Codes may move between zones of the file (a renumbering): free them all first, or the
        # unique constraint would refuse the swap halfway.
        for shape in shapes:
            if shape.code is not None:
                rows[shape.name].code = None
        s.flush()
        for shape in shapes:
            row = rows[shape.name]
            row.geometry = shape.geometry
            row.code = shape.code if shape.code is not None else row.code
        s.flush()
        audit.record(s, actor, "zone.import_geojson", None, source=source, created=created, updated=updated,
                     codes={shape.name: shape.code for shape in shapes if shape.code})
    return ImportResult(tuple(created), tuple(updated))


def _problems(shape: ZoneShape) -> list[str]:
    out = []
    controls = control_characters(shape.name)
    if controls:
        out.append(f"the name contains control characters ({controls})")
    if len(shape.name) > NAME_LENGTH:
        out.append(f"the name is longer than {NAME_LENGTH} characters")
    if shape.code is not None and (len(shape.code) > CODE_LENGTH or control_characters(shape.code)
                                   or " " in shape.code):
        out.append(f"code {shape.code!r} must be at most {CODE_LENGTH} characters, without spaces")
    return out


def listing(sessions) -> list[ZoneListing]:
    with sessions() as s:
        return [ZoneListing(zone_id, name, code, geometry is not None)
                for zone_id, name, code, geometry in s.execute(
                    select(Zone.id, Zone.name, Zone.code, Zone.geometry).order_by(Zone.name))]
