"""OTLP metric and attribute names as Prometheus names: the OTel -> Prometheus compatibility rules.

The rules are those of the OpenTelemetry specification (compatibility/prometheus_and_openmetrics.md)
as the Collector's ``prometheus`` exporter applies them by default (``prometheus/otlptranslator``,
strategy ``UnderscoreEscapingWithSuffixes``):

- a metric name keeps ``[a-zA-Z0-9:]``; every run of other characters (``_`` included) is one
  ``_``, with none at either end; a leading digit gets a ``_`` before it;
- the unit's suffix follows, from UCUM (``s`` -> ``seconds``, ``By`` -> ``bytes``, ``x/y`` ->
  ``x_per_y``), unless the name already holds that word; a unit in braces (``{request}``) adds
  nothing, nor does ``1``;
- a monotonic sum ends in ``_total`` (one, wherever else ``total`` was), a gauge with unit ``1`` in
  ``_ratio``;
- an attribute key keeps ``[a-zA-Z0-9_]``, other characters become ``_`` and runs of ``_`` one
  ``_``; a key then starting with a digit gets ``key_`` before it, one starting with ``_`` ``key``.

Names repeat from export to export, so each function caches its answers (bounded).
"""

from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

COUNTER = "counter"
GAUGE = "gauge"
HISTOGRAM = "histogram"
SUMMARY = "summary"

# UCUM units -> Prometheus words (otlptranslator's unitMap); "1" adds no word.
UNITS = {
    "d": "days",
    "h": "hours",
    "min": "minutes",
    "s": "seconds",
    "ms": "milliseconds",
    "us": "microseconds",
    "ns": "nanoseconds",
    "By": "bytes",
    "KiBy": "kibibytes",
    "MiBy": "mebibytes",
    "GiBy": "gibibytes",
    "TiBy": "tibibytes",
    "KBy": "kilobytes",
    "MBy": "megabytes",
    "GBy": "gigabytes",
    "TBy": "terabytes",
    "m": "meters",
    "V": "volts",
    "A": "amperes",
    "J": "joules",
    "W": "watts",
    "g": "grams",
    "Cel": "celsius",
    "Hz": "hertz",
    "1": "",
    "%": "percent",
}
# The unit after "/" is singular: By/s -> bytes_per_second.
PER_UNITS = {"s": "second", "m": "minute", "h": "hour", "d": "day", "w": "week", "mo": "month", "y": "year"}

_NAME_SEPARATORS = re.compile(r"[^a-zA-Z0-9:]+")
_LABEL_INVALID = re.compile(r"[^a-zA-Z0-9_]")
_UNIT_INVALID = re.compile(r"[^a-zA-Z0-9_]+")
_UNDERSCORES = re.compile(r"__+")
_CACHE_SIZE = 10_000


def _cached(compute: Callable[..., str]) -> Callable[..., str]:
    """Memoise a pure naming function; the cache is cleared when full (names are few in practice)."""
    cache: dict[tuple[object, ...], str] = {}

    def cached(*args: object) -> str:
        found = cache.get(args)
        if found is None:
            if len(cache) >= _CACHE_SIZE:
                cache.clear()
            found = cache[args] = compute(*args)
        return found

    return cached


def _clean_unit(unit: str) -> str:
    """A unit word as it may stand in a name: invalid characters as single ``_``, none at the ends."""
    return _UNIT_INVALID.sub("_", unit).strip("_")


def unit_suffixes(unit: str) -> tuple[str, str]:
    """(main word, ``per_`` word) for a UCUM unit; "" where the unit adds nothing."""
    main_unit, slash, per_unit = unit.partition("/")
    main_unit = main_unit.strip()
    main = ""
    if main_unit and "{" not in main_unit and "}" not in main_unit:
        main = _clean_unit(UNITS.get(main_unit, main_unit))
    per = ""
    per_unit = per_unit.strip()
    if slash and per_unit and "{" not in per_unit and "}" not in per_unit:
        word = _clean_unit(PER_UNITS.get(per_unit, per_unit))
        per = f"per_{word}" if word else ""
    return main, per


@_cached
def metric_name(name: str, unit: str, kind: str, monotonic: bool) -> str:
    """The Prometheus name of an OTLP metric; "" when nothing of the name is usable.

    ``kind`` is the OTLP data kind (``gauge``, ``sum``, ``histogram``, ``exponential_histogram``,
    ``summary``); ``monotonic`` matters for sums only.
    """
    tokens = [t for t in _NAME_SEPARATORS.split(name) if t]
    if not tokens:
        return ""
    main, per = unit_suffixes(unit)
    if main and main not in tokens:
        tokens.append(main)
    if per and per not in tokens:
        tokens.append(per)
    if kind == "sum" and monotonic:
        tokens = [t for t in tokens if t != "total"] + ["total"]
    if unit == "1" and kind == "gauge":
        tokens = [t for t in tokens if t != "ratio"] + ["ratio"]
    joined = "_".join(tokens)
    return "_" + joined if joined[0].isdigit() else joined


@_cached
def label_name(key: str) -> str:
    """The Prometheus label name of an attribute key; "" for an empty key (the attribute is dropped)."""
    if not key:
        return ""
    label = _UNDERSCORES.sub("_", _LABEL_INVALID.sub("_", key))
    if label[0].isdigit():
        return "key_" + label
    if label[0] == "_":
        return "key" + label
    return label


def prometheus_type(kind: str, monotonic: bool) -> str:
    """How an OTLP data kind is exposed: monotonic sums are counters, other sums gauges, and
    exponential histograms classic histograms."""
    if kind == "sum":
        return COUNTER if monotonic else GAUGE
    if kind == "exponential_histogram":
        return HISTOGRAM
    return kind


def label_value(value: Any) -> str:
    """An attribute value as label text, as the specification's attribute rules (and the Collector's
    ``AsString``) write it: text as is, ``true``/``false``, decimal numbers without an exponent,
    base64 for bytes, JSON for lists and maps, "" for an empty value."""
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return str(value.string_value)
    if kind is None:
        return ""
    return _text(_plain(value, kind))


def _plain(value: Any, kind: str | None = None) -> Any:
    kind = kind or value.WhichOneof("value")
    if kind == "array_value":
        return [_plain(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _plain(kv.value) for kv in value.kvlist_value.values}
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    return None if kind is None else getattr(value, kind)


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "+Inf" if value > 0 else "-Inf"
        if value.is_integer() and abs(value) < 2**63:
            return str(int(value))
        return format(Decimal(repr(value)), "f")
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
