"""Query phase: latency of trace-by-ID and searches against a store holding >= N spans.

Requests are sequential from one keep-alive client (latency, not throughput), after the server's CPU
has gone quiet (RocksDB flushes and compactions after loading). Every answer is also checked: trace
by ID must return all the trace's spans, a user.id search must find the trace the user came from.
"""

from __future__ import annotations

import http.client
import json
import random
import statistics
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.senders import DriveResult, drive
from bench.server import Sidecar
from bench.stream import RequestStream, SentTrace

# check(json body, the known item - here a trace - the request was built from) -> (results, correct)
Check = Callable[[Any, Any], tuple[int, bool]]
Queries = dict[str, tuple[Callable[[Any], str], Check]]


def _v1_spans(body: Any, t: SentTrace) -> tuple[int, bool]:
    spans = sum(len(x["spans"]) for x in body.get("data") or [])
    return spans, spans == t.info.spans


def _v3_spans(body: Any, t: SentTrace) -> tuple[int, bool]:
    spans = sum(
        len(ss.get("spans", []))
        for rs in body.get("result", {}).get("resourceSpans", [])
        for ss in rs.get("scopeSpans", [])
    )
    return spans, spans == t.info.spans


def _v1_found(body: Any, t: SentTrace) -> tuple[int, bool]:
    data = body.get("data") or []
    return len(data), any(x["traceID"].rjust(32, "0") == t.trace_id.hex() for x in data)


def _count(body: Any, t: SentTrace) -> tuple[int, bool]:
    data = body.get("data") or []
    return len(data), bool(data)


def _tags(tags: dict[str, str]) -> str:
    return urllib.parse.quote(json.dumps(tags, separators=(",", ":")))


QUERIES: Queries = {
    "trace by id (v1 /api/traces/{id})": (lambda t: f"/api/traces/{t.trace_id.hex()}", _v1_spans),
    "trace by id (v3 /api/v3/traces/{id})": (lambda t: f"/api/v3/traces/{t.trace_id.hex()}", _v3_spans),
    "summaries service+tag status 500 (common)": (
        lambda t: "/api/trace-summaries?service=checkout&tag=http.response.status_code:500&limit=20",
        _count,
    ),
    "v1 search service+tag user.id (rare)": (
        lambda t: f"/api/traces?service=frontend&tags={_tags({'user.id': t.user})}&limit=20",
        _v1_found,
    ),
    "summaries service only": (lambda t: "/api/trace-summaries?service=checkout&limit=20", _count),
    "v1 search service only": (lambda t: "/api/traces?service=checkout&limit=20", _count),
}


@dataclass(slots=True)
class QueryStat:
    name: str
    example: str
    n: int
    p50_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    http_errors: int
    avg_results: float
    correct_pct: float  # all spans returned / the known trace found / non-empty, depending on the query


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else 0.0


def measure(
    server: Sidecar,
    known: list[Any],
    n: int,
    rng: random.Random,
    queries: Queries = QUERIES,
    timeout: float = 60.0,
) -> list[QueryStat]:
    """``n`` sequential requests of each query, each built from (and checked against) a random known item."""
    conn = http.client.HTTPConnection("127.0.0.1", server.api_port, timeout=timeout)
    stats: list[QueryStat] = []
    try:
        for name, (path_of, check) in queries.items():
            times: list[float] = []
            results: list[int] = []
            correct = errors = 0
            example = ""
            for _ in range(n):
                item = rng.choice(known)
                path = example = path_of(item)
                t0 = time.perf_counter()
                conn.request("GET", path)
                resp = conn.getresponse()
                data = resp.read()
                times.append(time.perf_counter() - t0)
                if resp.status != 200:
                    errors += 1
                    continue
                count, ok = check(json.loads(data), item)
                results.append(count)
                correct += ok
            stats.append(
                QueryStat(
                    name=name,
                    example=urllib.parse.unquote(example),
                    n=n,
                    p50_ms=round(_percentile(times, 0.5) * 1000, 2),
                    p99_ms=round(_percentile(times, 0.99) * 1000, 2),
                    mean_ms=round(statistics.fmean(times) * 1000, 2),
                    max_ms=round(max(times) * 1000, 2),
                    http_errors=errors,
                    avg_results=round(statistics.fmean(results), 1) if results else 0.0,
                    correct_pct=round(100 * correct / n, 1),
                )
            )
    finally:
        conn.close()
    return stats


def acked_prefix(acked: list[int]) -> int:
    """Length of the longest run 0, 1, 2, ... of acknowledged sequence numbers."""
    seen = set(acked)
    upto = 0
    while upto in seen:
        upto += 1
    return upto


@dataclass(slots=True)
class QueryReport:
    stored_spans: int
    load: dict[str, Any] | None
    idle_wait_s: float
    rss_mib: float
    queries: list[QueryStat]


def run(
    server: Sidecar,
    stream: RequestStream,
    stored: int,
    acked: list[int],
    target_spans: int,
    senders: int,
    n: int,
    seed: int = 7,
    idle_timeout: float = 120.0,
) -> tuple[QueryReport, DriveResult | None]:
    """Top the store up to ``target_spans`` over gRPC at full speed, wait for quiet, then measure."""
    load: DriveResult | None = None
    if stored < target_spans:
        load = drive("grpc", server, stream, senders, until_items=target_spans - stored)
        stored += load.items_total
        acked = sorted(acked + load.acked)
    idle = server.wait_idle(timeout=idle_timeout)
    known = stream.sent_traces(acked_prefix(acked), 2000, random.Random(seed))
    if not known:
        raise RuntimeError("no complete trace was acknowledged; nothing to query")
    stats = measure(server, known, n, random.Random(seed + 1))
    load_info = None
    if load is not None:
        load_info = {
            "spans": load.items_total,
            "wall_s": round(load.wall_s, 1),
            "spans_per_s": round(load.items_per_s),
            "errors": load.errors,
        }
    return QueryReport(stored, load_info, round(idle, 1), round(server.rss_mib(), 1), stats), load
