"""Seeded business events for the analytics benchmark: N events over D whole UTC days, one day at a time.

- 200k users (``u<n>``), each with a lognormal activity weight and an active span (a first day from
  60 days before the range to its end, an exponential lifetime of mean 60 days, at least one day);
  a day's events are drawn among the users active that day, by weight.
- 11 drawn names with skewed frequencies (``view`` and ``click`` most), plus ``finish_task``, which
  follows 75 % of ``start_task`` events of the same user after a lognormal delay (median 10 min,
  about 4 % over an hour), possibly the next day; a rare ``pay`` carries a lognormal ``amount``
  (cents, so the JSON text and the float are the same number).
- ``screen`` (40 values) and ``elem`` (300 values) properties with Zipf-like frequencies.
- Times are integer milliseconds (exact through JSON and Parquet), with a daily rhythm and a
  weekly one; events are in time order; every event has a unique ``id``.

``chunks`` yields one ``Chunk`` (numpy columns) per day; ``ndjson_batches`` renders a chunk as
NDJSON request bodies for ``POST /v1/events`` and ``arrow_table`` as a pyarrow table, so the sidecar
and ClickHouse receive the same events. Memory is one day's arrays at a time.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

USERS = 200_000
DAY_MS = 86_400_000
# drawn names and weights; finish_task comes from start_task (index FINISH, not drawn)
NAMES = (
    "view",
    "click",
    "scroll",
    "search",
    "login",
    "logout",
    "like",
    "comment",
    "share",
    "start_task",
    "pay",
    "finish_task",
)
WEIGHTS = np.array([0.42, 0.22, 0.08, 0.06, 0.05, 0.03, 0.04, 0.02, 0.015, 0.05, 0.006])
START, PAY, FINISH = NAMES.index("start_task"), NAMES.index("pay"), NAMES.index("finish_task")
FINISH_P = 0.75
SCREENS = tuple(f"screen_{i}" for i in range(40))
ELEMS = tuple(f"elem_{i}" for i in range(300))
# which names carry screen / elem (login, logout have neither; pay has screen and amount)
HAS_SCREEN = np.array([n not in ("login", "logout") for n in NAMES])
HAS_ELEM = np.array([n in ("view", "click", "scroll", "like", "comment", "share") for n in NAMES])
_HOURS = np.array([1, 1, 1, 1, 1, 2, 3, 5, 7, 8, 8, 8, 8, 8, 8, 8, 8, 8, 7, 7, 6, 5, 3, 2], dtype=float)


def _zipf(n: int, s: float) -> np.ndarray:
    p = 1.0 / np.arange(1, n + 1) ** s
    return p / p.sum()


@dataclass(slots=True)
class Chunk:
    """One day's events in time order (ties: ``seq``); ``screen``/``elem`` -1 and ``amount`` NaN = absent."""

    ts_ms: np.ndarray  # int64
    name: np.ndarray  # int8 index into NAMES
    user: np.ndarray  # int32
    screen: np.ndarray  # int16
    elem: np.ndarray  # int16
    amount: np.ndarray  # float64
    seq: np.ndarray  # int64, global, makes the id

    def __len__(self) -> int:
        return len(self.ts_ms)


def range_ms(days: int, end: dt.date | None = None) -> tuple[int, int]:
    """[from, to) in Unix ms: the ``days`` whole UTC days ending at ``end`` 00:00 UTC (default today)."""
    end = end or dt.datetime.now(dt.UTC).date()
    to = int(dt.datetime(end.year, end.month, end.day, tzinfo=dt.UTC).timestamp()) * 1000
    return to - days * DAY_MS, to


def user_id(user: int) -> str:
    return f"u{user}"


def event_id(seq: int) -> str:
    return f"00000000-0000-4000-8000-{seq:012x}"


def chunks(events: int, days: int, seed: int = 1, end: dt.date | None = None) -> Iterator[Chunk]:
    """About ``events`` events (drawn ones plus their finish_task), one chunk per day, in time order."""
    rng = np.random.default_rng(seed)
    start_ms, _ = range_ms(days, end)
    activity = rng.lognormal(0.0, 1.2, USERS)
    first = rng.integers(-60, days, USERS)
    last = first + np.maximum(1, rng.exponential(60.0, USERS)).astype(np.int64)
    names_p = WEIGHTS / WEIGHTS.sum()
    screens_p, elems_p, hours_p = _zipf(len(SCREENS), 1.1), _zipf(len(ELEMS), 1.0), _HOURS / _HOURS.sum()
    drawn = events / (1 + names_p[START] * FINISH_P)
    week = 1 + 0.15 * np.sin(2 * math.pi * np.arange(days) / 7)
    per_day = np.floor(drawn * week / week.sum()).astype(np.int64)
    per_day[: round(drawn) - int(per_day.sum())] += 1
    pending: list[np.ndarray] = []  # finish_task events (ts, user) after the current day
    seq = 0
    for day in range(days):
        day_ms = start_ms + day * DAY_MS
        active = (first <= day) & (day < last)
        w = activity * active
        n = int(per_day[day])
        users = rng.choice(USERS, size=n, p=w / w.sum()).astype(np.int32)
        ts = day_ms + rng.choice(24, size=n, p=hours_p) * 3_600_000 + rng.integers(0, 3_600_000, n)
        names = rng.choice(len(names_p), size=n, p=names_p).astype(np.int8)
        starts = np.flatnonzero((names == START) & (rng.random(n) < FINISH_P))
        delay = np.maximum(1000, rng.lognormal(math.log(600_000), 1.0, len(starts))).astype(np.int64)
        follow = np.stack([ts[starts] + delay, users[starts].astype(np.int64)])
        pending.append(follow)
        carried = np.concatenate(pending, axis=1)
        today = carried[0] < day_ms + DAY_MS
        pending = [carried[:, ~today]]
        ts = np.concatenate([ts, carried[0, today]])
        users = np.concatenate([users, carried[1, today].astype(np.int32)])
        names = np.concatenate([names, np.full(int(today.sum()), FINISH, np.int8)])
        m = len(ts)
        screen = np.where(HAS_SCREEN[names], rng.choice(len(SCREENS), size=m, p=screens_p), -1)
        elem = np.where(HAS_ELEM[names], rng.choice(len(ELEMS), size=m, p=elems_p), -1)
        amount = np.where(names == PAY, np.round(rng.lognormal(3.0, 1.0, m), 2), np.nan)
        order = np.argsort(ts, kind="stable")
        yield Chunk(
            ts_ms=ts[order].astype(np.int64),
            name=names[order],
            user=users[order],
            screen=screen[order].astype(np.int16),
            elem=elem[order].astype(np.int16),
            amount=amount[order],
            seq=np.arange(seq, seq + m, dtype=np.int64),
        )
        seq += m


_NAME_FRAG = [f'{{"name":"{n}","timestamp":' for n in NAMES]
_SCREEN_FRAG = [f',"screen":"{s}"' for s in SCREENS] + [""]  # index -1: absent
_ELEM_FRAG = [f',"elem":"{e}"' for e in ELEMS] + [""]


def ndjson_batches(chunk: Chunk, per_request: int = 1000) -> Iterator[bytes]:
    """The chunk as NDJSON request bodies of ``per_request`` events (the last one may be shorter)."""
    names = chunk.name.tolist()
    ts = chunk.ts_ms.tolist()
    users = chunk.user.tolist()
    screens = chunk.screen.tolist()
    elems = chunk.elem.tolist()
    amounts = ["" if a != a else f',"amount":{a!r}' for a in chunk.amount.tolist()]  # a != a: NaN
    seqs = chunk.seq.tolist()
    lines = [
        f'{_NAME_FRAG[n]}{t},"user_id":"u{u}","id":"00000000-0000-4000-8000-{s:012x}"'
        f"{_SCREEN_FRAG[sc]}{_ELEM_FRAG[el]}{a}}}\n"
        for n, t, u, sc, el, a, s in zip(names, ts, users, screens, elems, amounts, seqs, strict=True)
    ]
    for i in range(0, len(lines), per_request):
        yield "".join(lines[i : i + per_request]).encode()


def arrow_table(chunk: Chunk) -> Any:
    """The chunk as a pyarrow table: id, name, ts (ms, UTC), user_id, screen, elem, amount (nulls: absent)."""
    import pyarrow as pa  # type: ignore[import-untyped]

    def coded(codes: np.ndarray, values: tuple[str, ...]) -> Any:
        dictionary = pa.array(values, pa.string())
        indices = pa.array(codes.astype(np.int32), mask=codes < 0)
        return pa.DictionaryArray.from_arrays(indices, dictionary).cast(pa.string())

    return pa.table(
        {
            "id": pa.array([event_id(s) for s in chunk.seq.tolist()], pa.string()),
            "name": coded(chunk.name, NAMES),
            "ts": pa.array(chunk.ts_ms, pa.timestamp("ms", tz="UTC")),
            "user_id": pa.array([user_id(u) for u in chunk.user.tolist()], pa.string()),
            "screen": coded(chunk.screen, SCREENS),
            "elem": coded(chunk.elem, ELEMS),
            "amount": pa.array(chunk.amount, pa.float64(), from_pandas=True),
        }
    )
