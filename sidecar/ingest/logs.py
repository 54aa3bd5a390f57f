"""Log ingest: one pass over an ExportLogsServiceRequest's bytes, shaping it for the log store.

Both receivers call :func:`prepare_logs` with protobuf bytes (OTLP-JSON is converted first). Records
are kept as their original bytes (nothing a client sent is lost); what the store needs to build a
block header - service, times, severities, trace ids, body text - is gathered here, in the
receiving thread, by the compiled core; this module holds what the core is given. Records that
are business events (``event_name``, or the older ``event.name`` attribute) are also handed out as
:class:`LogEvent` for the events store.
"""

from __future__ import annotations

import json
import time
from hashlib import blake2b
from typing import Any

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue

from sidecar.core._wire import LogShaper, WireError
from sidecar.ingest.events import Event, Value
from sidecar.ingest.traces import RequestDecodeError, content_ref, resource_info, scope_info
from sidecar.otlp.anyvalue import encoded_body_text, python_value
from sidecar.otlp.shadow import ShadowLogRecord
from sidecar.storage.prepared_logs import LogEvent, LogGroup, PreparedLogs

_EVENT_NAME_KEY = b"\x0a\x0aevent.name"  # KeyValue{key="event.name"} as it starts on the wire
_USER_KEYS = ("user.id", "enduser.id")
_SESSION_KEY = "session.id"  # OTel semantic conventions' session id


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


def _event_of(raw: bytes, service: str, when: int) -> LogEvent | None:
    return _event(ShadowLogRecord.FromString(raw), service, when)


_SHAPER = LogShaper(
    resource_info, scope_info, LogGroup, encoded_body_text, _attribute_key, _event_of, content_ref
)


def prepare_logs(body: bytes, *, well_formed: bool = False) -> PreparedLogs:
    """Decode, validate and group one ExportLogsServiceRequest.

    The compiled core (``sidecar.core._wire.LogShaper``) reads every record in one pass over the
    bytes: invalid records are dropped and described (partial success: a trace_id of 16 bytes or
    none, a span_id of 8 or none, a severity_number 0..24), the rest are grouped per (resource,
    scope) with what a block header needs. Unless the bytes are ours (``well_formed``), the
    official schema checks them once: the core leaves nested messages undecoded, and a stored
    record must always decode again.
    """
    try:
        if not well_formed:
            ExportLogsServiceRequest.FromString(body)
        groups, accepted, rejected, problems, events = _SHAPER.shape(body, time.time_ns())
    except (DecodeError, WireError) as exc:
        raise RequestDecodeError(f"cannot decode ExportLogsServiceRequest: {exc}") from exc
    messages = [
        f"resourceLogs[{rl_index}].scopeLogs[{sl_index}].logRecords[{index}]: {problem}"
        for rl_index, sl_index, index, problem in problems
    ]
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
