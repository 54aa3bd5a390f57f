"""configure_opentelemetry: the OpenTelemetry SDK pointed at a sidecar in one call.

The SDK and its OTLP/HTTP exporters are optional: they are imported when this function runs, not
when ``sidecar.client`` is imported, and a missing package is named in the ImportError. Metrics go
to ``/v1/metrics``, which the sidecar re-exposes on its Prometheus ``/metrics`` (not stored: they
live in the sidecar's memory); the SDK exports them every 60 s (``OTEL_METRIC_EXPORT_INTERVAL``).
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from typing import Any

from sidecar.client.events import DEFAULT_ENDPOINT

_PACKAGES = {
    "opentelemetry.sdk": "opentelemetry-sdk",
    "opentelemetry.exporter.otlp.proto.http": "opentelemetry-exporter-otlp-proto-http",
}


@dataclass(frozen=True, slots=True)
class Providers:
    """What configure_opentelemetry set up; ``shutdown()`` flushes and stops all of them."""

    tracer_provider: Any
    logger_provider: Any
    meter_provider: Any | None
    logging_handler: Any | None

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        ok = bool(self.tracer_provider.force_flush(timeout_millis))
        ok = bool(self.logger_provider.force_flush(timeout_millis)) and ok
        if self.meter_provider is not None:
            ok = bool(self.meter_provider.force_flush(timeout_millis)) and ok
        return ok

    def shutdown(self) -> None:
        if self.logging_handler is not None:
            logging.getLogger().removeHandler(self.logging_handler)
        self.tracer_provider.shutdown()
        self.logger_provider.shutdown()
        if self.meter_provider is not None:
            self.meter_provider.shutdown()


def _require(module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        package = next(p for prefix, p in _PACKAGES.items() if module.startswith(prefix))
        raise ImportError(
            f"sidecar.client.configure_opentelemetry needs the {package} package: pip install {package}"
        ) from exc


def configure_opentelemetry(
    service_name: str,
    *,
    endpoint: str = DEFAULT_ENDPOINT,
    resource_attributes: dict[str, Any] | None = None,
    metrics: bool = True,
    logging_handler: bool = False,
    set_global: bool = True,
) -> Providers:
    """Tracer, logger and meter providers exporting over OTLP/HTTP to ``endpoint``.

    Args:
        service_name: the resource's ``service.name``.
        endpoint: the sidecar's OTLP/HTTP base address; ``/v1/traces`` etc. are appended.
        resource_attributes: more resource attributes (``deployment.environment``, ...).
        metrics: configure a MeterProvider too (cumulative temporality, the SDK's default); False
            leaves the global meter provider alone.
        logging_handler: attach an OTel LoggingHandler to the root ``logging`` logger.
        set_global: install the providers as the process-wide ones.

    Returns:
        The providers, for ``force_flush()`` and ``shutdown()``.
    """
    resources = _require("opentelemetry.sdk.resources")
    sdk_trace = _require("opentelemetry.sdk.trace")
    trace_export = _require("opentelemetry.sdk.trace.export")
    sdk_logs = _require("opentelemetry.sdk._logs")
    logs_export = _require("opentelemetry.sdk._logs.export")
    span_exporter = _require("opentelemetry.exporter.otlp.proto.http.trace_exporter")
    log_exporter = _require("opentelemetry.exporter.otlp.proto.http._log_exporter")

    base = endpoint.rstrip("/")
    resource = resources.Resource.create({"service.name": service_name, **(resource_attributes or {})})
    tracer_provider = sdk_trace.TracerProvider(resource=resource)
    tracer_provider.add_span_processor(
        trace_export.BatchSpanProcessor(span_exporter.OTLPSpanExporter(endpoint=f"{base}/v1/traces"))
    )
    logger_provider = sdk_logs.LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(
        logs_export.BatchLogRecordProcessor(log_exporter.OTLPLogExporter(endpoint=f"{base}/v1/logs"))
    )
    meter_provider = None
    if metrics:
        sdk_metrics = _require("opentelemetry.sdk.metrics")
        metrics_export = _require("opentelemetry.sdk.metrics.export")
        metric_exporter = _require("opentelemetry.exporter.otlp.proto.http.metric_exporter")
        reader = metrics_export.PeriodicExportingMetricReader(
            metric_exporter.OTLPMetricExporter(endpoint=f"{base}/v1/metrics")
        )
        meter_provider = sdk_metrics.MeterProvider(resource=resource, metric_readers=[reader])
    handler = None
    if logging_handler:
        handler = sdk_logs.LoggingHandler(logger_provider=logger_provider)
        logging.getLogger().addHandler(handler)
    if set_global:
        importlib.import_module("opentelemetry.trace").set_tracer_provider(tracer_provider)
        importlib.import_module("opentelemetry._logs").set_logger_provider(logger_provider)
        if meter_provider is not None:
            importlib.import_module("opentelemetry.metrics").set_meter_provider(meter_provider)
    return Providers(tracer_provider, logger_provider, meter_provider, handler)
