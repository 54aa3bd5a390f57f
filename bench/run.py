"""``python -m bench.run``: limit, OTLP/gRPC ingest, OTLP/HTTP ingest and query latency in one run.

All phases share one workload and one run, so the sidecar/limit ratios compare like with like on a
noisy machine. The query phase reuses the gRPC phase's server (topped up to ``--query-spans``)
before it is stopped and its data dir is compacted and sized.

``--baseline DIR`` measures another checkout (DIR, with its own ``.venv`` built) in the same run:
each ingest phase runs for the baseline's server and then for ours, ``--pairs`` times in turn, so
the shared machine's noise and drift fall on both alike. The limit loop runs once (same code for
both) and the query phase only against ours. ``ingest_baseline`` holds the baseline's last run per
transport (the shape of ``ingest``, which holds ours), ``ingest_pairs`` every run in order, and
``ratios`` the current/baseline ratios (medians of the per-pair ratios).
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
from bench.server import CURRENT, Launcher
from bench.stream import RequestStream
from bench.workload import Workload, build_workload


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
    p.add_argument(
        "--baseline",
        type=Path,
        metavar="DIR",
        help="another checkout with its .venv built (say, a git worktree of the commit before): run "
        "each ingest phase for its server too, alternating with ours",
    )
    p.add_argument(
        "--pairs", type=int, default=1, help="baseline/current alternations per ingest phase (default 1)"
    )
    args = p.parse_args(argv)
    if args.pairs < 1:
        p.error("--pairs must be at least 1")
    if args.pairs > 1 and args.baseline is None:
        p.error("--pairs needs --baseline")
    if args.baseline is not None:
        try:
            Launcher.checkout(args.baseline)
        except FileNotFoundError as e:
            p.error(str(e))
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

    With a baseline (``ingest_pairs``), these are medians over our runs, ``baseline_*`` the same for
    the baseline's runs, and ``vs_baseline_*`` medians of current/baseline within each pair: run
    back to back, a pair shares the machine's state, so its ratio is steadier than a ratio of
    medians. ``vs_baseline_cpu_per_100k`` below 1 means ours spends less CPU per span.
    """
    limit = results["limit"]
    out: dict[str, dict[str, float]] = {}
    for name, r in results["ingest"].items():
        out[name] = {
            "throughput_median": round(r["spans_per_s_median_1s"] / limit["spans_per_s"], 4),
            "throughput_overall": round(r["spans_per_s_overall"] / limit["spans_per_s"], 4),
            "cpu_efficiency": round(limit["cpu_s_per_100k_spans"] / r["server_cpu_s_per_100k_spans"], 4),
        }
    for name, pairs in (results.get("ingest_pairs") or {}).items():
        for side, prefix in (("current", ""), ("baseline", "baseline_")):
            sps = report.pair_median(pairs, side, "spans_per_s_median_1s")
            overall = report.pair_median(pairs, side, "spans_per_s_overall")
            cpu = report.pair_median(pairs, side, "server_cpu_s_per_100k_spans")
            out[name][prefix + "throughput_median"] = round(sps / limit["spans_per_s"], 4)
            out[name][prefix + "throughput_overall"] = round(overall / limit["spans_per_s"], 4)
            out[name][prefix + "cpu_efficiency"] = round(limit["cpu_s_per_100k_spans"] / cpu, 4)
        for key, field in (
            ("vs_baseline_throughput_median", "spans_per_s_median_1s"),
            ("vs_baseline_throughput_overall", "spans_per_s_overall"),
            ("vs_baseline_cpu_per_100k", "server_cpu_s_per_100k_spans"),
        ):
            out[name][key] = round(report.pair_ratio(pairs, field), 4)
    return out


def _say(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


_SHOWN = {"grpc": "gRPC", "http": "HTTP"}


def _ingest_phase(
    args: argparse.Namespace,
    transport: str,
    launcher: Launcher,
    pair: int,
    workload: Workload,
    workdir: Path,
    results: dict[str, Any],
    with_query: bool,
) -> ingest.IngestReport:
    """One ingest phase of one checkout: fresh server, measured drive, (query phase,) stop, disk.

    With ``--baseline`` the messages, logs and profiles name the checkout (and the pair when there
    are several) to keep the runs apart; without, they keep the names they always had.
    """
    compare = args.baseline is not None
    who = file_tag = ""
    if compare:
        who = f", {launcher.name}" + (f" (pair {pair + 1}/{args.pairs})" if args.pairs > 1 else "")
        file_tag = f"-{launcher.name}" + (f"-{pair + 1}" if args.pairs > 1 else "")
    profiled = args.profile and transport == "grpc" and pair == 0
    _say(
        f"OTLP/{_SHOWN[transport]} ingest{who}: {args.duration:g} s, {args.senders} senders"
        + (" (profiled)" if profiled else "")
    )
    data_dir = workdir / (transport if launcher is CURRENT else f"{transport}-{launcher.name}")
    # A fresh stream: every server gets the same bytes in the same order.
    r, server = ingest.start(
        transport,
        RequestStream(workload),
        data_dir,
        args.out.parent,
        args.duration,
        args.senders,
        profiled,
        launcher=launcher,
        tag=file_tag,
    )
    try:
        if with_query and not args.skip_query:
            _say(f"query: top up to {args.query_spans:,} spans, then {args.query_requests} requests each")
            q, load = query.run(
                server,
                r.stream,
                r.stored_spans,
                r.drive.acked,
                args.query_spans,
                args.senders,
                args.query_requests,
                idle_timeout=20 if args.quick else 120,
            )
            if load is not None:
                r.stored_spans += load.items_total
            results["query"] = asdict(q)
    finally:
        _say(
            f"stopping the {launcher.name + ' ' if compare else ''}{_SHOWN[transport]} sidecar, "
            "compacting its data dir"
        )
        ingest.finish(r, server)
    shutil.rmtree(data_dir, ignore_errors=True)
    return r


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
    baseline = Launcher.checkout(args.baseline) if args.baseline is not None else None
    # Within a pair the baseline goes first; the query phase then follows our gRPC run directly.
    launchers = [CURRENT] if baseline is None else [baseline, CURRENT]
    if baseline is not None:
        results["checkouts"] = {"baseline": baseline.describe(), "current": CURRENT.describe()}
        results["ingest_baseline"] = {}
        results["ingest_pairs"] = {}
    else:  # the output without --baseline stays what it was
        del results["config"]["baseline"], results["config"]["pairs"]
    workdir = Path(tempfile.mkdtemp(prefix="sidecar-bench-"))
    try:
        _say(f"building workload: {args.pool} requests x 512 spans (seed {args.seed})")
        workload = build_workload(args.pool, args.seed)
        results["workload"] = workload.stats()
        # Every phase replays the same sequence from the start: identical bytes for each transport.
        _say(f"limit: {args.limit_duration:g} s")
        limit = run_limit(RequestStream(workload), args.limit_duration, workdir)
        results["limit"] = limit.summary()

        for transport in ("grpc", "http"):
            for pair in range(args.pairs):
                if baseline is not None:
                    results["ingest_pairs"].setdefault(transport, []).append({})
                for launcher in launchers:
                    # The query phase runs on our last gRPC server, before it is stopped.
                    with_query = transport == "grpc" and launcher is CURRENT and pair == args.pairs - 1
                    r = _ingest_phase(args, transport, launcher, pair, workload, workdir, results, with_query)
                    summary = r.summary()
                    results["ingest" if launcher is CURRENT else "ingest_baseline"][transport] = summary
                    if baseline is not None:
                        results["ingest_pairs"][transport][-1][launcher.name] = summary
                    if r.profile:
                        key = f"{transport} ingest" + ("" if launcher is CURRENT else f" ({launcher.name})")
                        results["profiles"][key] = r.profile
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
