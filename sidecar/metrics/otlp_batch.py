"""What metrics ingest hands on: one request's valid data points, grouped by resource and scope.

Like ``storage/prepared.py`` for traces, it sits on the consuming side: ingest imports it, the
metrics package never imports ingest. OTLP metrics are not stored; the consumer applies a batch to
the in-memory state that ``/metrics`` exposes (``otlp_state.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MAX_ERROR_MESSAGES = 5

# OTLP data kinds, as the Metric ``data`` oneof names them.
GAUGE = "gauge"
SUM = "sum"
HISTOGRAM = "histogram"
EXPONENTIAL_HISTOGRAM = "exponential_histogram"
SUMMARY = "summary"


@dataclass(slots=True)
class MetricIn:
    """One OTLP Metric with the data points that passed validation (protobuf messages, read as is)."""

    name: str
    description: str
    unit: str
    kind: str  # GAUGE, SUM, HISTOGRAM, EXPONENTIAL_HISTOGRAM or SUMMARY
    delta: bool  # AGGREGATION_TEMPORALITY_DELTA (sums and histograms); False for the other kinds
    monotonic: bool  # sums only
    points: list[Any]
    path: str  # resourceMetrics[i].scopeMetrics[j].metrics[k], for error messages


@dataclass(slots=True)
class ScopeGroup:
    """The metrics of one (resource, scope) of a request."""

    resource: list[Any]  # the Resource's KeyValues
    scope_name: str
    scope_version: str
    scope_attributes: list[Any]  # KeyValues
    metrics: list[MetricIn] = field(default_factory=list)


@dataclass(slots=True)
class PreparedMetrics:
    """A decoded request: ``accepted``/``rejected`` count data points, as ``rejected_data_points`` does."""

    groups: list[ScopeGroup]
    accepted: int
    rejected: int
    messages: list[str] = field(default_factory=list)
    described: int = 0  # rejected points the messages account for

    def reject(self, points: int, message: str) -> None:
        """Refuse ``points`` accepted points after decoding (the consumer's reasons: a type conflict,
        the series limit); the answer's ``partial_success`` then names them."""
        self.accepted -= points
        self.rejected += points
        self.note(points, message)

    def note(self, points: int, message: str) -> None:
        if len(self.messages) < MAX_ERROR_MESSAGES:
            self.messages.append(message)
            self.described += points

    def error_message(self) -> str:
        if not self.rejected:
            return ""
        shown = "; ".join(self.messages)
        more = self.rejected - self.described
        return f"{self.rejected} data point(s) rejected: {shown}" + (f"; and {more} more" if more > 0 else "")
