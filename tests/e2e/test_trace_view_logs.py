"""Jaeger v1 ``GET /api/traces/{id}`` against a live ``sidecar serve``: OTLP log records of a trace
appear in their span's ``logs`` (``event`` = body, ``level``, then attributes), sorted by time among
the span events; records of a span ID not in the trace are left out; a trace without records
answers byte for byte as before any log was sent.
"""

from __future__ import annotations

import json
import time
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from tests.e2e.harness import (
    PROTOBUF,
    Sidecar,
    any_value,
    attributes,
    http_request,
    jaeger_id,
    make_request,
    make_span,
    new_span_id,
    new_trace_id,
)

MS = 1_000_000


def send_logs(sc: Sidecar, records: list[dict[str, Any]]) -> None:
    req = ExportLogsServiceRequest()
    rl = req.resource_logs.add()
    rl.resource.attributes.extend(attributes({"service.name": "tvl-app"}))
    sl = rl.scope_logs.add()
    for r in records:
        rec = sl.log_records.add(
            time_unix_nano=r["time"],
            severity_number=r.get("severity", 0),
            severity_text=r.get("severity_text", ""),
            trace_id=r["trace"],
            span_id=r["span"],
        )
        rec.body.CopyFrom(any_value(r["body"]))
        rec.attributes.extend(attributes(r.get("attrs")))
    status, _, body = http_request(
        "POST", f"{sc.http_url}/v1/logs", req.SerializeToString(), {"Content-Type": PROTOBUF}
    )
    assert status == 200, body


def test_log_records_show_in_their_spans(sidecar: Sidecar) -> None:
    t0 = time.time_ns() - 60_000 * MS
    tid, other_tid = new_trace_id(), new_trace_id()
    root_id, child_id, quiet_id = new_span_id(), new_span_id(), new_span_id()
    spans = [
        make_span(
            tid, "GET /cart", t0, 100 * MS, span_id=root_id, events=[("cache.miss", t0 + 10 * MS, {"k": "a"})]
        ),
        make_span(tid, "db.query", t0 + 20 * MS, 50 * MS, span_id=child_id, parent=root_id),
        make_span(tid, "render", t0 + 80 * MS, 10 * MS, span_id=quiet_id, parent=root_id),
    ]
    sidecar.export(make_request("tvl-app", spans))
    sidecar.export(make_request("tvl-app", [make_span(other_tid, "idle", t0, MS)]))
    path, other_path = f"/api/traces/{jaeger_id(tid)}", f"/api/traces/{jaeger_id(other_tid)}"
    before = sidecar.get(path)
    other_before = sidecar.get(other_path)
    assert before[0] == 200 and other_before[0] == 200

    send_logs(
        sidecar,
        [
            # Out of time order on purpose: the answer sorts by timestamp.
            {"time": t0 + 30 * MS, "trace": tid, "span": root_id, "body": "late", "severity": 13},
            {
                "time": t0 + 5 * MS,
                "trace": tid,
                "span": root_id,
                "body": "early",
                "severity_text": "Info",
                "severity": 9,
                "attrs": {"user": "ann", "n": 3, "ok": True, "ratio": 0.5},
            },
            {"time": t0 + 25 * MS, "trace": tid, "span": child_id, "body": "slow row", "severity": 17},
            {"time": t0 + 26 * MS, "trace": tid, "span": new_span_id(), "body": "orphan", "severity": 9},
        ],
    )

    trace = sidecar.jaeger_trace(jaeger_id(tid))
    by_name = {s["operationName"]: s for s in trace["spans"]}
    us = t0 // 1000
    assert by_name["GET /cart"]["logs"] == [
        {
            "timestamp": us + 5_000,
            "fields": [
                {"key": "event", "type": "string", "value": "early"},
                {"key": "level", "type": "string", "value": "Info"},
                {"key": "user", "type": "string", "value": "ann"},
                {"key": "n", "type": "int64", "value": 3},
                {"key": "ok", "type": "bool", "value": True},
                {"key": "ratio", "type": "float64", "value": 0.5},
            ],
        },
        {
            "timestamp": us + 10_000,
            "fields": [
                {"key": "event", "type": "string", "value": "cache.miss"},
                {"key": "k", "type": "string", "value": "a"},
            ],
        },
        {
            "timestamp": us + 30_000,
            "fields": [
                {"key": "event", "type": "string", "value": "late"},
                {"key": "level", "type": "string", "value": "WARN"},
            ],
        },
    ]
    assert by_name["db.query"]["logs"] == [
        {
            "timestamp": us + 25_000,
            "fields": [
                {"key": "event", "type": "string", "value": "slow row"},
                {"key": "level", "type": "string", "value": "ERROR"},
            ],
        }
    ]
    assert by_name["render"]["logs"] == []
    assert "orphan" not in sidecar.get(path)[1].decode()

    # Apart from the logs, the answer is what it was before the records arrived.
    old = json.loads(before[1])
    for span in old["data"][0]["spans"]:
        span["logs"] = by_name[span["operationName"]]["logs"]
    assert json.loads(sidecar.get(path)[1]) == old

    # A trace with no log records answers byte for byte as before.
    assert sidecar.get(other_path) == other_before
