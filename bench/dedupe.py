"""``python -m bench.dedupe``: what the writer's resent-span check costs, in process, per span.

Each round prepares and writes the workload's requests through the real TraceWriter (over the write
queue, where the checkout has one) into a fresh RocksDB directory (every trace new: the check's cost
on ordinary ingest), then writes the same requests again (every span a resend: the cost of
recognising them). CPU seconds of the whole process (receiving thread, writer thread and RocksDB's
own threads), divided by spans.

``--against DIR`` runs the same rounds with the checkout in DIR (say, a ``git worktree`` of the
commit before the check), alternating round by round, so the two are compared on one machine in
one run; the report gives medians and their ratio.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import inspect
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def one_round(requests: int, seed: int) -> dict[str, float]:
    """Both passes in this process, with whatever ``sidecar`` package is importable."""
    from bench.stream import RequestStream
    from bench.workload import build_workload
    from sidecar.config.model import IngestConfig
    from sidecar.ingest.traces import prepare_traces
    from sidecar.storage.rocks.db import RocksStore, StoreOptions
    from sidecar.storage.rocks.registry import Registry

    stream = RequestStream(build_workload(min(requests, 64), seed))
    bodies = [stream.body(seq) for seq in range(requests)]
    with tempfile.TemporaryDirectory(prefix="bench-dedupe-") as tmp:
        store = RocksStore(tmp, StoreOptions())
        registry = Registry(store.db)
        reprepare = functools.partial(prepare_traces, well_formed=True)
        writer: Any
        worker: Any  # what owns the writer thread
        try:
            from sidecar.storage.rocks.traces.writer import TraceWriter
            from sidecar.storage.rocks.write_queue import WriteQueue

            worker = WriteQueue(store)
            writer = TraceWriter(worker, registry, IngestConfig.max_batch_spans, 1 << 20, reprepare)
        except ImportError:  # older checkouts: one TraceWriter with its own thread
            old = importlib.import_module("sidecar.storage.rocks.writer")
            extra: dict[str, Any] = {}
            if "reprepare" in inspect.signature(old.TraceWriter).parameters:  # older still lack it
                extra["reprepare"] = reprepare
            writer = worker = old.TraceWriter(store, registry, IngestConfig.max_batch_spans, 1 << 20, **extra)
        worker.start()
        result: dict[str, float] = {}
        for name in ("new", "resent"):
            spans = 0
            cpu = time.process_time()
            for body in bodies:
                prepared = prepare_traces(body)
                spans += prepared.accepted
                writer.submit(prepared).result(60)
            result[f"{name}_us_per_span"] = (time.process_time() - cpu) / spans * 1e6
        worker.close()
        # Peak RSS of the process: the writer's cache of recent traces (their span ids) lives here.
        result["max_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        del writer, worker
        store.close()
    return result


def _run_in(checkout: Path | None, requests: int, seed: int) -> dict[str, float]:
    env = dict(os.environ)
    if checkout is not None:
        env["PYTHONPATH"] = str(checkout)
    argv = [sys.executable, str(Path(__file__).resolve()), "--one", f"--requests={requests}"]
    argv.append(f"--seed={seed}")
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"bench.dedupe round in {checkout} failed:\n{done.stderr}")
    return dict(json.loads(done.stdout))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.dedupe", description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=128, help="512-span requests per pass (default 128)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--against", type=Path, help="another checkout to compare with, round by round")
    p.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.one:
        print(json.dumps(one_round(args.requests, args.seed)))
        return
    here = Path(__file__).resolve().parent.parent
    runs: dict[str, list[dict[str, float]]] = {"this": [], "against": []}
    for _ in range(args.rounds):
        runs["this"].append(_run_in(here, args.requests, args.seed))
        if args.against is not None:
            runs["against"].append(_run_in(args.against, args.requests, args.seed))
    report: dict[str, Any] = {"requests": args.requests, "rounds": args.rounds}
    for name, results in runs.items():
        if results:
            report[name] = {k: round(statistics.median(r[k] for r in results), 2) for k in results[0]}
    if runs["against"]:
        report["this_over_against"] = {
            k: round(report["this"][k] / report["against"][k], 3) for k in report["this"]
        }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
