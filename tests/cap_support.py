"""A town with three coastal municipalities (zones with ISTAT codes and geometry) and people in each,
and the CAP receiver over it: the ground the CAP tests stand on."""
from __future__ import annotations

from pathlib import Path

from gateway.core.audit import audit_log_for
from gateway.core.cap_service import CapReceiver, build_receiver
from gateway.core.contacts_import import import_contacts
from gateway.core.geometry import parse_feature_collection
from gateway.core.zone_geometry import import_shapes

CAP_DATA = Path(__file__).parent / "data" / "cap"
PEOPLE_CSV = """nome;cellulare;zona;lingua
Marco Bianchi;333 200 0001;Fiumicino;it
Hans Weber;333 200 0002;Fiumicino;de
Sara Neri;333 200 0003;Roma;it
Paolo Gialli;333 200 0004;Ladispoli;it
"""


def cap_document(name: str) -> bytes:
    return (CAP_DATA / name).read_bytes()


def coastal_town(services) -> None:
    """The zones of tests/data/cap/zones.geojson (ISTAT codes, polygons) and one or two people in each."""
    shapes = parse_feature_collection((CAP_DATA / "zones.geojson").read_text(encoding="utf-8"),
                                      name_property="COMUNE", code_property="PRO_COM_T")
    import_shapes(audit_log_for(services.config, services.sessions), shapes, actor="test", source="zones.geojson")
    report = import_contacts(services.sessions, PEOPLE_CSV.encode("utf-8"))
    assert report.imported and not report.rejected, report.rejected


def receiver(services) -> CapReceiver:
    return build_receiver(services, audit_log_for(services.config, services.sessions))
