"""``python -m bench.logs``: OTLP log ingest (records/s, CPU, RSS), log search latency, disk per line.

1. Ingest: a fresh ``sidecar serve``, ``--senders`` concurrent OTLP/gRPC senders of 1000-record
   requests (``bench.logs_workload``) for ``--duration`` seconds: records/s (median of 1 s windows
   and overall), server CPU-s per 100k records, peak RSS, errors and refused records.
2. Top-up (not measured) to ``--search-lines`` stored lines, wait for the server's CPU to go quiet,
   then sequential ``GET /api/logs`` requests, each answer checked: the needles (a word token, and a
   16-hex-digit request ID like every line's ``req_id``, both planted in ``NEEDLE_LINES`` lines of one
   service, in one request) within their service and over all services, over the whole run's time
   range, must return exactly the planted lines; a trace ID lookup
   must return every record of that trace; a service + ``severity_min=warn`` page must be 100
   records of that service at WARN or above.
3. SIGTERM, reopen the data dir, count the stored lines from the block headers (they must equal the
   acknowledged ones), flush, compact, bytes on disk per line.
"""

from __future__ import annotations

import argparse
import random
import shutil
import tempfile
import time
import urllib.parse
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench import proc, report, signal_run
from bench.logs_workload import NEEDLE_LINES, NEEDLE_SERVICE, LogStream, TraceLog, build_log_workload
from bench.query import Queries, acked_prefix, measure
from bench.senders import LOGS, drive

PAGE_SERVICE = "frontend"
WARN = 13


def count_lines(store: Any) -> dict[str, Any]:
    """Lines in the stopped store, by service, from the block headers (``H`` keys of ``l`` partitions)."""
    from sidecar.storage.rocks.logs.merge import HEADER_STRUCT
    from sidecar.storage.rocks.partitions import LOGS as LOG_PARTITIONS

    services: Counter[str] = Counter()
    blocks = 0
    for part in store.partitions(LOG_PARTITIONS):
        for _, header in part.items(b"H"):
            _, _, _, records, size = HEADER_STRUCT.unpack_from(header)
            services[header[HEADER_STRUCT.size : HEADER_STRUCT.size + size].decode()] += records
            blocks += 1
    return {"total": sum(services.values()), "blocks": blocks, "by_service": dict(services)}


def _needle(body: Any, needle: str, service: str | None) -> tuple[int, bool]:
    data = body.get("data") or []
    ok = (
        len(data) == NEEDLE_LINES
        and all(needle in e["body"] and (service is None or e["service"] == service) for e in data)
        and body.get("next_cursor") is None
    )
    return len(data), ok


def _trace(body: Any, item: tuple[bytes, TraceLog]) -> tuple[int, bool]:
    data = body.get("data") or []
    trace_id = item[0].hex()
    return len(data), len(data) == item[1].records and all(e["trace_id"] == trace_id for e in data)


def _page(body: Any, _: object) -> tuple[int, bool]:
    data = body.get("data") or []
    ok = len(data) == 100 and all(e["service"] == PAGE_SERVICE and e["severity_number"] >= WARN for e in data)
    return len(data), ok


def _search_queries(label: str, needle: str, t_from: int, t_to: int) -> Queries:
    q = urllib.parse.quote(needle)
    span = f"from={t_from}&to={t_to}"
    return {
        f"{label}, service={NEEDLE_SERVICE}": (
            lambda _: f"/api/logs?service={NEEDLE_SERVICE}&q={q}&{span}",
            lambda body, _: _needle(body, needle, NEEDLE_SERVICE),
        ),
        f"{label}, all services": (
            lambda _: f"/api/logs?q={q}&{span}",
            lambda body, _: _needle(body, needle, None),
        ),
    }


LOOKUPS: Queries = {
    "trace_id lookup": (lambda t: f"/api/logs?trace_id={t[0].hex()}", _trace),
    f"service={PAGE_SERVICE} severity_min=warn limit=100": (
        lambda _: f"/api/logs?service={PAGE_SERVICE}&severity_min=warn&limit=100",
        _page,
    ),
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.logs", description=__doc__.splitlines()[0])
    signal_run.common_args(p)
    p.add_argument("--search-lines", type=int, help="lines stored before searching (default 8M, quick 500k)")
    p.add_argument("--needle-runs", type=int, help="requests per word-needle search (default 20, quick 5)")
    p.add_argument("--hex-runs", type=int, help="requests per req_id-needle search (default 3, quick 2)")
    p.add_argument("--lookups", type=int, help="requests per lookup kind (default 200, quick 50)")
    p.add_argument("--out", type=Path, default=Path("bench/out/logs.json"))
    args = p.parse_args(argv)
    signal_run.fill_defaults(
        args,
        {
            "search_lines": (8_000_000, 500_000),
            "needle_runs": (20, 5),
            "hex_runs": (3, 2),
            "lookups": (200, 50),
        },
    )
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    proc.exit_on_sigterm()
    say = lambda msg: signal_run.say("logs", msg)  # noqa: E731
    t_start = time.monotonic()
    results: dict[str, Any] = {"config": {k: str(v) for k, v in vars(args).items()}}
    results["machine"] = signal_run.machine()
    say(f"building workload: {args.pool} requests x 1000 records (seed {args.seed})")
    wl = build_log_workload(args.pool, args.seed)
    results["workload"] = {
        **wl.stats(),
        "needle": wl.needle,
        "needle_req_id": wl.needle_req_id,
        "needle_service": NEEDLE_SERVICE,
    }
    stream = LogStream(wl, needle_seq=wl.needle_index)  # epoch 0: the oldest data the searches span
    args.out.parent.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="sidecar-bench-logs-"))
    try:
        t_from = time.time_ns() - 60 * 10**9
        say(f"OTLP/gRPC log ingest: {args.duration:g} s, {args.senders} senders")
        run = signal_run.ingest(
            "grpc",
            stream,
            LOGS,
            workdir / "data",
            args.out.parent / "sidecar-logs.log",
            args.duration,
            args.senders,
        )
        server = run.server
        try:
            stored = run.drive.items_total
            acked = run.drive.acked
            load = None
            if stored < args.search_lines:
                say(f"top-up to {args.search_lines:,} lines (not measured)")
                load = drive(
                    "grpc", server, stream, args.senders, until_items=args.search_lines - stored, payload=LOGS
                )
                stored += load.items_total
                acked = sorted(acked + load.acked)
            say(f"{stored:,} lines acknowledged; waiting for idle CPU")
            idle = server.wait_idle(timeout=30 if args.quick else 180)
            t_to = time.time_ns() + 60 * 10**9
            if stream.needle_seq not in set(acked):
                say("the needle's request was never acknowledged: the needle checks will fail")
            say(
                f"search: {args.needle_runs} runs per word-needle search, {args.hex_runs} per req_id-needle "
                f"search, {args.lookups} per lookup"
            )
            searches = measure(
                server,
                [None],
                args.needle_runs,
                random.Random(3),
                _search_queries("needle", wl.needle, t_from, t_to),
            )
            known = stream.sent_traces(acked_prefix(acked), 2000, random.Random(args.seed + 5))
            lookups = measure(server, known, args.lookups, random.Random(4), LOOKUPS)
            # Last: a request ID's trigrams are in nearly every block's filter, so this may scan them all.
            searches += measure(
                server,
                [None],
                args.hex_runs,
                random.Random(3),
                _search_queries("req_id needle (hex)", wl.needle_req_id, t_from, t_to),
                timeout=900,
            )
            results["search"] = {
                "stored_lines": stored,
                "load": None
                if load is None
                else {
                    "lines": load.items_total,
                    "wall_s": round(load.wall_s, 1),
                    "lines_per_s": round(load.items_per_s),
                    "client_errors": load.errors,
                    "dropped_requests": load.dropped,
                    "rejected_lines": load.rejected,
                },
                "idle_wait_s": round(idle, 1),
                "rss_mib": round(server.rss_mib(), 1),
                "time_range_ns": [t_from, t_to],
                "queries": [asdict(s) for s in (*searches, *lookups)],
            }
        finally:
            say("stopping the sidecar, counting stored lines, compacting")
            results["ingest"] = run.summary("record")
            results["finish"] = signal_run.finish(server, stored, "line", count_lines)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        proc.kill_children()
    results["elapsed_s"] = round(time.monotonic() - t_start, 1)
    signal_run.write(results, args.out)
    print()
    print(render(results))
    print(f"\nwrote {args.out}")
    return 0


def render(results: dict[str, Any]) -> str:
    w, s, f = results["workload"], results["search"], results["finish"]
    by_service = f["disk"]["counted"]["by_service"]
    out = [
        signal_run.machine_line(results["machine"]),
        f"Workload: {w['requests']} distinct requests x 1000 log records (replayed: new trace IDs, times), "
        f"{w['bytes_per_record']} B/record OTLP, severities {w['severities']}",
        "",
        "Log ingest (OTLP/gRPC):",
        *signal_run.ingest_lines({**results["ingest"], **f}, "record"),
        *signal_run.finish_lines(f, "line"),
        "",
        f"Log search: {s['stored_lines']:,} lines stored "
        f"({NEEDLE_SERVICE}: {by_service.get(NEEDLE_SERVICE, 0):,}),"
        f" waited {s['idle_wait_s']} s for idle CPU, server RSS {s['rss_mib']:.0f} MiB"
        + (f"; top-up {s['load']['lines']:,} lines at {s['load']['lines_per_s']:,}/s" if s["load"] else ""),
        f"  needles {w['needle']!r} and req_id {w['needle_req_id']}, planted in {NEEDLE_LINES} lines of "
        f"{NEEDLE_SERVICE}",
        *report.query_rows(s["queries"]),
    ]
    out += ["", f"Total {results['elapsed_s']:.0f} s"]
    return "\n".join(out)


if __name__ == "__main__":
    raise SystemExit(main())
