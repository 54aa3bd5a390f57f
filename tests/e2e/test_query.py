"""Query APIs end to end: Jaeger v1 (Grafana, Jaeger UI trace view), api_v3 (Jaeger UI search) and
the native summaries, against one sidecar loaded with a known data set over OTLP/HTTP.

The data set (built once per module, timestamps relative to "now" so every default window holds it):

    service "shop" (resource deployment.environment=prod unless noted)
      T1  now-30s  GET /cart   SERVER 50ms  http.status_code=200 customer.tier=gold
                   └ load-cart INTERNAL 10ms
      T2  now-20s  POST /pay   SERVER 1.5s  http.status_code=500 status=ERROR
                   └ charge    CLIENT 1.2s  peer.service=bank
      T3  now-10s  GET /cart   SERVER 5ms   http.status_code=404     (trace ID's high 64 bits are zero)
      T4  now-40s  GET /health SERVER 1ms   http.status_code=200     (deployment.environment=staging)
    service "limits-multi": 7 one-span traces "tick", now-70s + i*5s, one export request each
    service "limits-batch": the same shape, all 7 traces in ONE export request (a BatchSpanProcessor batch)
    service "events": T5, the only place of attribute cache.key=user-42 is a span event;
                      T7, the only place of attribute link.reason=retry-of-lookup is a span link;
                      plus "raw-op" of span kind UNSPECIFIED
    service "batch-jobs": T6, a long-running span that started 3 h ago and ended just now, so it
                      reaches the sidecar 3 h after its start (as an exporter sends spans on end)
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status
from opentelemetry.trace import SpanKind

from tests.e2e.harness import (
    Sidecar,
    attributes,
    http_request,
    jaeger_id,
    make_request,
    make_span,
    merge_requests,
    new_span_id,
    new_trace_id,
)

MS = 1_000_000
S = 1_000 * MS
HEX32 = re.compile(r"[0-9a-f]{32}")
HEX16 = re.compile(r"[0-9a-f]{16}")


def rfc3339(ns: int) -> str:
    when = dt.datetime.fromtimestamp(ns // S, dt.UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S") + f".{ns % S:09d}Z"


@dataclass
class Data:
    now: int
    ids: dict[str, bytes] = field(default_factory=dict)  # name -> 16-byte trace id
    starts: dict[str, int] = field(default_factory=dict)  # name -> root start ns
    multi: list[bytes] = field(default_factory=list)  # oldest first
    batch: list[bytes] = field(default_factory=list)  # oldest first

    def j(self, name: str) -> str:
        """Jaeger v1 spelling of a data-set trace ID."""
        return jaeger_id(self.ids[name])

    def full(self, name: str) -> str:
        return self.ids[name].hex()


@pytest.fixture(scope="module")
def data(sidecar: Sidecar) -> Data:
    now = time.time_ns()
    d = Data(now=now)

    def trace_id(name: str, start: int, high_zero: bool = False) -> bytes:
        d.ids[name] = new_trace_id(high_zero)
        d.starts[name] = start
        return d.ids[name]

    server, client, internal = Span.SPAN_KIND_SERVER, Span.SPAN_KIND_CLIENT, Span.SPAN_KIND_INTERNAL
    prod = {"deployment.environment": "prod"}

    t1, r1 = trace_id("T1", now - 30 * S), new_span_id()
    t2, r2 = trace_id("T2", now - 20 * S), new_span_id()
    t3 = trace_id("T3", now - 10 * S, high_zero=True)
    t4 = trace_id("T4", now - 40 * S)
    s1, s2, s3, s4 = (d.starts[n] for n in ("T1", "T2", "T3", "T4"))
    shop_prod = make_request(
        "shop",
        [
            make_span(
                t1,
                "GET /cart",
                s1,
                50 * MS,
                span_id=r1,
                kind=server,
                attrs={"http.status_code": 200, "customer.tier": "gold"},
            ),
            make_span(t1, "load-cart", s1 + 5 * MS, 10 * MS, parent=r1, kind=internal),
            make_span(
                t2,
                "POST /pay",
                s2,
                1500 * MS,
                span_id=r2,
                kind=server,
                attrs={"http.status_code": 500},
                status=Status.STATUS_CODE_ERROR,
                status_message="card declined",
            ),
            make_span(
                t2, "charge", s2 + 100 * MS, 1200 * MS, parent=r2, kind=client, attrs={"peer.service": "bank"}
            ),
            make_span(t3, "GET /cart", s3, 5 * MS, kind=server, attrs={"http.status_code": 404}),
        ],
        resource_attrs=prod,
    )
    shop_staging = make_request(
        "shop",
        [make_span(t4, "GET /health", s4, 1 * MS, kind=server, attrs={"http.status_code": 200})],
        resource_attrs={"deployment.environment": "staging"},
    )
    sidecar.export(merge_requests(shop_prod, shop_staging))

    base = now - 70 * S
    for i in range(7):
        tid = new_trace_id()
        d.multi.append(tid)
        sidecar.export(make_request("limits-multi", [make_span(tid, "tick", base + i * 5 * S, MS)]))
    batch_spans = []
    for i in range(7):
        tid = new_trace_id()
        d.batch.append(tid)
        batch_spans.append(make_span(tid, "tick", base + i * 5 * S, MS))
    sidecar.export(make_request("limits-batch", batch_spans))

    t5 = trace_id("T5", now - 15 * S)
    sidecar.export(
        make_request(
            "events",
            [
                make_span(
                    t5,
                    "lookup",
                    d.starts["T5"],
                    3 * MS,
                    events=[("miss", d.starts["T5"] + MS, {"cache.key": "user-42"})],
                )
            ],
        )
    )
    t7 = trace_id("T7", now - 14 * S)
    retry = make_span(t7, "retry", d.starts["T7"], 2 * MS)
    retry.links.add(
        trace_id=t5, span_id=new_span_id(), attributes=attributes({"link.reason": "retry-of-lookup"})
    )
    sidecar.export(make_request("events", [retry]))
    sidecar.export(
        make_request(
            "events", [make_span(new_trace_id(), "raw-op", now - 5 * S, MS, kind=Span.SPAN_KIND_UNSPECIFIED)]
        )
    )

    t6 = trace_id("T6", now - 3 * 3600 * S)
    sidecar.export(
        make_request("batch-jobs", [make_span(t6, "nightly-export", d.starts["T6"], 3 * 3600 * S - S)])
    )
    return d


def v1_ok(sidecar: Sidecar, path: str, params: dict[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
    status, body = sidecar.get_json(path, params, **kw)
    assert status == 200, (status, body)
    assert set(body) == {"data", "total", "limit", "offset", "errors"}, body
    assert body["errors"] is None and body["limit"] == 0 and body["offset"] == 0
    return body


def search(sidecar: Sidecar, **params: Any) -> set[str]:
    body = v1_ok(sidecar, "/api/traces", params)
    ids = [t["traceID"] for t in body["data"]]
    assert len(ids) == len(set(ids)), f"duplicate traces in {ids}"
    return set(ids)


# ---------------------------------------------------------------------------------------------
# Jaeger v1: services and operations


def test_v1_services(sidecar: Sidecar, data: Data) -> None:
    body = v1_ok(sidecar, "/api/services")
    assert {"shop", "limits-multi", "limits-batch", "events"} <= set(body["data"])
    assert body["data"] == sorted(body["data"])
    assert body["total"] == len(body["data"])


def test_v1_service_operations(sidecar: Sidecar, data: Data) -> None:
    body = v1_ok(sidecar, "/api/services/shop/operations")
    assert sorted(body["data"]) == sorted(["GET /cart", "load-cart", "POST /pay", "charge", "GET /health"])
    assert body["total"] == 5
    assert v1_ok(sidecar, "/api/services/no-such-service/operations")["data"] == []


def test_v1_operations_by_span_kind(sidecar: Sidecar, data: Data) -> None:
    body = v1_ok(sidecar, "/api/operations", service="shop", spanKind="server")
    assert sorted(body["data"], key=lambda o: o["name"]) == [
        {"name": "GET /cart", "spanKind": "server"},
        {"name": "GET /health", "spanKind": "server"},
        {"name": "POST /pay", "spanKind": "server"},
    ]
    assert body["total"] == 3
    body = v1_ok(sidecar, "/api/operations", service="shop", spanKind="client")
    assert body["data"] == [{"name": "charge", "spanKind": "client"}]
    everything = v1_ok(sidecar, "/api/operations", service="shop")["data"]
    assert {(o["name"], o["spanKind"]) for o in everything} == {
        ("GET /cart", "server"),
        ("GET /health", "server"),
        ("POST /pay", "server"),
        ("charge", "client"),
        ("load-cart", "internal"),
    }


# ---------------------------------------------------------------------------------------------
# Jaeger v1: search


def test_v1_search_by_service(sidecar: Sidecar, data: Data) -> None:
    body = v1_ok(sidecar, "/api/traces", service="shop")
    assert body["total"] == 0  # Jaeger leaves total at 0 for traces
    assert {t["traceID"] for t in body["data"]} == {data.j(n) for n in ("T1", "T2", "T3", "T4")}
    t2 = next(t for t in body["data"] if t["traceID"] == data.j("T2"))
    assert len(t2["spans"]) == 2  # whole traces, not only the matching span
    assert search(sidecar, service="no-such-service") == set()


def test_v1_search_by_operation(sidecar: Sidecar, data: Data) -> None:
    assert search(sidecar, service="shop", operation="GET /cart") == {data.j("T1"), data.j("T3")}
    assert search(sidecar, service="shop", operation="charge") == {data.j("T2")}
    assert search(sidecar, service="shop", operation="no-such-op") == set()


def test_v1_search_by_tags_json(sidecar: Sidecar, data: Data) -> None:
    assert search(sidecar, service="shop", tags=json.dumps({"http.status_code": "500"})) == {data.j("T2")}
    assert search(sidecar, service="shop", tags=json.dumps({"error": "true"})) == {data.j("T2")}
    both = json.dumps({"http.status_code": "200", "customer.tier": "gold"})
    assert search(sidecar, service="shop", tags=both) == {data.j("T1")}
    # Child-span attribute finds the whole trace.
    assert search(sidecar, service="shop", tags=json.dumps({"peer.service": "bank"})) == {data.j("T2")}
    # Derived tags Jaeger computes from span fields.
    assert search(sidecar, service="shop", tags=json.dumps({"span.kind": "client"})) == {data.j("T2")}


def test_v1_search_tags_must_hold_on_one_span(sidecar: Sidecar, data: Data) -> None:
    """T2 has http.status_code=500 on the root and peer.service=bank on the child: no single span has
    both, so Jaeger's reference store does not return it (CONTRACTS §2.2, "Search semantics")."""
    tags = json.dumps({"http.status_code": "500", "peer.service": "bank"})
    assert search(sidecar, service="shop", tags=tags) == set()


def test_v1_search_by_repeated_tag_pairs(sidecar: Sidecar, data: Data) -> None:
    assert search(sidecar, service="shop", tag=["http.status_code:200", "customer.tier:gold"]) == {
        data.j("T1")
    }
    assert search(sidecar, service="shop", tag="http.status_code:200") == {data.j("T1"), data.j("T4")}
    assert search(sidecar, service="shop", tag="peer.service:bank") == {data.j("T2")}


def test_v1_search_by_resource_attribute(sidecar: Sidecar, data: Data) -> None:
    staging = search(sidecar, service="shop", tags=json.dumps({"deployment.environment": "staging"}))
    assert staging == {data.j("T4")}
    prod = search(sidecar, service="shop", tag="deployment.environment:prod")
    assert prod == {data.j("T1"), data.j("T2"), data.j("T3")}


@pytest.mark.parametrize(
    ("tag", "name"),
    [("cache.key:user-42", "T5"), ("link.reason:retry-of-lookup", "T7")],
    ids=["event-attribute", "link-attribute"],
)
def test_v1_search_by_event_and_link_attribute(sidecar: Sidecar, data: Data, tag: str, name: str) -> None:
    """Jaeger matches tags against span-event and span-link attributes too (CONTRACTS §2.2)."""
    assert search(sidecar, service="events", tag=tag) == {data.j(name)}


def test_v1_search_by_duration(sidecar: Sidecar, data: Data) -> None:
    j = data.j
    assert search(sidecar, service="shop", minDuration="1.1s") == {j("T2")}
    assert search(sidecar, service="shop", minDuration="1.5s") == {j("T2")}  # bounds are inclusive
    assert search(sidecar, service="shop", maxDuration="7ms") == {j("T3"), j("T4")}
    assert search(sidecar, service="shop", maxDuration="6000us") == {j("T3"), j("T4")}
    assert search(sidecar, service="shop", minDuration="40ms", maxDuration="100ms") == {j("T1")}
    assert search(sidecar, service="shop", minDuration="1m") == set()


def test_v1_search_by_time_window(sidecar: Sidecar, data: Data) -> None:
    s2 = data.starts["T2"]
    window = {"start": (s2 - 2 * S) // 1000, "end": (s2 + 2 * S) // 1000}
    assert search(sidecar, service="shop", **window) == {data.j("T2")}
    wide = {"start": (data.now - 35 * S) // 1000, "end": data.now // 1000}
    assert search(sidecar, service="shop", **wide) == {data.j(n) for n in ("T1", "T2", "T3")}
    before = {"start": (data.now - 3600 * S) // 1000, "end": (data.now - 1800 * S) // 1000}
    assert search(sidecar, service="shop", **before) == set()


def test_v1_search_long_running_span(sidecar: Sidecar, data: Data) -> None:
    """The 3 h job is found by the default window (now-2 d .. now) and by a window around its end."""
    assert search(sidecar, service="batch-jobs") == {data.j("T6")}
    end = data.starts["T6"] + 3 * 3600 * S - S
    window = {"start": (end - 60 * S) // 1000, "end": (end + 60 * S) // 1000}
    assert search(sidecar, service="batch-jobs", **window) == {data.j("T6")}


def test_v1_search_window_around_start_of_long_running_span(sidecar: Sidecar, data: Data) -> None:
    """Jaeger matches a span whose start lies in [start, end] (CONTRACTS §2.2); Grafana sends the
    panel's time range as start/end, so a user looking at the hour the job started must see it."""
    s6 = data.starts["T6"]
    window = {"start": (s6 - 60 * S) // 1000, "end": (s6 + 60 * S) // 1000}
    assert search(sidecar, service="batch-jobs", **window) == {data.j("T6")}


def test_v1_search_limit_returns_newest(sidecar: Sidecar, data: Data) -> None:
    body = v1_ok(sidecar, "/api/traces", service="limits-multi", limit=3)
    assert [t["traceID"] for t in body["data"]] == [jaeger_id(t) for t in reversed(data.multi[-3:])]
    assert len(search(sidecar, service="limits-multi")) == 7  # default limit is 100


def test_v1_search_limit_returns_newest_within_one_request(sidecar: Sidecar, data: Data) -> None:
    body = v1_ok(sidecar, "/api/traces", service="limits-batch", limit=3)
    assert [t["traceID"] for t in body["data"]] == [jaeger_id(t) for t in reversed(data.batch[-3:])]


def test_v1_search_limit_newest_native_order(sidecar: Sidecar, data: Data) -> None:
    status, body = sidecar.get_json("/api/trace-summaries", service="limits-multi")
    assert status == 200
    ids = [s["traceID"] for s in body["data"]]
    assert ids == [t.hex() for t in reversed(data.multi)]  # newest first
    starts = [s["startTime"] for s in body["data"]]
    assert starts == sorted(starts, reverse=True)
    status, body = sidecar.get_json("/api/trace-summaries", service="limits-multi", limit=2)
    assert status == 200 and body["limit"] == 2
    assert [s["traceID"] for s in body["data"]] == [t.hex() for t in reversed(data.multi[-2:])]


# ---------------------------------------------------------------------------------------------
# Jaeger v1: trace by ID


def test_v1_trace_by_id(sidecar: Sidecar, data: Data) -> None:
    body = v1_ok(sidecar, f"/api/traces/{data.j('T2')}")
    assert body["total"] == 0
    (trace_json,) = body["data"]
    assert trace_json["traceID"] == data.full("T2")
    assert {s["operationName"] for s in trace_json["spans"]} == {"POST /pay", "charge"}
    assert HEX32.fullmatch(trace_json["traceID"])
    assert all(HEX16.fullmatch(s["spanID"]) for s in trace_json["spans"])


def test_v1_trace_by_id_ignores_time_hints_and_pretty_prints(sidecar: Sidecar, data: Data) -> None:
    """Grafana may add start/end in *milliseconds* (CONTRACTS §2.5); they are hints only."""
    now_ms = data.now // MS
    hints = f"start={now_ms - 3_600_000}&end={now_ms}&prettyPrint=true"
    status, headers, raw = http_request("GET", f"{sidecar.api_url}/api/traces/{data.j('T1')}?{hints}")
    assert status == 200
    assert headers["content-type"].startswith("application/json")
    assert raw.startswith(b"{\n  ")  # indented
    assert json.loads(raw)["data"][0]["traceID"] == data.j("T1")
    params = {"start_time": rfc3339(data.now - 3600 * S), "end_time": rfc3339(data.now)}
    status, body = sidecar.get_json(f"/api/v3/traces/{data.full('T1')}", params)
    assert status == 200
    assert otlp_trace_ids(body["result"]) == {data.full("T1")}


def test_v1_search_special_tags(sidecar: Sidecar, data: Data) -> None:
    """error=false matches traces with at least one non-error span; span.status and scope tags."""
    j = data.j
    assert search(sidecar, service="shop", tags=json.dumps({"error": "false"})) == {
        j("T1"),
        j("T2"),
        j("T3"),
        j("T4"),
    }
    assert search(sidecar, service="shop", tags=json.dumps({"span.status": "error"})) == {j("T2")}
    assert search(sidecar, service="shop", tags=json.dumps({"otel.status_description": "card declined"})) == {
        j("T2")
    }
    scope = search(sidecar, service="shop", tags=json.dumps({"otel.scope.name": "e2e-tests"}))
    assert scope == {j(n) for n in ("T1", "T2", "T3", "T4")}
    assert search(sidecar, service="shop", tags=json.dumps({"otel.scope.name": "other"})) == set()


def test_v1_trace_id_with_zero_high_bits(sidecar: Sidecar, data: Data) -> None:
    """Jaeger prints 16 hex chars when the high 64 bits are zero and accepts both spellings."""
    short = data.j("T3")
    assert len(short) == 16
    for spelling in (short, data.full("T3"), short.lstrip("0")):
        (trace_json,) = v1_ok(sidecar, f"/api/traces/{spelling}")["data"]
        assert trace_json["traceID"] == short
        assert all(s["traceID"] == short for s in trace_json["spans"])


def test_v1_trace_not_found(sidecar: Sidecar, data: Data) -> None:
    unknown = new_trace_id().hex()
    status, body = sidecar.get_json(f"/api/traces/{unknown}")
    assert status == 404
    assert body["data"] is None
    assert body["errors"] == [{"code": 404, "msg": "trace not found"}]


@pytest.mark.parametrize("bad", ["not-a-trace-id", "0" * 32, "12345678901234567890123456789012345"])
def test_v1_trace_malformed_id(sidecar: Sidecar, bad: str) -> None:
    status, body = sidecar.get_json(f"/api/traces/{urllib.parse.quote(bad)}")
    assert status == 400, body
    assert body["data"] is None
    assert body["errors"][0]["code"] == 400 and body["errors"][0]["msg"]


def test_v1_fetch_by_repeated_trace_id(sidecar: Sidecar, data: Data) -> None:
    assert search(sidecar, traceID=[data.j("T1"), data.j("T3")]) == {data.j("T1"), data.j("T3")}
    unknown = new_trace_id().hex()
    status, body = sidecar.get_json("/api/traces", traceID=[data.j("T2"), unknown])
    assert status == 200
    assert [t["traceID"] for t in body["data"]] == [data.j("T2")]
    assert body["errors"] == [{"code": 404, "msg": "trace not found", "traceID": unknown}]


# ---------------------------------------------------------------------------------------------
# Jaeger v1: dependencies


def test_v1_dependencies(sidecar: Sidecar, sdk: Any) -> None:
    """A CLIENT span of service A is the parent of a SERVER span of service B, each exported by its
    own TracerProvider (as two processes would) over different OTLP transports."""
    front = sdk(sidecar, "dep-frontend", "grpc")
    back = sdk(sidecar, "dep-backend", "http")
    calls = 3
    for _ in range(calls):
        with (
            front.tracer.start_as_current_span("GET /", kind=SpanKind.SERVER),
            front.tracer.start_as_current_span("call backend", kind=SpanKind.CLIENT) as call,
        ):
            ctx = trace.set_span_in_context(call)
            back.tracer.start_span("handle", context=ctx, kind=SpanKind.SERVER).end()
    front.exporter.assert_all_succeeded(expected_spans=2 * calls)
    back.exporter.assert_all_succeeded(expected_spans=calls)

    now_ms = time.time_ns() // MS + 1000
    body = v1_ok(sidecar, "/api/dependencies", endTs=now_ms, lookback=3_600_000)
    links = [link for link in body["data"] if "dep-frontend" in (link["parent"], link["child"])]
    assert links == [{"parent": "dep-frontend", "child": "dep-backend", "callCount": calls}]
    assert body["total"] == 0

    only_backend = v1_ok(
        sidecar, "/api/dependencies", endTs=now_ms, lookback=3_600_000, service="dep-backend"
    )
    assert only_backend["data"] == [{"parent": "dep-frontend", "child": "dep-backend", "callCount": calls}]
    long_ago = v1_ok(sidecar, "/api/dependencies", endTs=now_ms - 7_200_000, lookback=3_600_000)
    assert not [link for link in long_ago["data"] if link["parent"] == "dep-frontend"]


# ---------------------------------------------------------------------------------------------
# api_v3


def v3_window(data: Data, *, camel: bool = False) -> dict[str, str]:
    lo, hi = rfc3339(data.now - 3600 * S), rfc3339(data.now + 60 * S)
    if camel:
        return {"query.startTimeMin": lo, "query.startTimeMax": hi}
    return {"query.start_time_min": lo, "query.start_time_max": hi}


def otlp_trace_ids(result: dict[str, Any]) -> set[str]:
    return {
        span["traceId"] for rs in result["resourceSpans"] for ss in rs["scopeSpans"] for span in ss["spans"]
    }


def v3_error(body: dict[str, Any], code: int) -> None:
    assert set(body) == {"error"}, body
    assert body["error"]["httpCode"] == code
    assert body["error"]["message"]


def test_v3_services_and_operations(sidecar: Sidecar, data: Data) -> None:
    status, body = sidecar.get_json("/api/v3/services")
    assert status == 200
    assert {"shop", "events"} <= set(body["services"])
    status, body = sidecar.get_json("/api/v3/operations", service="shop")
    assert status == 200
    assert {(o["name"], o["spanKind"]) for o in body["operations"]} == {
        ("GET /cart", "server"),
        ("GET /health", "server"),
        ("POST /pay", "server"),
        ("charge", "client"),
        ("load-cart", "internal"),
    }
    status, body = sidecar.get_json("/api/v3/operations", service="shop", spanKind="client")
    assert status == 200 and body == {"operations": [{"name": "charge", "spanKind": "client"}]}
    status, body = sidecar.get_json("/api/v3/operations", service="no-such-service")
    assert status == 200 and body == {"operations": []}  # required key, never omitted


def test_operations_of_unspecified_kind(sidecar: Sidecar, data: Data) -> None:
    """v1 reports UNSPECIFIED as an empty kind, api_v3 as "internal" (CONTRACTS §2.2, §2.6)."""
    ops = v1_ok(sidecar, "/api/operations", service="events")["data"]
    assert {"name": "raw-op", "spanKind": ""} in ops
    status, body = sidecar.get_json("/api/v3/operations", service="events")
    assert status == 200
    assert {"name": "raw-op", "spanKind": "internal"} in body["operations"]


def test_v3_trace_by_id_is_otlp_json(sidecar: Sidecar, data: Data) -> None:
    status, body = sidecar.get_json(f"/api/v3/traces/{data.full('T2')}")
    assert status == 200, body
    (rs,) = body["result"]["resourceSpans"]
    attrs = {a["key"]: a["value"] for a in rs["resource"]["attributes"]}
    assert attrs["service.name"] == {"stringValue": "shop"}
    spans = {s["name"]: s for ss in rs["scopeSpans"] for s in ss["spans"]}
    assert set(spans) == {"POST /pay", "charge"}
    root, child = spans["POST /pay"], spans["charge"]
    assert root["traceId"] == child["traceId"] == data.full("T2")  # hex, not base64
    assert HEX16.fullmatch(root["spanId"])
    assert child["parentSpanId"] == root["spanId"]
    assert root["kind"] == 2 and child["kind"] == 3  # integers, not enum names
    assert root["startTimeUnixNano"] == str(data.starts["T2"])  # int64 as decimal strings
    assert root["endTimeUnixNano"] == str(data.starts["T2"] + 1500 * MS)
    assert root["status"] == {"code": 2, "message": "card declined"}
    assert {"key": "http.status_code", "value": {"intValue": "500"}} in root["attributes"]


def test_v3_trace_by_id_zero_high_bits(sidecar: Sidecar, data: Data) -> None:
    status, body = sidecar.get_json(f"/api/v3/traces/{data.j('T3')}")
    assert status == 200
    assert otlp_trace_ids(body["result"]) == {data.full("T3")}  # full 32 hex chars in OTLP
    assert data.full("T3").startswith("0" * 16)


def test_v3_trace_not_found(sidecar: Sidecar) -> None:
    status, body = sidecar.get_json(f"/api/v3/traces/{new_trace_id().hex()}")
    assert status == 404
    v3_error(body, 404)
    status, body = sidecar.get_json("/api/v3/traces/not-hex")
    assert status == 400
    v3_error(body, 400)


@pytest.mark.parametrize("camel", [False, True], ids=["snake_case", "camelCase"])
def test_v3_find_traces(sidecar: Sidecar, data: Data, camel: bool) -> None:
    service_key = "query.serviceName" if camel else "query.service_name"
    op_key = "query.operationName" if camel else "query.operation_name"
    params = {service_key: "shop", **v3_window(data, camel=camel)}
    status, body = sidecar.get_json("/api/v3/traces", params)
    assert status == 200, body
    assert otlp_trace_ids(body["result"]) == {data.full(n) for n in ("T1", "T2", "T3", "T4")}

    status, body = sidecar.get_json("/api/v3/traces", {**params, op_key: "POST /pay"})
    assert status == 200
    assert otlp_trace_ids(body["result"]) == {data.full("T2")}

    duration_key = "query.durationMin" if camel else "query.duration_min"
    status, body = sidecar.get_json("/api/v3/traces", {**params, duration_key: "1s"})
    assert status == 200
    assert otlp_trace_ids(body["result"]) == {data.full("T2")}


def test_v3_find_traces_by_attributes(sidecar: Sidecar, data: Data) -> None:
    params = {
        "query.service_name": "shop",
        "query.attributes": json.dumps({"http.status_code": "404"}),
        **v3_window(data),
    }
    status, body = sidecar.get_json("/api/v3/traces", params)
    assert status == 200
    assert otlp_trace_ids(body["result"]) == {data.full("T3")}


def test_v3_find_traces_grafana_unencoded_times(sidecar: Sidecar, data: Data) -> None:
    """Grafana appends the RFC3339 times unencoded, so a '+' offset arrives as a space (CONTRACTS §2.5)."""
    lo = dt.datetime.fromtimestamp((data.now - 3600 * S) / S, dt.timezone(dt.timedelta(hours=2)))
    hi = dt.datetime.fromtimestamp((data.now + 60 * S) / S, dt.timezone(dt.timedelta(hours=2)))
    path = (
        "/api/v3/traces?query.service_name=shop"
        f"&query.start_time_min={lo.isoformat()}&query.start_time_max={hi.isoformat()}"
    )
    assert "+02:00" in path
    status, _, raw = http_request("GET", sidecar.api_url + path)
    assert status == 200, raw
    assert otlp_trace_ids(json.loads(raw)["result"]) == {data.full(n) for n in ("T1", "T2", "T3", "T4")}


def test_v3_find_traces_no_match_is_404(sidecar: Sidecar, data: Data) -> None:
    params = {"query.service_name": "no-such-service", **v3_window(data)}
    status, body = sidecar.get_json("/api/v3/traces", params)
    assert status == 404
    v3_error(body, 404)
    old = {
        "query.service_name": "shop",
        "query.start_time_min": rfc3339(data.now - 7200 * S),
        "query.start_time_max": rfc3339(data.now - 3600 * S),
    }
    status, body = sidecar.get_json("/api/v3/traces", old)
    assert status == 404
    v3_error(body, 404)


def test_v3_find_traces_requires_time_window(sidecar: Sidecar, data: Data) -> None:
    status, body = sidecar.get_json("/api/v3/traces", {"query.service_name": "shop"})
    assert status == 400
    v3_error(body, 400)
    assert "start_time_min" in body["error"]["message"]


def test_v3_trace_summaries(sidecar: Sidecar, data: Data) -> None:
    params = {"query.serviceName": "shop", **v3_window(data, camel=True)}
    status, body = sidecar.get_json("/api/v3/trace-summaries", params)
    assert status == 200, body
    summaries = {s["traceId"]: s for s in body["summaries"]}
    assert set(summaries) == {data.full(n) for n in ("T1", "T2", "T3", "T4")}
    assert all(HEX32.fullmatch(tid) for tid in summaries)  # exactly 32 hex, T3 left-padded
    t2 = summaries[data.full("T2")]
    assert t2["rootServiceName"] == "shop"
    assert t2["rootOperationName"] == "POST /pay"
    assert t2["spanCount"] == 2
    assert t2["errorSpanCount"] == 1
    assert t2["minStartTimeUnixNano"] == str(data.starts["T2"])
    assert t2["maxEndTimeUnixNano"] == str(data.starts["T2"] + 1500 * MS)
    assert t2["services"] == [{"name": "shop", "spanCount": 2, "errorSpanCount": 1}]

    status, body = sidecar.get_json("/api/v3/trace-summaries", {**params, "query.searchDepth": 2})
    assert status == 200 and len(body["summaries"]) == 2

    nothing = {"query.serviceName": "no-such-service", **v3_window(data, camel=True)}
    status, body = sidecar.get_json("/api/v3/trace-summaries", nothing)
    assert status == 200  # summaries answer 200 even when empty
    assert body.get("summaries", []) == []


def test_v3_trace_summaries_all_services(sidecar: Sidecar, data: Data) -> None:
    """Jaeger UI omits query.serviceName for "all services"."""
    status, body = sidecar.get_json("/api/v3/trace-summaries", {**v3_window(data), "query.searchDepth": 1000})
    assert status == 200
    services = {s["rootServiceName"] for s in body["summaries"]}
    assert {"shop", "events", "limits-multi"} <= services


# ---------------------------------------------------------------------------------------------
# Native summaries and OpenAPI


def test_native_summaries_without_service(sidecar: Sidecar, data: Data) -> None:
    status, body = sidecar.get_json("/api/trace-summaries", limit=100)
    assert status == 200
    summaries = body["data"]
    services = {s["rootServiceName"] for s in summaries}
    assert {"shop", "limits-multi", "limits-batch", "events"} <= services
    starts = [s["startTime"] for s in summaries]
    assert starts == sorted(starts, reverse=True)
    t2 = next(s for s in summaries if s["traceID"] == data.full("T2"))
    assert t2["rootOperationName"] == "POST /pay"
    assert t2["spanCount"] == 2 and t2["errorCount"] == 1
    assert t2["startTime"] == data.starts["T2"] // 1000
    assert t2["duration"] == 1_500_000
    assert all(HEX32.fullmatch(s["traceID"]) for s in summaries)


def test_native_summaries_by_tag(sidecar: Sidecar, data: Data) -> None:
    status, body = sidecar.get_json("/api/trace-summaries", tags=json.dumps({"http.status_code": "404"}))
    assert status == 200
    assert [s["traceID"] for s in body["data"]] == [data.full("T3")]
    status, body = sidecar.get_json("/api/trace-summaries", tag="customer.tier:gold")
    assert status == 200
    assert [s["traceID"] for s in body["data"]] == [data.full("T1")]


def test_native_summaries_by_trace_duration(sidecar: Sidecar, data: Data) -> None:
    status, body = sidecar.get_json("/api/trace-summaries", minTraceDuration="1s", limit=100)
    assert status == 200
    assert [s["traceID"] for s in body["data"]] == [data.full("T2"), data.full("T6")]  # newest first
    status, body = sidecar.get_json("/api/trace-summaries", minTraceDuration="1s", maxTraceDuration="1h")
    assert status == 200
    assert [s["traceID"] for s in body["data"]] == [data.full("T2")]
    status, body = sidecar.get_json(
        "/api/trace-summaries", service="shop", minTraceDuration="20ms", maxTraceDuration="100ms"
    )
    assert status == 200
    assert [s["traceID"] for s in body["data"]] == [data.full("T1")]


def test_openapi_document(sidecar: Sidecar) -> None:
    status, headers, raw = http_request("GET", f"{sidecar.api_url}/api/openapi.json")
    assert status == 200
    assert headers["content-type"].startswith("application/json")
    doc = json.loads(raw)
    assert str(doc["openapi"]).startswith("3.")
    assert "/api/trace-summaries" in doc["paths"]


# ---------------------------------------------------------------------------------------------
# Parameter errors: 400, JSON, naming the parameter


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"service": "shop", "minDuration": "abc"}, "minDuration"),
        ({"service": "shop", "maxDuration": "10"}, "maxDuration"),  # a unit is required
        ({"service": "shop", "limit": "-1"}, "limit"),
        ({"service": "shop", "limit": "ten"}, "limit"),
        ({"service": "shop", "minDuration": "2s", "maxDuration": "1s"}, "maxDuration"),
        ({"operation": "GET /cart"}, "service"),
        ({"service": "shop", "tags": "{not json"}, "tags"),
        ({"service": "shop", "tags": "[1, 2]"}, "tags"),
        ({"service": "shop", "tag": "novalue"}, "tag"),
        ({"service": "shop", "start": "yesterday"}, "start"),
        ({"service": "shop", "start": "2000000000000000", "end": "1000000000000000"}, "start"),
        ({"traceID": "xyz"}, "traceID"),
    ],
)
def test_v1_search_bad_parameter(sidecar: Sidecar, params: dict[str, str], name: str) -> None:
    status, body = sidecar.get_json("/api/traces", params)
    assert status == 400, body
    assert body["data"] is None
    (err,) = body["errors"]
    assert err["code"] == 400
    assert name in err["msg"], err


def test_v1_operations_requires_service(sidecar: Sidecar) -> None:
    status, body = sidecar.get_json("/api/operations")
    assert status == 400
    assert "service" in body["errors"][0]["msg"]


def test_v1_dependencies_bad_parameter(sidecar: Sidecar) -> None:
    status, body = sidecar.get_json("/api/dependencies", endTs="soon")
    assert status == 400
    assert "endTs" in body["errors"][0]["msg"]


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"minTraceDuration": "xyz"}, "minTraceDuration"),
        ({"minTraceDuration": "2s", "maxTraceDuration": "1s"}, "maxTraceDuration"),
        ({"limit": "0"}, "limit"),
        ({"minDuration": "1parsec"}, "minDuration"),
        ({"since": "forever"}, "since"),
    ],
)
def test_native_bad_parameter(sidecar: Sidecar, params: dict[str, str], name: str) -> None:
    status, body = sidecar.get_json("/api/trace-summaries", params)
    assert status == 400, body
    assert body["error"]["code"] == 400
    assert name in body["error"]["message"], body


@pytest.mark.parametrize(
    ("extra", "name"),
    [
        ({"query.duration_min": "abc"}, "duration_min"),
        ({"query.duration_max": "1ms", "query.duration_min": "1s"}, "duration_max"),
        ({"query.start_time_min": "yesterday"}, "start_time_min"),
        ({"query.searchDepth": "many"}, "searchDepth"),
    ],
)
def test_v3_bad_parameter(sidecar: Sidecar, data: Data, extra: dict[str, str], name: str) -> None:
    params = {"query.service_name": "shop", **v3_window(data), **extra}
    status, body = sidecar.get_json("/api/v3/traces", params)
    assert status == 400, body
    v3_error(body, 400)
    assert name in body["error"]["message"], body


def test_unknown_route_is_json_404(sidecar: Sidecar) -> None:
    status, body = sidecar.get_json("/api/no-such-route")
    assert status == 404
    assert body["error"]["code"] == 404
