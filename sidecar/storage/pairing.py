"""Client and server halves of calls, waiting for each other: the one pairing rule.

A call is a CLIENT (or PRODUCER) span whose span id is the parent id of a SERVER (or CONSUMER)
span of the same trace, as in the Collector's servicegraph connector and Jaeger's dependencies.
``/api/dependencies`` (``storage/rocks/servicegraph.py``, in the writer thread) and the service
graph metrics (``metrics/servicegraph.py``, in their tap) each hold a :class:`Pairing` with the same
settings, so both count the same calls; only what they keep per half differs.

A half waits at most ``wait_s`` for its other half (the Collector's ``store.ttl``, Tempo's
``wait``), then :meth:`Pairing.expire` hands it back as unpaired. At most ``max_pending`` halves wait
per side; past that a new half is dropped and counted, as the Collector's store refuses new edges
when full. Halves are kept in arrival order with one deadline per batch, so expiring is a C-level
pop of each batch's keys, not a scan of everything waiting.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from itertools import islice, repeat
from typing import Generic, TypeVar

C = TypeVar("C")
S = TypeVar("S")
H = TypeVar("H")

DEFAULT_WAIT_S = 10.0
DEFAULT_MAX_PENDING = 16_384
_COMPACT_AT = 8_192  # wave keys before paired ones are dropped (when they are most of them)


class Pairing(Generic[C, S]):
    """Halves keyed by trace id + span id (client) or trace id + parent span id (server); one
    thread at a time (callers lock if they share it)."""

    def __init__(
        self,
        wait_s: float = DEFAULT_WAIT_S,
        max_pending: int = DEFAULT_MAX_PENDING,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.wait_s = wait_s
        self.max_pending = max_pending
        self._clock = clock
        self._clients: dict[bytes, C] = {}
        self._servers: dict[bytes, S] = {}
        # (deadline, client keys, server keys) per batch that left halves waiting, oldest first.
        self._waves: deque[tuple[float, list[bytes], list[bytes]]] = deque()
        self._wave_keys = 0  # keys the waves hold, paired ones included until compacted
        self.dropped_clients: list[C] = []  # refused because the side was full; the caller takes them
        self.dropped_servers: list[S] = []

    def pair(self, clients: dict[bytes, C], servers: dict[bytes, S]) -> list[tuple[C, S]]:
        """Match a batch's halves with each other and with those waiting; the rest wait.

        Both dicts are consumed. The intersections run in C; the loop is over real pairs only.
        """
        pairs: list[tuple[C, S]] = []
        waiting_clients, waiting_servers = self._clients, self._servers
        for key in clients.keys() & servers.keys():
            pairs.append((clients.pop(key), servers.pop(key)))
        for key in clients.keys() & waiting_servers.keys():
            pairs.append((clients.pop(key), waiting_servers.pop(key)))
        for key in servers.keys() & waiting_clients.keys():
            pairs.append((waiting_clients.pop(key), servers.pop(key)))
        new_clients = _admit(waiting_clients, clients, self.dropped_clients, self.max_pending)
        new_servers = _admit(waiting_servers, servers, self.dropped_servers, self.max_pending)
        if new_clients or new_servers:
            self._waves.append((self._clock() + self.wait_s, new_clients, new_servers))
            self._wave_keys += len(new_clients) + len(new_servers)
            waiting = len(waiting_clients) + len(waiting_servers)
            if self._wave_keys > _COMPACT_AT and self._wave_keys > 4 * waiting:
                self._compact()
        return pairs

    def _compact(self) -> None:
        """Drop the keys of halves paired since their wave: under load most pair within the wait,
        and their keys would otherwise stay until the wave's deadline (tens of MB at 70k spans/s
        and ``wait_s`` 10)."""
        clients, servers = self._clients, self._servers
        waves: deque[tuple[float, list[bytes], list[bytes]]] = deque()
        for deadline, client_keys, server_keys in self._waves:
            client_keys = [key for key in client_keys if key in clients]
            server_keys = [key for key in server_keys if key in servers]
            if client_keys or server_keys:
                waves.append((deadline, client_keys, server_keys))
        self._waves = waves
        self._wave_keys = sum(len(c) + len(s) for _, c, s in waves)

    def expire(self, now: float | None = None) -> tuple[list[C], list[S]]:
        """Remove and return the halves whose wait is over (``now`` by the pairing's clock)."""
        now = self._clock() if now is None else now
        clients: list[C] = []
        servers: list[S] = []
        waves = self._waves
        while waves and waves[0][0] <= now:
            _, client_keys, server_keys = waves.popleft()
            self._wave_keys -= len(client_keys) + len(server_keys)
            # A key paired meanwhile is gone: pop(key, None) skips it, all in C.
            clients.extend(h for h in map(self._clients.pop, client_keys, repeat(None)) if h is not None)
            servers.extend(h for h in map(self._servers.pop, server_keys, repeat(None)) if h is not None)
        return clients, servers

    def take_dropped(self) -> tuple[list[C], list[S]]:
        """Halves refused since the last call because their side was full."""
        clients, servers = self.dropped_clients, self.dropped_servers
        self.dropped_clients, self.dropped_servers = [], []
        return clients, servers

    def waiting(self) -> tuple[int, int]:
        return len(self._clients), len(self._servers)


def _admit(waiting: dict[bytes, H], new: dict[bytes, H], dropped: list[H], limit: int) -> list[bytes]:
    """Let ``new`` wait as far as ``limit`` allows; the rest go to ``dropped``. Returns the keys."""
    room = limit - len(waiting)
    if len(new) > room:
        kept = dict(islice(new.items(), max(room, 0)))
        dropped.extend(new[key] for key in new.keys() - kept.keys())
        new = kept
    waiting.update(new)
    return list(new)
