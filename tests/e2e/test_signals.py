"""The signal table drives both transports: every row is served on gRPC and HTTP, a new row needs no
change to either receiver, and gets the same answers and warning lines as traces.

The real rows against a live ``sidecar serve``; a test row (widgets, carried in OTLP logs messages
under a service of its own) against the shipped receivers started in-process.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field

import grpc
import pytest
from google.protobuf import descriptor_pool, json_format
from google.protobuf.message import DecodeError
from google.rpc import code_pb2
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from sidecar.ingest.traces import RequestDecodeError
from sidecar.receivers.export import Exporter
from sidecar.receivers.signals import SIGNALS, Signal
from tests.e2e.harness import JSON, PROTOBUF, Sidecar, http_request
from tests.e2e.receivers_app import Sink, grpc_call, http_post, receivers

GARBAGE = b"\xff" * 16 + b"definitely not protobuf"
RECEIVERS_LOG = "sidecar.receivers"
FIRST = "further ones are counted and reported at most every 10 s"

# ---------------------------------------------------------------------------------------------
# The real table


def test_each_row_names_a_real_otlp_service_and_its_messages() -> None:
    assert len({s.name for s in SIGNALS}) == len({s.http_path for s in SIGNALS}) == len(SIGNALS)
    assert len({s.grpc_service for s in SIGNALS}) == len(SIGNALS)
    for signal in SIGNALS:
        export = descriptor_pool.Default().FindServiceByName(signal.grpc_service).methods_by_name["Export"]
        assert export.input_type.full_name == signal.request_type.DESCRIPTOR.full_name
        assert export.output_type.full_name == signal.response_type.DESCRIPTOR.full_name
        partial = signal.response_type.DESCRIPTOR.fields_by_name["partial_success"].message_type
        assert signal.rejected_field in partial.fields_by_name
        assert signal.grpc_method == f"/{signal.grpc_service}/Export"
        assert signal.http_path == f"/v1/{signal.name}"


@pytest.mark.parametrize("signal", SIGNALS, ids=lambda s: s.name)
def test_every_row_is_served_on_grpc_and_http(sidecar: Sidecar, signal: Signal[object]) -> None:
    empty = signal.request_type().SerializeToString()
    with grpc.insecure_channel(sidecar.grpc_endpoint) as channel:
        call = channel.unary_unary(signal.grpc_method)
        assert signal.response_type.FromString(call(empty, timeout=10)) == signal.response_type()
        with pytest.raises(grpc.RpcError) as bad:
            call(GARBAGE, timeout=10)
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]

    url = sidecar.http_url + signal.http_path
    status, headers, raw = http_request("POST", url, empty, {"Content-Type": PROTOBUF})
    assert (status, signal.response_type.FromString(raw)) == (200, signal.response_type())
    status, headers, raw = http_request("POST", url, b"{}", {"Content-Type": JSON})
    assert (status, headers["content-type"], json.loads(raw)) == (200, JSON, {})
    status, _, raw = http_request("POST", url, GARBAGE, {"Content-Type": PROTOBUF})
    assert status == 400


def test_the_404_names_every_row(sidecar: Sidecar) -> None:
    status, _, raw = http_request("POST", sidecar.http_url + "/v1/nothing", b"", {"Content-Type": JSON})
    assert status == 404
    routes = ", ".join(f"{s.name} go to POST {s.http_path}" for s in SIGNALS)
    assert json.loads(raw) == {
        "code": code_pb2.UNIMPLEMENTED,
        "message": f"no OTLP endpoint at '/v1/nothing'; {routes}",
    }


# ---------------------------------------------------------------------------------------------
# A row the receivers have never seen


@dataclass
class Widgets:
    """The test row's batch: records with a body are kept, the others rejected."""

    accepted: int
    rejected: int
    records: list[LogRecord] = field(default_factory=list)

    def error_message(self) -> str:
        return f"{self.rejected} widget(s) without a body" if self.rejected else ""


def prepare_widgets(body: bytes, *, well_formed: bool = False) -> Widgets:
    try:
        request = ExportLogsServiceRequest.FromString(body)
    except DecodeError as exc:
        raise RequestDecodeError(f"not widgets: {exc}") from exc
    records = [r for rl in request.resource_logs for sl in rl.scope_logs for r in sl.log_records]
    kept = [r for r in records if r.body.string_value]
    return Widgets(len(kept), len(records) - len(kept), kept)


WIDGETS: Signal[Widgets] = Signal(
    name="widgets",
    grpc_service="tests.widgets.v1.WidgetService",
    http_path="/v1/widgets",
    request_type=ExportLogsServiceRequest,
    response_type=ExportLogsServiceResponse,
    rejected_field="rejected_log_records",
    item_noun="widget",
    partial_reason="widgets without a body dropped",
    queue_setting="tests.max_queue_widgets",
    prepare=prepare_widgets,
)
WIDGET_METHOD = "/tests.widgets.v1.WidgetService/Export"


def widgets_request(*bodies: str) -> ExportLogsServiceRequest:
    request = ExportLogsServiceRequest()
    records = request.resource_logs.add().scope_logs.add().log_records
    for text in bodies:
        records.add().body.string_value = text
    return request


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == RECEIVERS_LOG]


def test_a_new_row_is_served_on_both_transports_with_partial_success(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger=RECEIVERS_LOG)
    request = widgets_request("a", "", "b", "")  # two kept, two rejected
    traces, widgets = Sink(), Sink()

    async def scenario() -> None:
        async with receivers(traces, [Exporter(WIDGETS, widgets)]) as r:
            code, raw, _ = await grpc_call(r.grpc_target, request.SerializeToString(), WIDGET_METHOD)
            assert code == grpc.StatusCode.OK
            by_grpc = ExportLogsServiceResponse.FromString(raw)
            url = r.http_url + "/v1/widgets"
            status, _, content_type, raw = await http_post(url, request.SerializeToString())
            assert (status, content_type) == (200, PROTOBUF)
            by_http = ExportLogsServiceResponse.FromString(raw)
            status, _, content_type, raw = await http_post(
                url, json_format.MessageToJson(request).encode(), JSON
            )
            assert (status, content_type) == (200, JSON)
            by_json = json.loads(raw)
            status, _, _, raw = await http_post(r.http_url + "/v1/nothing", b"", JSON)
            assert status == 404
            assert json.loads(raw)["message"] == (
                "no OTLP endpoint at '/v1/nothing'; "
                "traces go to POST /v1/traces, widgets go to POST /v1/widgets"
            )

        expected = ExportLogsServiceResponse()
        expected.partial_success.rejected_log_records = 2
        expected.partial_success.error_message = "2 widget(s) without a body"
        assert by_grpc == by_http == expected
        assert by_json == {
            "partialSuccess": {"rejectedLogRecords": "2", "errorMessage": "2 widget(s) without a body"}
        }
        assert [b.accepted for b in widgets.batches] == [2, 2, 2] and traces.batches == []

    asyncio.run(scenario())
    assert warnings(caplog) == [
        f"OTLP/gRPC export partly rejected: widgets without a body dropped (1 request, 2 widgets; {FIRST})",
        f"OTLP/HTTP export partly rejected: widgets without a body dropped (1 request, 2 widgets; {FIRST})",
        "OTLP/HTTP export rejected, 404 POST to an unknown path "
        f"(the traces path is /v1/traces, the widgets path is /v1/widgets) (1 request; {FIRST})",
    ]


def test_a_new_row_gets_the_same_refusals_as_traces(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger=RECEIVERS_LOG)
    body = widgets_request("a", "b", "c").SerializeToString()

    async def scenario() -> None:
        widgets = Sink(refuse=True)
        async with receivers(Sink(), [Exporter(WIDGETS, widgets)]) as r:
            url = r.http_url + "/v1/widgets"
            busy_http = await http_post(url, body)
            busy_grpc = await grpc_call(r.grpc_target, body, WIDGET_METHOD)
            bad_http = await http_post(url, GARBAGE)
            bad_grpc = await grpc_call(r.grpc_target, GARBAGE, WIDGET_METHOD)
        assert busy_http[:2] == (503, "1")  # Retry-After
        assert (busy_grpc[0], busy_grpc[2]) == (grpc.StatusCode.UNAVAILABLE, True)  # RetryInfo
        assert bad_http[0] == 400 and b"not widgets" in bad_http[3]
        assert bad_grpc[0] == grpc.StatusCode.INVALID_ARGUMENT and "not widgets" in bad_grpc[1]
        assert widgets.batches == []

    asyncio.run(scenario())
    busy = "write queue full, backpressure (tests.max_queue_widgets)"
    not_widgets = "body is not a valid ExportLogsServiceRequest"
    assert warnings(caplog) == [
        f"OTLP/HTTP export refused, 503 {busy} (1 request, 3 widgets; {FIRST})",
        f"OTLP/gRPC export refused, UNAVAILABLE: {busy} (1 request, 3 widgets; {FIRST})",
        f"OTLP/HTTP export rejected, 400 {not_widgets} (1 request; {FIRST})",
        f"OTLP/gRPC export rejected, INVALID_ARGUMENT: {not_widgets} (1 request; {FIRST})",
    ]
