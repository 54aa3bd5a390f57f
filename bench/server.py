"""One ``sidecar serve`` subprocess on free ports with its own data dir and log file."""

from __future__ import annotations

import http.client
import os
import sys
import time
from pathlib import Path

from bench import proc


class Sidecar:
    def __init__(self, data_dir: Path, log_path: Path, config: Path | None = None) -> None:
        """``config``: a YAML config file for the settings a benchmark compares (say, a switch)."""
        self.data_dir = data_dir
        self.log_path = log_path
        self.grpc_port, self.http_port, self.api_port = proc.free_port(), proc.free_port(), proc.free_port()
        # SIDECAR_* variables of the caller's shell would silently change the configuration under test.
        env = {k: v for k, v in os.environ.items() if not k.startswith("SIDECAR_")}
        env.pop("GRPC_ENABLE_FORK_SUPPORT", None)  # set for the harness only (bench/__init__.py)
        argv = [
            sys.executable,
            "-m",
            "sidecar",
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
        self.proc = proc.spawn(argv, stdout=self._log, env=env)
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
