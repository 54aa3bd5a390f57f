"""NDJSON event parsing in one process: microseconds per event of ``parse_request``.

The bodies are the events benchmark's (``bench.events``: 1000 events a request, placeholders
filled), parsed as ``POST /v1/events`` parses them; the best of ``--repeat`` rounds over
``--requests`` bodies, CPU time. ``python -m bench.inproc_events``; against another checkout's
code with ``PYTHONPATH=<checkout>:. python -m bench.inproc_events`` (the ``bench`` package of this
checkout is used either way).
"""

from __future__ import annotations

import argparse
import gc
import time

from bench.events import EVENTS_PER_REQUEST, EventStream, build_batches
from sidecar.config.model import EventsIngestConfig
from sidecar.ingest.events import Limits, parse_request


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.inproc_events", description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=40, help="requests of 1000 events (default 40)")
    p.add_argument("--repeat", type=int, default=5, help="rounds; the best is reported (default 5)")
    args = p.parse_args()
    stream = EventStream(build_batches(8), seed=1)
    bodies = [stream.body(seq) for seq in range(args.requests)]
    limits = Limits.from_config(EventsIngestConfig(), 400)
    now = time.time_ns()
    events = args.requests * EVENTS_PER_REQUEST
    for body in bodies[:2]:  # every event must be valid, or the figure measures something else
        parsed = parse_request("application/x-ndjson", body, (), limits, now)
        assert not parsed.errors and len(parsed.events) == EVENTS_PER_REQUEST, parsed.errors[:3]
    gc.collect()
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)  # as the server sets it
    best = float("inf")
    for _ in range(args.repeat):
        start = time.process_time()
        for body in bodies:
            parse_request("application/x-ndjson", body, (), limits, now)
        best = min(best, time.process_time() - start)
    us = best / events * 1e6
    print(f"parse_request NDJSON: {us:.2f} us/event ({events} events, best of {args.repeat})")


if __name__ == "__main__":
    main()
