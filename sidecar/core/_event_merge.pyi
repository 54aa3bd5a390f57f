"""Type stub of the compiled events merge loop (_event_merge.pyx)."""

from collections.abc import Callable
from typing import Any

Row = tuple[int, int, int, int, str | None, dict[str, Any]]

def compact_json(props: dict[str, Any]) -> bytes | None: ...

class EventRows:
    def __init__(
        self,
        names: dict[str, int],
        users: dict[str, int],
        services: dict[str, int],
        make_code: Callable[[str, str, Any, Any], int],
        key_sets: dict[bytes, set[str]],
        note_keys: Callable[[int, dict[str, Any], Any, Any], None],
        month_part: Callable[[int], tuple[int, Any]],
        encode_properties: Callable[[dict[str, Any]], bytes],
    ) -> None: ...
    def merge(
        self, items: list[Any], known: set[bytes], batch: Any, default_cf: Any, ns: int
    ) -> dict[int, tuple[Any, list[Row]]]: ...

def gather_properties(
    props_in: list[dict[str, Any]], order: list[int]
) -> dict[str, tuple[list[int], list[Any]]]: ...
def dictionary_codes(values: list[Any]) -> tuple[bytes, list[Any]]: ...
def numeric_properties(
    rows: list[Row], first: int, numbers: dict[tuple[int, str], list[tuple[int, float]]]
) -> None: ...
def ids_by_month(items: list[Any], months_of: Callable[[int], tuple[int, ...]]) -> dict[int, list[bytes]]: ...

class BloomFilter:
    capacity: int
    count: int
    nbytes: int
    def __init__(self, capacity: int) -> None: ...
    def add(self, keys: list[bytes]) -> None: ...
    def maybe(self, keys: list[bytes]) -> list[bytes]: ...
