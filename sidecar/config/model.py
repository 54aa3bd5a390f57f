"""Typed configuration model.

The dataclass nesting mirrors the YAML layout one-to-one, so a dotted path such as
``receivers.otlp.grpc.endpoint`` names both a YAML key and an attribute chain. Defaults live here
and only here; ``config/sidecar.yaml`` is checked against them by a unit test so it cannot drift.

Each section has ``validate(path)`` returning human-readable ``"dotted.path: reason"`` strings
instead of raising, so the loader can report every problem in one go.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

LOG_LEVELS: tuple[str, ...] = ("debug", "info", "warning", "error")
COMPRESSIONS: tuple[str, ...] = ("lz4", "zstd", "none")
MAX_MSG_SIZE_MIB = 2047  # gRPC and aiohttp both keep sizes in a signed 32-bit int (bytes)
_WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", ""})


def join_path(prefix: str, name: str) -> str:
    """Dotted path of ``name`` inside section ``prefix`` (the root section has an empty prefix)."""
    return f"{prefix}.{name}" if prefix else name


def split_endpoint(endpoint: str) -> tuple[str, int]:
    """Split ``HOST:PORT`` (IPv6 as ``[::1]:PORT``) into host and port, or raise ``ValueError``.

    Shared by validation and the servers so that what validates is exactly what gets bound.
    The returned host has IPv6 brackets removed, ready for ``socket.bind``.
    """
    if any(c.isspace() for c in endpoint):
        raise ValueError("must not contain whitespace")
    if endpoint.startswith("["):
        host, sep, port_text = endpoint[1:].partition("]:")
        if not sep or not host:
            raise ValueError("expected [IPV6]:PORT, e.g. [::1]:4317")
    else:
        host, sep, port_text = endpoint.rpartition(":")
        if not sep:
            raise ValueError("expected HOST:PORT, e.g. 127.0.0.1:4317")
        if not host:
            raise ValueError("missing host (use 0.0.0.0 to listen on all interfaces)")
        if ":" in host:
            raise ValueError("IPv6 addresses must be bracketed, e.g. [::1]:4317")
    if not port_text.isascii() or not port_text.isdigit():
        raise ValueError(f"port {port_text!r} is not a number")
    port = int(port_text)
    if not 1 <= port <= 65535:
        raise ValueError(f"port {port} is out of range 1-65535")
    return host, port


def _check_endpoint(path: str, endpoint: str) -> list[str]:
    try:
        split_endpoint(endpoint)
    except ValueError as exc:
        return [f"{path}: invalid endpoint {endpoint!r}: {exc}"]
    return []


def _check_int_range(path: str, value: int, low: int, high: int | None = None) -> list[str]:
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f">= {low}"
        return [f"{path}: must be {bound}, got {value}"]
    return []


def _check_choice(path: str, value: str, choices: tuple[str, ...]) -> list[str]:
    if value not in choices:
        return [f"{path}: must be one of {', '.join(choices)}; got {value!r}"]
    return []


@dataclass(frozen=True)
class GrpcReceiverConfig:
    """OTLP/gRPC receiver."""

    enabled: bool = True
    endpoint: str = "127.0.0.1:4317"
    max_recv_msg_size_mib: int = 64

    def validate(self, path: str) -> list[str]:
        """Endpoint syntax and message size; a disabled receiver is still checked to catch typos early."""
        return _check_endpoint(join_path(path, "endpoint"), self.endpoint) + _check_int_range(
            join_path(path, "max_recv_msg_size_mib"), self.max_recv_msg_size_mib, 1, MAX_MSG_SIZE_MIB
        )


@dataclass(frozen=True)
class HttpReceiverConfig:
    """OTLP/HTTP receiver; the body limit applies after decompression (zip-bomb guard)."""

    enabled: bool = True
    endpoint: str = "127.0.0.1:4318"
    max_request_body_size_mib: int = 64

    def validate(self, path: str) -> list[str]:
        """Endpoint syntax and body size limit."""
        return _check_endpoint(join_path(path, "endpoint"), self.endpoint) + _check_int_range(
            join_path(path, "max_request_body_size_mib"), self.max_request_body_size_mib, 1, MAX_MSG_SIZE_MIB
        )


@dataclass(frozen=True)
class OtlpReceiversConfig:
    """Both OTLP transports."""

    grpc: GrpcReceiverConfig = field(default_factory=GrpcReceiverConfig)
    http: HttpReceiverConfig = field(default_factory=HttpReceiverConfig)

    def validate(self, path: str) -> list[str]:
        """Delegates to each transport."""
        return self.grpc.validate(join_path(path, "grpc")) + self.http.validate(join_path(path, "http"))


@dataclass(frozen=True)
class ReceiversConfig:
    """All receivers (only OTLP today; the extra level leaves room for others)."""

    otlp: OtlpReceiversConfig = field(default_factory=OtlpReceiversConfig)

    def validate(self, path: str) -> list[str]:
        """Delegates to the OTLP section."""
        return self.otlp.validate(join_path(path, "otlp"))


@dataclass(frozen=True)
class ApiConfig:
    """Jaeger-compatible query API."""

    endpoint: str = "127.0.0.1:16686"
    default_search_limit: int = 20
    max_search_limit: int = 1500

    def validate(self, path: str) -> list[str]:
        """Endpoint syntax; the default limit must be servable under the maximum."""
        errors = _check_endpoint(join_path(path, "endpoint"), self.endpoint)
        errors += _check_int_range(join_path(path, "max_search_limit"), self.max_search_limit, 1)
        default_path, ceiling = join_path(path, "default_search_limit"), max(self.max_search_limit, 1)
        errors += _check_int_range(default_path, self.default_search_limit, 1, ceiling)
        return errors


@dataclass(frozen=True)
class TracesStorageConfig:
    """Trace data retention."""

    retention_days: int = 7

    def validate(self, path: str) -> list[str]:
        """Retention between one day and ten years."""
        return _check_int_range(join_path(path, "retention_days"), self.retention_days, 1, 3650)


@dataclass(frozen=True)
class EventsStorageConfig:
    """Business event retention: long, since product questions span quarters and years."""

    retention_days: int = 400
    # Comma-separated property names whose values the hourly count rollups also split by, so a
    # count broken down by one of them needs no scan. Changing them keeps every raw event;
    # ``sidecar events rebuild-rollups`` recomputes the rollups for the new list.
    rollup_dimensions: str = ""

    def dimensions(self) -> tuple[str, ...]:
        return tuple(d.strip() for d in self.rollup_dimensions.split(",") if d.strip())

    def validate(self, path: str) -> list[str]:
        """Retention between one day and ten years; at most MAX_DIMENSIONS dimensions, each a
        property name of at most 255 bytes."""
        errors = _check_int_range(join_path(path, "retention_days"), self.retention_days, 1, 3650)
        dims = self.dimensions()
        where = join_path(path, "rollup_dimensions")
        if len(dims) > MAX_DIMENSIONS:
            errors.append(f"{where}: {len(dims)} properties; the limit is {MAX_DIMENSIONS}")
        errors += [f"{where}: {d[:40]!r} is longer than 255 bytes" for d in dims if len(d.encode()) > 255]
        return errors


MAX_DIMENSIONS = 5


@dataclass(frozen=True)
class LogsStorageConfig:
    """Log record retention, independent of traces: whole days of logs are dropped."""

    retention_days: int = 7

    def validate(self, path: str) -> list[str]:
        """Retention between one day and ten years."""
        return _check_int_range(join_path(path, "retention_days"), self.retention_days, 1, 3650)


@dataclass(frozen=True)
class StorageConfig:
    """RocksDB tuning; sizes are MiB so the YAML stays readable."""

    traces: TracesStorageConfig = field(default_factory=TracesStorageConfig)
    logs: LogsStorageConfig = field(default_factory=LogsStorageConfig)
    events: EventsStorageConfig = field(default_factory=EventsStorageConfig)
    block_cache_mib: int = 32
    write_buffer_mib: int = 16
    max_write_buffers: int = 3
    compression: str = "lz4"
    bloom_bits_per_key: int = 10
    wal_sync: bool = False
    retention_check_interval_s: int = 60

    @property
    def memtable_cap_mib(self) -> int:
        """Upper bound of memtable memory, for sizing the process."""
        return self.write_buffer_mib * self.max_write_buffers

    def validate(self, path: str) -> list[str]:
        """Ranges RocksDB itself would reject or misbehave with."""
        p = path
        return (
            self.traces.validate(join_path(p, "traces"))
            + self.logs.validate(join_path(p, "logs"))
            + self.events.validate(join_path(p, "events"))
            + _check_int_range(join_path(p, "block_cache_mib"), self.block_cache_mib, 1)
            + _check_int_range(join_path(p, "write_buffer_mib"), self.write_buffer_mib, 1)
            + _check_int_range(join_path(p, "max_write_buffers"), self.max_write_buffers, 2)
            + _check_choice(join_path(p, "compression"), self.compression, COMPRESSIONS)
            + _check_int_range(join_path(p, "bloom_bits_per_key"), self.bloom_bits_per_key, 0, 32)
            + _check_int_range(join_path(p, "retention_check_interval_s"), self.retention_check_interval_s, 1)
        )


@dataclass(frozen=True)
class EventsIngestConfig:
    """Limits and CORS of ``POST /v1/events``: what one business event and one request may hold."""

    max_name_length: int = 256
    max_properties: int = 100
    max_value_bytes: int = 4096
    max_events_per_request: int = 10000
    max_past_days: int = 0  # 0: as far back as storage.events.retention_days
    max_future_s: int = 600
    max_batch_events: int = 16384
    max_queue_events: int = 262144
    cors_allowed_origins: str = ""  # comma-separated; "*" for any origin

    def origins(self) -> frozenset[str]:
        """The allowed origins as a set (empty: CORS off)."""
        return frozenset(o.strip().rstrip("/") for o in self.cors_allowed_origins.split(",") if o.strip())

    def validate(self, path: str) -> list[str]:
        """Positive limits; the queue must hold a full batch."""
        errors: list[str] = []
        for name in ("max_name_length", "max_properties", "max_value_bytes", "max_events_per_request"):
            errors += _check_int_range(join_path(path, name), getattr(self, name), 1)
        errors += _check_int_range(join_path(path, "max_past_days"), self.max_past_days, 0, 3650)
        errors += _check_int_range(join_path(path, "max_future_s"), self.max_future_s, 0)
        errors += _check_int_range(join_path(path, "max_batch_events"), self.max_batch_events, 1)
        if self.max_queue_events < max(self.max_batch_events, 1):
            errors.append(
                f"{join_path(path, 'max_queue_events')}: must be >= {join_path(path, 'max_batch_events')} "
                f"({self.max_batch_events}), got {self.max_queue_events}"
            )
        return errors


@dataclass(frozen=True)
class IngestConfig:
    """Batching and back-pressure between receivers and storage."""

    max_batch_spans: int = 16384
    max_queue_spans: int = 262144
    max_batch_log_records: int = 16384
    max_queue_log_records: int = 262144
    events: EventsIngestConfig = field(default_factory=EventsIngestConfig)

    def validate(self, path: str) -> list[str]:
        """The queue must hold at least one full batch, or batches could never form."""
        errors = _check_int_range(join_path(path, "max_batch_spans"), self.max_batch_spans, 1)
        if self.max_queue_spans < max(self.max_batch_spans, 1):
            errors.append(
                f"{join_path(path, 'max_queue_spans')}: must be >= ingest.max_batch_spans "
                f"({self.max_batch_spans}), got {self.max_queue_spans}"
            )
        errors += _check_int_range(join_path(path, "max_batch_log_records"), self.max_batch_log_records, 1)
        if self.max_queue_log_records < max(self.max_batch_log_records, 1):
            errors.append(
                f"{join_path(path, 'max_queue_log_records')}: must be >= ingest.max_batch_log_records "
                f"({self.max_batch_log_records}), got {self.max_queue_log_records}"
            )
        return errors + self.events.validate(join_path(path, "events"))


MAX_EVENT_METRIC_DIMENSIONS = 10
# Label names no configured dimension may take, whatever the family: Prometheus reserves ``__*``,
# ``le`` and ``quantile`` are its bucket and quantile labels, ``otel_metric_overflow`` marks the
# overflow series, and ``job``/``instance`` are the target labels a scrape attaches (a clash would
# be renamed ``exported_*`` by Prometheus, silently).
RESERVED_LABELS = ("le", "quantile", "otel_metric_overflow", "job", "instance")


def check_dimension_labels(where: str, pairs: Sequence[tuple[str, str]], own: Sequence[str]) -> list[str]:
    """Errors for configured dimensions, given as (name as configured, label name): a reserved label
    (``__*``, :data:`RESERVED_LABELS`, or one of the family's ``own`` labels), or two alike."""
    errors: list[str] = []
    seen: dict[str, str] = {}
    for name, label in pairs:
        if label.startswith("__") or label in RESERVED_LABELS:
            errors.append(f"{where}: {name!r} would be the label {label!r}, which is reserved")
        elif label in own:
            errors.append(f"{where}: {name!r} would be the label {label!r}, which the family already has")
        elif label in seen:
            errors.append(f"{where}: {seen[label]!r} and {name!r} are both the label {label!r}")
        seen.setdefault(label, name)
    return errors


def prometheus_label(name: str) -> str:
    """A property name as a Prometheus label name: the OTel-to-Prometheus rule (every character
    outside ``[a-zA-Z0-9_]`` becomes ``_``, a leading digit gets ``key_``)."""
    label = "".join(c if (c.isascii() and (c.isalnum() or c == "_")) else "_" for c in name)
    return "key_" + label if label[:1].isdigit() else label


@dataclass(frozen=True)
class EventMetricsConfig:
    """``sidecar_events_total``'s labels beyond ``event_name``: event properties, by name."""

    dimensions: str = ""  # comma-separated property names; an event without one gets ""

    def labels(self) -> tuple[tuple[str, str], ...]:
        """(property name, label name) per configured dimension, in order."""
        names = [d.strip() for d in self.dimensions.split(",") if d.strip()]
        return tuple((name, prometheus_label(name)) for name in names)

    def validate(self, path: str) -> list[str]:
        where = join_path(path, "dimensions")
        pairs = self.labels()
        errors = []
        if len(pairs) > MAX_EVENT_METRIC_DIMENSIONS:
            errors.append(f"{where}: {len(pairs)} properties; the limit is {MAX_EVENT_METRIC_DIMENSIONS}")
        return errors + check_dimension_labels(where, pairs, ("event_name",))


# The spanmetrics connector's default buckets (defaultHistogramBucketsMs), in seconds.
SPAN_METRICS_BUCKETS = "0.002,0.004,0.006,0.008,0.01,0.05,0.1,0.2,0.4,0.8,1,1.4,2,5,10,15"
# The span metrics families' own labels (``service`` is the Tempo family's).
SPAN_METRICS_LABELS = ("service_name", "span_name", "span_kind", "status_code", "service")
MAX_SPAN_DIMENSIONS = 10


@dataclass(frozen=True)
class SpanMetricsConfig:
    """RED metrics per service and operation, named as the Collector's spanmetrics connector does."""

    enabled: bool = True
    # Comma-separated extra labels: ``name`` or ``name:default``. The value is the span attribute
    # ``name``, else the resource attribute, else the default (else empty); the label is ``name``
    # with every character outside [A-Za-z0-9_] as ``_`` (``http.route`` -> ``http_route``).
    dimensions: str = ""
    buckets: str = SPAN_METRICS_BUCKETS  # comma-separated upper bounds in seconds
    unit_milliseconds: bool = False  # traces_span_metrics_duration_milliseconds (Jaeger SPM's unit)
    tempo_compatible: bool = False  # also Tempo's traces_spanmetrics_calls_total / _latency family

    def dimension_list(self) -> list[tuple[str, str | None]]:
        """(attribute name, default or None) per configured dimension."""
        out: list[tuple[str, str | None]] = []
        for item in self.dimensions.split(","):
            if item.strip():
                name, sep, default = item.strip().partition(":")
                out.append((name.strip(), default.strip() if sep else None))
        return out

    def bucket_list(self) -> list[float]:
        """Upper bounds in seconds, sorted; raises ValueError naming a bad one."""
        bounds = []
        for item in self.buckets.split(","):
            if item.strip():
                try:
                    bounds.append(float(item))
                except ValueError:
                    raise ValueError(f"{item.strip()!r} is not a number") from None
        return sorted(set(bounds))

    def validate(self, path: str) -> list[str]:
        """Dimensions: at most MAX_SPAN_DIMENSIONS, named, labels distinct and neither reserved nor
        the families' own (``check_dimension_labels``); buckets: 1 to 100 finite numbers > 0."""
        errors: list[str] = []
        where = join_path(path, "dimensions")
        dims = self.dimension_list()
        if len(dims) > MAX_SPAN_DIMENSIONS:
            errors.append(f"{where}: {len(dims)} dimensions; the limit is {MAX_SPAN_DIMENSIONS}")
        if any(not name for name, _ in dims):
            errors.append(f"{where}: a dimension has no attribute name (expected name or name:default)")
        pairs = [(name, label_name(name)) for name, _ in dims if name]
        errors += check_dimension_labels(where, pairs, SPAN_METRICS_LABELS)
        where = join_path(path, "buckets")
        try:
            bounds = self.bucket_list()
        except ValueError as exc:
            return [*errors, f"{where}: {exc}"]
        if not 1 <= len(bounds) <= 100:
            errors.append(f"{where}: expected 1 to 100 bounds, got {len(bounds)}")
        if any(not math.isfinite(b) or b <= 0 for b in bounds):
            errors.append(f"{where}: bounds must be finite numbers > 0 (seconds)")
        return errors


def label_name(attribute: str) -> str:
    """A Prometheus label name for an attribute name: other characters as ``_``, no leading digit."""
    label = "".join(c if c.isascii() and (c.isalnum() or c == "_") else "_" for c in attribute)
    return "_" + label if label[:1].isdigit() else label


@dataclass(frozen=True)
class ServiceGraphConfig:
    """Calls between services as the Collector's servicegraph connector counts them; ``wait_s`` and
    ``max_pending`` also govern the pairing behind ``/api/dependencies``."""

    enabled: bool = True
    wait_s: float = 10.0  # how long a client or server half waits for the other (store.ttl / wait)
    max_pending: int = 16_384  # halves waiting per side; past it new ones are dropped and counted

    def validate(self, path: str) -> list[str]:
        errors = _check_int_range(join_path(path, "max_pending"), self.max_pending, 1, 10_000_000)
        if math.isnan(self.wait_s) or not 0 < self.wait_s <= 3600:
            errors.append(f"{join_path(path, 'wait_s')}: must be > 0 and <= 3600 seconds, got {self.wait_s}")
        return errors


MIN_STALENESS_S, MAX_STALENESS_S = 1.0, 7 * 86400.0
# String keys that hold a comma-separated list: a YAML list is taken too (its items joined by ",").
COMMA_SEPARATED_KEYS = frozenset(
    {
        "storage.events.rollup_dimensions",
        "ingest.events.cors_allowed_origins",
        "metrics.events.dimensions",
        "metrics.spanmetrics.dimensions",
        "metrics.spanmetrics.buckets",
    }
)
# String keys that hold a duration: a bare YAML number is taken too, as seconds.
DURATION_KEYS = frozenset({"metrics.staleness"})
_DURATION = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ms|s|m|h|d)?")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration_s(text: str, low: float, high: float) -> float:
    """``"5m"``, ``"300s"``, ``"1.5h"``, ``"1d"``, ``"250ms"`` or plain seconds (``"300"``), within
    [low, high]."""
    found = _DURATION.fullmatch(text.strip())
    if found is None:
        raise ValueError(
            f"{text!r} is not a duration; use a number with ms, s, m, h or d (5m, 300s, 1d) or seconds"
        )
    seconds = float(found.group(1)) * _DURATION_UNITS[found.group(2)]
    if not low <= seconds <= high:
        raise ValueError(f"must be between {low:g} s and {high:g} s, got {text!r}")
    return seconds


@dataclass(frozen=True)
class MetricsConfig:
    """Prometheus exposition (``/metrics``) and the families derived from ingested data."""

    listen: str = ""  # HOST:PORT of a separate /metrics server; empty: /metrics on the API address
    series_limit: int = 2000  # series per derived family; past it they fold into the overflow series
    # How long an OTLP metric series stays exposed after its latest point: "5m", "300s" or seconds.
    staleness: str = "5m"
    events: EventMetricsConfig = field(default_factory=EventMetricsConfig)
    spanmetrics: SpanMetricsConfig = field(default_factory=SpanMetricsConfig)
    servicegraph: ServiceGraphConfig = field(default_factory=ServiceGraphConfig)

    def validate(self, path: str) -> list[str]:
        errors = _check_endpoint(join_path(path, "listen"), self.listen) if self.listen else []
        errors += self.events.validate(join_path(path, "events"))
        errors += self.spanmetrics.validate(join_path(path, "spanmetrics"))
        errors += self.servicegraph.validate(join_path(path, "servicegraph"))
        try:
            self.staleness_s()
        except ValueError as exc:
            errors.append(f"{join_path(path, 'staleness')}: {exc}")
        return errors + _check_int_range(join_path(path, "series_limit"), self.series_limit, 1, 1_000_000)

    def staleness_s(self) -> float:
        """``staleness`` in seconds; ValueError names what is wrong with it."""
        return parse_duration_s(self.staleness, MIN_STALENESS_S, MAX_STALENESS_S)


@dataclass(frozen=True)
class Config:
    """Root of the sidecar configuration."""

    data_dir: str = "./data"
    log_level: str = "info"
    shutdown_timeout_s: float = 8.0
    receivers: ReceiversConfig = field(default_factory=ReceiversConfig)
    api: ApiConfig = field(default_factory=ApiConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)

    def __post_init__(self) -> None:
        """``DEBUG``, ``Info`` and ``WARNING`` are the same levels to a user (Python's logging names them
        in upper case), so any case is taken and kept lowercase; an unknown level stays as written so
        the validation error quotes what the user typed."""
        level = self.log_level
        if isinstance(level, str) and level.lower() in LOG_LEVELS:
            object.__setattr__(self, "log_level", level.lower())

    def validate(self, path: str = "") -> list[str]:
        """Checks every section plus cross-section rules (listeners must not collide)."""
        errors: list[str] = []
        if not self.data_dir.strip():
            errors.append(f"{join_path(path, 'data_dir')}: must not be empty")
        errors += _check_choice(join_path(path, "log_level"), self.log_level, LOG_LEVELS)
        timeout = self.shutdown_timeout_s
        if math.isnan(timeout) or not 0 < timeout <= 60:
            errors.append(f"{join_path(path, 'shutdown_timeout_s')}: must be > 0 and <= 60, got {timeout}")
        errors += self.receivers.validate(join_path(path, "receivers"))
        errors += self.api.validate(join_path(path, "api"))
        errors += self.storage.validate(join_path(path, "storage"))
        errors += self.ingest.validate(join_path(path, "ingest"))
        errors += self.metrics.validate(join_path(path, "metrics"))
        return errors + self._listener_conflicts(path)

    def _listener_conflicts(self, path: str) -> list[str]:
        """Two enabled listeners on one port would fail at bind time with a less helpful message."""
        otlp = self.receivers.otlp
        listeners = [
            ("receivers.otlp.grpc.endpoint", otlp.grpc.endpoint, otlp.grpc.enabled),
            ("receivers.otlp.http.endpoint", otlp.http.endpoint, otlp.http.enabled),
            ("api.endpoint", self.api.endpoint, True),
            ("metrics.listen", self.metrics.listen, bool(self.metrics.listen)),
        ]
        seen: list[tuple[str, str, int]] = []
        errors: list[str] = []
        for name, endpoint, enabled in listeners:
            if not enabled:
                continue
            try:
                host, port = split_endpoint(endpoint)
            except ValueError:
                continue  # already reported by the section's own validation
            for other_name, other_host, other_port in seen:
                same_host = host == other_host or host in _WILDCARD_HOSTS or other_host in _WILDCARD_HOSTS
                if port == other_port and same_host:
                    errors.append(
                        f"{join_path(path, name)}: {endpoint} conflicts with {join_path(path, other_name)}"
                    )
            seen.append((name, host, port))
        return errors
