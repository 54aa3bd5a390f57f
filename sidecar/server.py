"""The ``sidecar serve`` process: wires store, writer, receivers and API, and shuts them down in order.

Shutdown order matters for the no-loss promise: stop accepting, let in-flight exports finish (they
wait for the writer), drain the write queue, then flush and close RocksDB. A listener that cannot
bind at start-up takes the same path, then ``serve`` prints one line naming the address, the config
key and the flag, and exits 2: a taken port is an operator mistake, like a data dir in use.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import signal
import sys
from collections.abc import Awaitable
from typing import Any, TypeVar

from aiohttp import web

from sidecar.api.analytics import EVENT_COLUMNS
from sidecar.api.app import build_api_app
from sidecar.api.context import ApiContext, Health
from sidecar.api.events import EVENT_READER
from sidecar.api.logs import LOG_READER
from sidecar.api.metrics import add_metrics_route, metrics_app
from sidecar.api.timing import timing
from sidecar.config.model import Config, split_endpoint
from sidecar.core.heap import fix_mmap_threshold, trim_heap_forever
from sidecar.ingest.events import Limits
from sidecar.ingest.traces import prepare_traces
from sidecar.metrics.events import EventCounters
from sidecar.metrics.logs import LogCounters
from sidecar.metrics.otlp_state import OtlpMetrics
from sidecar.metrics.registry import Metrics
from sidecar.metrics.self_receivers import HttpServerMetrics, ReceiverMetrics
from sidecar.metrics.self_storage import StorageMetrics
from sidecar.metrics.servicegraph import ServiceGraphMetrics
from sidecar.metrics.spans import SpanMetrics
from sidecar.pipeline.consumer import Consumer, StoreConsumer
from sidecar.pipeline.fanout import FanOut, Tap
from sidecar.pipeline.log_events import LogsWithEvents
from sidecar.query.traces import TraceQueryService
from sidecar.receivers.events_http import EventsReceiver
from sidecar.receivers.export import exporters
from sidecar.receivers.http_log import HttpServerLog
from sidecar.receivers.listen import CannotListen, bind_error_reason
from sidecar.receivers.otlp_grpc import OtlpGrpcReceiver
from sidecar.receivers.otlp_http import OtlpHttpReceiver
from sidecar.receivers.rejections import RateLimitedLog, rejection_log
from sidecar.storage.prepared import PreparedTraces
from sidecar.storage.rocks.db import DataDirInUse, RocksStore, StoreOptions
from sidecar.storage.rocks.events.columns import EventColumns
from sidecar.storage.rocks.events.reader import EventReader
from sidecar.storage.rocks.events.registry import EventRegistry
from sidecar.storage.rocks.events.writer import EventWriter
from sidecar.storage.rocks.logs.merge import attribute_keys
from sidecar.storage.rocks.logs.reader import LogReader
from sidecar.storage.rocks.logs.writer import LogWriter
from sidecar.storage.rocks.reader import RocksReader
from sidecar.storage.rocks.registry import Registry
from sidecar.storage.rocks.retention import Retention
from sidecar.storage.rocks.traces.writer import TraceWriter
from sidecar.storage.rocks.write_queue import WriteQueue

log = logging.getLogger("sidecar")
T = TypeVar("T")


def setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def open_store(config: Config) -> tuple[RocksStore, Registry]:
    store = RocksStore(config.data_dir, StoreOptions.from_config(config.storage))
    return store, Registry(store.db)


async def _start_site(
    app: web.Application, endpoint: str, shutdown_timeout: float, logger: HttpServerLog
) -> web.AppRunner:
    host, port = split_endpoint(endpoint)
    runner = web.AppRunner(
        app, access_log=None, handle_signals=False, shutdown_timeout=shutdown_timeout, logger=logger
    )
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port, reuse_address=True).start()
    except BaseException:
        await runner.cleanup()  # the caller never gets the runner to clean up
        raise
    return runner


async def _listen(endpoint: str, key: str, flag: str, start: Awaitable[T]) -> T:
    """Await a listener's start; a bind failure becomes :class:`CannotListen`, without a traceback."""
    try:
        return await start
    except OSError as exc:
        raise CannotListen(endpoint, key, flag, bind_error_reason(exc)) from None


def trace_taps(config: Config, metrics: Metrics) -> list[Tap[PreparedTraces]]:
    """Span metrics and the service graph, each a tap of its own on the traces the store acknowledged."""
    taps: list[Tap[PreparedTraces]] = []
    if config.metrics.spanmetrics.enabled:
        spans = SpanMetrics(config.metrics.spanmetrics, metrics.series_limit, metrics.overflows)
        metrics.add(spans.collect)
        taps.append(Tap(spans, "span metrics"))
    if config.metrics.servicegraph.enabled:
        graph = ServiceGraphMetrics(config.metrics.servicegraph, metrics.series_limit, metrics.overflows)
        metrics.add(graph.collect)
        taps.append(Tap(graph, "service graph"))
    return taps


async def run(config: Config) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    health = Health()
    metrics = Metrics(config.metrics.series_limit)
    # The sidecar's own metrics, and the event and log counters (taps of their pipelines).
    receiver_metrics = ReceiverMetrics(metrics.series_limit, metrics.overflows)
    http_metrics = HttpServerMetrics(metrics.series_limit, metrics.overflows)
    event_counters = EventCounters(config.metrics.events.labels(), metrics.series_limit, metrics.overflows)
    log_counters = LogCounters(metrics.series_limit, metrics.overflows)
    for source in (event_counters.family, log_counters.family, receiver_metrics, http_metrics):
        metrics.add(source.collect)
    grace = config.shutdown_timeout_s / 2
    store, registry = open_store(config)
    queue = WriteQueue(store)
    writer = TraceWriter(
        queue,
        registry,
        config.ingest.max_batch_spans,
        config.ingest.max_queue_spans,
        reprepare=functools.partial(prepare_traces, well_formed=True),
        graph_wait_s=config.metrics.servicegraph.wait_s,
        graph_max_pending=config.metrics.servicegraph.max_pending,
    )
    log_keys = attribute_keys(store.db)
    log_writer = LogWriter(
        queue, config.ingest.max_batch_log_records, config.ingest.max_queue_log_records, log_keys
    )
    events_cfg = config.ingest.events
    event_registry = EventRegistry(store.db)
    dimensions = config.storage.events.dimensions()
    event_writer = EventWriter(
        queue, event_registry, events_cfg.max_batch_events, events_cfg.max_queue_events, dimensions
    )
    queue.start()
    health.store_open = True
    ctx = ApiContext(
        TraceQueryService(RocksReader(store, registry)),
        health,
        default_limit=config.api.default_search_limit,
        max_limit=config.api.max_search_limit,
    )
    # The store decides every acknowledgement; metrics and forwarding will tap the fan-out.
    traces = FanOut(StoreConsumer(writer), taps=trace_taps(config, metrics))
    skipped = RateLimitedLog(log, event_noun="request", item_noun="event")
    log_events = FanOut(StoreConsumer(event_writer), taps=[Tap(event_counters, "event counters (logs)")])
    logs = FanOut(
        LogsWithEvents(
            StoreConsumer(log_writer),
            log_events,
            Limits.from_config(events_cfg, config.storage.events.retention_days),
            lambda n: skipped.event("OTLP log events outside the events' time window: kept as logs only", n),
        ),
        taps=[Tap(log_counters, "log counters")],
    )
    # One exporter per row of the signal table, each to its pipeline.
    # OTLP metrics are not stored: applied to in-memory series that /metrics re-exposes.
    otlp_metrics = OtlpMetrics(
        metrics.series_limit,
        metrics.overflows,
        config.metrics.staleness_s(),
        reserved=metrics.registry.collect,
    )
    metrics.add(otlp_metrics.collect)
    pipelines: dict[str, Consumer[Any]] = {"traces": traces, "logs": logs, "metrics": otlp_metrics}
    exports = exporters(pipelines, "grpc", receiver_metrics)
    http_exports = exporters(pipelines, "http", receiver_metrics)
    otlp = config.receivers.otlp
    events = FanOut(StoreConsumer(event_writer), taps=[Tap(event_counters, "event counters")])
    events_receiver = EventsReceiver(
        events,
        events_cfg,
        config.storage.events.retention_days,
        otlp.http.max_request_body_size_mib << 20,
        observer=receiver_metrics,
    )
    rejections = rejection_log()  # one per process: a reason is rate-limited across both transports
    grpc_receiver = OtlpGrpcReceiver(
        otlp.grpc.endpoint, otlp.grpc.max_recv_msg_size_mib, exports, rejections=rejections
    )
    http_receiver = OtlpHttpReceiver(
        otlp.http.endpoint,
        otlp.http.max_request_body_size_mib,
        http_exports,
        shutdown_timeout=grace,
        rejections=rejections,
        grpc_endpoint=otlp.grpc.endpoint if otlp.grpc.enabled else None,
        extra_routes=events_receiver.add_routes,
    )
    http_receiver.app.middlewares.insert(0, timing(http_metrics))
    # The API port's own warnings (a gRPC client pointed at it), rate-limited like the receivers'.
    api_log = RateLimitedLog(logging.getLogger("sidecar.api"))
    grpc_hint = f"; OTLP/gRPC goes to {split_endpoint(otlp.grpc.endpoint)[1]}" if otlp.grpc.enabled else ""
    api_server_log = HttpServerLog(
        api_log,
        "query API port got a request that is not HTTP/1.1 "
        f"(a gRPC client on the query API port? the API is HTTP/JSON{grpc_hint})",
    )
    api_runner: web.AppRunner | None = None
    api_app = build_api_app(ctx, http_metrics)
    api_app[EVENT_READER] = EventReader(store, event_registry)
    api_app[EVENT_COLUMNS] = EventColumns(store, event_registry, dimensions)
    api_app[LOG_READER] = LogReader(store, log_keys)
    if not config.metrics.listen:
        add_metrics_route(api_app, metrics.registry)
    metrics_runner: web.AppRunner | None = None
    graph_tick: asyncio.Task[None] | None = None  # ends service-graph waits on an idle sidecar
    heap_trim: asyncio.Task[None] | None = None  # returns free heap pages to the OS (core/heap.py)
    retention = Retention.from_config(store, config.storage)
    storage_metrics = StorageMetrics(store, queue, retention, metrics.overflows)
    queue.on_write = storage_metrics.on_write
    metrics.add(storage_metrics.collect)
    try:
        api_runner = await _listen(
            config.api.endpoint,
            "api.endpoint",
            "--api",
            _start_site(api_app, config.api.endpoint, grace, api_server_log),
        )
        log.info("query API listening on %s", config.api.endpoint)
        if config.metrics.listen:
            metrics_only = metrics_app(metrics.registry)
            metrics_only.middlewares.append(timing(http_metrics))
            metrics_runner = await _listen(
                config.metrics.listen,
                "metrics.listen",
                "--metrics-listen",
                _start_site(metrics_only, config.metrics.listen, grace, api_server_log),
            )
            log.info("Prometheus metrics on http://%s/metrics", config.metrics.listen)
        if otlp.grpc.enabled:
            health.receivers["otlp_grpc"] = False
            await _listen(
                otlp.grpc.endpoint, "receivers.otlp.grpc.endpoint", "--otlp-grpc", grpc_receiver.start()
            )
            health.receivers["otlp_grpc"] = True
        if otlp.http.enabled:
            health.receivers["otlp_http"] = False
            await _listen(
                otlp.http.endpoint, "receivers.otlp.http.endpoint", "--otlp-http", http_receiver.start()
            )
            health.receivers["otlp_http"] = True
        retention.start()
        graph_tick = asyncio.create_task(writer.tick(), name="service graph tick")
        heap_trim = asyncio.create_task(trim_heap_forever(), name="heap trim")
        log.info("sidecar ready (data dir %s)", config.data_dir)
        await stop.wait()
        log.info("shutting down")
    finally:
        health.receivers = dict.fromkeys(health.receivers, False)
        if graph_tick is not None:  # it only queues (never awaits a write): cancelled at once
            graph_tick.cancel()
        if heap_trim is not None:
            heap_trim.cancel()
        # Listeners close together, each finishing in-flight requests within ``grace``; then the
        # writer drains what they acknowledged-to-be; the total stays within shutdown_timeout_s.
        await asyncio.gather(
            grpc_receiver.stop(grace),
            http_receiver.stop(grace),
            api_runner.cleanup() if api_runner is not None else asyncio.sleep(0),
            metrics_runner.cleanup() if metrics_runner is not None else asyncio.sleep(0),
        )
        rejections.flush()  # counts still held back by the rate limit
        api_log.flush()
        await asyncio.gather(traces.close(grace), logs.close(grace))  # taps catch up on what was acked
        await asyncio.gather(events.close(grace), log_events.close(grace))
        await retention.stop()  # a drop under way finishes before the store closes
        await loop.run_in_executor(None, queue.close, grace)
        ctx.pool.shutdown(wait=True, cancel_futures=True)
        health.store_open = False
        writing = queue.alive  # a write outlasted the timeout: RocksDB must not close under it
        del ctx, writer, event_writer, log_writer, queue
        gc.collect()
        if writing:
            log.error("a write is still running: store left open (the WAL holds what was acknowledged)")
        else:
            store.close()
            log.info("store closed")
    return 0


def serve(config: Config) -> int:
    setup_logging(config.log_level)
    # Ingest allocates many short-lived containers; the default GC thresholds would run full
    # collections every few requests for nothing (there are no reference cycles on the hot path).
    gc.set_threshold(100_000, 50, 100)
    fix_mmap_threshold()  # big blocks return to the OS when freed (core/heap.py)
    try:
        return asyncio.run(run(config))
    except (DataDirInUse, CannotListen) as exc:
        # An operator mistake, not a crash: one line, no traceback, the usage-error status. A
        # listener's line comes after the shutdown of what had started, so it is the last one.
        print(f"sidecar: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        log.error("cannot start: %s", exc)
        return 1
