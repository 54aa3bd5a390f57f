"""Types of the compiled core (sidecar/core/_wire.pyx); docstrings there."""

from collections.abc import Callable
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
