"""End-to-end harness: a live ``sidecar serve`` subprocess plus small helpers to talk to it.

Nothing here is mocked: :class:`Sidecar` runs ``python -m sidecar serve`` on free localhost ports
with a real RocksDB data directory, and the helpers build OTLP requests with the official
``opentelemetry-proto`` classes and send them over real HTTP / gRPC.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import gzip
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

READY_TIMEOUT_S = 20.0
HOST = "127.0.0.1"
EXPORT_PATH = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
PROTOBUF = "application/x-protobuf"
JSON = "application/json"

# Plain urllib without proxies: a developer's http_proxy must never capture localhost traffic.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
LIVE: set[subprocess.Popen[bytes]] = set()  # every process a test started, killed at exit if left


@atexit.register
def _kill_leftovers() -> None:
    """Last line of defence; fixtures normally stop every process they start."""
    for proc in list(LIVE):
        with contextlib.suppress(OSError):
            proc.kill()


def free_ports(count: int) -> list[int]:
    """Distinct ports that were free a moment ago (held open together so they cannot repeat)."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((HOST, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def port_answers(port: int, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on ``HOST:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        return s.connect_ex((HOST, port)) == 0


def subprocess_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The test process's environment minus SIDECAR_* settings and proxies, plus ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("SIDECAR_") and not k.lower().endswith("_proxy")
    }
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    env.update(extra or {})
    return env


def serve_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "sidecar", "serve", *args]


# ---------------------------------------------------------------------------------------------
# HTTP


def http_request(
    method: str,
    url: str,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 30.0,
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP exchange; returns (status, headers with lower-case names, body) for any status."""
    req = urllib.request.Request(url, data=body, method=method, headers=dict(headers or {}))
    try:
        with _OPENER.open(req, timeout=timeout) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
    except urllib.error.HTTPError as err:
        with err:
            return err.code, {k.lower(): v for k, v in err.headers.items()}, err.read()


def query_string(params: Mapping[str, Any]) -> str:
    """``k=v`` pairs; list values repeat the key (``traceID=a&traceID=b``); None values are dropped."""
    pairs: list[tuple[str, str]] = []
    for key, value in params.items():
        if value is None:
            continue
        values = value if isinstance(value, list | tuple) else [value]
        pairs.extend((key, str(v)) for v in values)
    return urllib.parse.urlencode(pairs)


# ---------------------------------------------------------------------------------------------
# The sidecar process


class PortTaken(RuntimeError):
    """The sidecar could not bind a port the harness had just found free (a race with another process)."""


class Sidecar:
    """A ``sidecar serve`` subprocess on free ports; stderr goes to a log file per start.

    ``api_flag=False`` leaves ``--api`` off the command line (to test the config precedence); the
    harness then polls ``api_port``, which the caller must have configured another way.
    """

    def __init__(
        self,
        data_dir: Path,
        log_dir: Path,
        *,
        env: Mapping[str, str] | None = None,
        extra_args: Sequence[str] = (),
        api_flag: bool = True,
        api_port: int | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.log_dir = Path(log_dir)
        self.env = dict(env or {})
        self.extra_args = list(extra_args)
        self.api_flag = api_flag
        self._fixed_api_port = api_port
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_paths: list[Path] = []
        self.grpc_port = self.http_port = self.api_port = 0
        self.ready_seconds = 0.0  # wall time from spawn to /readyz == 200 of the latest start

    # -- addresses -----------------------------------------------------------------------
    @property
    def api_url(self) -> str:
        return f"http://{HOST}:{self.api_port}"

    @property
    def grpc_endpoint(self) -> str:
        return f"{HOST}:{self.grpc_port}"

    @property
    def http_url(self) -> str:
        return f"http://{HOST}:{self.http_port}"

    @property
    def traces_url(self) -> str:
        return f"{self.http_url}/v1/traces"

    # -- process control -----------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def command(self) -> list[str]:
        args = [
            "--data-dir",
            str(self.data_dir),
            "--otlp-grpc",
            self.grpc_endpoint,
            "--otlp-http",
            f"{HOST}:{self.http_port}",
        ]
        if self.api_flag:
            args += ["--api", f"{HOST}:{self.api_port}"]
        return serve_command(*args, *self.extra_args)

    def start(self, timeout: float = READY_TIMEOUT_S) -> Sidecar:
        """Spawn and wait for readiness; retried on fresh ports if a picked port was taken meanwhile."""
        for attempt in range(3):
            try:
                return self._start_once(timeout)
            except PortTaken:
                if attempt == 2 or self._fixed_api_port:
                    raise
        raise AssertionError("unreachable")

    def _start_once(self, timeout: float) -> Sidecar:
        if self.running:
            raise RuntimeError("sidecar already running")
        self.grpc_port, self.http_port, api_port = free_ports(3)
        self.api_port = self._fixed_api_port or api_port
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"sidecar-{os.getpid()}-{len(self.log_paths)}-{time.monotonic_ns()}.log"
        self.log_paths.append(log_path)
        started = time.monotonic()
        with open(log_path, "wb") as log:
            self.proc = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
                env=subprocess_env(self.env),
                cwd=self.log_dir,
            )
        LIVE.add(self.proc)
        try:
            self.wait_ready(timeout)
        except BaseException:
            self.kill()
            raise
        self.ready_seconds = time.monotonic() - started
        return self

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        """Poll ``GET /readyz`` until 200; fail fast (with the log) if the process exits."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                if self.proc.returncode == 2 and "sidecar: cannot listen on " in self.stderr_text():
                    raise PortTaken(self.stderr_text())
                raise RuntimeError(
                    f"sidecar exited with {self.proc.returncode} before ready:\n{self.stderr_text()}"
                )
            try:
                status, _, body = http_request("GET", f"{self.api_url}/readyz", timeout=2)
            except OSError as exc:
                last = repr(exc)
            else:
                if status == 200:
                    return
                last = f"{status} {body!r}"
            time.sleep(0.05)
        raise TimeoutError(f"sidecar not ready after {timeout}s ({last}):\n{self.stderr_text()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> tuple[int, float]:
        """Send ``sig`` and wait; returns (exit code, seconds until the process was gone)."""
        assert self.proc is not None, "never started"
        started = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise
        finally:
            LIVE.discard(self.proc)
        return code, time.monotonic() - started

    def kill(self) -> None:
        """SIGKILL and reap; safe when not running."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
        LIVE.discard(self.proc)

    def restart(self, sig: int = signal.SIGTERM, timeout: float = READY_TIMEOUT_S) -> Sidecar:
        """Stop (if running) and start again on the same data dir; ports are picked afresh."""
        if self.running:
            self.stop(sig)
        return self.start(timeout)

    def close(self) -> None:
        """Fixture finaliser: a graceful stop if possible, SIGKILL otherwise; never raises."""
        if not self.running:
            self.kill()
            return
        try:
            self.stop(signal.SIGTERM, timeout=10)
        except Exception:
            self.kill()

    def stderr_text(self, all_starts: bool = False) -> str:
        paths = self.log_paths if all_starts else self.log_paths[-1:]
        return "".join(p.read_text(errors="replace") for p in paths if p.exists())

    # -- query API -----------------------------------------------------------------------
    def get(self, path: str, params: Mapping[str, Any] | None = None, **kw: Any) -> tuple[int, bytes]:
        merged = {**(params or {}), **kw}
        qs = query_string(merged)
        status, _, body = http_request("GET", f"{self.api_url}{path}" + (f"?{qs}" if qs else ""))
        return status, body

    def get_json(self, path: str, params: Mapping[str, Any] | None = None, **kw: Any) -> tuple[int, Any]:
        """GET an API path; ``params`` takes names that are not identifiers (``query.service_name``)."""
        status, body = self.get(path, params, **kw)
        try:
            return status, json.loads(body)
        except ValueError as exc:
            raise AssertionError(f"GET {path} -> {status}, body is not JSON: {body[:300]!r}") from exc

    def jaeger_trace(self, trace_id: str) -> dict[str, Any]:
        """``GET /api/traces/{id}``, asserting 200 and a one-element ``data``."""
        status, body = self.get_json(f"/api/traces/{trace_id}")
        assert status == 200, (status, body)
        assert body["errors"] is None
        assert len(body["data"]) == 1, body
        return body["data"][0]

    def search_ids(self, params: Mapping[str, Any] | None = None, **kw: Any) -> list[str]:
        """Jaeger v1 search; the trace IDs in answer order."""
        status, body = self.get_json("/api/traces", params, **kw)
        assert status == 200, (status, body)
        return [t["traceID"] for t in body["data"]]

    # -- OTLP/HTTP ----------------------------------------------------------------------
    def post_traces(
        self,
        body: bytes,
        content_type: str = PROTOBUF,
        encoding: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        hdrs = {"Content-Type": content_type, **(headers or {})}
        if encoding:
            hdrs["Content-Encoding"] = encoding
        return http_request("POST", self.traces_url, body, hdrs)

    def export(self, request: ExportTraceServiceRequest) -> ExportTraceServiceResponse:
        """POST a protobuf request and assert full acceptance (200, no partial success)."""
        status, headers, body = self.post_traces(request.SerializeToString())
        assert status == 200, (status, body)
        assert headers["content-type"].startswith(PROTOBUF)
        response = ExportTraceServiceResponse.FromString(body)
        assert not response.HasField("partial_success"), response
        return response


# ---------------------------------------------------------------------------------------------
# OTLP request building (official proto classes)


def any_value(value: Any) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, bytes):
        return AnyValue(bytes_value=value)
    if isinstance(value, list | tuple):
        av = AnyValue()
        av.array_value.values.extend(any_value(v) for v in value)
        return av
    return AnyValue(string_value=str(value))


def attributes(attrs: Mapping[str, Any] | None) -> list[KeyValue]:
    return [KeyValue(key=k, value=any_value(v)) for k, v in (attrs or {}).items()]


def new_trace_id(high_zero: bool = False) -> bytes:
    tid = os.urandom(16)
    return bytes(8) + tid[8:] if high_zero else tid


def new_span_id() -> bytes:
    return os.urandom(8)


def jaeger_id(trace_id: bytes) -> str:
    """Jaeger v1 spelling: 16 hex chars when the high 64 bits are zero, else 32."""
    return trace_id[8:].hex() if not any(trace_id[:8]) else trace_id.hex()


def make_span(
    trace_id: bytes,
    name: str,
    start_ns: int,
    duration_ns: int,
    *,
    span_id: bytes | None = None,
    parent: bytes = b"",
    kind: int = Span.SPAN_KIND_INTERNAL,
    attrs: Mapping[str, Any] | None = None,
    status: int = Status.STATUS_CODE_UNSET,
    status_message: str = "",
    events: Iterable[tuple[str, int, Mapping[str, Any]]] = (),
) -> Span:
    span = Span(
        trace_id=trace_id,
        span_id=span_id if span_id is not None else new_span_id(),
        parent_span_id=parent,
        name=name,
        kind=kind,
        start_time_unix_nano=start_ns,
        end_time_unix_nano=start_ns + duration_ns,
        attributes=attributes(attrs),
        status=Status(code=status, message=status_message),
    )
    for ev_name, ev_ns, ev_attrs in events:
        span.events.add(name=ev_name, time_unix_nano=ev_ns, attributes=attributes(ev_attrs))
    return span


def make_request(
    service: str | None,
    spans: Iterable[Span],
    *,
    resource_attrs: Mapping[str, Any] | None = None,
    scope: tuple[str, str] = ("e2e-tests", "1.0.0"),
) -> ExportTraceServiceRequest:
    """One ResourceSpans with one ScopeSpans; ``service=None`` leaves ``service.name`` out."""
    res_attrs = ({"service.name": service} if service is not None else {}) | dict(resource_attrs or {})
    rs = ResourceSpans(
        resource=Resource(attributes=attributes(res_attrs)),
        scope_spans=[ScopeSpans(scope=InstrumentationScope(name=scope[0], version=scope[1]), spans=spans)],
    )
    return ExportTraceServiceRequest(resource_spans=[rs])


def merge_requests(*requests: ExportTraceServiceRequest) -> ExportTraceServiceRequest:
    merged = ExportTraceServiceRequest()
    for r in requests:
        merged.resource_spans.extend(r.resource_spans)
    return merged


def to_otlp_json(request: ExportTraceServiceRequest) -> dict[str, Any]:
    """OTLP-JSON per the spec, written independently of the server's codec: ``MessageToDict``
    (camelCase, int64 as strings, integer enums) with span/parent IDs re-spelt as hex."""
    out = json_format.MessageToDict(request, use_integers_for_enums=True)
    for rs in out.get("resourceSpans", []):
        for ss in rs.get("scopeSpans", []):
            for span in ss.get("spans", []):
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        span[key] = base64.b64decode(span[key]).hex()
    return out


def gzip_body(data: bytes) -> bytes:
    return gzip.compress(data)


def deflate_body(data: bytes) -> bytes:
    """HTTP ``deflate`` is the zlib format (RFC 9110), which is what the Python exporter sends."""
    return zlib.compress(data)


# ---------------------------------------------------------------------------------------------
# OTel SDK glue


class RecordingExporter(SpanExporter):
    """Wraps a real OTLP exporter and keeps every ``export()`` result, so tests can assert SUCCESS."""

    def __init__(self, inner: SpanExporter) -> None:
        self.inner = inner
        self.results: list[tuple[int, SpanExportResult]] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        result = self.inner.export(spans)
        self.results.append((len(spans), result))
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self.inner.force_flush(timeout_millis)

    @property
    def exported_spans(self) -> int:
        return sum(n for n, _ in self.results)

    def assert_all_succeeded(self, expected_spans: int) -> None:
        assert self.results, "the exporter was never called"
        assert all(r is SpanExportResult.SUCCESS for _, r in self.results), self.results
        assert self.exported_spans == expected_spans, self.results


def find_tag(tags: list[dict[str, Any]], key: str) -> dict[str, Any] | None:
    found = [t for t in tags if t["key"] == key]
    assert len(found) <= 1, f"tag {key!r} appears {len(found)} times: {found}"
    return found[0] if found else None


def tag_map(tags: list[dict[str, Any]]) -> dict[str, tuple[str, Any]]:
    return {t["key"]: (t["type"], t["value"]) for t in tags}


def spans_by_name(trace: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for span in trace["spans"]:
        assert span["operationName"] not in out, f"duplicate operation {span['operationName']}"
        out[span["operationName"]] = span
    return out


__all__ = [
    "EXPORT_PATH",
    "HOST",
    "JSON",
    "PROTOBUF",
    "RecordingExporter",
    "Sidecar",
    "any_value",
    "attributes",
    "deflate_body",
    "find_tag",
    "free_ports",
    "gzip_body",
    "http_request",
    "jaeger_id",
    "make_request",
    "make_span",
    "merge_requests",
    "new_span_id",
    "new_trace_id",
    "port_answers",
    "serve_command",
    "spans_by_name",
    "subprocess_env",
    "tag_map",
    "to_otlp_json",
]
