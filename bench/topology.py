"""The simulated application: six services, their operations, calls and instrumentation scopes."""

from __future__ import annotations

from dataclasses import dataclass

HTTP, GRPC = "http", "grpc"


@dataclass(frozen=True, slots=True)
class Operation:
    """A server endpoint: HTTP (``route`` = http.route) or gRPC (``route`` = rpc.service)."""

    protocol: str
    method: str  # HTTP method or rpc.method
    route: str

    @property
    def name(self) -> str:
        return f"{self.method} {self.route}" if self.protocol == HTTP else f"{self.route}/{self.method}"


@dataclass(frozen=True, slots=True)
class Service:
    name: str
    version: str
    language: str
    sdk_version: str
    replicas: int
    port: int
    instrumentation: tuple[str, str]  # scope of SERVER/CLIENT spans
    app_scope: tuple[str, str] | None  # scope of INTERNAL spans (None: same as instrumentation)
    operations: tuple[Operation, ...]
    calls: tuple[tuple[str, int], ...]  # (callee service, index into its operations)
    internal: tuple[str, ...]
    db: tuple[tuple[str, str], ...] = ()  # (db.operation.name, db.collection.name) of database calls
    external: tuple[str, ...] = ()  # hosts called over HTTP without instrumentation on the far side


def _http(method: str, route: str) -> Operation:
    return Operation(HTTP, method, route)


def _grpc(service: str, method: str) -> Operation:
    return Operation(GRPC, method, f"oteldemo.{service}")


SERVICES: tuple[Service, ...] = (
    Service(
        name="frontend",
        version="2.4.1",
        language="nodejs",
        sdk_version="1.30.1",
        replicas=2,
        port=8080,
        instrumentation=("@opentelemetry/instrumentation-http", "0.57.2"),
        app_scope=("frontend", "2.4.1"),
        operations=(
            _http("GET", "/"),
            _http("GET", "/api/products"),
            _http("GET", "/api/products/{id}"),
            _http("GET", "/api/cart"),
            _http("POST", "/api/cart"),
            _http("POST", "/api/checkout"),
            _http("GET", "/api/recommendations"),
        ),
        calls=(("cart", 0), ("cart", 1), ("checkout", 0), ("inventory", 2), ("checkout", 1)),
        internal=("render page", "session.lookup"),
    ),
    Service(
        name="checkout",
        version="1.12.0",
        language="go",
        sdk_version="1.35.0",
        replicas=2,
        port=8081,
        instrumentation=("go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp", "0.60.0"),
        app_scope=("checkout", "1.12.0"),
        operations=(_http("POST", "/checkout"), _http("GET", "/orders/{id}")),
        calls=(("payment", 0), ("inventory", 0), ("cart", 2), ("db-proxy", 0), ("db-proxy", 1)),
        internal=("prepareOrderItems", "calculateTotals", "validateAddress", "sendConfirmation"),
    ),
    Service(
        name="cart",
        version="3.0.2",
        language="dotnet",
        sdk_version="1.11.2",
        replicas=2,
        port=7070,
        instrumentation=("OpenTelemetry.Instrumentation.AspNetCore", "1.11.1"),
        app_scope=None,
        operations=(_http("GET", "/cart"), _http("POST", "/cart/items"), _http("POST", "/cart/empty")),
        calls=(("db-proxy", 0), ("db-proxy", 1)),
        internal=("cart.cache_lookup", "cart.serialize", "cart.merge"),
    ),
    Service(
        name="payment",
        version="0.9.7",
        language="java",
        sdk_version="1.49.0",
        replicas=1,
        port=50051,
        instrumentation=("io.opentelemetry.grpc-1.6", "2.15.0-alpha"),
        app_scope=("com.example.payment", "0.9.7"),
        operations=(_grpc("PaymentService", "Charge"), _grpc("PaymentService", "Refund")),
        calls=(("db-proxy", 1), ("db-proxy", 0)),
        internal=("fraud.check", "card.validate", "tokenize"),
        external=("api.psp.example.com",),
    ),
    Service(
        name="inventory",
        version="1.4.0",
        language="python",
        sdk_version="1.33.1",
        replicas=1,
        port=50052,
        instrumentation=("opentelemetry.instrumentation.grpc", "0.54b1"),
        app_scope=("inventory.service", "1.4.0"),
        operations=(
            _grpc("InventoryService", "Reserve"),
            _grpc("InventoryService", "GetStock"),
            _http("GET", "/stock/{sku}"),
        ),
        calls=(("db-proxy", 0), ("db-proxy", 1)),
        internal=("stock.compute", "reservation.lock", "cache.get"),
    ),
    Service(
        name="db-proxy",
        version="5.2.0",
        language="go",
        sdk_version="1.35.0",
        replicas=1,
        port=50053,
        instrumentation=(
            "go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc",
            "0.60.0",
        ),
        app_scope=None,
        operations=(_grpc("DbProxy", "Query"), _grpc("DbProxy", "Exec")),
        calls=(),
        internal=("pool.acquire", "result.decode"),
        db=(
            ("SELECT", "products"),
            ("SELECT", "orders"),
            ("INSERT", "orders"),
            ("UPDATE", "inventory"),
            ("SELECT", "carts"),
            ("UPDATE", "carts"),
        ),
    ),
)

BY_NAME: dict[str, Service] = {s.name: s for s in SERVICES}
ROOT = "frontend"
USER_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
    "okhttp/4.12.0",
)
EXCEPTIONS = (
    ("TimeoutError", "deadline exceeded after 2000ms"),
    ("ConnectionResetError", "connection reset by peer"),
    ("ValueError", "invalid card number"),
    ("psycopg.errors.SerializationFailure", "could not serialize access due to concurrent update"),
)
