"""Geo cells against a brute force in decimal arithmetic: the corner of a point is
``floor(lat / precision) * precision`` on the numbers as written (52.23 at 0.001 is cell 52.23),
90 and 180 fold into the cell below, and distinct users are counted per cell at every precision."""

from __future__ import annotations

import random
from decimal import ROUND_FLOOR, Decimal
from typing import Any

import numpy as np
import pytest

from sidecar.query.analytics.geo import geo_cells

Points = list[tuple[float, float, int]]


def brute(points: Points, precision: float) -> dict[tuple[float, float], Any]:
    step = Decimal(repr(precision))
    cells: dict[tuple[float, float], list[int]] = {}
    for lat, lon, user in points:
        corner = []
        for value, top in ((lat, 90), (lon, 180)):
            k = (Decimal(repr(value)) / step).to_integral_value(rounding=ROUND_FLOOR)
            if k * step >= top:
                k -= 1
            corner.append(float(k * step))
        cells.setdefault((corner[0], corner[1]), []).append(user)
    return {k: (len(v), len({u for u in v if u})) for k, v in cells.items()}


def answer(points: Points, precision: float) -> dict[tuple[float, float], Any]:
    lat, lon, users = (np.array(col) for col in zip(*points, strict=True))
    cells = geo_cells(lat.astype(float), lon.astype(float), users.astype(np.int64), precision)
    # A precision that does not divide 90 or 180 starts the first cell below -90 or -180.
    assert all(-90 - precision < c["lat"] < 90 and -180 - precision < c["lon"] < 180 for c in cells)
    return {(c["lat"], c["lon"]): (c["count"], c["unique_users"]) for c in cells}


def test_the_trial_case_at_every_precision() -> None:
    points = [(52.23, 21.01, 1), (52.23, 21.01, 2)]
    for precision in (1, 0.5, 0.1, 0.05, 0.01, 0.001, 0.0001, 1e-6):
        assert answer(points, precision) == brute(points, precision), precision
    assert answer(points, 0.01) == {(52.23, 21.01): (2, 2)}
    assert answer(points, 0.001) == {(52.23, 21.01): (2, 2)}
    assert answer(points, 1e-6) == {(52.23, 21.01): (2, 2)}


def test_poles_and_antimeridian_fold_into_the_last_cell() -> None:
    points = [(90.0, 180.0, 1), (-90.0, -180.0, 2), (89.9, 179.9, 3)]
    assert answer(points, 0.5) == {(89.5, 179.5): (2, 2), (-90.0, -180.0): (1, 1)}
    assert answer(points, 0.7) == brute(points, 0.7)


@pytest.mark.parametrize(
    "precision", [1e-6, 5e-6, 1e-5, 0.0003, 0.001, 0.01, 0.05, 0.1, 0.25, 0.7, 1, 7.5, 180]
)
def test_random_points_match_the_brute_force(precision: float) -> None:
    rnd = random.Random(round(precision * 1e6))
    step = Decimal(repr(precision))
    points = []
    for _ in range(3000):
        decimals = rnd.choice([0, 1, 2, 3, 4, 6, 9])
        lat, lon = round(rnd.uniform(-90, 90), decimals), round(rnd.uniform(-180, 180), decimals)
        if rnd.random() < 0.2:  # exactly on an edge
            lat = float(step * rnd.randrange(int(-90 / precision), int(90 / precision) + 1))
            lon = float(step * rnd.randrange(int(-180 / precision), int(180 / precision) + 1))
        if rnd.random() < 0.3:  # crowd one cell so that users repeat in it
            lat, lon = 52.23, 21.01
        points.append((lat, lon, rnd.randrange(0, 40)))
    assert answer(points, precision) == brute(points, precision)
