"""``sidecar services``, ``operations SERVICE`` and ``dependencies``: what to search for, without curl."""

from __future__ import annotations

import argparse
import sys

from sidecar.cli import argtypes
from sidecar.cli.client import api_base, fetch_data, print_json, query_options
from sidecar.cli.output import printable, render_table

_NS_PER_MS = 1_000_000


def cmd_services(args: argparse.Namespace) -> int:
    """One service name per line, so the output feeds ``--service`` and shell loops directly."""
    names = fetch_data(api_base(args), "/api/services")
    if args.json:
        print_json(names)
    elif not names:
        print("no services found", file=sys.stderr)
    else:
        print("\n".join(sorted(printable(str(name)) for name in names)))
    return 0


def cmd_operations(args: argparse.Namespace) -> int:
    """The service's operations with their span kinds, from ``/api/operations``."""
    ops = fetch_data(api_base(args), "/api/operations", [("service", args.service)])
    if args.json:
        print_json(ops)
        return 0
    if not ops:
        print(
            f"no operations found for service {args.service!r}; 'sidecar services' lists the known services",
            file=sys.stderr,
        )
        return 0
    rows = sorted([str(op.get("name", "")), str(op.get("spanKind") or "")] for op in ops)
    print(render_table(["OPERATION", "SPAN KIND"], rows, right=frozenset()))
    return 0


def cmd_dependencies(args: argparse.Namespace) -> int:
    """Caller -> callee service pairs with call counts; the server's clock ends the window."""
    params = []
    if args.since is not None:
        ms = max(argtypes.duration_ns(args.since) // _NS_PER_MS, 1)  # the API counts whole ms
        params.append(("lookback", str(ms)))
    links = fetch_data(api_base(args), "/api/dependencies", params)
    if args.json:
        print_json(links)
        return 0
    if not links:
        print("no dependencies found", file=sys.stderr)
        return 0
    rows = sorted(
        [str(link.get("parent")), str(link.get("child")), str(link.get("callCount"))] for link in links
    )
    print(render_table(["PARENT", "CHILD", "CALLS"], rows, right=frozenset({2})))
    return 0


def add_services_parsers(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``services``, ``operations`` and ``dependencies``."""
    common = query_options()
    services = subparsers.add_parser(
        "services", parents=[common], help="list the services that sent spans", description="List services."
    )
    services.set_defaults(handler=cmd_services)

    operations = subparsers.add_parser(
        "operations",
        parents=[common],
        help="list a service's operations",
        description="List the operations (span names) of one service, with their span kinds.",
    )
    operations.add_argument("service", metavar="SERVICE", help="service name, as 'sidecar services' lists it")
    operations.set_defaults(handler=cmd_operations)

    dependencies = subparsers.add_parser(
        "dependencies",
        parents=[common],
        help="list which services call which",
        description="List service-to-service calls (a CLIENT or PRODUCER span whose child is a SERVER "
        "or CONSUMER span of another service), with call counts.",
    )
    dependencies.add_argument(
        "--since",
        type=argtypes.window,
        metavar="DURATION",
        help="look-back window ending now, e.g. 1h or 30m (default: the server's, 24h)",
    )
    dependencies.set_defaults(handler=cmd_dependencies)
