"""Log records that are business events (``event_name``) reach the events store, once.

The real SDK's ``Logger.emit(event_name=...)`` over OTLP gRPC and HTTP against a live sidecar; the
event is read back through ``GET /api/events``. A resent export (the same records again, as after a
lost answer) must not count the event twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcLogExporter
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpLogExporter
from opentelemetry.sdk._logs import LoggerProvider, ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource

from tests.e2e.conftest import SidecarFactory
from tests.e2e.harness import Sidecar


class Twice(LogRecordExporter):
    """Exports every batch twice through a real OTLP exporter, as a retry after a lost answer does."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.results: list[Any] = []

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        self.results += [self.inner.export(batch), self.inner.export(batch)]
        return self.results[-1]  # type: ignore[no-any-return]

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True  # SimpleLogRecordProcessor exports synchronously


def _events(sidecar: Sidecar, name: str) -> list[dict[str, Any]]:
    status, body = sidecar.get_json("/api/events", {"name": name, "order": "asc"})
    assert status == 200, body
    return list(body["data"])


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_event_name_log_records_become_events_once(sidecar_factory: SidecarFactory, protocol: str) -> None:
    sidecar = sidecar_factory()
    inner: Any = (
        GrpcLogExporter(endpoint=sidecar.grpc_endpoint, insecure=True, timeout=10)
        if protocol == "grpc"
        else HttpLogExporter(endpoint=f"{sidecar.http_url}/v1/logs", timeout=10)
    )
    exporter = Twice(inner)
    logs = LoggerProvider(resource=Resource.create({"service.name": f"shop-{protocol}"}))
    logs.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    logger = logs.get_logger("e2e.events")
    logger.emit(event_name="checkout.paid", attributes={"user.id": "42", "amount": 9.5, "cart": {"items": 3}})
    logger.emit(body="a plain log line, not an event")
    logger.emit(attributes={"event.name": "legacy.signup", "enduser.id": "7"})  # older SDKs
    assert logs.force_flush(10_000)
    logs.shutdown()
    assert len(exporter.results) == 6 and all(r.name == "SUCCESS" for r in exporter.results)

    (paid,) = _events(sidecar, "checkout.paid")
    assert paid["user_id"] == "42" and paid["service"] == f"shop-{protocol}"
    assert paid["properties"] == {"amount": 9.5, "cart.items": 3}
    assert paid["id"].startswith("otlp-log:")
    (signup,) = _events(sidecar, "legacy.signup")
    assert signup["user_id"] == "7" and signup["properties"] == {}
    status, body = sidecar.get_json("/api/events", {"service": f"shop-{protocol}"})
    assert status == 200 and len(body["data"]) == 2  # the plain line is no event


def test_session_ids_blank_names_and_events_outside_the_window(sidecar_factory: SidecarFactory) -> None:
    """``session.id`` fills the event's session; a blank name is no event; an event older than the
    events' retention is kept as a log line only, instead of being acknowledged and then dropped."""
    sidecar = sidecar_factory()
    logs = LoggerProvider(resource=Resource.create({"service.name": "window"}))
    exporter = HttpLogExporter(endpoint=f"{sidecar.http_url}/v1/logs", timeout=10)
    logs.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    logger = logs.get_logger("e2e.window")
    logger.emit(event_name="app.opened", attributes={"session.id": "s-9", "user.id": "5"})
    logger.emit(event_name="   ", body="blank name")
    logger.emit(event_name="old.evt", body="from 2001", timestamp=1_000_000_000 * 10**9)
    assert logs.force_flush(10_000)
    logs.shutdown()
    (opened,) = _events(sidecar, "app.opened")
    assert opened["session_id"] == "s-9" and opened["user_id"] == "5" and opened["properties"] == {}
    status, body = sidecar.get_json("/api/events", {"service": "window"})
    assert [e["name"] for e in body["data"]] == ["app.opened"]
    status, body = sidecar.get_json("/api/logs", {"service": "window"})
    assert status == 200
    assert sorted(r["body"] for r in body["data"]) == ["", "blank name", "from 2001"]
    assert "OTLP log events outside the events' time window" in sidecar.stderr_text()
