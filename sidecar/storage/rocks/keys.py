"""Key encodings for the RocksDB store; the trace layout itself is documented at the top of traces/merge.py.

Every key part is fixed width or length-prefixed, so no two logical keys can collide and every
prefix scan is exact. Times inside keys are big-endian and reversed (``MAX - ns``) where a scan
must return newest first.
"""

from __future__ import annotations

import datetime as _dt
import struct
from hashlib import blake2b

MAX_U64 = (1 << 64) - 1
DAY_NS = 86_400 * 1_000_000_000
HOUR_NS = 3_600 * 1_000_000_000
_EPOCH = _dt.date(1970, 1, 1)
TRACE_PARTITION_PREFIX = "t"  # existing data directories hold tYYYYMMDD families: never change it

# Trace partition column families (``tYYYYMMDD``, one per UTC day): data, summaries and indexes.
CHUNK = b"C"  # C | trace_id(16) | ingest_ns(8)              -> Chunk
SUMMARY = b"M"  # M | trace_id(16)                            -> summary record
TRACE_TABLE = b"T"  # T | rev_ns(8)                          -> trace ids of one write
SERVICE_POSTING = b"S"  # S | service_id(4) | rev_ns(8)        -> trace ids (16 bytes each)
OPERATION_POSTING = b"O"  # O | operation_id(4) | rev_ns(8)    -> trace ids
ATTRIBUTE_POSTING = b"A"  # A | service_id(4) | len(2) | term | rev_ns(8) -> trace ids
BLOB = b"R"  # R | kind(1) | hash(16)                          -> resource or scope bytes
LATENESS = b"L"  # L                                          -> max (ingest - span start) ns seen (u64)
EDGE = b"G"  # G | hour(4) | parent_service(4) | child_service(4) -> call count (u64)
# Default column family: registries, loaded whole at start-up.
REG_SERVICE = b"N"  # N | service_id(4)                       -> name
REG_OPERATION = b"P"  # P | operation_id(4)                   -> service_id(4) | kinds(1) | name
REG_ATTRIBUTE_KEY = b"K"  # K | key                           -> b""

MAX_TERM_BYTES = 128
_LONG_TERM = b"#"  # never the first byte of a KeyValue encoding (field 4, wire type 3)

_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_U16 = struct.Struct(">H")
_EDGE = struct.Struct(">III")


def u32(value: int) -> bytes:
    return _U32.pack(value)


def u64(value: int) -> bytes:
    return _U64.pack(value)


def read_u32(data: bytes, offset: int = 0) -> int:
    return _U32.unpack_from(data, offset)[0]


def read_u64(data: bytes, offset: int = 0) -> int:
    return _U64.unpack_from(data, offset)[0]


def rev(ns: int) -> bytes:
    return _U64.pack(MAX_U64 - ns)


def unrev(data: bytes, offset: int) -> int:
    return MAX_U64 - _U64.unpack_from(data, offset)[0]


def term(kv: bytes) -> bytes:
    """Index term for an encoded KeyValue: itself, or a digest when too long to sit in a key."""
    if len(kv) > MAX_TERM_BYTES:
        return _LONG_TERM + blake2b(kv, digest_size=16).digest()
    return kv


def chunk_prefix(trace_id: bytes) -> bytes:
    return CHUNK + trace_id


def summary_key(trace_id: bytes) -> bytes:
    return SUMMARY + trace_id


def service_posting_prefix(service_id: int) -> bytes:
    return SERVICE_POSTING + _U32.pack(service_id)


def operation_posting_prefix(operation_id: int) -> bytes:
    return OPERATION_POSTING + _U32.pack(operation_id)


def attribute_posting_prefix(service_id: int, term_bytes: bytes) -> bytes:
    return ATTRIBUTE_POSTING + _U32.pack(service_id) + _U16.pack(len(term_bytes)) + term_bytes


def edge_key(hour: int, parent: int, child: int) -> bytes:
    return EDGE + _EDGE.pack(hour, parent, child)


def parse_edge_key(key: bytes) -> tuple[int, int, int]:
    return _EDGE.unpack_from(key, 1)


def prefix_end(prefix: bytes) -> bytes:
    """Smallest key greater than every key starting with ``prefix`` (an exclusive upper bound)."""
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return b"\xff" * (len(prefix) + 1)
    return stripped[:-1] + bytes([stripped[-1] + 1])


def partition_name(day: int, prefix: str = TRACE_PARTITION_PREFIX) -> str:
    """``<prefix>YYYYMMDD`` for UTC day ``day`` (days since the epoch); traces' by default."""
    return prefix + (_EPOCH + _dt.timedelta(days=day)).strftime("%Y%m%d")


def partition_day(name: str, prefix: str = TRACE_PARTITION_PREFIX) -> int | None:
    """The day a ``<prefix>YYYYMMDD`` name stands for, or None for any other name."""
    digits = name[len(prefix) :]
    if not name.startswith(prefix) or len(digits) != 8 or not digits.isascii() or not digits.isdigit():
        return None
    try:
        date = _dt.datetime.strptime(digits, "%Y%m%d").date()
    except ValueError:
        return None
    return (date - _EPOCH).days
