"""Ingest phase: a fresh ``sidecar serve``, N concurrent senders for a fixed time, then disk use.

``start`` leaves the server running (the query phase reuses its data); ``finish`` stops it with
SIGTERM (it drains and flushes), reopens the data dir in-process, flushes, compacts and sizes it.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import profile
from bench.senders import DriveResult, drive
from bench.server import CURRENT, Launcher, Sidecar
from bench.stream import RequestStream
from bench.workload import build_workload


@dataclass(slots=True)
class IngestReport:
    transport: str
    stream: RequestStream  # the server's request sequence (the query phase continues it)
    drive: DriveResult
    ready_s: float
    peak_rss_mib: float  # at the end of the measured phase
    otlp_bytes_per_span: float
    stored_spans: int  # spans acknowledged by this server over its whole life (query loading included)
    stop: dict[str, Any] = field(default_factory=dict)
    disk: dict[str, Any] = field(default_factory=dict)
    profile: dict[str, Any] | None = None
    lifetime_peak_rss_mib: float = 0.0  # at shutdown (the query phase may have run on this server)

    def summary(self) -> dict[str, Any]:
        return {
            "transport": self.transport,
            **drive_summary(self.drive, "span"),
            "peak_rss_mib": round(self.peak_rss_mib, 1),
            "lifetime_peak_rss_mib": round(self.lifetime_peak_rss_mib, 1),
            "ready_s": round(self.ready_s, 2),
            "otlp_bytes_per_span": round(self.otlp_bytes_per_span, 1),
            "stored_spans": self.stored_spans,
            "stop": self.stop,
            "disk": self.disk,
        }


def drive_summary(d: DriveResult, unit: str) -> dict[str, Any]:
    """Throughput, CPU, latency and errors of one measured drive, keys named after ``unit`` (say "span")."""
    per_100k = 100_000 / d.items if d.items else 0.0
    return {
        "senders": d.senders,
        "duration_s": round(d.wall_s, 2),
        f"{unit}s": d.items,
        f"{unit}s_per_s_median_1s": round(d.median_window),
        f"{unit}s_per_s_overall": round(d.items_per_s),
        "windows": d.windows,
        f"server_cpu_s_per_100k_{unit}s": round(d.server_cpu_s * per_100k, 3),
        "server_cores": round(d.server_cpu_s / d.wall_s, 2),
        f"client_cpu_s_per_100k_{unit}s": round(d.client_cpu_s * per_100k, 3),
        "client_cores": round(d.client_cpu_s / d.wall_s, 2),
        # CPU used by everything else on this shared machine while we measured (noise).
        "other_cores": round((d.machine_cpu_s - d.server_cpu_s - d.client_cpu_s) / d.wall_s, 2),
        "steal_cores": round(d.steal_cpu_s / d.wall_s, 2),
        "request_latency_p50_ms": round(d.latency_p50_ms, 1),
        "request_latency_p99_ms": round(d.latency_p99_ms, 1),
        "client_errors": d.errors,
        "dropped_requests": d.dropped,
        f"rejected_{unit}s": d.rejected,
    }


def dir_sizes(path: Path) -> dict[str, int]:
    """Bytes of every file under ``path`` except RocksDB's info logs (LOG*), and of the SST files alone."""
    total = sst = files = 0
    for root, _, names in os.walk(path):
        for name in names:
            if name.startswith("LOG"):
                continue
            size = os.path.getsize(os.path.join(root, name))
            total += size
            files += 1
            if name.endswith(".sst"):
                sst += size
    return {"bytes": total, "sst_bytes": sst, "files": files}


def measure_disk(
    path: Path,
    items: int,
    unit: str = "span",
    count: Callable[[Any], dict[str, Any]] | None = None,
    launcher: Launcher = CURRENT,
) -> dict[str, Any]:
    """Reopen the stopped server's data dir, flush and compact it, and size it per stored ``unit``.

    ``count``, if given, reads the reopened store first (say, how many items it really holds); what it
    returns is under ``"counted"``. A store written by another checkout (``launcher``) is compacted by
    that checkout's own code in its interpreter (our store code may not open it the same way), so
    ``count`` cannot be used with it.
    """
    after_stop = dir_sizes(path)
    counted: dict[str, Any] | None = None
    if launcher.cwd is not None:
        if count is not None:
            raise ValueError("count reads the store in-process: not possible for another checkout's store")
        compact_s = launcher.compact(path)
    else:
        from sidecar.storage.rocks.db import RocksStore, StoreOptions  # deferred: rocksdict is heavy

        t0 = time.perf_counter()
        store = RocksStore(str(path), StoreOptions())
        try:
            if count is not None:
                counted = count(store)
                t0 = time.perf_counter()
            store.flush()
            store.compact()
        finally:
            store.close()
        compact_s = time.perf_counter() - t0
    compacted = dir_sizes(path)
    per = 1 / items if items else 0.0
    out: dict[str, Any] = {
        "after_stop": after_stop,
        "compacted": compacted,
        "compact_s": round(compact_s, 2),
        f"bytes_per_{unit}": round(compacted["bytes"] * per, 1),
        f"sst_bytes_per_{unit}": round(compacted["sst_bytes"] * per, 1),
        f"after_stop_bytes_per_{unit}": round(after_stop["bytes"] * per, 1),
    }
    if counted is not None:
        out["counted"] = counted
    return out


def start(
    transport: str,
    stream: RequestStream,
    data_dir: Path,
    out_dir: Path,
    duration: float,
    senders: int,
    with_profile: bool = False,
    launcher: Launcher = CURRENT,
    tag: str = "",
) -> tuple[IngestReport, Sidecar]:
    """Run the measured ingest against a fresh server and return it still running.

    ``launcher`` picks the checkout that serves (see ``bench.server.Launcher``); ``tag`` is appended
    to the names of its log and profile files, so that runs of two checkouts keep theirs apart.
    """
    server = Sidecar(data_dir, out_dir / f"sidecar-{transport}{tag}.log", launcher=launcher)
    try:
        ready = server.wait_ready()
        raw = out_dir / f"profile-{transport}{tag}.txt"
        spy = []

        def on_start() -> None:
            if with_profile:
                spy.append(profile.start(server.pid, duration, raw))

        result = drive(transport, server, stream, senders, duration=duration, on_start=on_start)
        report = IngestReport(
            transport=transport,
            stream=stream,
            drive=result,
            ready_s=ready,
            peak_rss_mib=server.peak_rss_mib(),
            otlp_bytes_per_span=_otlp_bytes_per_span(stream, result.acked),
            stored_spans=result.items_total,
        )
        for p in spy:
            p.wait(60)
            stacks = profile.read_stacks(raw)
            svg = out_dir / f"profile-{transport}{tag}.svg"
            title = f"sidecar serve, OTLP/{transport} ingest" + (f" ({launcher.name})" if tag else "")
            profile.flame_svg(stacks, svg, title)
            top = profile.summarize(stacks, profile.RATE * duration, top=40)
            report.profile = {"raw": str(raw), "svg": str(svg), **top}
    except BaseException:
        server.stop(10)
        raise
    return report, server


def finish(report: IngestReport, server: Sidecar) -> IngestReport:
    """Stop the server (SIGTERM: it drains and flushes), then compact its data dir and size it."""
    report.lifetime_peak_rss_mib = server.peak_rss_mib()
    report.stop = server.stop()
    report.disk = measure_disk(server.data_dir, report.stored_spans, launcher=server.launcher)
    return report


def _otlp_bytes_per_span(stream: RequestStream, acked: list[int]) -> float:
    wl = stream.workload
    n = len(wl.requests)
    spans = sum(wl.request_spans[s % n] for s in acked)
    return sum(len(wl.requests[s % n]) for s in acked) / spans if spans else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description="One ingest phase against a fresh sidecar.")
    parser.add_argument("--transport", choices=("grpc", "http"), default="grpc")
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--senders", type=int, default=4)
    parser.add_argument("--requests", type=int, default=128, help="distinct requests in the workload pool")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("bench/out"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    stream = RequestStream(build_workload(args.requests, args.seed))
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        report, server = start(
            args.transport, stream, Path(tmp) / "data", args.out, args.duration, args.senders, args.profile
        )
        finish(report, server)
    print(json.dumps({**report.summary(), "profile": report.profile}, indent=2, default=str))


if __name__ == "__main__":
    main()
