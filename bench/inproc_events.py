"""NDJSON event parsing in one process: microseconds per event of ``parse_request``.

The bodies are the events benchmark's (``bench.events``: 1000 events a request, placeholders
filled), parsed as ``POST /v1/events`` parses them; the best of ``--repeat`` rounds over
``--requests`` bodies, CPU time. ``python -m bench.inproc_events``; ``--events-py
<checkout>/sidecar/ingest/events.py`` times another checkout's module instead (loaded on its own,
the rest of the package being this checkout's), e.g. the commit before a change.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import sys
import time
from pathlib import Path
from typing import Any

from bench.events import EVENTS_PER_REQUEST, EventStream, build_batches
from sidecar.config.model import EventsIngestConfig
from sidecar.ingest import events as this_events


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.inproc_events", description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=40, help="requests of 1000 events (default 40)")
    p.add_argument("--repeat", type=int, default=5, help="rounds; the best is reported (default 5)")
    p.add_argument("--events-py", type=Path, help="another checkout's sidecar/ingest/events.py to time")
    args = p.parse_args()
    module: Any = this_events
    if args.events_py:
        spec = importlib.util.spec_from_file_location("events_under_test", args.events_py)
        assert spec is not None and spec.loader is not None
        module = sys.modules[spec.name] = importlib.util.module_from_spec(spec)  # dataclasses look it up
        spec.loader.exec_module(module)
    parse_request = module.parse_request
    stream = EventStream(build_batches(8), seed=1)
    bodies = [stream.body(seq) for seq in range(args.requests)]
    limits = module.Limits.from_config(EventsIngestConfig(), 400)
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
    where = args.events_py or this_events.__file__
    print(f"parse_request NDJSON: {us:.2f} us/event ({events} events, best of {args.repeat}; {where})")


if __name__ == "__main__":
    main()
