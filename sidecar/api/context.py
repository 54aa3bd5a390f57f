"""What every API handler needs: the query service, a thread pool for blocking reads, limits, health."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sidecar.api.params import DEFAULT_MAX_LIMIT, DEFAULT_NATIVE_LIMIT
from sidecar.query.traces import TraceQueryService

T = TypeVar("T")


@dataclass
class Health:
    """Readiness: the store is open and every enabled receiver listens."""

    store_open: bool = False
    receivers: dict[str, bool] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        return self.store_open and all(self.receivers.values())


@dataclass
class ApiContext:
    query: TraceQueryService
    health: Health
    default_limit: int = DEFAULT_NATIVE_LIMIT
    max_limit: int = DEFAULT_MAX_LIMIT
    pool: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(4, thread_name_prefix="query")
    )

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a blocking RocksDB read off the event loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.pool, functools.partial(fn, *args, **kwargs))
