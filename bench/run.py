"""``python -m bench.run``: limit, OTLP/gRPC ingest, OTLP/HTTP ingest and query latency in one run.

All phases share one workload and one run, so the sidecar/limit ratios compare like with like on a
noisy machine. The query phase reuses the gRPC phase's server (topped up to ``--query-spans``)
before it is stopped and its data dir is compacted and sized.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench import ingest, proc, query, report
from bench.limit import run_limit
from bench.stream import RequestStream
from bench.workload import build_workload


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=float, help="seconds of each ingest phase (default 20, quick 5)")
    p.add_argument("--limit-duration", type=float, help="seconds of the limit loop (default 10, quick 3)")
    p.add_argument("--senders", type=int, default=4, help="concurrent senders per transport (default 4)")
    p.add_argument("--query-spans", type=int, help="spans stored before querying (default 1,000,000)")
    p.add_argument("--query-requests", type=int, help="requests per query kind (default 200, quick 50)")
    p.add_argument("--pool", type=int, help="distinct pre-serialized requests (default 256, quick 64)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--skip-query", action="store_true")
    p.add_argument("--profile", action="store_true", help="py-spy the server during the gRPC ingest phase")
    p.add_argument(
        "--quick", action="store_true", help="about one minute: short phases, 100k spans for queries"
    )
    p.add_argument("--out", type=Path, default=Path("bench/out/results.json"))
    args = p.parse_args(argv)
    quick = args.quick
    defaults = {
        "duration": 5.0 if quick else 20.0,
        "limit_duration": 3.0 if quick else 10.0,
        "query_spans": 100_000 if quick else 1_000_000,
        "query_requests": 50 if quick else 200,
        "pool": 64 if quick else 256,
    }
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def ratios(results: dict[str, Any]) -> dict[str, dict[str, float]]:
    """sidecar / limit per transport: throughput (median 1 s window, overall) and CPU efficiency.

    ``cpu_efficiency`` = limit CPU-s per span / sidecar CPU-s per span; it does not depend on how many
    cores the sidecar got, so it is the steadier number on a shared machine.
    """
    limit = results["limit"]
    out: dict[str, dict[str, float]] = {}
    for name, r in results["ingest"].items():
        out[name] = {
            "throughput_median": round(r["spans_per_s_median_1s"] / limit["spans_per_s"], 4),
            "throughput_overall": round(r["spans_per_s_overall"] / limit["spans_per_s"], 4),
            "cpu_efficiency": round(limit["cpu_s_per_100k_spans"] / r["server_cpu_s_per_100k_spans"], 4),
        }
    return out


def _say(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    proc.exit_on_sigterm()
    out_dir = args.out.parent
    out_dir.mkdir(parents=True, exist_ok=True)
    t_start = time.monotonic()
    results: dict[str, Any] = {
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "machine": {"cpus": os.cpu_count(), "loadavg_start": [round(x, 2) for x in os.getloadavg()]},
        "ingest": {},
        "profiles": {},
    }
    workdir = Path(tempfile.mkdtemp(prefix="sidecar-bench-"))
    try:
        _say(f"building workload: {args.pool} requests x 512 spans (seed {args.seed})")
        workload = build_workload(args.pool, args.seed)
        results["workload"] = workload.stats()
        # Every phase replays the same sequence from the start: identical bytes for each transport.
        _say(f"limit: {args.limit_duration:g} s")
        limit = run_limit(RequestStream(workload), args.limit_duration, workdir)
        results["limit"] = limit.summary()

        _say(
            f"OTLP/gRPC ingest: {args.duration:g} s, {args.senders} senders"
            + (" (profiled)" if args.profile else "")
        )
        grpc, server = ingest.start(
            "grpc",
            RequestStream(workload),
            workdir / "grpc",
            out_dir,
            args.duration,
            args.senders,
            args.profile,
        )
        try:
            if not args.skip_query:
                _say(f"query: top up to {args.query_spans:,} spans, then {args.query_requests} requests each")
                q, load = query.run(
                    server,
                    grpc.stream,
                    grpc.stored_spans,
                    grpc.drive.acked,
                    args.query_spans,
                    args.senders,
                    args.query_requests,
                    idle_timeout=20 if args.quick else 120,
                )
                if load is not None:
                    grpc.stored_spans += load.items_total
                results["query"] = asdict(q)
        finally:
            _say("stopping the gRPC sidecar, compacting its data dir")
            ingest.finish(grpc, server)
        results["ingest"]["grpc"] = grpc.summary()
        if grpc.profile:
            results["profiles"]["grpc ingest"] = grpc.profile
        shutil.rmtree(workdir / "grpc", ignore_errors=True)

        _say(f"OTLP/HTTP ingest: {args.duration:g} s, {args.senders} senders")
        http, server = ingest.start(
            "http", RequestStream(workload), workdir / "http", out_dir, args.duration, args.senders
        )
        _say("stopping the HTTP sidecar, compacting its data dir")
        ingest.finish(http, server)
        results["ingest"]["http"] = http.summary()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        proc.kill_children()
    results["ratios"] = ratios(results)
    results["elapsed_s"] = round(time.monotonic() - t_start, 1)
    args.out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print()
    print(report.render(results))
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
