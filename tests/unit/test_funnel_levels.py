"""``ordered_chains`` (all users at once, numpy) against ``chain`` (one user, the ClickHouse
windowFunnel transcription) on seeded random groups, and a few cases by hand."""

from __future__ import annotations

import random
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from sidecar.query.analytics.funnels import (
    FunnelRequest,
    _by_user_time_step,
    _groups,
    _per_user,
    chain,
    ordered_chains,
)


def rows_of(groups: list[list[tuple[int, int]]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(group, time, step) arrays sorted by (group, time, step) from per-group (time, step) lists."""
    g = [i for i, events in enumerate(groups) for _ in events]
    t = [time for events in groups for time, _ in events]
    k = [step for events in groups for _, step in events]
    order = np.lexsort((k, t, g))
    return tuple(np.asarray(a, dtype=np.int64)[order] for a in (g, t, k))  # type: ignore[return-value]


def paths_of(level: np.ndarray, times: np.ndarray) -> list[list[int]]:
    return [row[:lv] for row, lv in zip(times.tolist(), level.tolist(), strict=True)]


def check(groups: list[list[tuple[int, int]]], n: int, window: int) -> list[list[int]]:
    level, times = ordered_chains(*rows_of(groups), n, window)
    assert times.shape == (len(groups), n)
    got = paths_of(level, times)
    for i, events in enumerate(groups):
        want = chain(sorted(events), n, window, "ordered")
        assert got[i] == want, (events, n, window)
        assert (times[i, level[i] :] == -1).all()
    return got


def random_groups(rnd: random.Random, count: int, n: int) -> list[list[tuple[int, int]]]:
    """Events named 0..names-1; the funnel's steps are names too, some repeated, so an event may
    pass several steps (one row per step) or none (a row of step -1)."""
    names = rnd.randint(1, n + 2)
    steps = [rnd.randrange(names) for _ in range(n)]
    groups = []
    for _ in range(count):
        events: list[tuple[int, int]] = []
        t = rnd.randrange(100)
        for _ in range(rnd.randint(1, 40)):
            t += rnd.choice([0, 0, 0, 1, 1, 2, 3, 5, 8, 20])
            name = rnd.randrange(names)
            hits = [k for k, s in enumerate(steps) if s == name]
            events.extend((t, k) for k in hits) if hits else events.append((t, -1))
        groups.append(events)
    return groups


@pytest.mark.parametrize("seed", range(8))
def test_random_groups_match_chain(seed: int) -> None:
    rnd = random.Random(seed)
    reached = [0] * 6
    for _ in range(12):
        n = rnd.randint(2, 5)
        groups = random_groups(rnd, 500, n)
        window = rnd.choice([0, 1, 2, 5, 10, 30, 100, 10**6, 2**63 - 1, 10**30])
        for path in check(groups, n, window):
            reached[len(path)] += 1
    assert min(reached[:3]) > 0 and sum(reached[3:]) > 0  # the cases were varied


def test_ignores_rows_of_no_step_and_groups_of_only_them() -> None:
    groups = [[(1, -1), (2, -1)], [(1, 0), (2, -1), (3, 1)], [], [(5, -1)]]
    groups = [g for g in groups if g]
    got = check(groups, 2, 10)
    assert got == [[], [1, 3], []]


def test_hand_cases() -> None:
    w = 10
    assert check([[(0, 0), (0, 1)]], 2, w) == [[0, 0]]  # same instant: level 2
    assert check([[(0, 0), (20, 1)]], 2, w) == [[0]]  # outside the window
    assert check([[(0, 0), (10, 1)]], 2, w) == [[0, 10]]  # at the window's edge
    assert check([[(0, 0), (0, 1)]], 2, 0) == [[0, 0]]  # a zero window still joins equal times
    # The latest start is extended; times come from the first chain that reached the level.
    assert check([[(1, 0), (8, 0), (15, 1), (18, 2)]], 3, w) == [[8, 15, 18]]
    assert check([[(1, 0), (8, 0), (15, 1), (19, 2)]], 3, w) == [[8, 15]]
    assert check([[(1, 0), (2, 1), (5, 0), (6, 1)]], 2, w) == [[1, 2]]
    # A later chain reaches level 2 after an earlier one did: the earlier one's path is kept while
    # the later one goes on to level 3.
    assert check([[(1, 0), (2, 1), (20, 0), (21, 1), (22, 2)]], 3, w) == [[20, 21, 22]]
    # One event passing steps 1 and 2 (a repeated step) is a chain of its own.
    assert check([[(3, 0), (3, 1), (3, 2)]], 3, w) == [[3, 3, 3]]
    # Out of order: a step-2 event before any step-1 event does nothing.
    assert check([[(1, 1), (2, 0)], [(1, 0), (2, 2), (3, 1)]], 3, w) == [[2], [1, 3]]


def test_empty() -> None:
    level, times = ordered_chains(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64), 3, 5)
    assert level.shape == (0,) and times.shape == (0, 3)


@pytest.mark.parametrize("mode", ["ordered", "strict", "unordered"])
def test_per_user_matches_a_chain_per_user(mode: str) -> None:
    """_per_user over a frame of several buckets and users: each (bucket, user) gets chain() of
    their events and, with a breakdown, the row of their first step-1 event (else of their first
    event); without one, rows equal in time and step may come in any order, but never the chain."""
    rnd = random.Random(7)
    n, rows = 3, 4000
    ts = np.asarray([rnd.randrange(200) for _ in range(rows)], dtype=np.int64)
    user = np.asarray([rnd.randrange(60) for _ in range(rows)], dtype=np.uint32)
    matched = np.asarray([rnd.choice([0, 0, 1, 2, 4, 3, 6, 5]) for _ in range(rows)], dtype=np.uint32)
    bucket = ts // 50
    frame: Any = SimpleNamespace(ts=ts, user=user, matched=matched)
    req = FunnelRequest([], 15, mode, None, ["screen"], 0)  # type: ignore[arg-type]
    got = _per_user(_groups(frame, bucket, n, req))
    plain = FunnelRequest([], 15, mode, None, [], 0)  # type: ignore[arg-type]
    paths = {key: path for key, (path, _) in _per_user(_groups(frame, bucket, n, plain)).items()}
    want: dict[tuple[int, int], tuple[list[int], int]] = {}
    for key in sorted({(int(b), int(u)) for b, u in zip(bucket, user, strict=True)}):
        mine = [i for i in range(rows) if (bucket[i], user[i]) == key]
        events = sorted(
            [(int(ts[i]), k, i) for i in mine for k in range(n) if matched[i] >> k & 1]
            + [(int(ts[i]), -1, i) for i in mine if not matched[i]]
        )
        path = chain([(t, k) for t, k, _ in events], n, 15, mode)
        first = next((i for _, k, i in events if k == 0), events[0][2])
        want[key] = (path, first)
    assert got == want
    assert paths == {key: path for key, (path, _) in want.items()}
    assert any(len(p) == n for p, _ in got.values())


@pytest.mark.parametrize(
    ("unit", "span"),
    [(1, 200), (10**6, 180 * 86400 * 1000), (1, 2**60)],  # packed in ns, packed in ms, too wide
)
def test_row_order_is_the_lexsort(unit: int, span: int) -> None:
    """One sort of packed (user, time, step) keys orders rows as the lexsort does, whatever unit
    divides the times and when they are too wide to pack."""
    rng = np.random.default_rng(3)
    rows = 5000
    user = rng.integers(0, 300, rows).astype(np.int64)
    time = 1_700_000_000 * 10**9 + rng.integers(0, span // unit, rows).astype(np.int64) * unit
    time[:50] = time[50:100]  # ties
    step = rng.integers(-1, 4, rows).astype(np.int64)
    want = np.lexsort((step, time, user))
    for stable in (True, False):
        got = _by_user_time_step(user, time, step, stable)
        assert np.array_equal(user[got], user[want]) and np.array_equal(time[got], time[want])
        assert np.array_equal(step[got], step[want])
    assert np.array_equal(_by_user_time_step(user, time, step, True), want)
