"""Every answer an OTLP receiver gives, mapped once for both transports (the Collector's internal/errors).

An :class:`Outcome` says what happened to an export, without naming a transport; :data:`STATUS` says
what each transport answers for it: the HTTP status, the gRPC code, the ``google.rpc.Code`` in an
HTTP error body, and how long a client should wait before a retry (CONTRACTS §1.5/§1.6). The gRPC
and HTTP receivers build their error answers only through :func:`http_error` and :func:`grpc_error`,
so the two cannot drift apart, and a new signal gets the same answers with no code of its own.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

import grpc
from aiohttp import web
from google.protobuf.duration_pb2 import Duration
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
RETRY_AFTER_S = 1  # what a client is asked to wait under backpressure
RETRY_INFO_TRAILER = "google.rpc.retryinfo-bin"  # where the Python OTLP exporter looks for RetryInfo


class Outcome(Enum):
    """What became of an export request, whichever transport carried it."""

    OK = "ok"
    BAD_REQUEST = "bad_request"  # undecodable or invalid: permanent, not retried
    NOT_FOUND = "not_found"  # no signal at that path (HTTP) or method (gRPC)
    METHOD_NOT_ALLOWED = "method_not_allowed"  # HTTP: only POST exports
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"  # HTTP: Content-Type or Content-Encoding
    TOO_LARGE = "too_large"  # over the request size limit (after decompression)
    UNAVAILABLE = "unavailable"  # backpressure or shutdown: retryable, after RETRY_AFTER_S
    INTERNAL = "internal"  # the store failed: not the client's fault, not retried


@dataclass(frozen=True, slots=True)
class Status:
    """One outcome's answer on each transport."""

    http: int
    grpc: grpc.StatusCode
    rpc: int  # google.rpc.Code, the ``code`` of an HTTP error body
    retry_after_s: int | None = None  # Retry-After (HTTP) and RetryInfo (gRPC) when set

    @property
    def verb(self) -> str:
        """For the warning log: a retryable answer refuses the data for now, any other rejects it."""
        return "refused" if self.retry_after_s is not None else "rejected"


STATUS: Mapping[Outcome, Status] = {
    Outcome.OK: Status(200, grpc.StatusCode.OK, code_pb2.OK),
    Outcome.BAD_REQUEST: Status(400, grpc.StatusCode.INVALID_ARGUMENT, code_pb2.INVALID_ARGUMENT),
    Outcome.NOT_FOUND: Status(404, grpc.StatusCode.UNIMPLEMENTED, code_pb2.UNIMPLEMENTED),
    Outcome.METHOD_NOT_ALLOWED: Status(405, grpc.StatusCode.UNIMPLEMENTED, code_pb2.UNIMPLEMENTED),
    Outcome.UNSUPPORTED_MEDIA_TYPE: Status(415, grpc.StatusCode.INVALID_ARGUMENT, code_pb2.INVALID_ARGUMENT),
    # gRPC's core answers an oversized message itself, with RESOURCE_EXHAUSTED and no RetryInfo,
    # which clients do not retry; the HTTP body keeps INVALID_ARGUMENT, as before.
    Outcome.TOO_LARGE: Status(413, grpc.StatusCode.RESOURCE_EXHAUSTED, code_pb2.INVALID_ARGUMENT),
    Outcome.UNAVAILABLE: Status(503, grpc.StatusCode.UNAVAILABLE, code_pb2.UNAVAILABLE, RETRY_AFTER_S),
    Outcome.INTERNAL: Status(500, grpc.StatusCode.INTERNAL, code_pb2.INTERNAL),
}

GrpcError = tuple[grpc.StatusCode, str, tuple[tuple[str, str | bytes], ...]]


def http_error(
    outcome: Outcome, message: str, content_type: str, headers: Mapping[str, str] | None = None
) -> web.Response:
    """The HTTP error answer: a ``google.rpc.Status`` in the request's encoding (JSON unless protobuf).

    JSON is the Collector's fallback for a request in neither OTLP encoding, and what a person with
    curl can read. A retryable outcome carries ``Retry-After``.
    """
    status = STATUS[outcome]
    extra = dict(headers or {})
    if status.retry_after_s is not None:
        extra["Retry-After"] = str(status.retry_after_s)
    if content_type == PROTOBUF:
        body = status_pb2.Status(code=status.rpc, message=message).SerializeToString()
    else:
        body = json.dumps({"code": status.rpc, "message": message}).encode()
        content_type = JSON
    return web.Response(status=status.http, body=body, content_type=content_type, headers=extra)


def grpc_error(outcome: Outcome, message: str) -> GrpcError:
    """``(code, details, trailing metadata)`` for ``context.abort``.

    A retryable outcome carries ``RetryInfo`` twice: in the rich status details, which Go clients
    read, and in the ``google.rpc.retryinfo-bin`` trailer, which the Python exporter reads.
    """
    status = STATUS[outcome]
    if status.retry_after_s is None:
        return status.grpc, message, ()
    retry = error_details_pb2.RetryInfo(retry_delay=Duration(seconds=status.retry_after_s))
    rich_status = status_pb2.Status(code=status.rpc, message=message)
    rich_status.details.add().Pack(retry)
    rich = rpc_status.to_status(rich_status)
    return rich.code, rich.details, (*rich.trailing_metadata, (RETRY_INFO_TRAILER, retry.SerializeToString()))
