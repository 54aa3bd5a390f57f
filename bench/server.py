"""One ``sidecar serve`` subprocess on free ports with its own data dir and log file."""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench import proc

# Runs in the launcher's interpreter: reopen a stopped server's data dir with that checkout's own
# store code, flush and compact it; prints the seconds that took (open included, as measure_disk
# counts them in-process; interpreter start-up and imports not).
_COMPACT = """
import sys, time
from sidecar.storage.rocks.db import RocksStore, StoreOptions
t0 = time.perf_counter()
store = RocksStore(sys.argv[1], StoreOptions())
try:
    store.flush()
    store.compact()
finally:
    store.close()
print(time.perf_counter() - t0)
"""


@dataclass(frozen=True, slots=True)
class Launcher:
    """Which code a ``Sidecar`` runs: this checkout (the default) or another checkout's own venv.

    Comparing two commits in one run (``bench.run --baseline``) needs the same harness to start
    servers built from different trees, each with its own compiled core and dependencies.
    """

    command: tuple[str, ...] = (sys.executable, "-m", "sidecar")  # argv before ``serve``
    python: str = sys.executable  # that checkout's interpreter, for its store code (``compact``)
    cwd: Path | None = None  # None: inherit ours (this checkout)
    name: str = "current"

    @classmethod
    def checkout(cls, root: Path, name: str = "baseline") -> Launcher:
        """Another checkout of this repo with its ``.venv`` built (``make lint`` there makes one)."""
        root = root.resolve()
        script, python = root / ".venv" / "bin" / "sidecar", root / ".venv" / "bin" / "python"
        if not (script.is_file() and python.is_file()):
            raise FileNotFoundError(
                f"{script} is missing: build that checkout's venv (cd {root} && make lint)"
            )
        return cls((str(script),), str(python), root, name)

    def env(self) -> dict[str, str]:
        """Our environment minus what would change the code or configuration under test."""
        # SIDECAR_* variables of the caller's shell would silently change the configuration under test.
        env = {k: v for k, v in os.environ.items() if not k.startswith("SIDECAR_")}
        env.pop("GRPC_ENABLE_FORK_SUPPORT", None)  # set for the harness only (bench/__init__.py)
        if self.cwd is not None:
            # Another checkout must import its own tree, not the one a PYTHONPATH points at.
            env.pop("PYTHONPATH", None)
            env.pop("PYTHONHOME", None)
        return env

    def compact(self, data_dir: Path, timeout: float = 600.0) -> float:
        """Flush and compact a stopped server's data dir with this checkout's store; returns seconds.

        Run in that checkout's interpreter: its column families and options may differ from ours.
        """
        done = subprocess.run(
            [self.python, "-c", _COMPACT, str(data_dir.resolve())],
            cwd=self.cwd,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"compacting {data_dir} with {self.python} failed:\n{done.stderr[-2000:]}")
        return float(done.stdout.split()[-1])

    def describe(self) -> dict[str, object]:
        """Where the code came from, for the results: directory, commit, uncommitted changes."""
        root = self.cwd or Path(__file__).resolve().parent.parent

        def git(*args: str) -> str:
            try:
                out = subprocess.run(
                    ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10, check=False
                )
            except OSError:
                return ""
            return out.stdout.strip() if out.returncode == 0 else ""

        return {
            "dir": str(root),
            "commit": git("rev-parse", "--short=12", "HEAD"),
            "subject": git("log", "-1", "--format=%s")[:120],
            "uncommitted_changes": bool(git("status", "--porcelain", "--untracked-files=no")),
        }


CURRENT = Launcher()


class Sidecar:
    def __init__(
        self, data_dir: Path, log_path: Path, config: Path | None = None, launcher: Launcher = CURRENT
    ) -> None:
        """``config``: a YAML config file for the settings a benchmark compares (say, a switch).

        ``launcher``: the checkout whose code serves (``Launcher.checkout`` for another one).
        """
        self.data_dir = data_dir
        self.log_path = log_path
        self.launcher = launcher
        self.grpc_port, self.http_port, self.api_port = proc.free_port(), proc.free_port(), proc.free_port()
        # Absolute paths: another checkout's server runs in its own directory.
        if launcher.cwd is not None:
            data_dir = data_dir.resolve()
            config = config.resolve() if config is not None else None
        argv = [
            *launcher.command,
            "serve",
            "--data-dir",
            str(data_dir),
            "--otlp-grpc",
            f"127.0.0.1:{self.grpc_port}",
            "--otlp-http",
            f"127.0.0.1:{self.http_port}",
            "--api",
            f"127.0.0.1:{self.api_port}",
        ]
        if config is not None:
            argv += ["--config", str(config)]
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = proc.spawn(argv, stdout=self._log, env=launcher.env(), cwd=launcher.cwd)
        self.pid = self.proc.pid

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def wait_ready(self, timeout: float = 60.0) -> float:
        """Poll /readyz until 200; returns seconds waited."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sidecar exited with {self.proc.returncode}; see {self.log_path}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.api_port, timeout=2)
                conn.request("GET", "/readyz")
                if conn.getresponse().status == 200:
                    conn.close()
                    return time.monotonic() - t0
                conn.close()
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"sidecar not ready after {timeout}s; see {self.log_path}")

    def cpu_seconds(self) -> float:
        return proc.cpu_seconds(self.pid)

    def peak_rss_mib(self) -> float:
        return proc.status_kib(self.pid, "VmHWM") / 1024

    def rss_mib(self) -> float:
        return proc.status_kib(self.pid, "VmRSS") / 1024

    def wait_idle(self, max_cores: float = 0.05, quiet_s: float = 3.0, timeout: float = 120.0) -> float:
        """Wait until server CPU use stays under ``max_cores`` for ``quiet_s``; returns seconds waited."""
        t0 = time.monotonic()
        quiet_since = t0
        last_t, last_cpu = t0, self.cpu_seconds()
        while time.monotonic() - t0 < timeout:
            time.sleep(0.5)
            now, cpu = time.monotonic(), self.cpu_seconds()
            if (cpu - last_cpu) / (now - last_t) > max_cores:
                quiet_since = now
            elif now - quiet_since >= quiet_s:
                return now - t0
            last_t, last_cpu = now, cpu
        return time.monotonic() - t0

    def stop(self, timeout: float = 30.0) -> dict[str, float | int | bool]:
        t0 = time.monotonic()
        code, killed = proc.stop(self.proc, timeout)
        self._log.close()
        return {"exit_code": code, "killed": killed, "stop_s": round(time.monotonic() - t0, 2)}
