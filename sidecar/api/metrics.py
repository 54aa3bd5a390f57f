"""``GET /metrics``: Prometheus text 0.0.4 or OpenMetrics 1.0.0 by ``Accept``, gzip when asked.

Encoding runs on a worker thread (a scrape of thousands of series must not stall ingest answers
on the event loop), one family at a time so that an unchanged family's bytes are reused
(``sidecar.metrics.registry.encode``); ``name[]`` restricts the answer to the named families, as
prometheus_client's own handlers do, and takes a family's name as well as its samples' names
(prometheus_client matches sample names only, so ``name[]=x`` of a histogram ``x`` would be empty).
"""

from __future__ import annotations

import asyncio

from aiohttp import hdrs, web
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import CollectorRegistry

from sidecar.metrics.registry import encode

METRICS_REGISTRY = web.AppKey("metrics_registry", CollectorRegistry)
METRICS_PATH = "/metrics"
# The sample names a family exposes besides its own (counter, histogram, summary, gauge histogram,
# info): a requested name is asked for with each of them too.
SAMPLE_SUFFIXES = ("_total", "_bucket", "_count", "_sum", "_created", "_info", "_gsum", "_gcount")


def sample_names(names: list[str]) -> list[str]:
    """Each requested name, and the sample names it would have as a family's name."""
    return [*names, *(name + suffix for name in names for suffix in SAMPLE_SUFFIXES)]


async def serve_metrics(request: web.Request) -> web.StreamResponse:
    registry = request.app[METRICS_REGISTRY]
    encoder, content_type = choose_encoder(",".join(request.headers.getall(hdrs.ACCEPT, [])))
    names = request.query.getall("name[]", [])
    source = registry.restricted_registry(sample_names(names)) if names else registry
    body = await asyncio.get_running_loop().run_in_executor(None, encode, source, encoder, content_type)
    response = web.Response(body=body, headers={"Content-Type": content_type})
    response.enable_compression()  # only when the scraper's Accept-Encoding asks for it
    return response


def add_metrics_route(app: web.Application, registry: CollectorRegistry) -> None:
    app[METRICS_REGISTRY] = registry
    app.router.add_get(METRICS_PATH, serve_metrics)


def metrics_app(registry: CollectorRegistry) -> web.Application:
    """The app of a separate ``metrics.listen`` server: ``/metrics`` and nothing else."""
    app = web.Application()
    add_metrics_route(app, registry)
    return app
