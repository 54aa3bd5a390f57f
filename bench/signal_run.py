"""What the log and event benchmarks share: a fresh server, a measured ingest phase, shutdown and disk.

The measured phase is ``bench.senders.drive`` (1-second windows, median and overall rate, server
CPU, latency, errors); after it the caller may use the still-running server (the log benchmark
searches it), then ``finish`` stops it with SIGTERM, reopens its data dir, counts what is really
stored, flushes, compacts and sizes it (``bench.ingest.measure_disk``).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.ingest import drive_summary, measure_disk
from bench.senders import DriveResult, Payload, Stream, drive
from bench.server import Sidecar


def say(what: str, msg: str) -> None:
    print(f"[{what} {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def common_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--duration", type=float, help="seconds of the measured ingest (default 20, quick 5)")
    p.add_argument("--senders", type=int, default=4, help="concurrent senders (default 4)")
    p.add_argument("--pool", type=int, help="distinct pre-serialized requests (default 64, quick 32)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--quick", action="store_true", help="a short smoke run")


def fill_defaults(args: argparse.Namespace, defaults: dict[str, Any]) -> None:
    """Defaults of ``common_args`` and ``defaults`` (name -> (full, quick)) where the flag was not given."""
    both = {"duration": (20.0, 5.0), "pool": (64, 32), **defaults}
    for key, (full, quick) in both.items():
        if getattr(args, key) is None:
            setattr(args, key, quick if args.quick else full)


@dataclass(slots=True)
class Ingest:
    server: Sidecar
    drive: DriveResult
    ready_s: float
    peak_rss_mib: float  # at the end of the measured phase

    def summary(self, unit: str) -> dict[str, Any]:
        return {
            **drive_summary(self.drive, unit),
            "peak_rss_mib": round(self.peak_rss_mib, 1),
            "ready_s": round(self.ready_s, 2),
        }


def ingest(
    transport: str,
    stream: Stream,
    payload: Payload,
    data_dir: Path,
    log_path: Path,
    duration: float,
    senders: int,
) -> Ingest:
    """Start a fresh server and send to it for ``duration`` seconds; it is left running."""
    server = Sidecar(data_dir, log_path)
    try:
        ready = server.wait_ready()
        result = drive(transport, server, stream, senders, duration=duration, payload=payload)
        return Ingest(server, result, ready, server.peak_rss_mib())
    except BaseException:
        server.stop(10)
        raise


def finish(
    server: Sidecar, acknowledged: int, unit: str, count: Callable[[Any], dict[str, Any]]
) -> dict[str, Any]:
    """Stop the server, count what it stored (``count`` returns ``{"total": n, ...}``), compact, size.

    ``stored_matches_acknowledged`` is the check that every item the server acknowledged (and did
    not refuse) is stored, once.
    """
    lifetime = server.peak_rss_mib()
    stop = server.stop()
    disk = measure_disk(server.data_dir, acknowledged, unit, count)
    stored = disk["counted"]["total"]
    return {
        "lifetime_peak_rss_mib": round(lifetime, 1),
        "stop": stop,
        f"acknowledged_{unit}s": acknowledged,
        f"stored_{unit}s": stored,
        "stored_matches_acknowledged": stored == acknowledged,
        "disk": disk,
    }


def machine() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "loadavg_start": [round(x, 2) for x in os.getloadavg()]}


def machine_line(m: dict[str, Any]) -> str:
    return f"Machine: {m['cpus']} CPUs, load average at start {m['loadavg_start']}"


def ingest_lines(r: dict[str, Any], unit: str) -> list[str]:
    """The measured ingest phase of a result dict, readable."""
    u = f"{unit}s"
    errors = sum(r["client_errors"].values())
    return [
        f"  {u}/s, median of 1 s windows   {r[f'{u}_per_s_median_1s']:>12,}",
        f"  {u}/s, overall                 {r[f'{u}_per_s_overall']:>12,}"
        f"   ({r[u]:,} in {r['duration_s']} s, {r['senders']} senders)",
        f"  server CPU-s per 100k {u:<9}{r[f'server_cpu_s_per_100k_{u}']:>12.3f}"
        f"   ({r['server_cores']:.2f} cores; client {r['client_cores']:.2f}, other {r['other_cores']:.2f},"
        f" steal {r['steal_cores']:.2f})",
        f"  peak RSS MiB (ingest / lifetime) {r['peak_rss_mib']:>8.0f} / {r['lifetime_peak_rss_mib']:.0f}",
        f"  request latency p50 / p99 ms      {r['request_latency_p50_ms']:>7.0f} / "
        f"{r['request_latency_p99_ms']:.0f}",
        f"  client errors / dropped requests / rejected {u}: {errors} {r['client_errors'] or ''} / "
        f"{r['dropped_requests']} / {r[f'rejected_{u}']}",
    ]


def finish_lines(f: dict[str, Any], unit: str) -> list[str]:
    u = f"{unit}s"
    disk = f["disk"]
    return [
        f"  stored {u} (counted in the data dir) {f[f'stored_{u}']:,} of {f[f'acknowledged_{u}']:,} "
        f"acknowledged: {'OK' if f['stored_matches_acknowledged'] else 'MISMATCH'}",
        f"  disk B/{unit} compacted (no LOG*)   {disk[f'bytes_per_{unit}']:>8.1f}"
        f"   (after stop {disk[f'after_stop_bytes_per_{unit}']:.1f},"
        f" SST only {disk[f'sst_bytes_per_{unit}']:.1f})",
    ]


def write(results: dict[str, Any], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str) + "\n")
