"""`allerta zones import-geojson`, `allerta zones list` and `allerta cap import`."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gateway.core.audit import audit_log_for, local_actor
from gateway.core.cap_service import CapRefused, build_receiver
from gateway.core.config import load_config
from gateway.core.geometry import GeometryError, parse_feature_collection
from gateway.core.plurals import counted
from gateway.core.services import build_services
from gateway.core.zone_geometry import import_shapes, listing
from gateway.core.zones import ZoneError


def cmd_import_geojson(args: argparse.Namespace) -> int:
    try:
        text = Path(args.file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        print(f"allerta: {args.file}: cannot read: {exc}", file=sys.stderr)
        return 2
    try:
        shapes = parse_feature_collection(text, name_property=args.name_property, code_property=args.code_property)
    except GeometryError as exc:
        print(f"allerta: {args.file}: nothing imported:\n{exc}", file=sys.stderr)
        return 2
    services = build_services(load_config(args.config))
    try:
        result = import_shapes(audit_log_for(services.config, services.sessions), shapes, actor=local_actor(),
                               source=str(args.file))
    except ZoneError as exc:
        print(f"allerta: {args.file}: nothing imported:\n{exc}", file=sys.stderr)
        return 2
    print(f"{counted(len(result.created), 'zone')} created, {len(result.updated)} updated with their geometry"
          + ("" if args.code_property is None else " and code"))
    return 0


def cmd_zones_list(args: argparse.Namespace) -> int:
    rows = listing(build_services(load_config(args.config)).sessions)
    width = max((len(row.name) for row in rows), default=4)
    print(f"{'zone':<{width}}  {'code':<8}  geometry")
    for row in rows:
        print(f"{row.name:<{width}}  {row.code or '-':<8}  {'yes' if row.has_geometry else 'no'}")
    return 0


def cmd_cap_import(args: argparse.Namespace) -> int:
    path = Path(args.file)
    services = build_services(load_config(args.config))
    receiver = build_receiver(services, audit_log_for(services.config, services.sessions))
    try:
        data = _read_limited(path, receiver.settings.max_bytes)
        received = receiver.receive(data, f"file:{path.resolve()}")
    except OSError as exc:
        print(f"allerta: {path}: cannot read: {exc}", file=sys.stderr)
        return 2
    except CapRefused as exc:
        print(f"allerta: {path}: refused, nothing stored: {exc}", file=sys.stderr)
        return 2
    alert = f" (alert {received.alert_id})" if received.alert_id is not None else ""
    print(f"{received.outcome}{alert}: {received.detail}")
    return 0 if received.outcome != "refused" else 1


def _read_limited(path: Path, max_bytes: int) -> bytes:
    """At most one byte past the limit: a 50 MB file is refused without being read whole."""
    with path.open("rb") as handle:
        return handle.read(max_bytes + 1)


def add_zone_commands(zones: argparse._SubParsersAction) -> None:
    p = zones.add_parser("import-geojson", help="zones' geometry (and ISTAT code) from a GeoJSON FeatureCollection "
                                                "of polygons in WGS 84; all or nothing")
    p.add_argument("file")
    p.add_argument("--name-property", default="name", help="the feature property holding the zone's name")
    p.add_argument("--code-property", help="the feature property holding its code (ISTAT, e.g. PRO_COM_T)")
    p.set_defaults(func=cmd_import_geojson)
    p = zones.add_parser("list", help="zones with their code and whether they have a geometry")
    p.set_defaults(func=cmd_zones_list)


def add_commands(sub: argparse._SubParsersAction) -> None:
    cap = sub.add_parser("cap", help="CAP 1.2 warnings").add_subparsers(dest="action", required=True)
    p = cap.add_parser("import", help="a CAP 1.2 document becomes a draft awaiting approval")
    p.add_argument("file")
    p.set_defaults(func=cmd_cap_import)
