"""A real ``prometheus`` server on loopback scraping a live sidecar, and its HTTP API for the tests.

Nothing is simulated: the Debian package's ``/usr/bin/prometheus`` (``make test`` installs it)
runs with its own TSDB in a temporary directory and exemplar storage on, scraping ``/metrics``
every second as a fleet's Prometheus would (it negotiates OpenMetrics by default).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import HOST, LIVE, free_ports, http_request, subprocess_env

READY_TIMEOUT_S = 60.0


def prometheus_binary() -> str:
    """The server binary, or a skip saying how to get it (only where ``make test`` could not)."""
    found = shutil.which("prometheus") or (
        "/usr/bin/prometheus" if Path("/usr/bin/prometheus").exists() else None
    )
    if found is None:
        pytest.skip(
            "the prometheus server is not installed (Debian package prometheus; make test installs it)"
        )
    return found


class PrometheusServer:
    """``prometheus`` scraping ``target`` (host:port) at ``/metrics`` every second, job ``job``."""

    def __init__(self, workdir: Path, target: str, job: str = "sidecar") -> None:
        self.workdir = workdir
        self.target = target
        self.job = job
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "prometheus.log"

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self) -> PrometheusServer:
        binary = prometheus_binary()
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "prometheus.yml"
        # JSON is YAML: no YAML writer needed, and no quoting surprises.
        config.write_text(
            json.dumps(
                {
                    "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
                    "scrape_configs": [
                        {
                            "job_name": self.job,
                            "metrics_path": "/metrics",
                            "static_configs": [{"targets": [self.target]}],
                        }
                    ],
                }
            )
        )
        for attempt in range(3):  # another process may take the free port meanwhile
            (self.port,) = free_ports(1)
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen(
                    [
                        binary,
                        f"--config.file={config}",
                        f"--storage.tsdb.path={self.workdir / 'tsdb'}",
                        f"--web.listen-address={HOST}:{self.port}",
                        "--enable-feature=exemplar-storage",
                        "--log.level=warn",
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    env=subprocess_env(),
                    cwd=self.workdir,
                )
            LIVE.add(self.proc)
            if self._wait_ready():
                return self
            self.close()
            if attempt == 2 or "address already in use" not in self.log():
                break
        raise RuntimeError(f"prometheus did not become ready:\n{self.log()[-3000:]}")

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                return False
            with contextlib.suppress(OSError):
                if http_request("GET", f"{self.url}/-/ready", timeout=2)[0] == 200:
                    return True
            time.sleep(0.1)
        return False

    def close(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL); never raises."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(10)
        LIVE.discard(self.proc)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # -- HTTP API -------------------------------------------------------------------------
    def api(self, path: str, **params: Any) -> Any:
        """``GET /api/v1/<path>``; asserts ``status: success`` and returns ``data``."""
        qs = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
        status, _, body = http_request("GET", f"{self.url}/api/v1/{path}?{qs}", timeout=10)
        answer = json.loads(body)
        assert status == 200 and answer["status"] == "success", (path, params, status, answer)
        return answer["data"]

    def query(self, promql: str, at: float | None = None) -> list[tuple[dict[str, str], float]]:
        """An instant query (at ``at``, unix seconds, else now): (labels, value) per vector element."""
        data = self.api("query", query=promql, time=at)
        assert data["resultType"] == "vector", data
        return [(r["metric"], float(r["value"][1])) for r in data["result"]]

    def scalar(self, promql: str, at: float | None = None) -> float | None:
        """The value of a one-element answer, None when the answer is empty."""
        result = self.query(promql, at)
        assert len(result) <= 1, result
        return result[0][1] if result else None

    def wait_until(self, check: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
        """Poll ``check()`` until truthy; fails naming ``what`` and the targets' state."""
        deadline = time.monotonic() + timeout
        while True:
            result = check()
            if result:
                return result
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; targets: {self.targets()}")
            time.sleep(0.2)

    def targets(self) -> list[dict[str, Any]]:
        return list(self.api("targets", state="active")["activeTargets"])

    def exemplars(self, promql: str, start: float, end: float) -> list[dict[str, Any]]:
        """``query_exemplars``: one entry per series, ``seriesLabels`` and ``exemplars``."""
        return list(self.api("query_exemplars", query=promql, start=start, end=end))
