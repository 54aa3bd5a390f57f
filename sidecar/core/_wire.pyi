"""Types of the compiled core (sidecar/core/_wire.pyx); docstrings there."""

from collections.abc import Callable, Iterable, Sequence
from typing import Any

Problems = list[tuple[int, int, int, str]]
Terms = dict[str, dict[bytes, list[bytes]]]
Series = tuple[list[tuple[str, bytes, int, int]], bytes, bytes]

class WireError(ValueError): ...

def span_problems(body: bytes) -> Problems: ...

class TraceShaper:
    def __init__(
        self,
        resource_info: Callable[[bytes, dict[bytes, Any]], Any],
        scope_info: Callable[[bytes, dict[bytes, Any]], Any],
        columns: Callable[..., Any],
        peer_prefixes: tuple[bytes, ...],
        peer_of: Callable[[tuple[bytes, ...], int], tuple[str, str] | None],
        database: str,
    ) -> None: ...
    def shape(self, body: bytes) -> tuple[Problems, list[TracePart], Terms, list[Any], int, Series]: ...

class SlotTable:
    def __init__(self, trace_ids: Iterable[bytes]) -> None: ...
    def slots(self, trace_ids: list[bytes]) -> bytes: ...
    def put_terms(
        self,
        batch: Any,
        prefix: bytes,
        term_maps: list[dict[bytes, list[bytes]]],
        rev: bytes,
        max_term: int,
        long_prefix: Callable[[bytes], bytes],
        known_keys: set[bytes],
    ) -> list[bytes]: ...

class TracePart:
    trace_id: bytes
    resource: Any  # storage.prepared.ResourceInfo
    scope: Any  # storage.prepared.ScopeInfo
    chunk: bytes
    span_count: int
    start: int
    end: int
    min_duration: int
    max_duration: int
    errors: int
    root: tuple[bool, int, bytes] | None
    operations: set[tuple[bytes, int]]
    span_ids: Sequence[bytes]
    clients: Sequence[bytes]
    servers: Sequence[bytes]
    peers: Sequence[str]
    databases: Sequence[str]
    def __init__(
        self,
        trace_id: bytes,
        resource: Any,
        scope: Any,
        chunk: bytes,
        span_count: int,
        start: int,
        end: int,
        min_duration: int,
        max_duration: int,
        errors: int,
        root: tuple[bool, int, bytes] | None,
        operations: set[tuple[bytes, int]],
        span_ids: Sequence[bytes],
        clients: Sequence[bytes] = (),
        servers: Sequence[bytes] = (),
        peers: Sequence[str] = (),
        databases: Sequence[str] = (),
    ) -> None: ...

class Summary:
    first_seen: int
    start: int
    end: int
    spans: int
    errors: int
    min_span: int
    max_span: int
    root_has_parent: bool
    root_start: int
    root_service: int
    root_name: bytes
    services: dict[int, list[int]]
    operations: set[int]
    span_ids: bytearray
    def __init__(self, first_seen: int) -> None: ...
    def add(
        self,
        service: int,
        spans: int,
        errors: int,
        start: int,
        end: int,
        min_span: int,
        max_span: int,
        root: tuple[bool, int, bytes] | None,
    ) -> None: ...
    def encode(self) -> bytes: ...
    @classmethod
    def decode(cls, data: bytes) -> Summary: ...

class WriteFold:
    services: dict[str, int]
    chunks: dict[bytes, list[bytes]]
    by_service: dict[int, list[bytes]]
    by_operation: dict[int, list[bytes]]
    first_seen: dict[tuple[int, bytes, bytes], tuple[list[bytes], list[bytes]]]
    clients: dict[bytes, int]
    servers: dict[bytes, int]
    peers: dict[bytes, str]
    databases: list[tuple[int, str]]
    def __init__(
        self,
        service_id: Callable[[str], int],
        operation_id: Callable[[int, bytes, int], int],
        op_cache: dict[tuple[int, bytes, int], int],
    ) -> None: ...
    def add(self, parts: list[TracePart], summaries: dict[bytes, Summary]) -> None: ...

class LogShaper:
    def __init__(
        self,
        resource_info: Callable[[bytes, dict[bytes, Any]], Any],
        scope_info: Callable[[bytes, dict[bytes, Any]], Any],
        group: Callable[..., Any],
        body_text: Callable[[bytes], str],
        attribute_key: Callable[[bytes], bytes],
        event: Callable[[bytes, str, int], Any],
        digest: Callable[[bytes], bytes],
    ) -> None: ...
    def shape(self, body: bytes, received: int) -> tuple[list[Any], int, int, Problems, list[Any]]: ...
