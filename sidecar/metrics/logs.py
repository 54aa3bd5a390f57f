"""``sidecar_log_records_total{service_name, severity}``: log records stored, per service and
severity, the severity being the OpenTelemetry severity text of ``severity_number``'s range.

The OTel log data model splits severity numbers into six ranges of four: 1-4 TRACE, 5-8 DEBUG,
9-12 INFO, 13-16 WARN, 17-20 ERROR, 21-24 FATAL; 0 is UNSPECIFIED. The label is the range's
short name (``INFO`` for INFO2..INFO4 too), whatever ``severity_text`` the record carries, so an
application's own spellings (``warning``, ``Information``) cannot split a series. Counted per
batch: a ``Counter`` over each group's severity column, then one lookup per distinct series.
"""

from __future__ import annotations

from collections import Counter

from sidecar.metrics.families import CounterFamily, Overflows
from sidecar.storage.prepared_logs import PreparedLogs

FAMILY = "sidecar_log_records"
_RANGES = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")
# severity_number -> its range's name; ingest refuses numbers outside 0..24.
SEVERITY: tuple[str, ...] = ("UNSPECIFIED", *(name for name in _RANGES for _ in range(4)))


def severity_name(number: int) -> str:
    return SEVERITY[number] if 0 <= number < len(SEVERITY) else "UNSPECIFIED"


class LogCounters:
    """The log pipeline's tap consumer."""

    def __init__(self, limit: int, overflows: Overflows) -> None:
        self.family = CounterFamily(
            FAMILY,
            "Log records stored, by service and OpenTelemetry severity range (UNSPECIFIED for 0)",
            ("service_name", "severity"),
            limit,
            overflows,
        )

    async def consume(self, batch: PreparedLogs) -> None:
        totals: Counter[tuple[str, str]] = Counter()
        for group in batch.groups:
            service = group.resource.service
            for number, count in Counter(group.severities).items():
                totals[(service, severity_name(number))] += count
        if totals:
            self.family.add_many(totals.items())
