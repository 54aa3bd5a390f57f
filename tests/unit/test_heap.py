"""The heap trim: found in glibc, and its task returns pages until it is cancelled."""

from __future__ import annotations

import asyncio
import sys
from unittest import mock

import pytest

from sidecar.core import heap


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="malloc_trim is glibc's")
def test_malloc_trim_is_found_and_runs() -> None:
    assert heap.malloc_trim is not None
    assert heap.malloc_trim(0) in (0, 1)  # 1: memory was released


def test_trim_task_calls_malloc_trim_until_cancelled() -> None:
    calls: list[int] = []

    async def run() -> None:
        with mock.patch.object(heap, "malloc_trim", calls.append):
            task = asyncio.create_task(heap.trim_heap_forever(0.01))
            while len(calls) < 3:
                await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    asyncio.run(run())
    assert calls[:3] == [0, 0, 0]


def test_trim_task_ends_at_once_without_malloc_trim() -> None:
    with mock.patch.object(heap, "malloc_trim", None):
        asyncio.run(asyncio.wait_for(heap.trim_heap_forever(0.01), 1))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's")
def test_mmap_threshold_is_taken() -> None:
    assert heap.fix_mmap_threshold()
