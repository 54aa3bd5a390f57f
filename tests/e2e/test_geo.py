"""``POST /api/events/geo`` at small precisions on a live sidecar: exact corners (52.23 stays 52.23),
distinct users per cell, no cell beyond the poles or the antimeridian, and a precision finer than
cells can be exact refused naming the field. The cell arithmetic itself is checked against a
decimal brute force in tests/unit/test_geo_cells.py."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.conftest import SidecarFactory
from tests.e2e.harness import Sidecar
from tests.e2e.test_retention import ask
from tests.e2e.test_trends import post

DAY = dt.datetime(2026, 3, 2, tzinfo=dt.UTC)
RANGE = {"from": DAY.isoformat(), "to": (DAY + dt.timedelta(days=1)).isoformat()}


@pytest.fixture(scope="module")
def sc(module_sidecar_factory: SidecarFactory) -> Iterator[Sidecar]:
    sidecar = module_sidecar_factory("geo")
    events: list[dict[str, Any]] = []
    for i, (user, lat, lon) in enumerate(
        [("a", 52.23, 21.01), ("b", 52.23, 21.01), ("a", 0.0, 180.0), ("c", 90.0, -180.0)]
    ):
        ts = int((DAY + dt.timedelta(minutes=i)).timestamp() * 1e9)
        props = {"lat": lat, "lon": lon}
        events.append({"name": "view", "ts_ns": ts, "id": f"g{i}", "user_id": user, "properties": props})
    post(sidecar, events)
    yield sidecar


@pytest.mark.parametrize("precision", [1, 0.5, 0.1, 0.05, 0.01, 0.001, 0.000001])
def test_small_precisions_keep_users_and_exact_corners(sc: Sidecar, precision: float) -> None:
    status, answer = ask(sc, "geo", {"event": "view", "precision": precision, **RANGE})
    assert status == 200, answer
    cells = {(c["lat"], c["lon"]): (c["count"], c["unique_users"]) for c in answer["cells"]}
    corner = {1: (52.0, 21.0), 0.5: (52.0, 21.0), 0.1: (52.2, 21.0), 0.05: (52.2, 21.0)}
    assert cells[corner.get(precision, (52.23, 21.01))] == (2, 2)
    # lon 180 and lat 90 fall in the last cell below them, never in one that starts there
    assert cells[(0.0, 180.0 - precision)] == (1, 1)
    assert cells[(90.0 - precision, -180.0)] == (1, 1)
    assert len(cells) == 3 and answer["missing"] == 0


@pytest.mark.parametrize("precision", [1e-7, 0.0000015, 1 / 3])
def test_precision_cells_cannot_hold_exactly_is_refused(sc: Sidecar, precision: float) -> None:
    status, answer = ask(sc, "geo", {"precision": precision, **RANGE})
    assert status == 400 and answer["error"]["message"].startswith("precision: "), answer
