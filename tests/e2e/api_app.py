"""The query API application built in-process the way ``sidecar serve`` builds it.

Used where a test needs the real :class:`aiohttp.web.Application` object (its router) rather than
a process: the same store, query service, context and :func:`build_api_app` as ``server.run``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from aiohttp import web

from sidecar.api.app import build_api_app
from sidecar.api.context import ApiContext, Health
from sidecar.config.model import Config
from sidecar.query.traces import TraceQueryService
from sidecar.server import open_store
from sidecar.storage.rocks.reader import RocksReader


@contextlib.contextmanager
def real_api_app(data_dir: Path, config: Config | None = None) -> Iterator[web.Application]:
    """The API app over a fresh RocksDB store in ``data_dir``; the store is closed afterwards."""
    config = config or Config(data_dir=str(data_dir))
    store, registry = open_store(config)
    ctx = ApiContext(
        TraceQueryService(RocksReader(store, registry)),
        Health(store_open=True),
        default_limit=config.api.default_search_limit,
        max_limit=config.api.max_search_limit,
    )
    try:
        yield build_api_app(ctx)
    finally:
        ctx.pool.shutdown(wait=True)
        store.close()


def served_operations(app: web.Application) -> set[tuple[str, str]]:
    """Every (method, path template) the app's router answers, e.g. ``("HEAD", "/api/services")``."""
    return {(route.method, route.resource.canonical) for route in app.router.routes() if route.resource}
