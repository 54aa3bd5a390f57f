"""The limit: the least any store must do with the same requests, in this process, pinned to one core.

Per request: parse with the official ``ExportTraceServiceRequest.FromString``, then one
``WriteBatch(raw_mode=True)`` with ``put(trace_id + span_id, span.SerializeToString())`` per span and
one ``db.write`` (WAL on, not synced; LZ4). RocksDB's own background threads are created while the
process is pinned, so flushes and compactions share that one core too.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from rocksdict import DBCompressionType, Options, Rdict, WriteBatch, WriteOptions

from bench import proc
from bench.stream import RequestStream
from bench.workload import build_workload


@dataclass(slots=True)
class LimitResult:
    spans: int
    requests: int
    busy_s: float  # time in parse + write only (re-keying the replayed requests excluded)
    wall_s: float
    cpu_s: float  # all threads of this process (RocksDB background work included), re-keying excluded
    pinned_cpu: int | None
    windows: list[float]  # spans per busy second in each ~1 s of wall time

    @property
    def spans_per_s(self) -> float:
        """Median of the 1-second windows, like the sidecar's figure."""
        return float(statistics.median(self.windows)) if self.windows else self.spans_per_s_overall

    @property
    def spans_per_s_overall(self) -> float:
        return self.spans / self.busy_s if self.busy_s else 0.0

    @property
    def cpu_s_per_100k(self) -> float:
        return self.cpu_s * 100_000 / self.spans if self.spans else 0.0

    def summary(self) -> dict[str, float | int | None]:
        return {
            **asdict(self),
            "windows": [round(w) for w in self.windows],
            "spans_per_s": round(self.spans_per_s),
            "spans_per_s_overall": round(self.spans_per_s_overall),
            "cpu_s_per_100k_spans": round(self.cpu_s_per_100k, 3),
        }


def store_request(db: Rdict, body: bytes, write_options: WriteOptions) -> int:
    request = ExportTraceServiceRequest.FromString(body)
    batch = WriteBatch(raw_mode=True)
    n = 0
    for rs in request.resource_spans:
        for ss in rs.scope_spans:
            for span in ss.spans:
                batch.put(span.trace_id + span.span_id, span.SerializeToString())
                n += 1
    db.write(batch, write_options)
    return n


def _open(path: str) -> Rdict:
    options = Options(raw_mode=True)
    options.create_if_missing(True)
    options.set_compression_type(DBCompressionType.lz4())
    return Rdict(path, options=options)


def run_limit(stream: RequestStream, duration: float, workdir: Path, pin: bool = True) -> LimitResult:
    """Loop for ``duration`` seconds over ``stream`` (which is advanced) into a fresh Rdict."""
    path = tempfile.mkdtemp(prefix="limit-", dir=workdir)
    before = os.sched_getaffinity(0)
    cpu = max(before) if pin else None
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})  # this thread, and every thread it starts from now on
    try:
        db = _open(path)
        write_options = WriteOptions()  # WAL on, no fsync per write (the sidecar's default too)
        spans = requests = 0
        busy = 0.0
        cpu0 = proc.self_cpu_seconds()
        t0 = time.perf_counter()
        replay_cpu = 0.0  # re-keying replayed requests: the harness's work, not the store's
        windows: list[float] = []
        tick, window_spans, window_busy = t0 + 1.0, 0, 0.0
        while (now := time.perf_counter()) - t0 < duration:
            if now >= tick:
                windows.append(window_spans / window_busy)
                tick, window_spans, window_busy = tick + 1.0, 0, 0.0
            c = time.thread_time()
            _, body, _ = stream.take()
            replay_cpu += time.thread_time() - c
            t = time.perf_counter()
            n = store_request(db, body, write_options)
            dt = time.perf_counter() - t
            spans, busy, requests = spans + n, busy + dt, requests + 1
            window_spans, window_busy = window_spans + n, window_busy + dt
        wall = time.perf_counter() - t0
        cpu_s = proc.self_cpu_seconds() - cpu0 - replay_cpu
        db.close()
    finally:
        if cpu is not None:
            os.sched_setaffinity(0, before)
        shutil.rmtree(path, ignore_errors=True)
    return LimitResult(spans, requests, busy, wall, cpu_s, cpu, windows)


def main() -> None:
    parser = argparse.ArgumentParser(description="The limit: parse + one WriteBatch per request, one core.")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--requests", type=int, default=128, help="distinct requests in the workload pool")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    workload = build_workload(args.requests, args.seed)
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        result = run_limit(RequestStream(workload), args.duration, Path(tmp))
    print(json.dumps(result.summary(), indent=2))


if __name__ == "__main__":
    main()
