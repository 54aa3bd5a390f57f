"""One data directory, one sidecar: a second ``sidecar serve`` on it says so in one line and exits 2.

Real processes throughout: two ``sidecar serve`` on one directory, a sidecar killed with SIGKILL
(its pid file stays behind), and a plain RocksDB handle held by another Python process.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from tests.e2e.conftest import SidecarFactory
from tests.e2e.harness import (
    HOST,
    free_ports,
    jaeger_id,
    make_request,
    make_span,
    new_trace_id,
    serve_command,
    subprocess_env,
)

MS = 1_000_000
PID_FILE = "sidecar.pid"


def serve_once(data_dir: str, cwd: Path, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    """Run ``sidecar serve`` on fresh ports and wait for it to exit on its own."""
    grpc, http, api = free_ports(3)
    args = ["--data-dir", data_dir, "--otlp-grpc", f"{HOST}:{grpc}", "--otlp-http", f"{HOST}:{http}"]
    args += ["--api", f"{HOST}:{api}"]
    return subprocess.run(
        serve_command(*args),
        cwd=cwd,
        env=subprocess_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def rocksdb_info_logs(data_dir: Path) -> list[str]:
    return sorted(p.name for p in data_dir.iterdir() if p.name.startswith("LOG"))


def test_second_serve_on_a_data_dir_in_use_prints_one_line_and_exits_2(
    sidecar_factory: SidecarFactory, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    first = sidecar_factory(data_dir=data_dir)
    assert first.proc is not None
    trace_id = new_trace_id()
    t0 = 1_700_000_000_000 * MS // 1000
    first.export(make_request("lock-test", [make_span(trace_id, "kept", t0, MS)]))
    logs_before = rocksdb_info_logs(data_dir)

    # The same directory spelt relatively, as an operator would: the message names it that way.
    second = serve_once("./data", cwd=tmp_path)

    assert second.returncode == 2, second.stderr
    lines = second.stderr.splitlines()
    assert lines == [f"sidecar: data directory ./data is in use by another sidecar (pid {first.proc.pid})"]
    assert second.stdout == ""
    # The loser touched nothing: the owner still serves its data, its RocksDB LOG was not rotated.
    assert first.running
    assert len(first.jaeger_trace(jaeger_id(trace_id))["spans"]) == 1
    assert rocksdb_info_logs(data_dir) == logs_before
    assert (data_dir / PID_FILE).read_text().strip() == str(first.proc.pid)


def test_pid_file_of_a_killed_sidecar_does_not_block_a_start(sidecar_factory: SidecarFactory) -> None:
    sc = sidecar_factory()
    assert sc.proc is not None
    dead_pid = sc.proc.pid
    sc.kill()  # SIGKILL: no clean shutdown, the pid file stays
    pid_file = sc.data_dir / PID_FILE
    assert pid_file.read_text().strip() == str(dead_pid)

    sc.start()
    assert sc.proc is not None and sc.proc.pid != dead_pid
    assert pid_file.read_text().strip() == str(sc.proc.pid)

    code, _ = sc.stop(signal.SIGTERM)
    assert code == 0, sc.stderr_text()
    assert not pid_file.exists()  # a clean shutdown removes it


HOLD_ROCKSDB = """
import sys
from rocksdict import Rdict
db = Rdict(sys.argv[1])
print("open", flush=True)
sys.stdin.read()
db.close()
"""


def test_data_dir_held_by_another_rocksdb_user_is_reported_without_pid(tmp_path: Path) -> None:
    """No pid file to read (not a sidecar): RocksDB's own LOCK still gives the one-line answer."""
    data_dir = tmp_path / "data"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_ROCKSDB, str(data_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        result = serve_once(str(data_dir), cwd=tmp_path)
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(10)
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [f"sidecar: data directory {data_dir} is in use by another process"]
    assert not (data_dir / PID_FILE).exists()  # the failed start left no pid file behind
