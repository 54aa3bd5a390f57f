"""The log merge: prepared log records into the write queue's WriteBatch, as blocks with skip headers.

Key layout (big-endian; ``rev`` = 2**64-1 - write ns, so scans run newest write first; ``seq`` numbers
the blocks of one write).

Partition column family ``lYYYYMMDD`` (UTC day of arrival; ``storage.logs.retention_days`` drops it):
    H | rev(8) | seq(2)                -> block header: min_time(8) | max_time(8) |
                                          severity bitmask(4, bit n = severity number n; bit 30
                                          PLAIN_BODIES: every body is one string) |
                                          records(4) | len(2) | service name (UTF-8)
    F | rev(8) | seq(2)                -> the block's token filter (bloom), read only by text searches
    B | rev(8) | seq(2)                -> codec(1) | LogBlock{resource_ref, scope_ref, records[], times[]}
                                          (codec 0: as is, 1: zlib)
    X | trace_id(16) | rev(8) | seq(2) -> u16 LE indexes, in block ``seq`` of that write, of the
                                          trace's records
    R | 'r'|'s' | blake2b-128(bytes)   -> resource / scope bytes (once per partition)
    U | blake2b-128(group)             -> "" : a (resource, scope, records) group already stored
    W                                  -> min_time(8) | max_time(8) of every record in the partition
Default column family:
    Lk | len(2) | service | attribute key -> "" : the attribute keys each service's records carried
                                          (the CSV header's columns; see key_registry.py)
The service registry there is the traces' (Jaeger's service list), so a block header names its
service itself, a few bytes per block.

One block per (resource, scope) per write, split every BLOCK_RECORDS records: records are never one
key each, so RocksDB's per-key cost is paid per block. Headers sit apart from blocks (and filters
apart from headers) so a search reads only small headers, skipping a block by service, time range
and severities, then reads the filter only for a text search, and opens only the blocks that may
match. ``W`` lets a search skip a whole day whose records are all outside its time range (records
are filed by arrival, so their own times can be anything). The token filter is a bloom filter of the bodies'
lowercased byte trigrams (within whitespace-separated tokens): any substring with three bytes or more
between spaces can rule a block out, which a filter of whole words could not promise for a substring
search. A trace's logs are one ``X | trace_id``
prefix read per partition. Everything of one write goes in the write queue's one WriteBatch.

Resent requests count once: an OTLP exporter whose answer was lost (a timeout, a sidecar killed
after the WAL write) sends the same bytes again, so a group whose content hash is stored (``U``, in
today's or yesterday's partition, or in this write) is dropped. Log records carry no id, so two
groups identical to the byte (same records, same times) are one, as Loki keeps one of identical
lines at one timestamp. A group with a record that has neither time nor observed time is never
dropped: two such records sent apart may well be two events.

Blocks are written uncompressed (codec 0) by default: RocksDB compresses its own blocks (zstd in the
bottommost level), and on 100k logfmt lines of ~190 B that came to 37.9 B/line on disk after
compaction against 41.8 B/line for zlib-6 blocks (random bytes to zstd). zlib stays readable.
"""

from __future__ import annotations

import struct
import sys
import zlib
from array import array
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from itertools import repeat
from operator import and_, mul, rshift

from rocksdict import Rdict, WriteBatch

from sidecar.core._trigrams import trigram_filter
from sidecar.otlp.shadow import LogBlock
from sidecar.storage.prepared import ResourceInfo, ScopeInfo
from sidecar.storage.prepared_logs import LogGroup, PreparedLogs
from sidecar.storage.rocks import keys
from sidecar.storage.rocks.db import Partition, RocksStore
from sidecar.storage.rocks.key_registry import KeyRegistry
from sidecar.storage.rocks.partitions import LOGS

HEADER = b"H"
BLOCK = b"B"
TRACE_INDEX = b"X"
BLOB = keys.BLOB
SEEN = b"U"
_SEEN_CACHE = 65_536  # group hashes of recent writes; older ones cost a point read (bloom-filtered)
BLOCK_RECORDS = 1024
HEADER_STRUCT = struct.Struct(">QQIIH")
PLAIN_BODIES = 1 << 30  # in a header's severity mask, above every SeverityNumber (1-24)
FILTER = b"F"
RANGE = b"W"
RANGE_STRUCT = struct.Struct(">QQ")
MAX_SERVICE_BYTES = 0xFFFF
RAW, ZLIB = 0, 1
CODEC = RAW
ZLIB_LEVEL = 6
_ZERO_TRACE = bytes(16)
_SEQ = struct.Struct(">H").pack

# Token filter: BITS_PER_TRIGRAM bits per distinct trigram (a power of two in total), one probe per
# multiplier. Building it is the compiled core's (a Python step per trigram would cost 30 ms per
# 1000 log lines, several times the whole ingest budget); whitespace is what str.split() splits at.
BITS_PER_TRIGRAM = 8
_MULTIPLIERS = (0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9)  # odd 64-bit constants
_M64 = (1 << 64) - 1
_MIN_BITS = 1 << 9
_MAX_BITS = 1 << 20
_LITTLE_ENDIAN = sys.byteorder == "little"


def trigrams(text: str) -> set[int]:
    """The lowercased UTF-8 trigrams of ``text`` as numbers (``int.from_bytes(gram, "little")``):
    what the token filter holds and a search looks up."""
    data = text.lower().encode("utf-8", "replace")
    size = len(data)
    if size < 64:
        return {int.from_bytes(data[i : i + 3], "little") for i in range(size - 2)}
    # Every 4-byte window is a u32 of one of four aligned views; with its fourth byte zeroed (one
    # slice assignment per view, in C) it is the number of the trigram starting there. Slicing per
    # position would cost ~200 ns a byte, most of a 1000-line block's ingest budget.
    grams = {int.from_bytes(data[-3:], "little")}  # the one trigram no whole window starts
    for offset in range(4):
        view = bytearray(data[offset : offset + (size - offset) // 4 * 4])
        view[3::4] = bytes(len(view) // 4)
        numbers = array("I", view)
        if not _LITTLE_ENDIAN:
            numbers.byteswap()
        grams.update(numbers)
    return grams


def _positions(grams: Iterable[int], bits: int) -> list[Iterator[int]]:
    """Multiplicative (Fibonacci) hashing of each trigram number: the top bits of
    ``gram * multiplier`` mod 2**64, one independent position per multiplier."""
    numbers = list(grams)
    shift = 64 - bits.bit_length() + 1
    return [
        map(rshift, map(and_, map(mul, numbers, repeat(multiplier)), repeat(_M64)), repeat(shift))
        for multiplier in _MULTIPLIERS
    ]


def needle_trigrams(needle: str) -> set[int]:
    """What a search for ``needle`` looks up: the trigrams of its whitespace-free pieces. A body
    holding the needle holds each piece inside one of its whitespace-separated tokens."""
    grams: set[int] = set()
    for piece in needle.lower().split():
        grams |= trigrams(piece)
    return grams


def build_filter(texts: Iterable[str]) -> bytes:
    """A bloom filter of the lowercased byte trigrams that hold no ASCII whitespace, in ``texts``.

    A search looks up the trigrams of its needle's whitespace-free pieces, all of which a body
    holding the needle has. The compiled core (sidecar/core/_trigrams.pyx) collects the block's
    distinct trigrams in a hash set (a 1000-line block of logfmt lines with request IDs has ~5k
    among 160k) and sets the bits :func:`may_contain` probes, without the GIL.
    """
    data = " ".join(texts).lower().encode("utf-8", "replace")
    return trigram_filter(data, _MIN_BITS, _MAX_BITS, BITS_PER_TRIGRAM, _MULTIPLIERS)


def may_contain(bloom: bytes | memoryview, grams: Iterable[int]) -> bool:
    """False only when some trigram is surely absent from every body of the block."""
    grams = list(grams)
    for positions in _positions(grams, len(bloom) * 8):
        for pos in positions:
            if not bloom[pos >> 3] & (1 << (pos & 7)):
                return False
    return True


def encode_header(service: str, times: list[int], severities: list[int], plain: bool = False) -> bytes:
    """``plain``: every body of the block is one string value (PLAIN_BODIES), so a text search may
    look for the needle in the block's bytes before decoding a record."""
    mask = PLAIN_BODIES if plain else 0
    for severity in set(severities):
        mask |= 1 << severity
    name = service.encode("utf-8", "replace")[:MAX_SERVICE_BYTES]
    return HEADER_STRUCT.pack(min(times), max(times), mask, len(times), len(name)) + name


def decode_header(header: bytes) -> tuple[int, int, int, bytes]:
    """(min time, max time, severity bitmask, service name bytes) of a block header."""
    first, last, mask, _, size = HEADER_STRUCT.unpack_from(header)
    start = HEADER_STRUCT.size
    return first, last, mask, header[start : start + size]


def encode_range(first: int, last: int) -> bytes:
    return RANGE_STRUCT.pack(first, last)


def decode_range(value: bytes) -> tuple[int, int]:
    first, last = RANGE_STRUCT.unpack(value)
    return first, last


def encode_block(data: bytes, codec: int = CODEC) -> bytes:
    if codec == ZLIB:
        return b"\x01" + zlib.compress(data, ZLIB_LEVEL)
    return b"\x00" + data


def decode_block(value: bytes) -> bytes:
    if value[0] == ZLIB:
        return zlib.decompress(memoryview(value)[1:])
    return value[1:]


def block_suffix(rev: bytes, seq: int) -> bytes:
    return rev + _SEQ(seq)


ATTRIBUTE_KEYS = b"Lk"
_LEN = struct.Struct(">H")


def service_group(service: str) -> bytes:
    """A service's group in the attribute-key registry: length-prefixed, so none prefixes another."""
    name = service.encode("utf-8", "replace")[:MAX_SERVICE_BYTES]
    return _LEN.pack(len(name)) + name


def _split_group(rest: bytes) -> tuple[bytes, bytes]:
    end = 2 + _LEN.unpack_from(rest)[0] if len(rest) >= 2 else len(rest)
    return rest[:end], rest[end:]


def attribute_keys(db: Rdict) -> KeyRegistry:
    """The attribute keys of every service's records, loaded from the store (writer and reader share it)."""
    return KeyRegistry(db, ATTRIBUTE_KEYS, _split_group)


class LogMerge:
    """The write queue's merger for logs; its caches belong to the writer thread."""

    def __init__(self, store: RocksStore, keys_seen: KeyRegistry) -> None:
        self._store = store
        self._keys = keys_seen
        self._blobs_written: set[tuple[int, bytes, bytes]] = set()
        self._pending_blobs: list[tuple[int, bytes, bytes]] = []
        self._seen: OrderedDict[bytes, None] = OrderedDict()
        self._pending_seen: list[bytes] = []
        self._ranges: dict[int, tuple[int, int]] = {}  # partition day -> W as stored
        self._pending_range: tuple[int, tuple[int, int]] | None = None

    def merge(self, prepared: list[PreparedLogs], batch: WriteBatch, ns: int) -> None:
        part = self._store.partition_for_write(ns // keys.DAY_NS, LOGS)
        batch.set_default_column_family(part.handle)
        # Groups of one (resource, scope) from every request of this write become one block.
        merged: dict[tuple[bytes, bytes], LogGroup] = {}
        for prep in prepared:
            for group in prep.groups:
                if group.digest:
                    if self._stored_before(group.digest, part.day):
                        continue
                    batch.put(SEEN + group.digest, b"")
                    self._pending_seen.append(group.digest)
                key = (group.resource.ref, group.scope.ref)
                into = merged.get(key)
                if into is None:
                    merged[key] = LogGroup(group.resource, group.scope, [], [], [], [], [])
                    into = merged[key]
                into.records += group.records
                into.times += group.times
                into.severities += group.severities
                into.trace_ids += group.trace_ids
                into.bodies += group.bodies
                into.attribute_keys |= group.attribute_keys
                into.plain_bodies = into.plain_bodies and group.plain_bodies
        if merged:
            self._widen_range(part, merged.values(), batch)
        rev = keys.rev(ns)
        seq = 0
        for group in merged.values():
            self._store_blobs(part.day, group.resource, group.scope, batch)
            if group.attribute_keys:
                self._note_keys(group, batch)
            for start in range(0, len(group.records), BLOCK_RECORDS):
                end = start + BLOCK_RECORDS
                self._put_block(group, start, end, block_suffix(rev, seq), batch)
                seq += 1

    def _put_block(self, group: LogGroup, start: int, end: int, suffix: bytes, batch: WriteBatch) -> None:
        times, records = group.times[start:end], group.records[start:end]
        block = LogBlock(
            resource_ref=group.resource.ref, scope_ref=group.scope.ref, records=records, times=times
        )
        batch.put(BLOCK + suffix, encode_block(block.SerializeToString()))
        header = encode_header(group.resource.service, times, group.severities[start:end], group.plain_bodies)
        batch.put(HEADER + suffix, header)
        batch.put(FILTER + suffix, build_filter(group.bodies[start:end]))
        by_trace: dict[bytes, list[int]] = {}
        for index, tid in enumerate(group.trace_ids[start:end]):
            if tid and tid != _ZERO_TRACE:
                by_trace.setdefault(tid, []).append(index)
        for tid, indexes in by_trace.items():
            batch.put(TRACE_INDEX + tid + suffix, array("H", indexes).tobytes())

    def _note_keys(self, group: LogGroup, batch: WriteBatch) -> None:
        service = service_group(group.resource.service)
        found = [key.decode("utf-8", "replace") for key in group.attribute_keys]
        if not self._keys.knows(service, found):
            # Fetched when needed, never kept: a live handle would stop the store from closing.
            default_cf = self._store.db.get_column_family_handle("default")
            self._keys.note(service, found, batch, default_cf)

    def _store_blobs(self, day: int, resource: ResourceInfo, scope: ScopeInfo, batch: WriteBatch) -> None:
        """Resource and scope bytes once per partition; remembered only once the write succeeded."""
        for kind, info in ((b"r", resource), (b"s", scope)):
            marker = (day, kind, info.ref)
            if marker not in self._blobs_written:
                self._pending_blobs.append(marker)
                batch.put(BLOB + kind + info.ref, info.encoded)

    def _widen_range(self, part: Partition, groups: Iterable[LogGroup], batch: WriteBatch) -> None:
        """Keep ``W`` covering every record's time; written only when this write widens it."""
        stored = self._ranges.get(part.day)
        if stored is None:
            value = part.data.get(RANGE)
            stored = self._ranges[part.day] = decode_range(value) if value else (keys.MAX_U64, 0)
        first = min(stored[0], *(min(g.times) for g in groups))
        last = max(stored[1], *(max(g.times) for g in groups))
        if (first, last) != stored:
            batch.put(RANGE, encode_range(first, last))
            self._pending_range = (part.day, (first, last))

    def _stored_before(self, digest: bytes, day: int) -> bool:
        """The group was stored by an earlier write (or earlier in this one)."""
        if digest in self._seen or digest in self._pending_seen:
            return True
        key = SEEN + digest
        return any(
            part is not None and part.data.get(key) is not None
            for part in (self._store.partition(day, LOGS), self._store.partition(day - 1, LOGS))
        )

    def after_write(self) -> None:
        self._keys.commit()
        if len(self._blobs_written) > 100_000:
            self._blobs_written.clear()
        self._blobs_written.update(self._pending_blobs)
        self._pending_blobs.clear()
        if self._pending_range is not None:
            day, widened = self._pending_range
            self._ranges[day] = widened
            self._pending_range = None
        seen = self._seen
        seen.update(dict.fromkeys(self._pending_seen))
        self._pending_seen.clear()
        while len(seen) > _SEEN_CACHE:
            seen.popitem(last=False)

    def write_failed(self) -> None:
        self._keys.rollback()
        self._pending_range = None
        self._pending_blobs.clear()
        self._pending_seen.clear()
