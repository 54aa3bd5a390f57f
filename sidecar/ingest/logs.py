"""Log ingest: one pass over a decoded ExportLogsServiceRequest, shaping it for the log store.

Both receivers call :func:`prepare_logs` with protobuf bytes (OTLP-JSON is converted first). Records
are kept as their original bytes (nothing a client sent is lost); what the store needs to build a
block header - service, times, severities, trace ids, body text - is gathered here, in the
receiving thread. Records that are business events (``event_name``, or the older ``event.name``
attribute) are also handed out as :class:`LogEvent` for the events store.
"""

from __future__ import annotations

import json
import time
from hashlib import blake2b
from typing import Any

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue

from sidecar.ingest.events import Event, Value
from sidecar.ingest.traces import RequestDecodeError, content_ref, resource_info, scope_info
from sidecar.otlp.anyvalue import encoded_body_text, python_value, string_body
from sidecar.otlp.shadow import LogsRequest, RawLogsRequest
from sidecar.storage.prepared import ResourceInfo, ScopeInfo
from sidecar.storage.prepared_logs import LogEvent, LogGroup, PreparedLogs

_MAX_ERROR_MESSAGES = 5
_MAX_SEVERITY = 24  # SeverityNumber FATAL4
_EVENT_NAME_KEY = b"\x0a\x0aevent.name"  # KeyValue{key="event.name"} as it starts on the wire
_USER_KEYS = ("user.id", "enduser.id")
_SESSION_KEY = "session.id"  # OTel semantic conventions' session id


def _problem(record: Any) -> str | None:
    """Why a record cannot be stored as it is; None when it can. Kept minimal: what a reader relies on."""
    tid, sid = record.trace_id, record.span_id
    if len(tid) not in (0, 16):
        return f"trace_id must be 16 bytes or empty, got {len(tid)}"
    if len(sid) not in (0, 8):
        return f"span_id must be 8 bytes or empty, got {len(sid)}"
    if not 0 <= record.severity_number <= _MAX_SEVERITY:
        return f"severity_number must be 0..{_MAX_SEVERITY}, got {record.severity_number}"
    return None


def _attribute_key(kv: bytes) -> bytes:
    """The key of a KeyValue's bytes: read in place when it is the first field with a short length."""
    if kv[:1] == b"\x0a" and len(kv) > 1 and kv[1] < 0x80:
        return kv[2 : 2 + kv[1]]
    return KeyValue.FromString(kv).key.encode()


def _event(record: Any, service: str, when: int) -> LogEvent | None:
    """The business event a record carries, if any; ``event_name`` wins over an ``event.name`` attribute."""
    name = record.event_name.decode("utf-8", "replace").strip()
    if not name and not any(kv.startswith(_EVENT_NAME_KEY) for kv in record.attributes):
        return None
    properties = {kv.key: python_value(kv.value) for kv in map(KeyValue.FromString, record.attributes)}
    attribute_name = properties.pop("event.name", None)
    if not name:
        name = attribute_name.strip() if isinstance(attribute_name, str) else ""
        if not name:
            return None
    user = None
    for key in _USER_KEYS:
        value = properties.pop(key, None)
        if user is None and value is not None:
            user = str(value)
    session = properties.pop(_SESSION_KEY, None)
    return LogEvent(name, user, properties, service, when, None if session is None else str(session))


def prepare_logs(body: bytes, *, well_formed: bool = False) -> PreparedLogs:
    """Decode, validate and group one ExportLogsServiceRequest.

    Invalid records are dropped and described (partial success). Unless the bytes are ours
    (``well_formed``), the official schema checks them once: the shadow schemas leave nested
    messages undecoded, and a stored record must always decode again.
    """
    try:
        if not well_formed:
            ExportLogsServiceRequest.FromString(body)
        request = LogsRequest.FromString(body)
        raw_request = RawLogsRequest.FromString(body)
    except DecodeError as exc:
        raise RequestDecodeError(f"cannot decode ExportLogsServiceRequest: {exc}") from exc

    received = time.time_ns()
    groups: list[LogGroup] = []
    events: list[LogEvent] = []
    messages: list[str] = []
    accepted = rejected = 0
    resources: dict[bytes, ResourceInfo] = {}
    scopes: dict[bytes, ScopeInfo] = {}
    for rl_index, (rl, raw_rl) in enumerate(
        zip(request.resource_logs, raw_request.resource_logs, strict=True)
    ):
        resource = resource_info(rl.resource, resources)
        for sl_index, (sl, raw_sl) in enumerate(zip(rl.scope_logs, raw_rl.scope_logs, strict=True)):
            scope = scope_info(sl.scope, scopes)
            group = LogGroup(resource, scope, [], [], [], [], [])
            untimed = False  # a record stamped with the receive time: a resend cannot be told apart
            for index, (record, raw) in enumerate(zip(sl.log_records, raw_sl.log_records, strict=True)):
                problem = _problem(record)
                if problem is not None:
                    rejected += 1
                    if len(messages) < _MAX_ERROR_MESSAGES:
                        messages.append(
                            f"resourceLogs[{rl_index}].scopeLogs[{sl_index}].logRecords[{index}]: {problem}"
                        )
                    continue
                when = record.time_unix_nano or record.observed_time_unix_nano
                if not when:
                    when, untimed = received, True
                group.records.append(raw)
                group.times.append(when)
                group.severities.append(record.severity_number)
                group.trace_ids.append(record.trace_id)
                body = record.body
                text = string_body(body) if body else ""
                if text is None:  # a map, list or number: its text is not verbatim in the bytes
                    group.plain_bodies = False
                    text = encoded_body_text(body)
                group.bodies.append(text)
                if record.attributes:
                    group.attribute_keys.update(map(_attribute_key, record.attributes))
                # The attribute check scans the record's bytes in C first: most records are no events.
                if record.event_name or (record.attributes and _EVENT_NAME_KEY in raw):
                    event = _event(record, resource.service, when)
                    if event is not None:
                        events.append(event)
            if group.records:
                if not untimed:
                    group.digest = content_ref(b"".join((resource.ref, scope.ref, *group.records)))
                accepted += len(group.records)
                groups.append(group)
    return PreparedLogs(groups, accepted, rejected, messages, events)


def as_events(found: list[LogEvent]) -> list[Event]:
    """The business events of a logs request, in the events store's form.

    A log record has no client id, so the id is a digest of what the event says (name, time,
    service, user, properties): an exporter's resend of the same records is then recognised by the
    events store's id check, as a resent ``POST /v1/events`` batch with ids is.
    """
    events = []
    for item in found:
        properties = _flat(item.properties)
        said = [item.name, item.time_ns, item.service, item.user_id, properties]
        if item.session_id is not None:
            said.append(item.session_id)
        digest = blake2b(json.dumps(said, sort_keys=True, default=str).encode(), digest_size=16).hexdigest()
        events.append(
            Event(
                name=item.name,
                ts_ns=item.time_ns,
                user_id=item.user_id,
                session_id=item.session_id,
                service=item.service,
                id=f"otlp-log:{digest}",
                properties=properties,
            )
        )
    return events


def _flat(properties: dict[str, Any], prefix: str = "") -> dict[str, Value]:
    """Event properties are flat scalars: maps flatten with ``.``, lists become JSON text."""
    out: dict[str, Value] = {}
    for key, value in properties.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flat(value, f"{name}."))
        elif isinstance(value, str | int | float | bool):
            out[name] = value
        elif value is not None:
            out[name] = json.dumps(value, default=str)
    return out
