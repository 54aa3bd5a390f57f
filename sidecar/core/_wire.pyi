"""Types of the compiled core (sidecar/core/_wire.pyx); docstrings there."""

from collections.abc import Callable, Iterable
from typing import Any

Problems = list[tuple[int, int, int, str]]
Terms = dict[str, dict[bytes, list[bytes]]]

class WireError(ValueError): ...

def span_problems(body: bytes) -> Problems: ...

class TraceShaper:
    def __init__(
        self,
        resource_info: Callable[[bytes, dict[bytes, Any]], Any],
        scope_info: Callable[[bytes, dict[bytes, Any]], Any],
        part: Callable[..., Any],
        columns: Callable[..., Any],
        peer_prefixes: tuple[bytes, ...],
        peer_of: Callable[[tuple[bytes, ...], int], tuple[str, str] | None],
        database: str,
    ) -> None: ...
    def shape(self, body: bytes) -> tuple[Problems, list[Any], Terms, list[Any], int]: ...

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
