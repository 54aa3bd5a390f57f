"""Types of the compiled NDJSON event reader (sidecar/core/_ndjson.pyx); docstrings there."""

from typing import TypeVar

E = TypeVar("E")

def read_ndjson(
    body: bytes,
    max_name_length: int,
    max_properties: int,
    max_value_bytes: int,
    min_ts_ns: int,
    max_ts_ns: int,
    now_ns: int,
    event_type: type[E],
) -> list[E | tuple[int, str]] | None: ...
