"""The compiled core's log shaping against an oracle over the official classes.

``prepare_logs`` hands the log store one group per ScopeLogs, built by ``LogShaper`` from the
request's bytes. The oracle rebuilds each group from ``opentelemetry-proto``'s decode with the
rules as they read in Python before the core took them over; both must agree on random requests
with bad ids and severities, records without times, non-string bodies, repeated attribute keys
and business events.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from sidecar.ingest.logs import _event, prepare_logs
from sidecar.ingest.traces import content_ref
from sidecar.otlp.anyvalue import body_text
from sidecar.otlp.shadow import ShadowLogRecord
from tests.unit.test_storage import kv
from tests.unit.test_trace_shaper import export
from tests.unit.test_wire_core import FAST

RECEIVED = -1  # stands for "the receive time" (the oracle cannot know it); sent times are < 2**41


def oracle_problem(record: LogRecord) -> str | None:
    if len(record.trace_id) not in (0, 16):
        return f"trace_id must be 16 bytes or empty, got {len(record.trace_id)}"
    if len(record.span_id) not in (0, 8):
        return f"span_id must be 8 bytes or empty, got {len(record.span_id)}"
    if not 0 <= record.severity_number <= 24:
        return f"severity_number must be 0..24, got {record.severity_number}"
    return None


def expected(body: bytes) -> dict[str, Any]:
    request = ExportLogsServiceRequest.FromString(body)
    groups, messages, events = [], [], []
    accepted = rejected = 0
    for i, rl in enumerate(request.resource_logs):
        resource_ref = content_ref(rl.resource.SerializeToString())
        named = [a.value.string_value for a in rl.resource.attributes if a.key == "service.name"]
        service = (named[0] or "unknown_service") if named else "unknown_service"
        service = service if rl.resource.attributes else "OTLPResourceNoServiceName"
        for j, sl in enumerate(rl.scope_logs):
            group: dict[str, Any] = {k: [] for k in ("records", "times", "severities", "trace_ids", "bodies")}
            group.update(keys=set(), plain=True, untimed=False)
            for k, record in enumerate(sl.log_records):
                problem = oracle_problem(record)
                if problem is not None:
                    rejected += 1
                    if len(messages) < 5:
                        messages.append(f"resourceLogs[{i}].scopeLogs[{j}].logRecords[{k}]: {problem}")
                    continue
                when = record.time_unix_nano or record.observed_time_unix_nano or RECEIVED
                group["untimed"] |= when == RECEIVED
                raw = record.SerializeToString()
                group["records"].append(raw)
                group["times"].append(when)
                group["severities"].append(record.severity_number)
                group["trace_ids"].append(record.trace_id)
                which = record.body.WhichOneof("value") if record.HasField("body") else None
                group["plain"] &= which in (None, "string_value")
                group["bodies"].append(body_text(record.body) if which else "")
                group["keys"].update(a.key.encode() for a in record.attributes)
                event = _event(ShadowLogRecord.FromString(raw), service, when)
                if event is not None:
                    events.append(event)
            if group["records"]:
                accepted += len(group["records"])
                untimed = group.pop("untimed")
                joined = b"".join(
                    [resource_ref, content_ref(sl.scope.SerializeToString()), *group["records"]]
                )
                group["digest"] = b"" if untimed else content_ref(joined)
                groups.append(group)
    return {
        "groups": groups,
        "accepted": accepted,
        "rejected": rejected,
        "messages": messages,
        "events": events,
    }


def shaped(body: bytes) -> dict[str, Any]:
    prepared = prepare_logs(body)
    groups = []
    for g in prepared.groups:
        untimed = not g.digest
        groups.append(
            {
                "records": g.records,
                "times": [RECEIVED if untimed and t > 2**41 else t for t in g.times],
                "severities": g.severities,
                "trace_ids": g.trace_ids,
                "bodies": g.bodies,
                "keys": g.attribute_keys,
                "plain": g.plain_bodies,
                "digest": g.digest,
            }
        )
    events = [
        e
        if not (e.time_ns > 2**41)
        else type(e)(e.name, e.user_id, e.properties, e.service, RECEIVED, e.session_id)
        for e in prepared.events
    ]
    return {
        "groups": groups,
        "accepted": prepared.accepted,
        "rejected": prepared.rejected,
        "messages": prepared.messages,
        "events": events,
    }


@st.composite
def records(draw: Any) -> LogRecord:
    record = LogRecord(
        time_unix_nano=draw(st.sampled_from([0, 5, 2**40])),
        observed_time_unix_nano=draw(st.sampled_from([0, 7])),
        severity_number=draw(st.sampled_from([0, 9, 17, 24, 25, -1])),  # type: ignore[arg-type]
        trace_id=draw(st.sampled_from([b"", b"\x01" * 16, b"\x02" * 3])),
        span_id=draw(st.sampled_from([b"", b"\x03" * 8, b"\x04" * 9])),
    )
    which = draw(st.sampled_from(["none", "string", "int", "map", "empty string"]))
    if which == "string":
        record.body.string_value = draw(st.text(max_size=20))
    elif which == "empty string":
        record.body.string_value = ""
    elif which == "int":
        record.body.int_value = draw(st.integers(-5, 5))
    elif which == "map":
        record.body.kvlist_value.values.append(kv("a", "b"))
    for key in draw(
        st.lists(st.sampled_from(["user.id", "k", "event.name", "session.id", "x" * 130]), max_size=4)
    ):
        record.attributes.append(kv(key, draw(st.sampled_from(["pay", "", "u1", 3]))))
    if draw(st.integers(0, 3)) == 0:
        record.event_name = draw(st.sampled_from(["signup", " ", ""]))
    return record


@st.composite
def log_requests(draw: Any) -> bytes:
    return export(
        draw, ExportLogsServiceRequest(), ("resource_logs", "scope_logs", "log_records"), records(), 6
    )


@FAST
@given(log_requests())
def test_shaped_logs_match_the_oracle(body: bytes) -> None:
    assert shaped(body) == expected(body)
