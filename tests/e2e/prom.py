"""Reading a live sidecar's ``/metrics`` in both exposition formats, for the metrics tests."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable
from typing import Any

from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text
from prometheus_client.samples import Sample

from tests.e2e.harness import Sidecar, http_request

OPENMETRICS = "application/openmetrics-text; version=1.0.0"


def scrape(sidecar: Sidecar, openmetrics: bool = False, names: tuple[str, ...] = ()) -> str:
    query = "&".join(f"name[]={n}" for n in names)
    headers = {"Accept": OPENMETRICS} if openmetrics else {}
    status, _, body = http_request("GET", f"{sidecar.api_url}/metrics?{query}", headers=headers)
    assert status == 200, body[:300]
    return body.decode()


def samples(sidecar: Sidecar, openmetrics: bool = False) -> list[Sample]:
    text = scrape(sidecar, openmetrics)
    parse = parse_openmetrics if openmetrics else parse_text
    return [s for family in parse(text) for s in family.samples]


def find(all_samples: list[Sample], name: str, **labels: str) -> list[Sample]:
    return [s for s in all_samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]


def value(all_samples: list[Sample], name: str, **labels: str) -> float | None:
    found = [s for s in find(all_samples, name, **labels) if set(s.labels) - {"le"} >= set(labels)]
    return found[0].value if found else None


def wait_for(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    """Poll until ``check()`` is truthy (taps run after the acknowledgement); return its value."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.1)


def promtool_check(text: str) -> str | None:
    """``promtool check metrics`` on ``text``: None when clean, else its complaint; skips elsewhere."""
    import pytest

    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not on PATH (Debian package prometheus; make test installs it)")
    done = subprocess.run(
        [promtool, "check", "metrics"], input=text.encode(), capture_output=True, timeout=60
    )
    return None if done.returncode == 0 else (done.stdout + done.stderr).decode()
