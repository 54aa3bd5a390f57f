"""The one mapping of export outcomes to answers on both transports (sidecar/receivers/status.py).

Pins what each outcome answers over HTTP and gRPC (CONTRACTS §1.5/§1.6) and checks the mapping
against the Collector's gRPC-to-HTTP table, so the two transports cannot drift apart.
"""

from __future__ import annotations

import json

import grpc
import pytest
from google.rpc import code_pb2, error_details_pb2, status_pb2

from sidecar.receivers.status import (
    JSON,
    PROTOBUF,
    RETRY_AFTER_S,
    RETRY_INFO_TRAILER,
    STATUS,
    Outcome,
    grpc_error,
    http_error,
)

C = grpc.StatusCode
EXPECTED = {
    Outcome.OK: (200, C.OK, code_pb2.OK, None),
    Outcome.BAD_REQUEST: (400, C.INVALID_ARGUMENT, code_pb2.INVALID_ARGUMENT, None),
    Outcome.NOT_FOUND: (404, C.UNIMPLEMENTED, code_pb2.UNIMPLEMENTED, None),
    Outcome.METHOD_NOT_ALLOWED: (405, C.UNIMPLEMENTED, code_pb2.UNIMPLEMENTED, None),
    Outcome.UNSUPPORTED_MEDIA_TYPE: (415, C.INVALID_ARGUMENT, code_pb2.INVALID_ARGUMENT, None),
    Outcome.TOO_LARGE: (413, C.RESOURCE_EXHAUSTED, code_pb2.INVALID_ARGUMENT, None),
    Outcome.UNAVAILABLE: (503, C.UNAVAILABLE, code_pb2.UNAVAILABLE, RETRY_AFTER_S),
    Outcome.INTERNAL: (500, C.INTERNAL, code_pb2.INTERNAL, None),
}
# The Collector's gRPC -> HTTP mapping (receiver/otlpreceiver/internal/errors/errors.go, CONTRACTS §1.5).
COLLECTOR_HTTP = {C.INVALID_ARGUMENT: 400, C.UNIMPLEMENTED: 404, C.UNAVAILABLE: 503, C.INTERNAL: 500}
HTTP_ONLY = {405, 413, 415}  # refusals of the HTTP request itself, which gRPC has no own code for


def test_every_outcome_has_exactly_one_answer() -> None:
    assert set(STATUS) == set(Outcome) == set(EXPECTED)


@pytest.mark.parametrize("outcome", list(Outcome), ids=lambda o: o.name)
def test_the_answer_for_each_outcome(outcome: Outcome) -> None:
    status = STATUS[outcome]
    assert (status.http, status.grpc, status.rpc, status.retry_after_s) == EXPECTED[outcome]
    assert status.grpc.value[0] == status.rpc or status.http in HTTP_ONLY  # same code in both places
    if outcome is not Outcome.OK and status.http not in HTTP_ONLY:
        assert COLLECTOR_HTTP[status.grpc] == status.http
    assert status.verb == ("refused" if outcome is Outcome.UNAVAILABLE else "rejected")


@pytest.mark.parametrize("outcome", [o for o in Outcome if o is not Outcome.OK], ids=lambda o: o.name)
@pytest.mark.parametrize("content_type", [PROTOBUF, JSON, "text/plain", ""])
def test_http_error_is_a_status_in_the_request_encoding(outcome: Outcome, content_type: str) -> None:
    response = http_error(outcome, "why: 'quoted'", content_type, headers={"Allow": "POST"})
    assert response.status == STATUS[outcome].http
    assert response.headers["Allow"] == "POST"
    assert isinstance(response.body, bytes)
    if content_type == PROTOBUF:
        assert response.content_type == PROTOBUF
        status = status_pb2.Status.FromString(response.body)
        assert (status.code, status.message) == (STATUS[outcome].rpc, "why: 'quoted'")
    else:  # JSON for JSON and for anything that is neither OTLP encoding
        assert response.content_type == JSON
        assert json.loads(response.body) == {"code": STATUS[outcome].rpc, "message": "why: 'quoted'"}
    retry = response.headers.get("Retry-After")
    assert retry == (str(RETRY_AFTER_S) if outcome is Outcome.UNAVAILABLE else None)


def test_grpc_error_carries_retry_info_for_both_kinds_of_client() -> None:
    code, details, trailers = grpc_error(Outcome.UNAVAILABLE, "sidecar overloaded, retry later")
    assert (code, details) == (C.UNAVAILABLE, "sidecar overloaded, retry later")
    metadata = dict(trailers)
    python_client = error_details_pb2.RetryInfo.FromString(metadata[RETRY_INFO_TRAILER])
    assert python_client.retry_delay.seconds == RETRY_AFTER_S
    rich = status_pb2.Status.FromString(metadata["grpc-status-details-bin"])  # what Go clients read
    assert (rich.code, rich.message) == (code_pb2.UNAVAILABLE, details)
    (detail,) = rich.details
    go_client = error_details_pb2.RetryInfo()
    assert detail.Unpack(go_client)
    assert go_client == python_client


@pytest.mark.parametrize(
    "outcome", [o for o in Outcome if o not in (Outcome.OK, Outcome.UNAVAILABLE)], ids=lambda o: o.name
)
def test_grpc_error_without_retry_is_a_plain_status(outcome: Outcome) -> None:
    assert grpc_error(outcome, "no") == (STATUS[outcome].grpc, "no", ())
