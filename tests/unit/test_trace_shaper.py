"""The compiled core's trace shaping against an oracle over the official classes.

``prepare_traces`` hands the store parts (one per ScopeSpans and trace), index terms and the
metrics taps' columns, all built by ``TraceShaper`` from the request's bytes. The oracle below
rebuilds each of them from ``opentelemetry-proto``'s decode with the rules as they read in Python
before the core took them over: the two must be equal on random requests whose trace ids repeat,
whose spans call peers and databases, and whose ids, times and statuses break the rules.
"""

from __future__ import annotations

from array import array
from collections import defaultdict
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from sidecar.core._wire import SlotTable
from sidecar.ingest.peers import DATABASE, peer_of
from sidecar.ingest.traces import content_ref, prepare_traces
from sidecar.otlp.conventions import NO_SERVICE_NAME, UNKNOWN_SERVICE
from sidecar.otlp.shadow import Chunk
from sidecar.storage.rocks import keys
from tests.unit.test_storage import kv
from tests.unit.test_wire_core import FAST, oracle_problem

CLIENT, SERVER = {3, 4}, {2, 5}
TRACES = [bytes([n]) * 16 for n in range(1, 5)]
PEER_ATTRIBUTES = [
    ("peer.service", "billing"),
    ("db.system", "postgresql"),
    ("db.name", "orders"),
    ("server.address", "api.example.com"),
    ("messaging.system", "kafka"),
    ("http.method", "GET"),
]


def expected_scope(resource_ref: bytes, scope_ref: bytes, spans: list[Span]) -> dict[str, Any]:
    """Parts, columns and peers of one ScopeSpans' kept spans, from decoded spans."""
    by_trace: dict[bytes, list[int]] = {}
    for i, span in enumerate(spans):
        by_trace.setdefault(span.trace_id, []).append(i)
    peers = {}
    for i, span in enumerate(spans):
        if span.kind in CLIENT:
            peer = peer_of([a.SerializeToString() for a in span.attributes], span.kind)
            if peer is not None:
                peers[i] = peer
    any_edges = any(s.kind in CLIENT | SERVER for s in spans)
    errors = [int(s.status.code == 2) for s in spans]
    parts = []
    for tid, ix in by_trace.items():
        members = [spans[i] for i in ix]
        durations = [s.end_time_unix_nano - s.start_time_unix_nano for s in members]
        candidates = [i for i in ix if not spans[i].parent_span_id] or ix
        root = spans[min(candidates, key=lambda i: spans[i].start_time_unix_nano)]
        part: dict[str, Any] = {
            "trace_id": tid,
            "refs": (resource_ref, scope_ref),
            "spans": [s.SerializeToString() for s in members],
            "span_count": len(ix),
            "start": min(s.start_time_unix_nano for s in members),
            "end": max(s.end_time_unix_nano for s in members),
            "min_duration": min(durations),
            "max_duration": max(durations),
            "errors": sum(errors[i] for i in ix),
            "root": (bool(root.parent_span_id), root.start_time_unix_nano, root.name.encode()),
            "operations": {(s.name.encode(), s.kind) for s in members},
            "span_ids": [s.span_id for s in members],
            "clients": (),
            "servers": (),
            "peers": (),
            "databases": (),
        }
        if any_edges:
            calls = [i for i in ix if spans[i].kind in CLIENT]
            if peers:
                part["databases"] = [peers[i][0] for i in calls if i in peers and peers[i][1] == DATABASE]
                calls = [i for i in calls if not (i in peers and peers[i][1] == DATABASE)]
                part["peers"] = [peers[i][0] if i in peers else "" for i in calls]
            part["clients"] = [spans[i].span_id for i in calls]
            part["servers"] = [s.parent_span_id for s in members if s.kind in SERVER and s.parent_span_id]
        parts.append(part)
    columns = {
        "names": [s.name.encode() for s in spans],
        "kinds": [s.kind for s in spans],
        "statuses": [s.status.SerializeToString() if s.HasField("status") else b"" for s in spans],
        "starts": [s.start_time_unix_nano for s in spans],
        "durations": [s.end_time_unix_nano - s.start_time_unix_nano for s in spans],
        "trace_ids": [s.trace_id for s in spans],
        "span_ids": [s.span_id for s in spans],
        "parents": [s.parent_span_id for s in spans],
        "peers": peers,
        "attributes": [[a.SerializeToString() for a in s.attributes] for s in spans],
    }
    return {"parts": parts, "columns": columns}


def expected(body: bytes) -> dict[str, Any]:
    request = ExportTraceServiceRequest.FromString(body)
    parts: list[dict[str, Any]] = []
    columns: list[dict[str, Any]] = []
    terms: dict[str, defaultdict[bytes, set[bytes]]] = {}
    services: list[str] = []  # of each ScopeSpans
    for rs in request.resource_spans:
        named = [a.value.string_value for a in rs.resource.attributes if a.key == "service.name"]
        service = (named[0] or UNKNOWN_SERVICE) if named else UNKNOWN_SERVICE
        service = service if rs.resource.attributes else NO_SERVICE_NAME
        resource_ref = content_ref(rs.resource.SerializeToString())
        for ss in rs.scope_spans:
            kept = [
                s
                for s in ss.spans
                if oracle_problem(s.trace_id, s.span_id, s.start_time_unix_nano, s.end_time_unix_nano) is None
            ]
            scope = expected_scope(resource_ref, content_ref(ss.scope.SerializeToString()), kept)
            parts.extend(scope["parts"])
            columns.append(scope["columns"])
            services.append(service)
            for s in kept:
                carried = [*s.attributes, *(a for e in s.events for a in e.attributes)]
                carried += [a for link in s.links for a in link.attributes]
                for a in carried:
                    terms.setdefault(service, defaultdict(set))[a.SerializeToString()].add(s.trace_id)
    # Span metrics' series: (service, name, kind, status code) in order of first appearance.
    keys: dict[tuple[str, bytes, int, int], int] = {}
    of, durations = [], []
    for service, col in zip(services, columns, strict=True):
        for name, kind, status, duration in zip(
            col["names"], col["kinds"], col["statuses"], col["durations"], strict=True
        ):
            code = Status.FromString(status).code if status else 0
            key = (service, name, kind, code if 0 <= code <= 2 else 0)
            of.append(keys.setdefault(key, len(keys)))
            durations.append(duration)
    series = (list(keys), array("i", of).tobytes(), array("Q", durations).tobytes())
    return {
        "parts": parts,
        "columns": columns,
        "terms": {k: dict(v) for k, v in terms.items()},
        "series": series,
    }


def shaped(body: bytes) -> dict[str, Any]:
    prepared = prepare_traces(body)
    parts = []
    for p in prepared.parts:
        (group,) = Chunk.FromString(p.chunk).groups
        parts.append(
            {
                "trace_id": p.trace_id,
                "refs": (group.resource_ref, group.scope_ref),
                "spans": list(group.spans),
                "span_count": p.span_count,
                "start": p.start,
                "end": p.end,
                "min_duration": p.min_duration,
                "max_duration": p.max_duration,
                "errors": p.errors,
                "root": p.root,
                "operations": p.operations,
                "span_ids": list(p.span_ids),
                "clients": p.clients if p.clients == () else list(p.clients),
                "servers": p.servers if p.servers == () else list(p.servers),
                "peers": p.peers if p.peers == () else list(p.peers),
                "databases": p.databases if p.databases == () else list(p.databases),
            }
        )
        assert p.resource.ref == group.resource_ref and p.scope.ref == group.scope_ref
    columns = [
        {
            "names": c.names,
            "kinds": c.kinds,
            "statuses": c.statuses,
            "starts": c.starts,
            "durations": c.durations,
            "trace_ids": c.trace_ids,
            "span_ids": c.span_ids,
            "parents": c.parents,
            "peers": c.peers,
            "attributes": c.span_attributes(),
        }
        for c in prepared.columns
    ]
    terms = {
        service: {kv: set(tids) for kv, tids in lists.items()} for service, lists in prepared.terms.items()
    }
    series = prepared.series
    assert series is not None
    return {
        "parts": parts,
        "columns": columns,
        "terms": terms,
        "series": (series.keys, series.of, series.durations),
    }


@st.composite
def shaped_spans(draw: Any) -> Span:
    ok = draw(st.integers(0, 5)) > 0
    start = draw(st.integers(1, 50))
    span = Span(
        trace_id=draw(st.sampled_from(TRACES))
        if ok
        else draw(st.sampled_from([b"", bytes(16), b"\x01" * 3])),
        span_id=draw(st.binary(min_size=8, max_size=8).filter(any)),
        name=draw(st.sampled_from(["GET /", "SELECT", "work", "é"])),
        kind=draw(st.integers(0, 5)),
        start_time_unix_nano=start,
        end_time_unix_nano=start + draw(st.integers(0, 30)),
    )
    if draw(st.booleans()):
        span.parent_span_id = draw(st.binary(min_size=8, max_size=8))
    for key, value in draw(st.lists(st.sampled_from(PEER_ATTRIBUTES), max_size=3, unique=True)):
        span.attributes.append(kv(key, value))
    for n in range(draw(st.integers(0, 2))):
        span.attributes.append(kv(f"k{n}", draw(st.sampled_from([1, "a", "b"]))))
    if draw(st.booleans()):
        span.status.code = draw(st.sampled_from([0, 1, 2, 5, -1]))
    if draw(st.integers(0, 3)) == 0:
        span.events.add(name="e", time_unix_nano=start).attributes.append(kv("ev", draw(st.integers(0, 2))))
    if draw(st.integers(0, 3)) == 0:
        link = span.links.add(trace_id=TRACES[0], span_id=b"\x05" * 8)
        link.attributes.append(kv("ln", "x"))
    return span


def export(draw: Any, request: Any, levels: tuple[str, str, str], items: Any, max_items: int) -> bytes:
    """A random export: 1-3 resources (a service name, none, or an empty one) of 1-3 scopes each,
    holding up to ``max_items`` of ``items``; ``levels`` names the resource, scope and item fields
    (resource_spans, scope_spans, spans for traces)."""
    resources, scopes, leaves = levels
    for _ in range(draw(st.integers(1, 3))):
        resource = getattr(request, resources).add()
        service = draw(st.sampled_from(["cart", "shop", None, ""]))
        if service is not None:
            resource.resource.attributes.append(kv("service.name", service))
        for _ in range(draw(st.integers(1, 3))):
            scope = getattr(resource, scopes).add()
            scope.scope.name = draw(st.sampled_from(["a", "b"]))
            getattr(scope, leaves).extend(draw(st.lists(items, max_size=max_items)))
    return request.SerializeToString()


@st.composite
def shaped_requests(draw: Any) -> bytes:
    return export(
        draw, ExportTraceServiceRequest(), ("resource_spans", "scope_spans", "spans"), shaped_spans(), 8
    )


@FAST
@given(shaped_requests())
def test_shaped_request_matches_the_oracle(body: bytes) -> None:
    assert shaped(body) == expected(body)


def test_a_trace_split_over_scopes_and_resources_makes_one_part_each() -> None:
    request = ExportTraceServiceRequest()
    for service in ("a", "b"):
        rs = request.resource_spans.add()
        rs.resource.attributes.append(kv("service.name", service))
        for scope in ("x", "y"):
            ss = rs.scope_spans.add()
            ss.scope.name = scope
            ss.spans.add(
                trace_id=TRACES[0],
                span_id=bytes([len(request.resource_spans), len(rs.scope_spans)]) * 4,
                start_time_unix_nano=1,
                end_time_unix_nano=2,
                kind=2,
            )
    body = request.SerializeToString()
    got = shaped(body)
    assert got == expected(body)
    assert [p["trace_id"] for p in got["parts"]] == [TRACES[0]] * 4


@FAST
@given(
    st.lists(st.sampled_from(TRACES), min_size=1),
    st.lists(
        st.dictionaries(st.binary(min_size=0, max_size=6), st.lists(st.sampled_from(TRACES))), max_size=3
    ),
)
def test_slot_table_values_are_the_documented_posting_layout(table: list[bytes], maps: list[Any]) -> None:
    """Slots (u16, native order) of distinct traces in order of first appearance; terms merged."""
    slots = SlotTable(table)
    slot_of = dict(zip(dict.fromkeys(table), range(len(table)), strict=False))
    for tids in maps[0].values() if maps else ():
        tids = [t for t in tids if t in slot_of]
        assert slots.slots(tids) == array("H", dict.fromkeys(map(slot_of.__getitem__, tids))).tobytes()
    maps = [{term: [t for t in tids if t in slot_of] for term, tids in m.items()} for m in maps]
    put: list[tuple[bytes, bytes]] = []

    class Batch:
        def put(self, key: bytes, value: bytes) -> None:
            put.append((key, value))

    known: set[bytes] = {b"k"}
    new = slots.put_terms(Batch(), b"A\x00\x00\x00\x07", maps, b"R" * 8, 4, lambda term: b"#" + term, known)
    merged: dict[bytes, list[bytes]] = {}
    for m in maps:
        for term, tids in m.items():
            merged.setdefault(term, []).extend(tids)
    assert put == [
        (
            (keys.attribute_posting_prefix(7, term) if len(term) <= 4 else b"#" + term) + b"R" * 8,
            array("H", dict.fromkeys(map(slot_of.__getitem__, tids))).tobytes(),
        )
        for term, tids in merged.items()
    ]
    names = {t[2 : 2 + t[1]] for t in merged if len(t) >= 2 and t[0] == 0x0A and 2 + t[1] <= len(t)}
    assert set(new) == names - {b"k"} and len(new) == len(set(new)) and known >= names
