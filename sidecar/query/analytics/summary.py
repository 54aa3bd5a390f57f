"""``GET /api/events/summary``: events per name and distinct users over a range (default: the
last hour), what a product person glances at first."""

from __future__ import annotations

from typing import Any

import numpy as np

from sidecar.query.analytics.frame import Scan, Source
from sidecar.query.analytics.timebuckets import rfc3339

HOUR_NS = 3600 * 10**9


def run_summary(source: Source, from_ns: int, to_ns: int) -> dict[str, Any]:
    frame = Scan(source).load(from_ns, to_ns, None, [])
    codes, counts = np.unique(frame.name, return_counts=True)
    texts = source.texts("n")
    events = {texts.get(int(c), ""): int(n) for c, n in zip(codes.tolist(), counts.tolist(), strict=True)}
    users = np.unique(frame.user[frame.user != 0]).size
    return {
        "from": rfc3339(from_ns),
        "to": rfc3339(to_ns),
        "unique_users": int(users),
        "events": dict(sorted(events.items())),
    }
