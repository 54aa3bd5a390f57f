"""The analytics CLI's own copies of server rules: the measure names, and where a relative range
starts (the start of its first bucket, as the server lays buckets out, across a DST change)."""

from __future__ import annotations

import datetime as dt

import pytest

from sidecar.cli import argtypes
from sidecar.cli.analytics import _snap
from sidecar.query.analytics.measures import MEASURES, VALUE_MEASURES
from sidecar.query.analytics.timebuckets import make_buckets


def test_measures_match_the_server() -> None:
    assert argtypes.MEASURES == MEASURES and argtypes.VALUE_MEASURES == VALUE_MEASURES


@pytest.mark.parametrize("zone", ["UTC", "Europe/Warsaw", "America/New_York", "Asia/Kolkata"])
@pytest.mark.parametrize("interval", ["minute", "hour", "day", "week", "month"])
def test_snap_is_the_start_of_the_servers_bucket(zone: str, interval: str) -> None:
    # Around the 2026 autumn DST change in Europe (Oct 25) and America (Nov 1).
    for hours in range(0, 24 * 12, 7):
        when = dt.datetime(2026, 10, 22, 0, 17, 42, tzinfo=dt.UTC) + dt.timedelta(hours=hours)
        ns = int(when.timestamp()) * 10**9
        assert _snap(ns, interval, zone) == int(make_buckets(interval, ns, ns + 1, zone).starts[0])
    assert _snap(ns, "total", zone) == ns
