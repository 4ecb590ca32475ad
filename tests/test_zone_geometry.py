"""Zones with geometry: `allerta zones import-geojson` validates every feature (WGS 84, closed, valid)
and changes nothing if one is bad; `allerta zones list` shows codes and geometries."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from gateway.core.geometry import GeometryError, parse_feature_collection
from gateway.core.models import Zone
from gateway.shell.cli import main
from tests.cap_support import CAP_DATA

SQUARE = [[[12.2, 41.7], [12.3, 41.7], [12.3, 41.8], [12.2, 41.8], [12.2, 41.7]]]


def _collection(*features) -> str:
    return json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": properties, "geometry": geometry} for properties, geometry in features]})


def _zones(services) -> list[tuple]:
    with services.sessions() as s:
        return sorted((z.name, z.code, z.geometry is not None) for z in s.scalars(select(Zone)))


def test_importing_the_municipalities_creates_zones_with_code_and_geometry_and_lists_them(contacts, config_path,
                                                                                         capsys):
    argv = ["--config", str(config_path), "zones", "import-geojson", str(CAP_DATA / "zones.geojson"),
            "--name-property", "COMUNE", "--code-property", "PRO_COM_T"]
    assert main(argv) == 0
    assert "3 zones created, 0 updated" in capsys.readouterr().out
    assert _zones(contacts) == [("Fiumicino", "058120", True), ("Fregene", None, False),
                                ("Isola Sacra", None, False), ("Ladispoli", "058116", True), ("Roma", "058091", True)]
    assert main(argv) == 0                      # again: updated in place, no duplicates
    assert "0 zones created, 3 updated" in capsys.readouterr().out
    assert main(["--config", str(config_path), "zones", "list"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert listed[0].split() == ["zone", "code", "geometry"]
    assert listed[1].split() == ["Fiumicino", "058120", "yes"] and listed[2].split() == ["Fregene", "-", "no"]


@pytest.mark.parametrize("geometry, rule", [
    ({"type": "Point", "coordinates": [12.2, 41.7]}, "geometry is Point: only Polygon and MultiPolygon"),
    ({"type": "Polygon", "coordinates": [[[12.2, 41.7], [12.3, 41.7], [12.3, 41.8], [12.2, 41.8]]]}, "not closed"),
    ({"type": "Polygon", "coordinates": [[[290000, 4620000], [300000, 4620000], [300000, 4630000],
                                          [290000, 4620000]]]}, "outside WGS 84"),
    ({"type": "Polygon", "coordinates": [[[12.2, 41.7], [12.3, 41.8], [12.3, 41.7], [12.2, 41.8], [12.2, 41.7]]]},
     "not valid: Self-intersection"),
])
def test_a_bad_feature_is_named_with_its_rule_and_nothing_is_imported(contacts, config_path, tmp_path, capsys,
                                                                      geometry, rule):
    path = tmp_path / "zones.geojson"
    path.write_text(_collection(({"name": "Passoscuro"}, {"type": "Polygon", "coordinates": SQUARE}),
                                ({"name": "Maccarese"}, geometry)), encoding="utf-8")
    before = _zones(contacts)
    assert main(["--config", str(config_path), "zones", "import-geojson", str(path)]) == 2
    error = capsys.readouterr().err
    assert "nothing imported" in error and "feature 2 (Maccarese)" in error and rule in error, error
    assert _zones(contacts) == before


def test_a_layer_in_another_crs_and_duplicate_codes_are_refused():
    with pytest.raises(GeometryError, match="export the layer in WGS 84"):
        parse_feature_collection(json.dumps({"type": "FeatureCollection", "features": [],
                                             "crs": {"type": "name", "properties": {"name": "EPSG:32633"}}}))
    with pytest.raises(GeometryError, match="feature 2 \\(B\\): code '058120' is also feature 1's"):
        parse_feature_collection(_collection(({"n": "A", "c": "058120"}, {"type": "Polygon", "coordinates": SQUARE}),
                                             ({"n": "B", "c": 58120}, {"type": "Polygon", "coordinates": SQUARE})),
                                 name_property="n", code_property="c")
