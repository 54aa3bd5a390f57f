"""The sidecar's Python client: business events (EventClient) and the OTel SDK set up in one call.

Importing this package pulls in nothing server-side and nothing outside the standard library; the
OpenTelemetry SDK is imported only when configure_opentelemetry() runs.
"""

from sidecar.client.events import EventClient
from sidecar.client.otel import Providers, configure_opentelemetry

__all__ = ["EventClient", "Providers", "configure_opentelemetry"]
