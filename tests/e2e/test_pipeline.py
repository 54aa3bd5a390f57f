"""The pipeline behind the receivers: the store decides the answer, taps never delay or change it.

In-process receivers over real sockets with real HTTP and gRPC clients, in front of the shipped
:class:`FanOut`; where the store would be sits a sink that keeps what it is given (or refuses it
like a full write queue), and the taps are small consumers that fail, sleep or lag on purpose.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from sidecar.pipeline.fanout import FanOut, Tap
from tests.e2e.receivers_app import Receivers, Sink, grpc_call, http_post, mixed_request, receivers

FANOUT_LOG = "sidecar.pipeline.fanout"
Answer = tuple[object, ...]


async def http_export(r: Receivers, body: bytes) -> Answer:
    return await http_post(r.http_url + "/v1/traces", body)


async def grpc_export(r: Receivers, body: bytes) -> Answer:
    return await grpc_call(r.grpc_target, body)


TRANSPORTS: dict[str, Callable[[Receivers, bytes], Awaitable[Answer]]] = {
    "http": http_export,
    "grpc": grpc_export,
}


class RaisingTap:
    def __init__(self) -> None:
        self.calls = 0

    async def consume(self, batch: Any) -> None:
        self.calls += 1
        raise RuntimeError("a bug in a tap")


class SleepingTap:
    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.finished = 0

    async def consume(self, batch: Any) -> None:
        self.started.set()
        await asyncio.sleep(60)
        self.finished += 1


class GatedTap:
    """Records batches; each consume waits until the gate opens (a tap that has fallen behind)."""

    def __init__(self, open_gate: bool = True) -> None:
        self.gate = asyncio.Event()
        if open_gate:
            self.gate.set()
        self.seen: list[Any] = []

    async def consume(self, batch: Any) -> None:
        await self.gate.wait()
        self.seen.append(batch)


async def until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("transport", list(TRANSPORTS))
def test_a_failing_or_slow_tap_does_not_change_or_delay_the_answer(
    transport: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=FANOUT_LOG)
    export = TRANSPORTS[transport]
    body = mixed_request("tapped")  # a partial success: the answer names the rejected span

    async def scenario() -> None:
        async with receivers(FanOut(Sink())) as plain:
            without_taps = await export(plain, body)
        sink, raising, sleeping, recording = Sink(), RaisingTap(), SleepingTap(), GatedTap()
        fan = FanOut(sink, [Tap(raising, "raising"), Tap(sleeping, "sleeping"), Tap(recording, "recording")])
        async with receivers(fan) as r:
            started = time.monotonic()
            first = await export(r, body)
            await sleeping.started.wait()  # the slow tap now holds the first batch for 60 s
            second = await export(r, body)
            elapsed = time.monotonic() - started
            await until(lambda: raising.calls == 2 and len(recording.seen) == 2)
        await fan.close(0.2)  # the sleeping tap is cancelled, not waited for

        assert first == second == without_taps
        assert first[0] in (200, grpc.StatusCode.OK)
        raw = first[1] if transport == "grpc" else first[3]
        assert isinstance(raw, bytes)
        response = ExportTraceServiceResponse.FromString(raw)
        assert response.partial_success.rejected_spans == 1
        assert elapsed < 2.0, elapsed  # nowhere near the sleeping tap's 60 s
        assert [id(b) for b in recording.seen] == [id(b) for b in sink.batches]  # the same objects
        assert sleeping.finished == 0

    asyncio.run(scenario())
    lines = [(r.getMessage(), bool(r.exc_info)) for r in caplog.records if r.name == FANOUT_LOG]
    assert lines == [
        ("tap raising failed (failure 1): a bug in a tap", True),  # the first with its traceback
        ("tap raising failed (failure 2): a bug in a tap", False),
        ("tap sleeping cancelled after 0.2 s with 1 batches still queued", False),
    ]


@pytest.mark.parametrize("transport", list(TRANSPORTS))
def test_taps_see_only_what_the_store_acknowledged(transport: str) -> None:
    export = TRANSPORTS[transport]
    body = mixed_request("refused-then-kept")

    async def scenario() -> None:
        sink, tap = Sink(refuse=True), GatedTap()
        fan = FanOut(sink, [Tap(tap, "recording")])
        async with receivers(fan) as r:
            refused = await export(r, body)
            await asyncio.sleep(0.1)
            assert tap.seen == []  # the client will send it again: a tap must not count it twice
            sink.refuse = False
            kept = await export(r, body)
            await until(lambda: len(tap.seen) == 1)
        await fan.close(1.0)
        assert tap.seen == sink.batches
        if transport == "http":
            assert refused[:2] == (503, "1")  # Retry-After
            assert kept[0] == 200
        else:
            assert refused == (grpc.StatusCode.UNAVAILABLE, refused[1], True)  # RetryInfo trailer
            assert kept[0] == grpc.StatusCode.OK

    asyncio.run(scenario())


def test_a_tap_that_falls_behind_drops_its_oldest_batches_and_counts_them(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger=FANOUT_LOG)

    async def scenario() -> None:
        sink, lagging = Sink(), GatedTap(open_gate=False)
        tap = Tap(lagging, "lagging", max_pending=2)
        fan = FanOut(sink, [tap])
        async with receivers(fan) as r:
            for i in range(5):
                status = (await http_export(r, mixed_request(f"batch-{i}")))[0]
                assert status == 200  # a full tap queue is no reason to refuse anything
            assert len(sink.batches) == 5
            lagging.gate.set()
            await until(lambda: len(lagging.seen) == 3)
        await fan.close(1.0)
        # The first was being consumed; of the four after it, the two oldest made way.
        assert lagging.seen == [sink.batches[0], sink.batches[3], sink.batches[4]]
        assert (tap.dropped, tap.failed) == (2, 0)

    asyncio.run(scenario())
    assert [r.getMessage() for r in caplog.records if r.name == FANOUT_LOG] == [
        "tap lagging is behind: oldest batch dropped (1 so far)",
        "tap lagging is behind: oldest batch dropped (2 so far)",
    ]


def test_close_lets_taps_finish_what_was_acknowledged() -> None:
    async def scenario() -> None:
        sink, slow = Sink(), GatedTap(open_gate=False)
        fan = FanOut(sink, [Tap(slow, "slow")])
        async with receivers(fan) as r:
            for i in range(3):
                assert (await grpc_export(r, mixed_request(f"drain-{i}")))[0] == grpc.StatusCode.OK
        asyncio.get_running_loop().call_later(0.2, slow.gate.set)
        await fan.close(5.0)
        assert slow.seen == sink.batches and len(sink.batches) == 3
        await fan.close(5.0)  # safe twice
        await fan.consume(sink.batches[0])  # after close the store still answers; taps take no more
        assert len(slow.seen) == 3

    asyncio.run(scenario())
