"""The shape of simulated traces: call trees across services, timings, attributes and errors.

A trace is a SERVER root in ``frontend``; every call is a CLIENT span in the caller whose only child
is the callee's SERVER span (parent_span_id = the client span id); leaves are INTERNAL spans,
database CLIENT spans (db-proxy) and uninstrumented external HTTP calls (payment). About 8
semantic-convention attributes per span: mostly low/medium cardinality, ``user.id`` per trace,
one high-cardinality value per span (``app.request.size``, ``url.path``/``url.full`` ids, row counts).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from opentelemetry.proto.trace.v1.trace_pb2 import Span

from bench.topology import BY_NAME, EXCEPTIONS, GRPC, ROOT, USER_AGENTS, Operation, Service

USERS = 100_000
USER_DIGITS = 5
TRACE_GAP_NS = 1_000_000  # one new trace per millisecond of simulated time
ERROR_TRACES = 0.11  # a failing leaf, propagated to every ancestor: ~3% of spans
NOT_FOUND_TRACES = 0.03  # the root answers 404 (not an error for a SERVER span)
SERVER, CLIENT, INTERNAL = Span.SPAN_KIND_SERVER, Span.SPAN_KIND_CLIENT, Span.SPAN_KIND_INTERNAL
Value = str | int | bool


@dataclass(slots=True)
class Node:
    """One span of a trace being generated."""

    service: Service
    replica: int
    kind: int
    name: str
    span_id: bytes
    parent: Node | None
    attrs: dict[str, Value]
    children: list[Node] = field(default_factory=list)
    self_ns: int = 0
    latency_ns: int = 0  # CLIENT -> SERVER network time, each way
    duration: int = 0
    start: int = 0
    error: bool = False
    exception: tuple[str, str] | None = None
    event: tuple[str, dict[str, Value]] | None = None


class TraceShaper:
    def __init__(self, rng: random.Random, base_ns: int) -> None:
        self.rng = rng
        self.base_ns = base_ns
        self.trace_index = 0

    def _node(self, s: Service, replica: int, kind: int, name: str, parent: Node | None) -> Node:
        node = Node(s, replica, kind, name, self.rng.randbytes(8), parent, {})
        if parent is not None:
            parent.children.append(node)
        return node

    def _server(self, s: Service, op: Operation, parent: Node | None, user: str) -> Node:
        rng = self.rng
        node = self._node(s, rng.randrange(s.replicas), SERVER, op.name, parent)
        node.self_ns = int(rng.lognormvariate(12.5, 0.6))  # ~270 us of own work
        if op.protocol == GRPC:
            node.attrs = {
                "rpc.system": "grpc",
                "rpc.service": op.route,
                "rpc.method": op.method,
                "rpc.grpc.status_code": 0,
                "server.address": s.name,
                "server.port": s.port,
                "network.peer.address": f"10.0.{rng.randrange(4)}.{rng.randrange(2, 64)}",
                "user.id": user,
                "app.request.size": rng.randrange(64, 65536),
            }
        else:
            path = op.route.replace("{id}", str(rng.randrange(10**6))).replace(
                "{sku}", f"SKU-{rng.randrange(10**5)}"
            )
            node.attrs = {
                "http.request.method": op.method,
                "http.route": op.route,
                "http.response.status_code": 200,
                "url.scheme": "http",
                "url.path": path,
                "server.address": s.name,
                "server.port": s.port,
                "user.id": user,
            }
            if s.name == ROOT:
                node.attrs["user_agent.original"] = rng.choice(USER_AGENTS)
        return node

    def _call(self, caller: Node, callee: Service, op: Operation, user: str) -> Node:
        rng = self.rng
        client = self._node(caller.service, caller.replica, CLIENT, op.name, caller)
        client.latency_ns = int(rng.lognormvariate(12.9, 0.5))  # ~400 us each way
        server = self._server(callee, op, client, user)
        size = rng.randrange(64, 65536)
        if op.protocol == GRPC:
            client.attrs = {
                "rpc.system": "grpc",
                "rpc.service": op.route,
                "rpc.method": op.method,
                "rpc.grpc.status_code": 0,
                "server.address": callee.name,
                "server.port": callee.port,
                "user.id": user,
                "app.request.size": size,
            }
        else:
            client.attrs = {
                "http.request.method": op.method,
                "url.full": f"http://{callee.name}:{callee.port}{server.attrs['url.path']}",
                "server.address": callee.name,
                "server.port": callee.port,
                "http.response.status_code": 200,
                "network.protocol.version": "1.1",
                "user.id": user,
                "app.request.size": size,
            }
        return server

    def _leaf(self, parent: Node, user: str) -> Node:
        rng = self.rng
        s = parent.service
        if s.db and rng.random() < 0.7:
            operation, table = rng.choice(s.db)
            node = self._node(s, parent.replica, CLIENT, f"{operation} {table}", parent)
            node.self_ns = int(rng.lognormvariate(14.2, 0.9))  # ~1.5 ms
            node.attrs = {
                "db.system": "postgresql",
                "db.namespace": "shop",
                "db.operation.name": operation,
                "db.collection.name": table,
                "db.query.text": f"{operation} * FROM {table} WHERE id = $1",
                "server.address": "postgres.shop.svc",
                "server.port": 5432,
                "user.id": user,
                "db.response.returned_rows": rng.randrange(0, 500),
            }
            return node
        if s.external and rng.random() < 0.5:
            host = rng.choice(s.external)
            node = self._node(s, parent.replica, CLIENT, "POST", parent)
            node.self_ns = int(rng.lognormvariate(18.0, 0.5))  # ~65 ms
            node.attrs = {
                "http.request.method": "POST",
                "url.full": f"https://{host}/v1/charges/ch_{rng.randrange(16**12):012x}",
                "server.address": host,
                "server.port": 443,
                "http.response.status_code": 200,
                "network.protocol.version": "2",
                "user.id": user,
                "app.request.size": rng.randrange(200, 2000),
            }
            return node
        name = rng.choice(s.internal)
        node = self._node(s, parent.replica, INTERNAL, name, parent)
        node.self_ns = int(rng.lognormvariate(12.0, 1.0))  # ~160 us
        node.attrs = {
            "code.function.name": name,
            "code.namespace": f"{s.name}.handlers",
            "app.items": rng.randrange(1, 50),
            "cache.hit": rng.random() < 0.8,
            "user.id": user,
        }
        if rng.random() < 0.1:
            node.event = ("cache.miss", {"cache.key": f"product:{rng.randrange(10**5)}"})
        return node

    def trace(self) -> tuple[bytes, str, list[Node]]:
        rng = self.rng
        user = f"user-{rng.randrange(USERS):0{USER_DIGITS}d}"
        target = rng.randint(10, 20)
        root_svc = BY_NAME[ROOT]
        root = self._server(root_svc, rng.choice(root_svc.operations), None, user)
        servers, count = [root], 1
        while count < target:
            parent = rng.choice(servers)
            s = parent.service
            if s.calls and rng.random() < 0.6:
                callee_name, index = rng.choice(s.calls)
                callee = BY_NAME[callee_name]
                servers.append(self._call(parent, callee, callee.operations[index], user))
                count += 2
            else:
                self._leaf(parent, user)
                count += 1
        self._time(root, self.base_ns + self.trace_index * TRACE_GAP_NS)
        self.trace_index += 1
        nodes = self._flatten(root)
        self._outcome(root, nodes)
        return rng.randbytes(16), user, nodes

    def _duration(self, node: Node) -> int:
        inner = sum(self._duration(c) for c in node.children)
        node.duration = node.self_ns + inner + 2 * node.latency_ns + 20_000 * len(node.children)
        return node.duration

    def _time(self, root: Node, start: int) -> None:
        self._duration(root)
        stack = [(root, start)]
        while stack:
            node, t = stack.pop()
            node.start = t
            t += node.latency_ns + node.self_ns // 2
            for child in node.children:
                stack.append((child, t + 10_000))
                t += child.duration + 20_000

    @staticmethod
    def _flatten(root: Node) -> list[Node]:
        out, stack = [], [root]
        while stack:
            node = stack.pop()
            out.append(node)
            stack.extend(node.children)
        return out

    def _outcome(self, root: Node, nodes: list[Node]) -> None:
        rng = self.rng
        draw = rng.random()
        if draw < ERROR_TRACES:
            node: Node | None = rng.choice([n for n in nodes if not n.children])
            assert node is not None
            node.exception = rng.choice(EXCEPTIONS)
            while node is not None:
                node.error = True
                if "http.response.status_code" in node.attrs:
                    node.attrs["http.response.status_code"] = 500
                if "rpc.grpc.status_code" in node.attrs:
                    node.attrs["rpc.grpc.status_code"] = 13
                node = node.parent
        elif draw < ERROR_TRACES + NOT_FOUND_TRACES:
            root.attrs["http.response.status_code"] = 404
