"""``sidecar_events_total{event_name, <dimensions>}``: business events stored, per name and the
configured properties (``metrics.events.dimensions``).

A tap of both event pipelines (``POST /v1/events`` and OTLP log records with an ``event_name``):
each batch is counted once with a ``collections.Counter`` over its label tuples, then added to the
family under one lock, so a batch costs a dict update per event and a lookup per distinct series.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from sidecar.metrics.families import CounterFamily, Overflows
from sidecar.storage.rocks.events.merge import EventBatch

FAMILY = "sidecar_events"


def _label_value(value: object) -> str:
    """A property as label text: as stored (a bool as ``true``/``false``, as JSON writes it)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class EventCounters:
    """The tap's consumer; one instance may serve several taps (the family has its own lock)."""

    def __init__(self, dimensions: Sequence[tuple[str, str]], limit: int, overflows: Overflows) -> None:
        """``dimensions``: (property name, label name) pairs, from ``EventMetricsConfig.labels``."""
        self._properties = tuple(prop for prop, _ in dimensions)
        self.family = CounterFamily(
            FAMILY,
            "Business events stored, by name and the configured properties (metrics.events.dimensions)",
            ("event_name", *(label for _, label in dimensions)),
            limit,
            overflows,
        )

    async def consume(self, batch: EventBatch) -> None:
        events = batch.events
        if batch.duplicates:
            # A resent id is acknowledged but not stored again, so not counted again. The batch does
            # not say which were resent; a resend is normally whole (every id known), and in a mixed
            # batch the first ``duplicates`` events that carry an id are taken as the resent ones.
            skip = batch.duplicates
            kept = []
            for event in events:
                if skip and event.id is not None:
                    skip -= 1
                    continue
                kept.append(event)
            events = kept
        if not events:
            return
        props = self._properties
        counts: Counter[tuple[str, ...]]
        if not props:
            counts = Counter((e.name,) for e in events)
        else:
            counts = Counter((e.name, *(_label_value(e.properties.get(p)) for p in props)) for e in events)
        self.family.add_many(counts.items())
