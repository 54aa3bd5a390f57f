"""Benchmarks for ``sidecar serve``: ingest throughput (gRPC, HTTP), disk use, query latency, and the limit.

Run ``python -m bench.run`` (``make bench``); ``--quick`` for a one-minute smoke run.
"""

import os

# The harness spawns children (servers, py-spy) while gRPC client threads may be alive; it never
# forks to run Python, so gRPC's fork handlers would only log warnings. Not passed to the server.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
