"""What each trends measure computes from a bucket's values: one definition for the scan and the
rollups. Percentiles interpolate linearly between closest ranks (numpy's default, ClickHouse
``quantilesExactInclusive``); empty buckets are None for the value measures."""

from __future__ import annotations

from typing import Any

import numpy as np

COUNTS = ("count", "unique_users")
ROLLING = {"dau": 1, "wau": 7, "mau": 30}
PERCENTILES = {"p50": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0}
VALUE_MEASURES = ("sum", "avg", "min", "max", *PERCENTILES)
PER_USER = {"per_user_avg": None, "per_user_p50": 50.0, "per_user_p90": 90.0}
MEASURES = (*COUNTS, *ROLLING, *VALUE_MEASURES, *PER_USER)


def grouped(bucket: np.ndarray, values: np.ndarray, n: int, q: float | None, average: bool) -> list[Any]:
    """Per bucket: the average (q None) or the q-th percentile of ``values``; None when empty."""
    order = np.lexsort((values, bucket))
    bucket, values = bucket[order], values[order]
    edges = np.searchsorted(bucket, np.arange(n + 1))
    out: list[Any] = []
    for i in range(n):
        part = values[edges[i] : edges[i + 1]]
        if not part.size:
            out.append(None)
        elif q is None:
            out.append(float(part.mean()) if average else float(part.sum()))
        else:
            out.append(float(np.percentile(part, q)))
    return out


def value_points(measure: str, bucket: np.ndarray, values: np.ndarray, n: int) -> list[Any]:
    if measure in PERCENTILES:
        return grouped(bucket, values, n, PERCENTILES[measure], average=True)
    present = np.bincount(bucket, minlength=n) > 0
    if measure in ("sum", "avg"):
        sums = np.bincount(bucket, weights=values, minlength=n)
        if measure == "avg":
            counts = np.bincount(bucket, minlength=n)
            sums = np.divide(sums, counts, out=np.zeros(n), where=counts > 0)
        return [float(v) if p else None for v, p in zip(sums.tolist(), present.tolist(), strict=True)]
    extreme = np.full(n, np.inf if measure == "min" else -np.inf)
    (np.minimum if measure == "min" else np.maximum).at(extreme, bucket, values)
    return [float(v) if p else None for v, p in zip(extreme.tolist(), present.tolist(), strict=True)]
