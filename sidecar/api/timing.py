"""An aiohttp middleware that reports every request's route, status and latency (the sidecar's
own ``sidecar_http_server_request_duration_seconds``), for each HTTP listener it is put on.

The route is the matched resource's template (``/api/traces/{trace_id}``), never the path, so a
client cannot create series by varying IDs; an unmatched path is reported with an empty route.
"""

from __future__ import annotations

import time
from typing import Protocol

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware


class RequestObserver(Protocol):
    def request(self, method: str, route: str, status: int, seconds: float) -> None: ...


def _route(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else ""


def timing(observer: RequestObserver) -> Middleware:
    """Outermost middleware: it sees the final status, an error turned into an answer included."""

    @web.middleware
    async def timed(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            observer.request(request.method, _route(request), status, time.perf_counter() - started)

    return timed
