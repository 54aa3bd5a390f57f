"""``POST /api/events/geo``: events and distinct users per latitude/longitude cell.

A cell is keyed by its south-west corner, ``floor(lat / precision) * precision`` (and the same for
longitude). Events without both coordinates as numbers, or with a latitude outside [-90, 90] or
a longitude outside [-180, 180], are counted in ``missing`` instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from sidecar.query.analytics.filters import Filter
from sidecar.query.analytics.frame import Scan, Source
from sidecar.query.analytics.request import BadRequest, check_object, event_of, filters_of
from sidecar.query.analytics.timebuckets import BadBuckets, parse_time, rfc3339

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
    lat_cell = np.floor(lat[ok] / req.precision).astype(np.int64)
    lon_cell = np.floor(lon[ok] / req.precision).astype(np.int64)
    users = frame.user[ok].astype(np.int64)
    span = math.ceil(360 / req.precision) + 2
    cell = (lat_cell + span) * (2 * span) + (lon_cell + span)
    cells, counts = np.unique(cell, return_counts=True)
    with_user = users != 0
    pairs = np.unique(cell[with_user] * (1 << 32) + users[with_user])
    unique = dict(zip(*np.unique(pairs >> 32, return_counts=True), strict=True))
    out = []
    for c, count in zip(cells.tolist(), counts.tolist(), strict=True):
        la, lo = divmod(c, 2 * span)
        out.append(
            {
                "lat": (la - span) * req.precision,
                "lon": (lo - span) * req.precision,
                "count": count,
                "unique_users": int(unique.get(c, 0)),
            }
        )
    return {
        "from": rfc3339(req.from_ns),
        "to": rfc3339(req.to_ns),
        "precision": req.precision,
        "cells": out,
        "missing": int((~ok).sum()),
    }
