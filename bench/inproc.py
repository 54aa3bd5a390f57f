"""Trace ingest in one process: ``prepare_traces``, the merge and ``db.write`` timed apart.

Eight requests are prepared, merged into one WriteBatch through the real ``TraceMerge`` and
written, as the server's writer does; CPU time per span for each step. Run it against another
checkout's code with ``PYTHONPATH=<checkout> python bench/inproc.py`` (the ``bench`` package of
this checkout is used either way).
"""

from __future__ import annotations

import argparse
import functools
import gc
import tempfile
import time

from rocksdict import WriteBatch

from bench.stream import RequestStream
from bench.workload import build_workload
from sidecar.ingest.traces import prepare_traces
from sidecar.storage.rocks.db import RocksStore, StoreOptions
from sidecar.storage.rocks.registry import Registry
from sidecar.storage.rocks.traces.merge import TraceMerge


def main() -> None:
    p = argparse.ArgumentParser(prog="python bench/inproc.py", description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=800, help="requests of 512 spans (default 800)")
    args = p.parse_args()
    stream = RequestStream(build_workload(64, 1))
    bodies = [stream.body(seq) for seq in range(args.requests)]
    gc.collect()
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)  # as the server sets it
    with tempfile.TemporaryDirectory(prefix="bench-inproc-") as tmp:
        store = RocksStore(tmp, StoreOptions())
        merge = TraceMerge(store, Registry(store.db), functools.partial(prepare_traces, well_formed=True))
        now = time.time_ns()
        prepare = merged = written = 0.0
        spans = 0
        for i in range(0, len(bodies), 8):
            t0 = time.process_time()
            preps = [prepare_traces(body) for body in bodies[i : i + 8]]
            t1 = time.process_time()
            spans += sum(prep.accepted for prep in preps)
            batch = WriteBatch(raw_mode=True)
            merge.merge(preps, batch, now + i)
            t2 = time.process_time()
            store.db.write(batch)
            merge.after_write()
            t3 = time.process_time()
            prepare, merged, written = prepare + t1 - t0, merged + t2 - t1, written + t3 - t2
        del merge
        store.close()
    per = 1e6 / spans
    print(
        f"{spans} spans: prepare {prepare * per:.2f} µs/span, merge {merged * per:.2f}, "
        f"db.write {written * per:.2f}, total {(prepare + merged + written) * per:.2f}"
    )


if __name__ == "__main__":
    main()
