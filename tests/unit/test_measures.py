"""Percentiles per bucket from one sort are numpy's own, to the last bit, on awkward data."""

from __future__ import annotations

import numpy as np
import pytest

from sidecar.query.analytics.measures import percentiles


@pytest.mark.parametrize("kind", ["lognormal", "ties", "signed"])
def test_percentiles_per_bucket_are_np_percentile(kind: str) -> None:
    rng = np.random.default_rng(5)
    for _ in range(200):
        n, m = int(rng.integers(1, 12)), int(rng.integers(0, 60))
        bucket = rng.integers(0, n, m)
        values = {
            "lognormal": rng.lognormal(3, 1, m),
            "ties": rng.integers(0, 5, m).astype(float),
            "signed": np.round(rng.normal(0, 1e6, m), 2),
        }[kind]
        for q in (0, 1, 33.3, 50, 90, 95, 99, 100):
            want = [
                float(np.percentile(values[bucket == i], q)) if (bucket == i).any() else None
                for i in range(n)
            ]
            assert percentiles(bucket, values, n, q) == want
