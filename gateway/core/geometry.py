"""Zone geometry: GeoJSON in, validated shapes, and the CAP areas that intersect them. No I/O.

A zone's geometry is a GeoJSON Polygon or MultiPolygon in WGS 84 (RFC 7946: longitude
first). shapely does the geometry (validity, intersections); here are the rules a
civil-protection office's GIS export can break, each refusal naming the feature and
the rule, so the file can be fixed in QGIS before it touches the directory.

CAP writes coordinates the other way round (OASIS CAP 1.2, 3.2.4: "lat,lon" pairs, WGS 84,
a circle's radius in kilometres), which is where a swapped pair is easiest to make:
``cap_polygon`` and ``cap_circle`` turn them into shapes in GeoJSON's (lon, lat) order.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass

import shapely
import shapely.affinity
from shapely.geometry import Point, shape
from shapely.geometry.base import BaseGeometry
from shapely.validation import explain_validity

GEOMETRY_TYPES = ("Polygon", "MultiPolygon")
EARTH_RADIUS_KM = 6371.0088


class GeometryError(ValueError):
    """A geometry that cannot be used; the message names where and which rule."""


@dataclass(frozen=True)
class ZoneShape:
    """One feature of a GeoJSON file, checked: the zone's name, its code, its geometry as GeoJSON text."""
    name: str
    code: str | None
    geometry: str


def parse_feature_collection(text: str, *, name_property: str = "name",
                             code_property: str | None = None) -> list[ZoneShape]:
    """Every feature of a FeatureCollection, or GeometryError listing every bad feature (one line each)."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise GeometryError(f"not JSON: {exc}") from None
    if not isinstance(document, dict) or document.get("type") != "FeatureCollection":
        raise GeometryError("not a GeoJSON FeatureCollection (the top-level \"type\" must be \"FeatureCollection\")")
    crs = document.get("crs")
    if crs is not None and "CRS84" not in json.dumps(crs) and "4326" not in json.dumps(crs):
        # RFC 7946 drops "crs": coordinates are WGS 84. A file that names another one (UTM 32N,
        # Gauss-Boaga...) has metres for coordinates and would put every zone in the sea.
        raise GeometryError(f"\"crs\" is {json.dumps(crs)}: export the layer in WGS 84 (EPSG:4326)")
    features = document.get("features")
    if not isinstance(features, list) or not features:
        raise GeometryError("\"features\" must be a non-empty list")
    shapes, problems, seen = [], [], {}
    for index, feature in enumerate(features, 1):
        try:
            zone = _feature(feature, index, name_property, code_property)
        except GeometryError as exc:
            problems.append(str(exc))
            continue
        for key, value in (("name", zone.name.casefold()), ("code", zone.code)):
            if value is not None and (key, value) in seen:
                problems.append(f"feature {index} ({zone.name}): {key} {value!r} is also feature "
                                f"{seen[(key, value)]}'s")
            seen[(key, value)] = index
        shapes.append(zone)
    if problems:
        raise GeometryError("\n".join(problems))
    return shapes


def _feature(feature: object, index: int, name_property: str, code_property: str | None) -> ZoneShape:
    where = f"feature {index}"
    if not isinstance(feature, dict) or feature.get("type") != "Feature":
        raise GeometryError(f"{where}: not a GeoJSON Feature")
    properties = feature.get("properties") or {}
    name = properties.get(name_property)
    if not isinstance(name, str) or not name.strip():
        raise GeometryError(f"{where}: property {name_property!r} (the zone's name) is missing or empty")
    name = " ".join(name.split())
    where = f"feature {index} ({name})"
    code = None
    if code_property is not None:
        raw = properties.get(code_property)
        if raw is None or not str(raw).strip():
            raise GeometryError(f"{where}: property {code_property!r} (the zone's code) is missing or empty")
        # ISTAT codes lose their leading zero when a spreadsheet saw them as numbers (58091 for 058091).
        code = str(raw).strip()
        if isinstance(raw, int):
            code = code.zfill(6)
    geometry = feature.get("geometry")
    return ZoneShape(name, code, json.dumps(checked_geometry(geometry, where), separators=(",", ":")))


def checked_geometry(geometry: object, where: str) -> dict:
    """A Polygon or MultiPolygon in WGS 84, closed and valid; GeometryError naming ``where`` and the rule."""
    if not isinstance(geometry, dict) or geometry.get("type") not in GEOMETRY_TYPES:
        kind = geometry.get("type") if isinstance(geometry, dict) else type(geometry).__name__
        raise GeometryError(f"{where}: geometry is {kind}: only Polygon and MultiPolygon make a zone")
    polygons = geometry.get("coordinates")
    if geometry["type"] == "Polygon":
        polygons = [polygons]
    if not isinstance(polygons, list) or not polygons:
        raise GeometryError(f"{where}: geometry has no coordinates")
    for polygon in polygons:
        if not isinstance(polygon, list) or not polygon:
            raise GeometryError(f"{where}: a polygon has no rings")
        for ring in polygon:
            _check_ring(ring, where)
    try:
        geom = shape(geometry)
    except (ValueError, TypeError, shapely.errors.ShapelyError) as exc:
        raise GeometryError(f"{where}: geometry cannot be read: {exc}") from None
    if not geom.is_valid:
        raise GeometryError(f"{where}: geometry is not valid: {explain_validity(geom)}")
    return geometry


def _check_ring(ring: object, where: str) -> None:
    if not isinstance(ring, list) or len(ring) < 4:
        raise GeometryError(f"{where}: a ring needs at least 4 positions (the first repeated last)")
    for position in ring:
        if (not isinstance(position, list) or len(position) < 2
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in position[:2])):
            raise GeometryError(f"{where}: position {position!r} is not [longitude, latitude]")
        lon, lat = position[0], position[1]
        if not (-180 <= lon <= 180 and -90 <= lat <= 90):
            raise GeometryError(f"{where}: position {position!r} is outside WGS 84 "
                                "(longitude -180..180, latitude -90..90): is the layer in another CRS?")
    if ring[0][:2] != ring[-1][:2]:
        raise GeometryError(f"{where}: a ring is not closed (its first position {ring[0]!r} must be repeated last)")


def zone_geometry(text: str) -> BaseGeometry:
    """A stored zone geometry (GeoJSON text) as a shape."""
    return shape(json.loads(text))


def cap_polygon(text: str) -> BaseGeometry:
    """A CAP <polygon> ("lat,lon lat,lon ...", closed, 4 pairs or more) as a shape; ValueError saying why."""
    pairs = [_lat_lon(pair) for pair in text.split()]
    if len(pairs) < 4:
        raise ValueError("a polygon needs at least 4 coordinate pairs")
    if pairs[0] != pairs[-1]:
        raise ValueError("the first and last coordinate pairs must be the same (a closed polygon)")
    polygon = shapely.Polygon([(lon, lat) for lat, lon in pairs])
    # A self-crossing polygon from a hand-drawn map still says where the danger is: mend it
    # (make_valid keeps the area) rather than lose the warning.
    return polygon if polygon.is_valid else shapely.make_valid(polygon)


def cap_circle(text: str) -> BaseGeometry:
    """A CAP <circle> ("lat,lon radius_km") as a polygon around the point; ValueError saying why."""
    parts = text.split()
    if len(parts) != 2:
        raise ValueError("a circle is a central point \"lat,lon\", a space and a radius in kilometres")
    lat, lon = _lat_lon(parts[0])
    try:
        radius = float(parts[1])
    except ValueError:
        raise ValueError(f"radius {parts[1]!r} is not a number") from None
    if radius < 0 or not math.isfinite(radius):
        raise ValueError("the radius must be 0 or more kilometres")
    # Degrees of latitude are ~111 km everywhere; of longitude, fewer by cos(lat). An ellipse in
    # degrees is accurate to metres at a town's scale, which is all an intersection with zones needs.
    dlat = math.degrees(radius / EARTH_RADIUS_KM)
    dlon = dlat / max(math.cos(math.radians(lat)), 1e-6)
    if radius == 0:
        return Point(lon, lat)
    return shapely.affinity.scale(Point(lon, lat).buffer(1.0, quad_segs=16), dlon, dlat)


def _lat_lon(pair: str) -> tuple[float, float]:
    try:
        lat_text, lon_text = pair.split(",")
        lat, lon = float(lat_text), float(lon_text)
    except ValueError:
        raise ValueError(f"{pair!r} is not a \"latitude,longitude\" pair") from None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise ValueError(f"{pair!r} is outside WGS 84 (latitude -90..90, longitude -180..180)")
    return lat, lon


def overlaps(area: BaseGeometry, zone: BaseGeometry) -> bool:
    """The warning's area covers part of the zone: sharing only a border (two municipalities side by
    side) does not count, or every warning would reach the neighbours too."""
    return area.intersects(zone) and not area.touches(zone)


def cap_polygon_text(geometry_text: str) -> list[str]:
    """A stored zone geometry as CAP <polygon> texts ("lat,lon ..."), one per exterior ring."""
    geom = zone_geometry(geometry_text)
    polygons = list(geom.geoms) if hasattr(geom, "geoms") else [geom]
    return [" ".join(f"{lat:.6f},{lon:.6f}" for lon, lat in polygon.exterior.coords) for polygon in polygons]
