"""``python -m bench.events``: business-event ingest over ``POST /v1/events`` (NDJSON), CPU, RSS, disk.

A fresh ``sidecar serve``; ``--senders`` concurrent HTTP keep-alive senders post NDJSON batches of
1000 events for ``--duration`` seconds: events/s (median of 1 s windows and overall), server CPU-s
per 100k events, peak RSS, request latency, errors and events refused or counted as duplicates.
Then SIGTERM, reopen the data dir, count the stored events (they must equal the acknowledged ones),
flush, compact, bytes on disk per event.

Events: 12 names with their own properties, 200k users, sessions, a client-made UUID-shaped ``id``
per event (so the dedupe check runs on every event), millisecond timestamps of the sending second.
A pool of batches is pre-serialized with two placeholders, replaced per request: the batch's
sequence number (the first 8 hex digits of every ``id``: ids never repeat) and the current second.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import proc, signal_run
from bench.senders import EVENTS
from bench.stream import Replay

EVENTS_PER_REQUEST = 1000
USERS = 200_000
_SEQ, _SECOND = b"@SEQ@", b"@SECOND@"
PLANS = ("free", "pro", "team", "enterprise")
PAGES = ("/", "/pricing", "/docs", "/product/{}", "/cart", "/checkout", "/account", "/search")
# (event name, weight, properties maker)
NAMES: tuple[tuple[str, float, Any], ...] = (
    (
        "page_view",
        0.34,
        lambda r: {
            "path": r.choice(PAGES).format(r.randrange(5000)),
            "ref": r.choice(("", "google", "newsletter")),
        },
    ),
    (
        "click",
        0.18,
        lambda r: {
            "button": r.choice(("buy", "add", "next", "close")),
            "path": r.choice(PAGES).format(r.randrange(5000)),
        },
    ),
    ("search", 0.09, lambda r: {"query_len": r.randrange(1, 40), "results": r.randrange(0, 200)}),
    (
        "add_to_cart",
        0.08,
        lambda r: {
            "sku": f"SKU-{r.randrange(20000):05d}",
            "qty": r.randint(1, 4),
            "price": round(r.uniform(2, 300), 2),
        },
    ),
    ("remove_from_cart", 0.03, lambda r: {"sku": f"SKU-{r.randrange(20000):05d}"}),
    (
        "checkout.started",
        0.04,
        lambda r: {"items": r.randint(1, 9), "amount": round(r.uniform(5, 900), 2), "currency": "EUR"},
    ),
    (
        "checkout.paid",
        0.03,
        lambda r: {
            "amount": round(r.uniform(5, 900), 2),
            "currency": "EUR",
            "method": r.choice(("card", "paypal")),
        },
    ),
    ("signup", 0.02, lambda r: {"plan": r.choice(PLANS), "source": r.choice(("ads", "organic", "referral"))}),
    (
        "login",
        0.08,
        lambda r: {"method": r.choice(("password", "sso", "magic_link")), "ok": r.random() > 0.03},
    ),
    ("logout", 0.04, lambda r: {}),
    (
        "feature_used",
        0.06,
        lambda r: {"feature": r.choice(("export", "share", "filter", "dark_mode")), "plan": r.choice(PLANS)},
    ),
    (
        "error_shown",
        0.01,
        lambda r: {"code": r.choice(("E401", "E500", "E429")), "path": r.choice(PAGES).format(0)},
    ),
)


def build_batches(n: int, seed: int = 1) -> list[bytes]:
    """``n`` NDJSON templates of EVENTS_PER_REQUEST events, with the two placeholders in them."""
    rng = random.Random(seed)
    names = [name for name, _, _ in NAMES]
    weights = [w for _, w, _ in NAMES]
    props = {name: make for name, _, make in NAMES}
    batches = []
    for _ in range(n):
        lines = []
        for i in range(EVENTS_PER_REQUEST):
            name = rng.choices(names, weights)[0]
            user = rng.randrange(USERS)
            event = {
                "id": f"{_SEQ.decode()}-{i:04x}-4{rng.getrandbits(12):03x}-{rng.getrandbits(16):04x}-"
                f"{rng.getrandbits(48):012x}",
                "name": name,
                "timestamp": f"{_SECOND.decode()}{i * 999 // EVENTS_PER_REQUEST:03d}",  # ms
                "user_id": str(user),
                "session_id": f"s{user:06d}{rng.randrange(8)}",
                "properties": props[name](rng),
            }
            lines.append(json.dumps(event, separators=(",", ":")))
        batches.append(("\n".join(lines) + "\n").encode())
    return batches


class EventStream(Replay):
    def __init__(self, batches: list[bytes], seed: int) -> None:
        super().__init__(seed, len(batches))
        self.batches = batches

    def items(self, seq: int) -> int:
        return EVENTS_PER_REQUEST

    def body(self, seq: int) -> bytes:
        second = int(time.time()) - 1  # the batch's events happened during the last second
        batch = self.batches[seq % self.pool_size]
        return batch.replace(_SEQ, b"%08x" % seq).replace(_SECOND, b"%d" % second)


def count_events(store: Any) -> dict[str, Any]:
    """Events in the stopped store: the ``V`` records of every ``e`` partition."""
    from sidecar.storage.rocks.partitions import EVENTS as EVENT_PARTITIONS

    parts = store.partitions(EVENT_PARTITIONS)
    return {"total": sum(1 for part in parts for _ in part.items(b"V")), "partitions": len(parts)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.events", description=__doc__.splitlines()[0])
    signal_run.common_args(p)
    p.add_argument("--out", type=Path, default=Path("bench/out/events.json"))
    args = p.parse_args(argv)
    signal_run.fill_defaults(args, {})
    proc.exit_on_sigterm()
    t_start = time.monotonic()
    results: dict[str, Any] = {"config": {k: str(v) for k, v in vars(args).items()}}
    results["machine"] = signal_run.machine()
    signal_run.say("events", f"building workload: {args.pool} batches x {EVENTS_PER_REQUEST} events")
    stream = EventStream(build_batches(args.pool, args.seed), args.seed)
    sample = stream.body(0)
    results["workload"] = {
        "batches": args.pool,
        "ndjson_bytes_per_event": round(len(sample) / EVENTS_PER_REQUEST, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="sidecar-bench-events-"))
    try:
        signal_run.say("events", f"POST /v1/events (NDJSON): {args.duration:g} s, {args.senders} senders")
        run = signal_run.ingest(
            "http",
            stream,
            EVENTS,
            workdir / "data",
            args.out.parent / "sidecar-events.log",
            args.duration,
            args.senders,
        )
        signal_run.say("events", "stopping the sidecar, counting stored events, compacting")
        results["ingest"] = run.summary("event")
        results["finish"] = signal_run.finish(run.server, run.drive.items_total, "event", count_events)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        proc.kill_children()
    results["elapsed_s"] = round(time.monotonic() - t_start, 1)
    signal_run.write(results, args.out)
    w, f = results["workload"], results["finish"]
    print()
    print(signal_run.machine_line(results["machine"]))
    print(
        f"Workload: {w['batches']} NDJSON batches x {EVENTS_PER_REQUEST} events, "
        f"{w['ndjson_bytes_per_event']} B/event"
    )
    print("\nEvent ingest (POST /v1/events, application/x-ndjson):")
    print(
        "\n".join(
            [
                *signal_run.ingest_lines({**results["ingest"], **f}, "event"),
                *signal_run.finish_lines(f, "event"),
            ]
        )
    )
    print(f"\nTotal {results['elapsed_s']:.0f} s\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
