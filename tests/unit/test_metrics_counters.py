"""The event and log counters' own rules: the severity ranges, the dimension labels and their
validation, resent events not counted twice, and the receivers' item bookkeeping."""

from __future__ import annotations

import asyncio

from prometheus_client.exposition import generate_latest
from prometheus_client.registry import CollectorRegistry

from sidecar.config.model import EventMetricsConfig
from sidecar.ingest.events import Event
from sidecar.metrics.events import EventCounters
from sidecar.metrics.families import Overflows
from sidecar.metrics.logs import SEVERITY, severity_name
from sidecar.metrics.self_receivers import ReceiverMetrics
from sidecar.storage.rocks.events.merge import EventBatch


def test_severity_ranges_follow_the_otel_log_data_model() -> None:
    assert len(SEVERITY) == 25
    assert [severity_name(n) for n in (0, 1, 4, 5, 9, 12, 13, 17, 21, 24)] == [
        "UNSPECIFIED", "TRACE", "TRACE", "DEBUG", "INFO", "INFO", "WARN", "ERROR", "FATAL", "FATAL",
    ]  # fmt: skip
    assert severity_name(99) == "UNSPECIFIED"


def test_dimension_labels_and_their_validation() -> None:
    config = EventMetricsConfig(dimensions=" plan , btn.color,2fa ")
    assert config.labels() == (("plan", "plan"), ("btn.color", "btn_color"), ("2fa", "key_2fa"))
    assert config.validate("metrics.events") == []
    errors = EventMetricsConfig(dimensions="a.b,a-b,event_name").validate("metrics.events")
    assert errors == [
        "metrics.events.dimensions: 'a.b' and 'a-b' are both the label 'a_b'",
        "metrics.events.dimensions: 'event_name' would be the label 'event_name',"
        " which the family already has",
    ]
    errors = EventMetricsConfig(dimensions="__name__,le,quantile,job,instance,otel.metric.overflow").validate(
        "m"
    )
    assert [e.rpartition(", ")[2] for e in errors] == ["which is reserved"] * 6
    many = EventMetricsConfig(dimensions=",".join(f"p{i}" for i in range(11))).validate("m.events")
    assert many == ["m.events.dimensions: 11 properties; the limit is 10"]


def test_events_counted_by_name_and_dimension_once_per_stored_event() -> None:
    counters = EventCounters((("plan", "plan"), ("vip", "vip")), 100, Overflows())
    first = EventBatch(
        [
            Event("pay", 1, id="a", properties={"plan": "pro", "vip": True}),
            Event("pay", 2, properties={"plan": "pro", "vip": True}),
            Event("view", 3, id="b"),
        ]
    )
    asyncio.run(counters.consume(first))
    resent = EventBatch([Event("pay", 1, id="a"), Event("view", 3, id="b")], duplicates=2)
    asyncio.run(counters.consume(resent))
    registry = CollectorRegistry(auto_describe=False)
    registry.register(counters.family)  # type: ignore[arg-type]
    text = generate_latest(registry).decode()
    assert 'sidecar_events_total{event_name="pay",plan="pro",vip="true"} 2.0' in text
    assert 'sidecar_events_total{event_name="view",plan="",vip=""} 1.0' in text


def test_receiver_items_add_up_to_received() -> None:
    metrics = ReceiverMetrics(100, Overflows())
    metrics.request("logs", "grpc", "ok", 0.01, accepted=5, rejected=2)
    metrics.request("logs", "grpc", "unavailable", 0.001, refused=7)
    by_name = {m.name: m.samples[0].value for m in metrics.collect() if m.type == "counter"}
    assert by_name == {
        "sidecar_receiver_received_items": 14,
        "sidecar_receiver_accepted_items": 5,
        "sidecar_receiver_rejected_items": 2,
        "sidecar_receiver_refused_items": 7,
    }
