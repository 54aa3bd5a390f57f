"""Who a client span calls, from its own attributes: the virtual peer of a call whose callee never
reports to this sidecar (a database, a broker, another team's service).

The rule, shared by ``/api/dependencies`` and the service graph metrics (both read what ingest
computes here once per CLIENT/PRODUCER span):

* connection type: ``database`` when the span has ``db.system``, ``db.namespace`` or ``db.name``;
  else ``messaging_system`` for a PRODUCER span or one with ``messaging.system``; else ``""``.
* the peer's name: ``peer.service``; then, for a database, ``db.namespace``, ``db.name``,
  ``db.system``; then ``server.address``, the older ``net.peer.name``; then ``messaging.system``.

As in the Collector's servicegraph connector, a database call is an edge at once (no server span
will come); any other client span waits for its server span and, if none comes within the wait,
becomes an edge to its peer (the Collector's virtual node; ``peer.service`` is also its first peer
attribute). A span with none of these attributes stays an unpaired half.
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import methodcaller

from opentelemetry.proto.common.v1.common_pb2 import KeyValue

from sidecar.otlp.anyvalue import body_text

DATABASE = "database"
MESSAGING = "messaging_system"
_PRODUCER = 4
_DB_KEYS = ("db.namespace", "db.name", "db.system")
_PEER_KEYS = ("peer.service", *_DB_KEYS, "server.address", "net.peer.name", "messaging.system")


def attribute_prefix(key: str) -> bytes:
    """How an encoded KeyValue with this key and a value starts (field 1, then field 2's tag)."""
    raw = key.encode()
    if len(raw) >= 0x80:
        raise ValueError(f"attribute key longer than 127 bytes: {key[:40]!r}")
    return b"\x0a" + bytes((len(raw),)) + raw + b"\x12"


# How an attribute that can name a peer starts; the compiled core matches client spans' attributes
# against these and hands the hits to peer_of_hits.
PEER_PREFIXES = tuple(attribute_prefix(k) for k in _PEER_KEYS)
_has_peer_key = methodcaller("startswith", PEER_PREFIXES)


_CACHE = 10_000
_seen: dict[tuple[int, tuple[bytes, ...]], tuple[str, str] | None] = {}


def peer_of(attributes: Sequence[bytes], kind: int) -> tuple[str, str] | None:
    """(peer name, connection type) of a client span's encoded attributes, or None without a peer.

    The match runs in C; the few matching attributes repeat from span to span (a service calls few
    peers), so their answer is remembered by their bytes and decoded once."""
    return peer_of_hits(tuple(filter(_has_peer_key, attributes)), kind)


def peer_of_hits(hits: tuple[bytes, ...], kind: int) -> tuple[str, str] | None:
    """peer_of for a span's attributes that start with one of PEER_PREFIXES, in span order."""
    if not hits:
        return None
    key = (kind, hits)
    found = _seen.get(key, _seen)
    if found is _seen:
        if len(_seen) >= _CACHE:
            _seen.clear()
        found = _seen[key] = _decide(hits, kind)
    return found  # type: ignore[return-value]


def _decide(hits: tuple[bytes, ...], kind: int) -> tuple[str, str] | None:
    found = {kv.key: body_text(kv.value) for kv in map(KeyValue.FromString, hits)}
    database = any(found.get(k) for k in _DB_KEYS)
    if database:
        kind_name = DATABASE
    elif kind == _PRODUCER or found.get("messaging.system"):
        kind_name = MESSAGING
    else:
        kind_name = ""
    order = (
        "peer.service",
        *(_DB_KEYS if database else ()),
        "server.address",
        "net.peer.name",
        "messaging.system",
    )
    for key in order:
        name = found.get(key)
        if name:
            return name, kind_name
    return None
