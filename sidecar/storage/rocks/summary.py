"""The per-trace summary record, kept current by the writer as spans arrive.

Search answers and trace-duration filters come from this small record, never from span data.
Services and operations are stored as registry ids to keep the record a few dozen bytes. The
record type, its layout and its updates are the compiled core's (``sidecar.core._wire.Summary``):
the writer updates and encodes one per trace in every write.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from sidecar.core._wire import Summary
from sidecar.storage.rocks.keys import SUMMARY

if TYPE_CHECKING:
    from sidecar.storage.rocks.db import Partition

NO_SERVICE = 0xFFFFFFFF  # root_service of a trace whose root span has not arrived
__all__ = ["NO_SERVICE", "Summary", "read_summaries"]


def read_summaries(partitions: Iterable[Partition], trace_ids: list[bytes]) -> dict[bytes, Summary]:
    """The summary of each trace from the first of ``partitions`` that has one (one multi-get each).

    The writer carries a trace's summary forward into the partition it writes, so newest-first
    partitions give the most complete record.
    """
    found: dict[bytes, Summary] = {}
    missing = trace_ids
    for part in partitions:
        if not missing:
            break
        values: list[bytes | None] = part.data.get([SUMMARY + t for t in missing]) or []
        still = []
        for tid, value in zip(missing, values, strict=True):
            if value is None:
                still.append(tid)
            else:
                found[tid] = Summary.decode(value)
        missing = still
    return found
