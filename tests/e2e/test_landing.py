"""The page at ``/`` of the query address, where a Jaeger user's browser lands out of habit."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.e2e.api_app import real_api_app
from tests.e2e.harness import Sidecar, http_request

MAX_PAGE_BYTES = 8 * 1024


def page(sidecar: Sidecar) -> str:
    status, headers, body = http_request("GET", f"{sidecar.api_url}/")
    assert status == 200, (status, body[:300])
    assert headers["content-type"] == "text/html; charset=utf-8"
    return body.decode("utf-8")


def test_the_query_address_serves_a_small_self_contained_page(sidecar: Sidecar) -> None:
    html = page(sidecar)
    assert len(html.encode()) <= MAX_PAGE_BYTES
    assert html.startswith("<!doctype html>") and "<title>sidecar query API</title>" in html
    assert 'href="/api/openapi.json"' in html
    # No external assets: no scripts, stylesheets, images or fonts, and links stay on this server.
    assert not re.search(r"<script|<link|<img|<iframe|\bsrc=|@import|url\(", html, re.I), html
    assert all(href.startswith("/") for href in re.findall(r'href="([^"]*)"', html))


def test_the_page_says_how_to_point_grafana_and_jaeger_ui_here(sidecar: Sidecar) -> None:
    html = page(sidecar)
    grafana = html[html.index("<h2>Grafana</h2>") : html.index("<h2>Jaeger UI</h2>")]
    jaeger_ui = html[html.index("<h2>Jaeger UI</h2>") :]
    # The address the browser used is the data source URL and the UI's query backend.
    assert f"<code>{sidecar.api_url}</code>" in grafana and "<b>Jaeger</b>" in grafana
    assert f"<code>{sidecar.api_url}</code>" in jaeger_ui and "/api" in jaeger_ui


def test_head_answers_like_get_without_a_body(sidecar: Sidecar) -> None:
    status, headers, body = http_request("HEAD", f"{sidecar.api_url}/")
    assert (status, body) == (200, b"")
    assert headers["content-type"] == "text/html; charset=utf-8"


def test_the_metrics_link_is_there_exactly_when_metrics_is_served(sidecar: Sidecar) -> None:
    metrics_status, _, _ = http_request("GET", f"{sidecar.api_url}/metrics")
    assert ('href="/metrics"' in page(sidecar)) == (metrics_status != 404)


def test_the_metrics_link_appears_once_the_router_serves_metrics(tmp_path: Path) -> None:
    async def metrics(request: web.Request) -> web.Response:
        return web.Response(text="# no metrics yet\n")

    async def landing_page(app: web.Application) -> str:
        async with (
            TestServer(app, host="127.0.0.1") as server,
            aiohttp.ClientSession() as session,
            session.get(server.make_url("/")) as resp,
        ):
            assert resp.status == 200
            return await resp.text()

    with real_api_app(tmp_path / "plain") as app:
        without = asyncio.run(landing_page(app))
    with real_api_app(tmp_path / "metrics") as app:
        app.router.add_get("/metrics", metrics)
        with_metrics = asyncio.run(landing_page(app))
    assert 'href="/metrics"' not in without
    assert 'href="/metrics"' in with_metrics


def test_a_hostile_host_header_is_not_echoed_as_markup(sidecar: Sidecar) -> None:
    status, _, body = http_request("GET", f"{sidecar.api_url}/", headers={"Host": 'x"><b>y</b>'})
    assert status == 200, body[:300]
    assert b'x"><b>y</b>' not in body and b"x&quot;&gt;&lt;b&gt;y&lt;/b&gt;" in body


def test_other_unknown_paths_keep_the_json_404(sidecar: Sidecar) -> None:
    for path in ("/index.html", "/search", "/static/app.js", "/api/nope"):
        status, headers, body = http_request("GET", f"{sidecar.api_url}{path}")
        assert status == 404, path
        assert headers["content-type"].startswith("application/json"), path
        assert json.loads(body) == {"error": {"code": 404, "message": "Not Found"}}, path
    status, headers, body = http_request("POST", f"{sidecar.api_url}/", b"")
    assert status == 405 and headers["allow"] == "GET,HEAD", (status, headers)
    assert json.loads(body)["error"]["code"] == 405
