"""One port, one sidecar: a second ``sidecar serve`` on a taken port says so in one line and exits 2.

The trial: a second sidecar (its own data dir, API and OTLP/HTTP ports) started fine on the first
one's OTLP/gRPC port, because gRPC binds with SO_REUSEPORT, and the kernel then split the exports
between the two processes. Now every listener refuses a taken port, names the address, the config
key and the flag, and shuts down what had already started (listeners, writer, store) before exiting.
Real processes: a live first sidecar holds the ports, the second is a plain ``sidecar serve``.
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import grpc
import pytest

from tests.e2e.conftest import SidecarFactory
from tests.e2e.harness import (
    EXPORT_PATH,
    HOST,
    Sidecar,
    free_ports,
    jaeger_id,
    make_request,
    make_span,
    new_trace_id,
    serve_command,
    subprocess_env,
)

MS = 1_000_000
INFO_LINE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO ")
LISTENERS = {  # which port of the first sidecar the second one asks for -> (config key, flag)
    "grpc": ("receivers.otlp.grpc.endpoint", "--otlp-grpc"),
    "http": ("receivers.otlp.http.endpoint", "--otlp-http"),
    "api": ("api.endpoint", "--api"),
}


def serve_on(first: Sidecar, clash: str, data_dir: Path) -> tuple[str, subprocess.CompletedProcess[str]]:
    """``sidecar serve`` on fresh ports except ``clash``, which is the first sidecar's; its address."""
    ports = dict(zip(LISTENERS, free_ports(3), strict=True))
    ports[clash] = {"grpc": first.grpc_port, "http": first.http_port, "api": first.api_port}[clash]
    args = ["--data-dir", str(data_dir)]
    for name, (_, flag) in LISTENERS.items():
        args += [flag, f"{HOST}:{ports[name]}"]
    proc = subprocess.Popen(
        serve_command(*args),
        cwd=data_dir.parent,
        env=subprocess_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, stderr = proc.communicate()
        pytest.fail(f"the second sidecar started on the first one's {clash} port:\n{stderr}")
    result = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    return f"{HOST}:{ports[clash]}", result


def grpc_export_ok(sc: Sidecar, body: bytes) -> bool:
    with grpc.insecure_channel(sc.grpc_endpoint) as channel:
        call = channel.unary_unary(EXPORT_PATH, request_serializer=None, response_deserializer=None)
        call(body, timeout=10)
    return True


@pytest.mark.parametrize("clash", list(LISTENERS))
def test_a_second_sidecar_on_a_taken_port_exits_2_with_one_line(
    sidecar_factory: SidecarFactory, tmp_path: Path, clash: str
) -> None:
    first = sidecar_factory("first")
    second_dir = tmp_path / "second" / "data"
    second_dir.parent.mkdir()

    address, result = serve_on(first, clash, second_dir)

    key, flag = LISTENERS[clash]
    line = f"sidecar: cannot listen on {address} ({key}, {flag}): address already in use"
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    # One line about it, the last one: no traceback, no error from gRPC or aiohttp, only info lines.
    assert [x for x in lines if not INFO_LINE.match(x)] == [line], result.stderr
    assert lines[-1] == line
    assert result.stdout == ""
    # What had started was shut down cleanly: the store closed, its lock and pid file released.
    assert lines[-2].endswith(" INFO sidecar: store closed"), result.stderr
    assert not (second_dir / "sidecar.pid").exists()

    # The first keeps every port to itself: all exports on either transport land there.
    t0 = time.time_ns() - 10 * MS
    trace_id = new_trace_id()
    for i in range(10):
        request = make_request("ports", [make_span(trace_id, f"grpc-{i}", t0, MS)])
        assert grpc_export_ok(first, request.SerializeToString())
        first.export(make_request("ports", [make_span(trace_id, f"http-{i}", t0, MS)]))
    assert len(first.jaeger_trace(jaeger_id(trace_id))["spans"]) == 20


def test_a_failed_start_leaves_its_data_dir_ready_for_the_next_start(
    sidecar_factory: SidecarFactory, tmp_path: Path
) -> None:
    """The OTLP/HTTP port is bound last: the API, gRPC listener, writer and store had all started."""
    first = sidecar_factory("first")
    second_dir = tmp_path / "second" / "data"
    second_dir.parent.mkdir()
    _, result = serve_on(first, "http", second_dir)
    assert result.returncode == 2, result.stderr
    assert "OTLP/gRPC receiver listening" in result.stderr  # it did get that far

    again = sidecar_factory("again", data_dir=second_dir)  # free ports: starts at once, no lock left
    trace_id = new_trace_id()
    again.export(make_request("after", [make_span(trace_id, "ok", time.time_ns() - MS, MS)]))
    assert len(again.jaeger_trace(jaeger_id(trace_id))["spans"]) == 1
