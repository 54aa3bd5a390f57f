"""``sidecar`` command line: ``serve`` runs the sidecar; ``traces``, ``services``, ``operations``,
``dependencies``, ``events`` and ``logs`` query a running one.

``main`` returns the exit status instead of exiting, so tests can call it in-process:
0 success, 1 runtime/API failure, 2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import sys
from collections.abc import Sequence

from sidecar.cli.client import CliError
from sidecar.cli.events import add_events_parser
from sidecar.cli.logs import add_logs_parser
from sidecar.cli.output import printable
from sidecar.cli.services import add_services_parsers
from sidecar.cli.traces import add_traces_parser
from sidecar.config.loader import ConfigError, load_config

# serve flag (argparse dest) -> dotted config path it overrides
SERVE_FLAGS: dict[str, str] = {
    "data_dir": "data_dir",
    "otlp_grpc": "receivers.otlp.grpc.endpoint",
    "otlp_http": "receivers.otlp.http.endpoint",
    "api": "api.endpoint",
    "metrics_listen": "metrics.listen",
    "log_level": "log_level",
}


def cmd_serve(args: argparse.Namespace) -> int:
    """Load and validate the config, then hand over to the server; config errors exit 2 before binding."""
    flags = {path: getattr(args, dest) for dest, path in SERVE_FLAGS.items()}
    overrides = {path: value for path, value in flags.items() if value is not None}
    try:
        config = load_config(args.config, overrides=overrides)
    except ConfigError as exc:
        print("sidecar: config error:", file=sys.stderr)
        for line in exc.errors:
            print(f"  {line}", file=sys.stderr)
        return 2
    from sidecar.server import serve  # deferred: heavy imports (grpc, rocksdb) only when serving

    return serve(config)


def package_version() -> str:
    """The installed distribution's version, so it cannot drift from pyproject.toml."""
    try:
        return importlib.metadata.version("sidecar")
    except importlib.metadata.PackageNotFoundError:  # imported from a source tree that was never installed
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser; each subcommand stores its handler in ``handler``."""
    parser = argparse.ArgumentParser(
        prog="sidecar",
        description="Observability sidecar: OTLP in, RocksDB inside, Jaeger-compatible queries out.",
    )
    parser.add_argument("--version", action="version", version=f"sidecar {package_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        help="run the receivers, storage and query API",
        description="Run the sidecar. Settings precedence: built-in defaults < config file "
        "< SIDECAR_* environment < these flags.",
    )
    serve.add_argument("--config", metavar="FILE", help="YAML config file (default: $SIDECAR_CONFIG, if set)")
    serve.add_argument("--data-dir", metavar="DIR", help="storage directory (data_dir)")
    serve.add_argument("--otlp-grpc", metavar="HOST:PORT", help="OTLP/gRPC listen address")
    serve.add_argument("--otlp-http", metavar="HOST:PORT", help="OTLP/HTTP listen address")
    serve.add_argument("--api", metavar="HOST:PORT", help="query API listen address")
    serve.add_argument(
        "--metrics-listen", metavar="HOST:PORT", help="serve /metrics on its own address (default: the API's)"
    )
    serve.add_argument("--log-level", metavar="LEVEL", help="debug, info, warning or error")
    serve.set_defaults(handler=cmd_serve)

    add_traces_parser(commands)
    add_services_parsers(commands)
    add_events_parser(commands)
    add_logs_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Console-script entry point; returns the exit status (argparse's own exits included)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2), already printed by argparse
        return exc.code if isinstance(exc.code, int) else 2
    try:
        return int(args.handler(args))
    except CliError as exc:
        print(f"sidecar: {printable(str(exc))}", file=sys.stderr)  # may quote the server's words
        return exc.code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `sidecar logs search | head`: the reader has what it wanted
        # Python would flush stdout again at exit and print a second traceback: point it nowhere.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, as a shell reports a command killed by it
