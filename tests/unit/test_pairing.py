"""The one pairing of client and server halves (storage/pairing.py) and the virtual peer rule."""

from __future__ import annotations

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from sidecar.ingest.peers import peer_of
from sidecar.storage.pairing import Pairing


def test_halves_pair_across_batches_and_expire_after_the_wait() -> None:
    now = [0.0]
    pairing: Pairing[str, str] = Pairing(wait_s=10, max_pending=100, clock=lambda: now[0])
    assert pairing.pair({b"a": "c1", b"b": "c2"}, {b"a": "s1"}) == [("c1", "s1")]
    now[0] = 5
    assert pairing.pair({}, {b"b": "s2", b"z": "s9"}) == [("c2", "s2")]
    assert pairing.expire() == ([], [])  # b"z" waits until 15
    now[0] = 15
    assert pairing.expire() == ([], ["s9"])
    assert pairing.waiting() == (0, 0)


def test_a_full_side_drops_new_halves() -> None:
    pairing: Pairing[int, int] = Pairing(wait_s=1, max_pending=2, clock=lambda: 0.0)
    pairing.pair({b"1": 1, b"2": 2, b"3": 3}, {})
    assert pairing.waiting() == (2, 0)
    assert pairing.take_dropped() == ([3], [])
    assert pairing.take_dropped() == ([], [])
    assert pairing.expire(now=1.0) == ([1, 2], [])


def _kv(key: str, value: str) -> bytes:
    return KeyValue(key=key, value=AnyValue(string_value=value)).SerializeToString()


def test_the_virtual_peer_rule() -> None:
    client, producer = 3, 4
    assert peer_of([_kv("http.method", "GET")], client) is None
    assert peer_of([_kv("server.address", "a"), _kv("peer.service", "pay")], client) == ("pay", "")
    assert peer_of([_kv("net.peer.name", "old")], client) == ("old", "")
    db = [_kv("server.address", "db1"), _kv("db.system", "postgresql"), _kv("db.name", "orders")]
    assert peer_of(db, client) == ("orders", "database")
    assert peer_of([_kv("db.system", "redis")], client) == ("redis", "database")
    assert peer_of([_kv("messaging.system", "kafka")], producer) == ("kafka", "messaging_system")
    assert peer_of([_kv("server.address", "broker")], producer) == ("broker", "messaging_system")


def test_paired_keys_leave_the_waves_and_unpaired_halves_still_expire() -> None:
    """Under load most halves pair within the wait: their keys are compacted out of the waves
    (memory), and what still waits expires at its own deadline as before."""
    now = [0.0]
    pairing: Pairing[int, int] = Pairing(wait_s=10, max_pending=100_000, clock=lambda: now[0])
    pairing.pair({b"lonely": -1}, {})  # never paired: must come back at 10
    for batch in range(20):
        keys = [b"%d-%d" % (batch, i) for i in range(1000)]
        pairing.pair(dict.fromkeys(keys, batch), {})
        assert len(pairing.pair({}, dict.fromkeys(keys, batch))) == 1000
    held = sum(len(c) + len(s) for _, c, s in pairing._waves)
    assert held < 8_192 + 1000  # without compaction: 20,001
    now[0] = 10
    assert pairing.expire() == ([-1], [])
    assert pairing.waiting() == (0, 0)
