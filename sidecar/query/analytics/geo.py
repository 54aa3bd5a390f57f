"""``POST /api/events/geo``: events and distinct users per latitude/longitude cell.

A cell is keyed by its south-west corner, ``floor(lat / precision) * precision`` (and the same for
longitude), computed on the decimals as written: ``precision`` is a whole number of micro-degrees,
so cell k's edge is the integer ``k * precision * 1e6`` over 1e6, the float nearest that decimal,
and 52.23 at precision 0.001 lands in the cell whose corner prints as 52.23 (a float quotient
would give 52229.99... and cell 52.229). A latitude of 90 or a longitude of 180 falls in the last
cell below it, so no cell starts at the pole or the antimeridian's east side. Events without both
coordinates as numbers, or with a latitude outside [-90, 90] or a longitude outside [-180, 180],
are counted in ``missing`` instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from sidecar.query.analytics.filters import Filter
from sidecar.query.analytics.frame import Scan, Source
from sidecar.query.analytics.request import BadRequest, check_object, event_of, filters_of
from sidecar.query.analytics.timebuckets import BadBuckets, parse_time, rfc3339

_MICRO = 1_000_000  # precision is a whole number of these parts of a degree
_KEYS = {"event", "filters", "lat_property", "lon_property", "precision", "from", "to"}


@dataclass(frozen=True, slots=True)
class GeoRequest:
    event: str | None
    filters: list[Filter]
    lat: str
    lon: str
    precision: float
    from_ns: int
    to_ns: int


def parse_geo(body: Any) -> GeoRequest:
    body = check_object(
        body, "body", _KEYS, "{event, filters, lat_property, lon_property, precision, from, to}"
    )
    props = []
    for key, default in (("lat_property", "lat"), ("lon_property", "lon")):
        value = body.get(key, default)
        if not isinstance(value, str) or not value:
            raise BadRequest(key, "must be a property name")
        props.append(value)
    precision = body.get("precision", 1.0)
    if isinstance(precision, bool) or not isinstance(precision, int | float) or not 0 < precision <= 180:
        raise BadRequest("precision", "must be a number of degrees above 0, at most 180")
    if precision < 1 / _MICRO or abs(precision * _MICRO - round(precision * _MICRO)) > 1e-6:
        raise BadRequest(
            "precision", f"must be a multiple of 0.000001 degrees, the finest exact cell; got {precision!r}"
        )
    try:
        from_ns, to_ns = parse_time("from", body.get("from")), parse_time("to", body.get("to"))
    except BadBuckets as exc:
        raise BadRequest(exc.field, exc.reason) from None
    if to_ns <= from_ns:
        raise BadRequest("to", "must be after 'from'")
    return GeoRequest(
        event_of(body.get("event"), "event"),
        filters_of(body.get("filters"), "filters"),
        props[0],
        props[1],
        float(precision),
        from_ns,
        to_ns,
    )


def cell_index(coord: np.ndarray, micro: int, top: int) -> np.ndarray:
    """``floor(coord / precision)`` against the decimal edges ``k * micro / 1e6`` (``micro`` the
    precision in micro-degrees), capped so that ``top`` (90 or 180) folds into the cell below it.

    The float quotient is off by at most one cell at an edge; comparing with the edges themselves
    (the floats nearest the decimals, as 52.23 is) settles it either way."""
    k = np.floor(coord / (micro / _MICRO)).astype(np.int64)
    k += (k + 1) * micro / _MICRO <= coord
    k -= k * micro / _MICRO > coord
    return np.minimum(k, -(-top * _MICRO // micro) - 1)


def geo_cells(lat: np.ndarray, lon: np.ndarray, users: np.ndarray, precision: float) -> list[dict[str, Any]]:
    """Count and distinct non-zero ``users`` per cell of valid coordinates, cells in (lat, lon)
    order; ``lat``/``lon`` must lie within +-90/+-180."""
    micro = round(precision * _MICRO)
    lat_k = cell_index(lat, micro, 90)
    lon_k = cell_index(lon, micro, 180)
    # |lat_k| <= 9e7 and |lon_k| <= 1.8e8 at 1e-6 degrees: their combined key stays below 2^57.
    lon_span = 2 * (180 * _MICRO // micro + 2)
    key = (lat_k + 90 * _MICRO // micro + 2) * lon_span + (lon_k + lon_span // 2)
    cells, where, counts = np.unique(key, return_inverse=True, return_counts=True)
    users = users.astype(np.int64)
    with_user = users != 0
    # Pairs of (cell number, user): cells number at most the events, so this cannot overflow.
    pairs = np.unique(where[with_user] * (int(users.max(initial=0)) + 1) + users[with_user])
    unique = np.bincount(pairs // (int(users.max(initial=0)) + 1), minlength=len(cells))
    out = []
    for c, count, distinct in zip(cells.tolist(), counts.tolist(), unique.tolist(), strict=True):
        la, lo = divmod(c, lon_span)
        out.append(
            {
                "lat": (la - 90 * _MICRO // micro - 2) * micro / _MICRO,
                "lon": (lo - lon_span // 2) * micro / _MICRO,
                "count": count,
                "unique_users": distinct,
            }
        )
    return out


def run_geo(source: Source, req: GeoRequest) -> dict[str, Any]:
    frame = Scan(source).load(
        req.from_ns,
        req.to_ns,
        None if req.event is None else [req.event],
        req.filters,
        numbers=[req.lat, req.lon],
    )
    lat, lon = frame.numbers
    ok = ~np.isnan(lat) & ~np.isnan(lon) & (np.abs(lat) <= 90) & (np.abs(lon) <= 180)
    return {
        "from": rfc3339(req.from_ns),
        "to": rfc3339(req.to_ns),
        "precision": req.precision,
        "cells": geo_cells(lat[ok], lon[ok], frame.user[ok], req.precision),
        "missing": int((~ok).sum()),
    }
