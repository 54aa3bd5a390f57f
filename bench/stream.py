"""An endless, thread-safe sequence of requests drawn from a finite workload.

Sequence number ``seq`` is request ``seq % len(pool)`` of epoch ``seq // len(pool)``. Epoch 0 sends the
pool as generated; later epochs XOR every trace id with a per-epoch mask and shift every user.id by a
per-epoch offset (both patched at known byte offsets), so a replayed pool creates new, distinct
traces spread over the whole user population instead of appending to old traces and old users.
"""

from __future__ import annotations

import os
import random
import threading
import time
from dataclasses import dataclass

from bench.traces import USER_DIGITS, USERS
from bench.workload import TraceInfo, Workload


@dataclass(frozen=True, slots=True)
class SentTrace:
    trace_id: bytes  # as sent
    user: str  # user.id as sent
    info: TraceInfo


_RETIME = os.environ.get("BENCH_RETIME", "1") != "0"


def retime(buf: bytearray, offsets: tuple[int, ...], delta: int) -> None:
    """Add ``delta`` to the little-endian 8-byte timestamps at ``offsets`` (unless BENCH_RETIME=0)."""
    for at in offsets if _RETIME else ():
        buf[at : at + 8] = (int.from_bytes(buf[at : at + 8], "little") + delta).to_bytes(8, "little")


class Replay:
    """Thread-safe, endless sequence numbers over a pool of ``pool_size`` requests, and per-epoch masks.

    Subclasses say what request ``seq`` is (``body``) and how many items (spans, log records,
    events) it holds (``items``).
    """

    def __init__(self, seed: int, pool_size: int, start: int = 0) -> None:
        self.seed = seed
        self.pool_size = pool_size
        self._next = start
        self._lock = threading.Lock()
        self._masks: dict[int, int] = {0: 0}

    @property
    def position(self) -> int:
        """Sequence number of the next request to hand out."""
        return self._next

    def take(self) -> tuple[int, bytes, int]:
        """(seq, body, items) of the next request."""
        with self._lock:
            seq = self._next
            self._next += 1
        return seq, self.body(seq), self.items(seq)

    def mask(self, epoch: int) -> int:
        mask = self._masks.get(epoch)
        if mask is None:
            mask = self._masks[epoch] = random.Random(f"{self.seed}/{epoch}").getrandbits(128)
        return mask

    def body(self, seq: int) -> bytes:
        raise NotImplementedError

    def items(self, seq: int) -> int:
        raise NotImplementedError


class RequestStream(Replay):
    def __init__(self, workload: Workload, start: int = 0) -> None:
        super().__init__(workload.seed, len(workload.requests), start)
        self.workload = workload

    def items(self, seq: int) -> int:
        return self.workload.request_spans[seq % len(self.workload.requests)]

    def body(self, seq: int) -> bytes:
        """Request ``seq``: re-keyed for its epoch, and its timestamps moved so it ends now.

        A live exporter sends spans seconds after they end; replaying old timestamps would make
        every span look hours late, which no real deployment sees.
        """
        epoch, index = divmod(seq, len(self.workload.requests))
        raw = self.workload.requests[index]
        buf = bytearray(raw)
        retime(buf, self.workload.time_fields[index], time.time_ns() - self.workload.request_end_ns[index])
        if not epoch:
            return bytes(buf)
        mask = self.mask(epoch)
        shift = mask % USERS
        for trace_id, user, trace_id_at, user_at in self.workload.patches[index]:
            new = (int.from_bytes(trace_id) ^ mask).to_bytes(16)
            for at in trace_id_at:
                buf[at : at + 16] = new
            digits = b"%0*d" % (USER_DIGITS, (user + shift) % USERS)
            for at in user_at:
                buf[at : at + USER_DIGITS] = digits
        return bytes(buf)

    def sent(self, info: TraceInfo, epoch: int) -> SentTrace:
        mask = self.mask(epoch)
        user = (int(info.user[-USER_DIGITS:]) + mask % USERS) % USERS
        trace_id = (int.from_bytes(info.trace_id) ^ mask).to_bytes(16)
        return SentTrace(trace_id, f"{info.user[:-USER_DIGITS]}{user:0{USER_DIGITS}d}", info)

    def sent_traces(self, upto: int, k: int, rng: random.Random) -> list[SentTrace]:
        """``k`` random complete traces among requests ``[0, upto)``, as sent."""
        n = len(self.workload.requests)
        full_epochs, rest = divmod(upto, n)
        pool = [(e, t) for e in range(full_epochs) for t in self.workload.traces]
        pool += [(full_epochs, t) for t in self.workload.traces if t.last_request < rest]
        if not pool:
            return []
        return [self.sent(t, e) for e, t in (rng.choice(pool) for _ in range(k))]
