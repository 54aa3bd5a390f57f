"""Fixtures for the end-to-end suite: live sidecar processes and OTel SDK pipelines pointed at them.

Every process a fixture starts is stopped by that fixture's finaliser, also when the test fails.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

from tests.e2e.harness import RecordingExporter, Sidecar

SidecarFactory = Callable[..., Sidecar]


@pytest.fixture(scope="session", autouse=True)
def _no_proxies_for_localhost() -> Iterator[None]:
    """The SDK exporters (requests, grpc) honour *_proxy variables; localhost must bypass them."""
    with pytest.MonkeyPatch.context() as mp:
        for name in list(os.environ):
            if name.lower().endswith("_proxy"):
                mp.delenv(name)
        mp.setenv("NO_PROXY", "127.0.0.1,localhost")
        mp.setenv("no_proxy", "127.0.0.1,localhost")
        yield


def _factory(base: Path) -> tuple[SidecarFactory, list[Sidecar]]:
    started: list[Sidecar] = []

    def make(
        name: str = "sidecar", *, start: bool = True, data_dir: Path | None = None, **kwargs: Any
    ) -> Sidecar:
        index = len(started)
        sidecar = Sidecar(data_dir or base / f"{name}-{index}" / "data", base / f"{name}-{index}", **kwargs)
        started.append(sidecar)
        if start:
            sidecar.start()
        return sidecar

    return make, started


@pytest.fixture
def sidecar_factory(tmp_path: Path) -> Iterator[SidecarFactory]:
    """Start fresh sidecars for one test (own data dirs under ``tmp_path``); all stopped afterwards."""
    make, started = _factory(tmp_path)
    try:
        yield make
    finally:
        for sidecar in started:
            sidecar.close()


@pytest.fixture(scope="module")
def module_sidecar_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SidecarFactory]:
    make, started = _factory(tmp_path_factory.mktemp("sidecars"))
    try:
        yield make
    finally:
        for sidecar in started:
            sidecar.close()


@pytest.fixture(scope="module")
def sidecar(module_sidecar_factory: SidecarFactory) -> Sidecar:
    """One sidecar shared by the tests of a module (they use distinct services / trace IDs)."""
    return module_sidecar_factory("shared")


class SdkPipeline:
    """A TracerProvider whose spans go through a real OTLP exporter to a sidecar."""

    def __init__(
        self,
        sidecar: Sidecar,
        service: str,
        protocol: str = "grpc",
        *,
        batch: bool = False,
        resource_attrs: dict[str, Any] | None = None,
        compression: Any = None,
    ) -> None:
        if protocol == "grpc":
            inner: Any = GrpcSpanExporter(
                endpoint=sidecar.grpc_endpoint, insecure=True, timeout=10, compression=compression
            )
        elif protocol == "http":
            inner = HttpSpanExporter(endpoint=sidecar.traces_url, timeout=10, compression=compression)
        else:
            raise ValueError(protocol)
        self.exporter = RecordingExporter(inner)
        processor = BatchSpanProcessor(self.exporter) if batch else SimpleSpanProcessor(self.exporter)
        resource = Resource.create({"service.name": service, **(resource_attrs or {})})
        self.provider = TracerProvider(resource=resource)
        self.provider.add_span_processor(processor)
        self.tracer = self.provider.get_tracer("e2e.instrumentation", "2.3.4")

    def flush(self) -> None:
        assert self.provider.force_flush(30_000), "force_flush timed out"

    def shutdown(self) -> None:
        self.provider.shutdown()


@pytest.fixture
def sdk() -> Iterator[Callable[..., SdkPipeline]]:
    """``sdk(sidecar, service, protocol=...)`` -> SdkPipeline; providers are shut down afterwards."""
    pipelines: list[SdkPipeline] = []

    def make(sidecar: Sidecar, service: str, protocol: str = "grpc", **kwargs: Any) -> SdkPipeline:
        pipeline = SdkPipeline(sidecar, service, protocol, **kwargs)
        pipelines.append(pipeline)
        return pipeline

    try:
        yield make
    finally:
        for pipeline in pipelines:
            pipeline.shutdown()
