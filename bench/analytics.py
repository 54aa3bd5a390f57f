"""``python -m bench.analytics``: event analytics through the HTTP API, against chDB in the same run.

1. ``bench.analytics_data`` generates the events (default 10M over 180 UTC days ending at today's
   00:00 UTC) once, into an NDJSON file of 1000-event request bodies and a Parquet file.
2. A fresh ``sidecar serve``; ``--senders`` keep-alive HTTP senders post the NDJSON bodies in time
   order to ``POST /v1/events``: events/s, server CPU.
3. After the server is idle, each query through the API: the first run and the median of
   ``--repeat`` runs (request sent to body read; JSON decoded outside the timing). Peak RSS, then
   SIGTERM, count, compact and size the data dir (``bench.signal_run.finish``).
4. chDB (in-process ClickHouse) loads the Parquet file into a MergeTree table ordered by
   (user_id, ts) and runs the equivalent SQL, timed the same way (``Session.query`` to the
   JSONCompact text); the answers are compared exactly (floats within 1e-9 relative).

Queries: (1) daily counts per event name; (2) DAU, WAU, MAU per day; (3) a 1-hour start_task ->
finish_task funnel per calendar month (users at levels 0, 1, 2); (4) one user's first 100 events;
(5) daily p50/p95/p99 of ``pay.amount``; and an ad-hoc scan: a count over the whole range with a
filter on ``elem``, events scanned per second = stored events / time.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import http.client
import json
import os
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench import analytics_data as data
from bench import proc, profile, signal_run
from bench.events import count_events
from bench.ingest import drive_summary
from bench.senders import EVENTS, drive
from bench.server import Sidecar

SCAN_ELEM = "elem_20"  # ~0.5 % of the events carrying elem


class BodyFile:
    """A finite, thread-safe stream of request bodies stored back to back in one file."""

    def __init__(self, path: Path, spans: list[tuple[int, int, int]]) -> None:
        self.spans = spans  # (offset, length, events) per body
        self._fd = os.open(path, os.O_RDONLY)
        self._next = 0
        self._lock = threading.Lock()

    def take(self) -> tuple[int, bytes, int] | None:
        with self._lock:
            seq = self._next
            self._next += 1
        if seq >= len(self.spans):
            return None
        offset, length, events = self.spans[seq]
        return seq, os.pread(self._fd, length, offset), events

    def close(self) -> None:
        os.close(self._fd)


@dataclass(slots=True)
class Generated:
    events: int
    from_ms: int
    to_ms: int
    ndjson_bytes: int
    bodies: list[tuple[int, int, int]]
    user: str  # the user of query 4: the most active one
    user_events: int
    seconds: float


def generate(events: int, days: int, seed: int, ndjson: Path, parquet: Path) -> Generated:
    import pyarrow.parquet as pq  # type: ignore[import-untyped]

    t0 = time.monotonic()
    from_ms, to_ms = data.range_ms(days)
    per_user = np.zeros(data.USERS, np.int64)
    bodies: list[tuple[int, int, int]] = []
    offset = total = 0
    writer: Any = None
    with open(ndjson, "wb") as out:
        for chunk in data.chunks(events, days, seed):
            for body in data.ndjson_batches(chunk):
                out.write(body)
                bodies.append((offset, len(body), body.count(b"\n")))
                offset += len(body)
            table = data.arrow_table(chunk)
            if writer is None:
                writer = pq.ParquetWriter(parquet, table.schema)
            writer.write_table(table)
            per_user += np.bincount(chunk.user, minlength=data.USERS)
            total += len(chunk)
    if writer is not None:
        writer.close()
    top = int(per_user.argmax())
    return Generated(
        total, from_ms, to_ms, offset, bodies, data.user_id(top), int(per_user[top]), time.monotonic() - t0
    )


# ---- the queries, both sides -------------------------------------------------------------------


def _iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _day(t: str) -> str:
    return t[:10]


class Api:
    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> bytes:
        payload = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if payload else {}
        self.conn.request(method, path, body=payload, headers=headers)
        resp = self.conn.getresponse()
        raw = resp.read()
        if resp.status != 200:
            raise RuntimeError(f"{method} {path}: HTTP {resp.status}: {raw[:300]!r}")
        return raw


def sidecar_queries(g: Generated) -> dict[str, Callable[[Api], tuple[bytes, Callable[[bytes], Any]]]]:
    """Per query, a function that runs it and returns (raw answer, a parser to the comparable form)."""
    rng = {"from": _iso(g.from_ms), "to": _iso(g.to_ms), "timezone": "UTC"}

    def series_by_day(raw: bytes) -> dict[str, list[Any]]:
        """{day: [value of series 0, series 1, ...]}."""
        out: dict[str, list[Any]] = {}
        series = json.loads(raw)["series"]
        for k, s in enumerate(series):
            for p in s["points"]:
                out.setdefault(_day(p["t"]), [None] * len(series))[k] = p["value"]
        return out

    def counts(raw: bytes) -> dict[str, int]:
        out = {}
        for s in json.loads(raw)["series"]:
            b = s["breakdown"]
            name = b["event"] if isinstance(b, dict) else b[0] if isinstance(b, list) else b
            for p in s["points"]:
                if p["value"]:
                    out[f"{_day(p['t'])} {name}"] = p["value"]
        return out

    def named_counts(raw: bytes) -> dict[str, int]:
        return {
            f"{_day(p['t'])} {s['event']}": p["value"]
            for s in json.loads(raw)["series"]
            for p in s["points"]
            if p["value"]
        }

    def funnel(raw: bytes) -> dict[str, list[int]]:
        return {
            _day(b["t"]): [lv["users"] for lv in sorted(b["levels"], key=lambda x: x["level"])]
            for b in json.loads(raw)["buckets"]
        }

    def first_events(raw: bytes) -> list[list[Any]]:
        return [[e["timestamp_ns"] // 1_000_000, e["name"], e["id"]] for e in json.loads(raw)["data"]]

    def scan(raw: bytes) -> int:
        return int(sum(p["value"] for s in json.loads(raw)["series"] for p in s["points"]))

    def trends(body: dict[str, Any], parse: Callable[[bytes], Any]) -> Callable[[Api], tuple[bytes, Any]]:
        return lambda api: (api.call("POST", "/api/events/trends", {**body, **rng}), parse)

    quantiles = [{"event": "pay", "measure": m, "property": "amount"} for m in ("p50", "p95", "p99")]
    return {
        "daily_counts_per_name": trends(
            {
                "series": [{"event": None, "measure": "count"}],
                "interval": "day",
                "breakdown": ["event"],
                "breakdown_limit": 100,
            },
            counts,
        ),
        # the same question as one series per name, no breakdown (the form the server's rollups answer)
        "daily_counts_per_name_series": trends(
            {"series": [{"event": n, "measure": "count"} for n in data.NAMES], "interval": "day"},
            named_counts,
        ),
        "dau_wau_mau": trends(
            {"series": [{"event": None, "measure": m} for m in ("dau", "wau", "mau")], "interval": "day"},
            series_by_day,
        ),
        "funnel_1h_per_month": lambda api: (
            api.call(
                "POST",
                "/api/events/funnels",
                {
                    "steps": [{"event": "start_task"}, {"event": "finish_task"}],
                    "window": "1h",
                    "mode": "ordered",
                    "interval": "month",
                    **rng,
                },
            ),
            funnel,
        ),
        "user_first_100": lambda api: (
            api.call("GET", f"/api/events?user_id={g.user}&order=asc&limit=100"),
            first_events,
        ),
        "pay_amount_quantiles_daily": trends({"series": quantiles, "interval": "day"}, series_by_day),
        "adhoc_scan_elem_filter": trends(
            {
                "series": [
                    {
                        "event": None,
                        "measure": "count",
                        "filters": [{"property": "elem", "op": "=", "value": SCAN_ELEM}],
                    }
                ],
                "interval": "total",
            },
            scan,
        ),
    }


CH_TABLE = """CREATE TABLE bench.events (
    id String, name LowCardinality(String), ts DateTime64(3, 'UTC'), user_id String,
    screen LowCardinality(Nullable(String)), elem LowCardinality(Nullable(String)), amount Nullable(Float64)
) ENGINE = MergeTree ORDER BY (user_id, ts)"""


def chdb_queries(g: Generated) -> dict[str, tuple[str, Callable[[list[list[Any]]], Any]]]:
    """Per query, its SQL and a parser of the JSONCompact rows to the comparable form."""
    lo, hi = f"fromUnixTimestamp64Milli({g.from_ms}, 'UTC')", f"fromUnixTimestamp64Milli({g.to_ms}, 'UTC')"
    in_range = f"ts >= {lo} AND ts < {hi}"
    day0 = f"toDate({lo})"

    def rolling(rows: list[list[Any]]) -> dict[str, list[Any]]:
        return {r[0]: [int(r[1]), int(r[2]), int(r[3])] for r in rows}

    def quantiles(rows: list[list[Any]]) -> dict[str, list[Any]]:
        return {r[0]: [float(x) for x in r[1]] for r in rows}

    def funnel(rows: list[list[Any]]) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        for month, level, users in rows:
            out.setdefault(month, [0, 0, 0])[int(level)] = int(users)
        return out

    # DAU/WAU/MAU: distinct users per day as uniqExact states, merged over the 1/7/30 days ending
    # with each day (the days before the range are read too, as the sidecar does; there are none).
    rolling_sql = f"""
        SELECT toString(d), dau, wau, mau FROM (
          SELECT d,
            uniqExactMerge(s) OVER (ORDER BY d RANGE BETWEEN 0 PRECEDING AND CURRENT ROW) AS dau,
            uniqExactMerge(s) OVER (ORDER BY d RANGE BETWEEN 6 PRECEDING AND CURRENT ROW) AS wau,
            uniqExactMerge(s) OVER (ORDER BY d RANGE BETWEEN 29 PRECEDING AND CURRENT ROW) AS mau
          FROM (
            SELECT toDate(ts) AS d, uniqExactState(user_id) AS s FROM bench.events
            WHERE ts >= {lo} - INTERVAL 30 DAY AND ts < {hi} GROUP BY d
          )
        ) WHERE d >= {day0} ORDER BY d"""
    daily_counts = (
        f"SELECT concat(toString(toDate(ts)), ' ', name), count() FROM bench.events WHERE {in_range} "
        "GROUP BY toDate(ts), name",
        lambda rows: {r[0]: int(r[1]) for r in rows},
    )
    return {
        "daily_counts_per_name": daily_counts,
        "daily_counts_per_name_series": daily_counts,
        "dau_wau_mau": (rolling_sql, rolling),
        "funnel_1h_per_month": (
            f"""SELECT toString(m), level, count() FROM (
                  SELECT user_id, toStartOfMonth(ts) AS m,
                    windowFunnel(3600000)(toUInt64(toUnixTimestamp64Milli(ts)),
                                          name = 'start_task', name = 'finish_task') AS level
                  FROM bench.events WHERE {in_range} GROUP BY user_id, m
                ) GROUP BY m, level ORDER BY m, level""",
            funnel,
        ),
        "user_first_100": (
            f"SELECT toUnixTimestamp64Milli(ts), name, id FROM bench.events WHERE user_id = '{g.user}' "
            f"AND {in_range} ORDER BY ts, id LIMIT 100",
            lambda rows: [[int(r[0]), r[1], r[2]] for r in rows],
        ),
        "pay_amount_quantiles_daily": (
            "SELECT toString(toDate(ts)), quantilesExactInclusive(0.5, 0.95, 0.99)(amount) FROM bench.events "
            f"WHERE name = 'pay' AND {in_range} GROUP BY toDate(ts) ORDER BY 1",
            quantiles,
        ),
        "adhoc_scan_elem_filter": (
            f"SELECT count() FROM bench.events WHERE elem = '{SCAN_ELEM}' AND {in_range}",
            lambda rows: int(rows[0][0]),
        ),
    }


# ---- comparison -----------------------------------------------------------------------------------


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        if a is None or b is None:
            return False
        return bool(a == b or abs(a - b) <= 1e-9 * max(abs(a), abs(b)))
    return bool(a == b)


def compare(name: str, side: Any, peer: Any, limit: int = 5) -> dict[str, Any]:
    """``identical`` and up to ``limit`` differences (bucket, sidecar value, chDB value)."""
    diffs: list[dict[str, Any]] = []
    count = 0
    if name == "user_first_100":
        # equal timestamps may come in any order: compare the (ts, name, id) sequence by ts groups
        side_sorted, peer_sorted = sorted(map(tuple, side)), sorted(map(tuple, peer))
        same = [r[0] for r in side] == [r[0] for r in peer] and side_sorted == peer_sorted
        if not same:
            for i, (a, b) in enumerate(zip(side, peer, strict=False)):
                if a != b:
                    count += 1
                    if len(diffs) < limit:
                        diffs.append({"bucket": f"row {i}", "sidecar": a, "chdb": b})
            if len(side) != len(peer):
                count += 1
                diffs.append({"bucket": "rows", "sidecar": len(side), "chdb": len(peer)})
        return {"identical": same, "differences": count, "examples": diffs}
    if isinstance(side, dict):
        if name == "pay_amount_quantiles_daily":  # a day without a pay: nulls here, absent in chDB
            side = {k: v for k, v in side.items() if any(x is not None for x in v)}
        for key in sorted(set(side) | set(peer)):
            a, b = side.get(key), peer.get(key)
            ok = (
                a is not None
                and b is not None
                and len(a) == len(b)
                and all(_same(x, y) for x, y in zip(a, b, strict=True))
                if isinstance(a, list) or isinstance(b, list)
                else _same(a, b)
            )
            if not ok:
                count += 1
                if len(diffs) < limit:
                    diffs.append({"bucket": key, "sidecar": a, "chdb": b})
        return {"identical": count == 0, "differences": count, "buckets": len(side), "examples": diffs}
    ok = _same(side, peer)
    return {
        "identical": ok,
        "differences": int(not ok),
        "examples": [] if ok else [{"sidecar": side, "chdb": peer}],
    }


# ---- timing --------------------------------------------------------------------------------------


def timed(run: Callable[[], Any], repeat: int) -> tuple[Any, dict[str, float]]:
    """First run, then ``repeat`` more: (first answer, {first_ms, median_ms, min_ms, max_ms})."""
    t0 = time.perf_counter()
    first = run()
    first_ms = (time.perf_counter() - t0) * 1000
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        run()
        runs.append((time.perf_counter() - t0) * 1000)
    return first, {
        "first_ms": round(first_ms, 2),
        "median_ms": round(statistics.median(runs), 2) if runs else round(first_ms, 2),
        "min_ms": round(min(runs, default=first_ms), 2),
        "max_ms": round(max(runs, default=first_ms), 2),
    }


def code_version() -> dict[str, Any]:
    """The commit the server runs from and the files of sidecar/ changed since (others edit the tree)."""
    import subprocess

    def git(*argv: str) -> str:
        done = subprocess.run(["git", *argv], capture_output=True, text=True, check=False)
        return done.stdout.strip()

    return {"commit": git("rev-parse", "HEAD"), "sidecar_changes": git("status", "--porcelain", "sidecar")}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.analytics", description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, help="events to generate (default 10,000,000; quick 500,000)")
    p.add_argument(
        "--days", type=int, help="whole UTC days ending at today 00:00 UTC (default 180; quick 30)"
    )
    p.add_argument("--senders", type=int, default=4)
    p.add_argument("--repeat", type=int, default=5, help="timed runs per query after the first (median)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--quick", action="store_true", help="500k events over 30 days")
    p.add_argument("--profile", action="store_true", help="py-spy the server during each query's reruns")
    p.add_argument("--workdir", type=Path, help="where the data dirs and files go (default a temp dir)")
    p.add_argument("--out", type=Path, default=Path("bench/out/analytics.json"))
    args = p.parse_args(argv)
    args.events = args.events or (500_000 if args.quick else 10_000_000)
    args.days = args.days or (30 if args.quick else 180)
    proc.exit_on_sigterm()
    t_start = time.monotonic()
    say = lambda msg: signal_run.say("analytics", msg)  # noqa: E731
    results: dict[str, Any] = {"config": {k: str(v) for k, v in vars(args).items()}}
    results["machine"] = signal_run.machine()
    results["code"] = code_version()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="sidecar-bench-analytics-", dir=args.workdir))
    try:
        say(f"generating {args.events:,} events over {args.days} days")
        g = generate(args.events, args.days, args.seed, workdir / "events.ndjson", workdir / "events.parquet")
        results["data"] = {
            "events": g.events,
            "days": args.days,
            "from": _iso(g.from_ms),
            "to": _iso(g.to_ms),
            "requests": len(g.bodies),
            "ndjson_bytes_per_event": round(g.ndjson_bytes / g.events, 1),
            "parquet_bytes": (workdir / "events.parquet").stat().st_size,
            "query_user": g.user,
            "query_user_events": g.user_events,
            "generate_s": round(g.seconds, 1),
        }
        say(f"{g.events:,} events generated in {g.seconds:.0f} s; starting the sidecar")
        answers, timings = run_sidecar(g, workdir, args, results, say)
        say("chDB: loading the Parquet file")
        peer_answers, peer_timings = run_chdb(g, workdir, args, results)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        proc.kill_children()
    rows = []
    for name in answers:
        cmp = compare(name, answers[name], peer_answers[name])
        rows.append({"query": name, "sidecar": timings[name], "chdb": peer_timings[name], **cmp})
    scan = next(r for r in rows if r["query"] == "adhoc_scan_elem_filter")
    results["queries"] = rows
    results["adhoc_scan"] = {
        "elem": SCAN_ELEM,
        "matched": answers["adhoc_scan_elem_filter"],
        "events_per_s_first": round(g.events / (scan["sidecar"]["first_ms"] / 1000)),
        "events_per_s_median": round(g.events / (scan["sidecar"]["median_ms"] / 1000)),
        "chdb_events_per_s_median": round(g.events / (scan["chdb"]["median_ms"] / 1000)),
    }
    results["elapsed_s"] = round(time.monotonic() - t_start, 1)
    signal_run.write(results, args.out)
    report(results)
    print(f"\nTotal {results['elapsed_s']:.0f} s\nwrote {args.out}")
    return 0


def run_sidecar(
    g: Generated, workdir: Path, args: argparse.Namespace, results: dict[str, Any], say: Callable[[str], None]
) -> tuple[dict[str, Any], dict[str, dict[str, float]]]:
    server = Sidecar(workdir / "data", args.out.parent / "sidecar-analytics.log")
    stream = BodyFile(workdir / "events.ndjson", g.bodies)
    try:
        ready = server.wait_ready()
        say(f"POST /v1/events (NDJSON, 1000 per request): {g.events:,} events, {args.senders} senders")
        d = drive("http", server, stream, args.senders, payload=EVENTS)
        results["ingest"] = {
            **drive_summary(d, "event"),
            "acknowledged_events": d.items_total,
            "peak_rss_mib": round(server.peak_rss_mib(), 1),
            "ready_s": round(ready, 2),
        }
        say(f"ingest: {d.items_total / d.wall_s:,.0f} events/s; waiting for the server to go idle")
        results["ingest"]["idle_wait_s"] = round(server.wait_idle(timeout=300), 1)
        api = Api(server.api_port)
        answers, timings = {}, {}
        for name, run in sidecar_queries(g).items():
            call = functools.partial(run, api)
            (raw, parse), t = timed(call, args.repeat)
            t["server_peak_rss_mib"] = round(server.peak_rss_mib(), 1)  # so far, this query included
            answers[name], timings[name] = parse(raw), t
            say(f"sidecar {name}: first {t['first_ms']:.1f} ms, median {t['median_ms']:.1f} ms")
            if args.profile:
                results.setdefault("profile", {})[name] = profile_query(server, call, t)
        results["sidecar_rss_mib_after_queries"] = round(server.rss_mib(), 1)
        say("stopping the sidecar, counting stored events, compacting")
        results["finish"] = signal_run.finish(server, d.items_total, "event", count_events)
    except BaseException:
        server.stop(10)
        raise
    finally:
        stream.close()
    return answers, timings


def profile_query(server: Sidecar, run: Callable[[], Any], t: dict[str, float]) -> dict[str, Any]:
    """py-spy on the server while the query runs again and again for about 3 runs (at least 2 s)."""
    seconds = max(2.0, 3 * t["median_ms"] / 1000)
    raw = Path(tempfile.mkdtemp(prefix="sidecar-bench-spy-")) / "stacks.txt"
    spy = profile.start(server.pid, seconds, raw)
    time.sleep(0.5)  # attached
    runs = 0
    while spy.poll() is None:
        run()
        runs += 1
    stacks = profile.read_stacks(raw)
    shutil.rmtree(raw.parent, ignore_errors=True)
    return {"runs": runs, **profile.summarize(stacks, profile.RATE * seconds, top=12)}


def run_chdb(
    g: Generated, workdir: Path, args: argparse.Namespace, results: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, dict[str, float]]]:
    import chdb
    from chdb import session

    sess = session.Session(str(workdir / "chdb"))
    try:
        sess.query("CREATE DATABASE bench")
        sess.query(CH_TABLE)
        t0 = time.perf_counter()
        sess.query(
            f"INSERT INTO bench.events SELECT id, name, ts, user_id, screen, elem, amount "
            f"FROM file('{workdir / 'events.parquet'}', Parquet)"
        )
        load_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        sess.query("OPTIMIZE TABLE bench.events FINAL")
        optimize_s = time.perf_counter() - t0
        stored = json.loads(str(sess.query("SELECT count() FROM bench.events", "JSONCompact")))["data"][0][0]
        size = json.loads(
            str(
                sess.query(
                    "SELECT sum(bytes_on_disk), count() FROM system.parts "
                    "WHERE database = 'bench' AND table = 'events' AND active",
                    "JSONCompact",
                )
            )
        )["data"][0]
        results["chdb"] = {
            "version": chdb.__version__,
            "order_by": "(user_id, ts)",
            "load_s": round(load_s, 2),
            "load_events_per_s": round(g.events / load_s),
            "optimize_final_s": round(optimize_s, 2),
            "stored_events": int(stored),
            "bytes_per_event": round(int(size[0]) / g.events, 1),
            "parts": int(size[1]),
        }
        queries = chdb_queries(g)
        answers, timings = {}, {}
        for name, (sql, parse) in queries.items():
            answer, t = timed(functools.partial(sess.query, sql, "JSONCompact"), args.repeat)
            answers[name], timings[name] = parse(json.loads(str(answer))["data"]), t
            signal_run.say(
                "analytics", f"chDB {name}: first {t['first_ms']:.1f} ms, median {t['median_ms']:.1f} ms"
            )
        results["chdb"]["process_peak_rss_mib"] = round(proc.status_kib(os.getpid(), "VmHWM") / 1024, 1)
    finally:
        sess.close()
    return answers, timings


def report(r: dict[str, Any]) -> None:
    d, i, f, c = r["data"], r["ingest"], r["finish"], r["chdb"]
    print()
    print(signal_run.machine_line(r["machine"]))
    dirty = r["code"]["sidecar_changes"].replace("\n", ";")
    print(
        f"Code: {r['code']['commit'][:12]}"
        + (f" with uncommitted sidecar/ changes: {dirty}" if dirty else "")
    )
    print(
        f"Data: {d['events']:,} events over {d['days']} days ({d['from']} .. {d['to']}), "
        f"{d['ndjson_bytes_per_event']} B/event of NDJSON, generated in {d['generate_s']} s"
    )
    print("\nIngest (POST /v1/events, NDJSON, 1000 events per request):")
    print("\n".join([*signal_run.ingest_lines({**i, **f}, "event"), *signal_run.finish_lines(f, "event")]))
    print(
        f"  chDB load from Parquet: {c['load_s']} s ({c['load_events_per_s']:,} events/s), "
        f"OPTIMIZE FINAL {c['optimize_final_s']} s, {c['bytes_per_event']} B/event on disk"
    )
    print(f"\n{'query':<30}{'sidecar first':>15}{'median':>12}{'chDB median':>13}{'ratio':>8}  identical")
    for q in r["queries"]:
        s, p = q["sidecar"], q["chdb"]
        ratio = s["median_ms"] / p["median_ms"] if p["median_ms"] else float("inf")
        same = "yes" if q["identical"] else f"NO ({q['differences']} differ)"
        print(
            f"{q['query']:<30}{s['first_ms']:>13.1f}ms{s['median_ms']:>10.1f}ms{p['median_ms']:>11.1f}ms"
            f"{ratio:>7.2f}x  {same}"
        )
    for q in r["queries"]:
        for e in q.get("examples", [])[:3]:
            print(f"  {q['query']} differs: {e}")
    for name, prof in r.get("profile", {}).items():
        top = ", ".join(f"{f} {pct}%" for f, pct in prof["self"][:4])
        print(f"  profile {name} ({prof['runs']} runs), own time: {top}")
    s = r["adhoc_scan"]
    print(
        f"\nAd-hoc scan (count, elem = {s['elem']}, {s['matched']:,} matched): "
        f"{s['events_per_s_median']:,} events/s (first run {s['events_per_s_first']:,}; "
        f"chDB {s['chdb_events_per_s_median']:,})"
    )
    print(
        f"Sidecar RSS: peak {f['lifetime_peak_rss_mib']:.0f} MiB over its life "
        f"(ingest {i['peak_rss_mib']:.0f}, after queries {r['sidecar_rss_mib_after_queries']:.0f})"
    )


if __name__ == "__main__":
    raise SystemExit(main())
