"""Process helpers: /proc readings, free ports, and children that never outlive the benchmark."""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import resource
import signal
import socket
import subprocess
from collections.abc import Sequence
from typing import IO

_CLK_TCK = os.sysconf("SC_CLK_TCK")
_PR_SET_PDEATHSIG = 1
_children: list[subprocess.Popen[bytes]] = []
_prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up here: the forked child must not dlopen


def cpu_seconds(pid: int) -> float:
    """utime + stime of the whole process (all threads) from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK  # fields 14 and 15 of stat(5)


def machine_cpu_seconds() -> tuple[float, float]:
    """(busy, steal) CPU-seconds of the whole machine so far, from the ``cpu`` line of /proc/stat."""
    with open("/proc/stat") as f:
        values = [int(x) for x in f.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (values + [0] * 8)[:8]
    return (user + nice + system + irq + softirq) / _CLK_TCK, steal / _CLK_TCK


def self_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def status_kib(pid: int, field: str) -> int:
    """A ``kB`` line of /proc/<pid>/status, e.g. VmHWM (peak RSS) or VmRSS; 0 once the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:  # runs in the child between fork and exec
    _prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL))


def spawn(
    argv: Sequence[str],
    stdout: IO[bytes] | int | None = None,
    env: dict[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start a child that is killed at exit (atexit) and, via PDEATHSIG, even if we are SIGKILLed."""
    proc = subprocess.Popen(
        list(argv),
        stdout=stdout,
        stderr=subprocess.STDOUT if stdout is not None else None,
        env=env,
        cwd=cwd,
        preexec_fn=_die_with_parent,
    )
    _children.append(proc)
    return proc


def stop(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> tuple[int, bool]:
    """SIGTERM, wait, then SIGKILL; returns (exit code, whether it had to be killed)."""
    killed = False
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            killed = True
    with contextlib.suppress(ValueError):
        _children.remove(proc)
    return proc.returncode, killed


@atexit.register
def kill_children() -> None:
    for proc in list(_children):
        if proc.poll() is None:
            proc.kill()
            with contextlib.suppress(Exception):
                proc.wait(5)
    _children.clear()


def exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit so ``finally`` blocks and atexit run."""

    def handler(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)
