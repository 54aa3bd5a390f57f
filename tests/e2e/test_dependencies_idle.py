"""/api/dependencies on an idle sidecar: a client span's edge to its virtual peer is stored once its
wait is over, without another span to write it, so the Jaeger UI shows what the metrics show.
"""

from __future__ import annotations

import time
from typing import Any

from opentelemetry.trace import SpanKind

from tests.e2e.conftest import SidecarFactory
from tests.e2e.prom import samples, scrape, value, wait_for
from tests.e2e.test_service_graph_metrics import dependencies

WAIT_S = 2.0
TICK_S = 1.0  # storage/rocks/traces/writer.py's TICK_S (the tick is min(wait_s, TICK_S))


def test_virtual_edge_reaches_dependencies_with_no_further_spans(
    sidecar_factory: SidecarFactory, sdk: Any
) -> None:
    sidecar = sidecar_factory(env={"SIDECAR_METRICS__SERVICEGRAPH__WAIT_S": str(WAIT_S)})
    shop = sdk(sidecar, "shop")
    shop.tracer.start_span("charge", kind=SpanKind.CLIENT, attributes={"peer.service": "payments"}).end()
    shop.flush()  # stored once this returns
    sent = time.monotonic()
    assert dependencies(sidecar) == {}  # still waiting for a server span from payments

    # Nothing else is sent: the edge shows up within wait_s and a tick (plus slack for a busy machine).
    got = wait_for(lambda: dependencies(sidecar), WAIT_S + TICK_S + 5)
    assert got == {("shop", "payments"): 1}
    assert time.monotonic() - sent >= WAIT_S - 0.5  # not before the wait could be over
    # The metrics tell the same (a scrape ends their waits).
    metrics = samples(sidecar)
    assert value(metrics, "traces_service_graph_request_total", client="shop", server="payments") == 1, (
        scrape(sidecar)
    )
    # Later ticks find nothing waiting: the edge is counted once, and shutdown stays prompt and clean.
    time.sleep(2 * TICK_S)
    assert dependencies(sidecar) == {("shop", "payments"): 1}
    code, seconds = sidecar.stop()
    assert code == 0, sidecar.stderr_text()
    assert seconds < 10
    assert "Traceback" not in sidecar.stderr_text()
