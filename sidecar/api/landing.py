"""The page at ``/``: people open the query address out of Jaeger habit and expect to find something.

Plain HTML with no external assets (the sidecar often runs where nothing outside is reachable).
The ``/metrics`` link is shown only when the app's router serves ``/metrics``, so the page stays
truthful before and after that route exists.
"""

from __future__ import annotations

from html import escape

from aiohttp import web

METRICS_PATH = "/metrics"

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;"
    "line-height:1.5;color:#222}code{background:#f2f2f2;padding:0 .25em}h2{margin-top:1.6em}"
)


def serves(app: web.Application, path: str) -> bool:
    """True when one of the app's routes has exactly this path (plain or templated)."""
    return any(resource.canonical == path for resource in app.router.resources())


def render(base_url: str, metrics: bool) -> str:
    """The page for a client that reached the API at ``base_url`` (``scheme://host:port``)."""
    base = escape(base_url)
    metrics_item = (
        f'<li><a href="{METRICS_PATH}">{METRICS_PATH}</a>: Prometheus metrics</li>' if metrics else ""
    )
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>sidecar query API</title>
<style>{_STYLE}</style>
</head>
<body>
<h1>sidecar query API</h1>
<p>This is the query address of the observability sidecar. It stores the traces and logs that
applications send over OTLP, and business events, and answers Jaeger's query API here, so Grafana
and Jaeger UI can read the traces. There is no UI at this address itself: point one of the tools
below at it, or use the routes and the <code>sidecar</code> command line.</p>
<ul>
<li><a href="/api/openapi.json">/api/openapi.json</a>: OpenAPI description of every route,
with its parameters and answers</li>
{metrics_item}
<li><a href="/api/services">/api/services</a>: the services seen so far (Jaeger v1)</li>
<li><a href="/api/logs">/api/logs</a>: the newest log records (filters, CSV, a live tail at
<code>/api/logs/tail</code>)</li>
<li><a href="/api/events">/api/events</a>: the newest business events;
<a href="/api/events/summary">/api/events/summary</a>: events per name and users in the last
hour; trends, funnels and retention are POSTs under <code>/api/events/</code></li>
<li><a href="/readyz">/readyz</a>: readiness (store open, receivers listening)</li>
</ul>
<h2>Grafana</h2>
<p>Connections &rarr; Data sources &rarr; Add data source &rarr; <b>Jaeger</b>, set the URL to
<code>{base}</code> and press <i>Save &amp; test</i>. Grafana then searches traces, shows them and
draws the dependency graph through this address. If Grafana runs in a container, give it an address
it can reach (for example <code>http://host.docker.internal:PORT</code>) and make the sidecar listen
there (<code>api.endpoint</code>).</p>
<h2>Jaeger UI</h2>
<p>Jaeger UI is a web app that calls <code>/api/...</code> on the server it is loaded from; its
query backend must be this address. Its development server (<code>npm start</code> in the
jaeger-ui repository) already forwards <code>/api</code> to <code>http://localhost:16686</code>,
the sidecar's default address; change the proxy target in <code>vite.config.mts</code> if the
sidecar listens elsewhere. To serve a built Jaeger UI, put it behind a reverse proxy that
forwards <code>/api/</code> to <code>{base}</code>.</p>
</body>
</html>
"""


async def landing(request: web.Request) -> web.Response:
    """``GET /`` (and HEAD): the page, addressed the way this client reached the sidecar."""
    page = render(f"{request.scheme}://{request.host}", serves(request.app, METRICS_PATH))
    return web.Response(text=page, content_type="text/html")
