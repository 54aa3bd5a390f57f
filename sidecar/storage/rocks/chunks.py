"""Reading a trace's chunks back: shared by trace-by-ID reads and the writer's duplicate check."""

from __future__ import annotations

from collections.abc import Iterator

from sidecar.otlp.shadow import IdChunk
from sidecar.storage.rocks import keys
from sidecar.storage.rocks.db import Partition


def trace_chunks(part: Partition, trace_id: bytes) -> Iterator[bytes]:
    """The stored chunks of one trace in one partition, oldest write first."""
    return (value for _, value in part.items(keys.chunk_prefix(trace_id)))


def group_span_ids(chunk: bytes) -> list[list[bytes]]:
    """The span ids of each group of a chunk, in the order of the group's spans."""
    return [[span.span_id for span in group.spans] for group in IdChunk.FromString(chunk).groups]
