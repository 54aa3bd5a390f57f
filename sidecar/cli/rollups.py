"""``sidecar events rebuild-rollups``: recompute the event rollups of a data directory.

Unlike the query commands it works on the store itself, not through the API, so the server must
be stopped: the data directory's lock refuses a second opener. A progress line is drawn on a
terminal, none when stderr is piped.
"""

from __future__ import annotations

import argparse
import sys
import time

from sidecar.cli.client import CliError
from sidecar.config.loader import ConfigError, load_config


def cmd_rebuild(args: argparse.Namespace) -> int:
    overrides = {"data_dir": args.data_dir} if args.data_dir else {}
    try:
        config = load_config(args.config, overrides=overrides)
    except ConfigError as exc:
        raise CliError("config error: " + "; ".join(exc.errors), code=2) from None
    # Deferred: RocksDB only for this command.
    from sidecar.server import open_store
    from sidecar.storage.rocks.db import DataDirInUse
    from sidecar.storage.rocks.events.rebuild import rebuild, stored_events

    try:
        store, _ = open_store(config)
    except DataDirInUse as exc:
        raise CliError(f"{exc}; stop the server first (rebuilding needs the store to itself)") from None
    shown = sys.stderr.isatty()
    done = 0
    started = time.monotonic()
    expected = max(stored_events(store), 1) if shown else 1

    def progress(events: int) -> None:
        nonlocal done
        done += events
        if shown:
            filled = min(30, 30 * done // expected)
            bar = "#" * filled + "." * (30 - filled)
            line = f"\rsidecar: [{bar}] {100 * done // expected:3d}% {done:,}/{expected:,} events"
            print(line, end="", file=sys.stderr, flush=True)

    try:
        total = rebuild(store, config.storage.events.dimensions(), progress)
    finally:
        store.close()
    if shown:
        print(file=sys.stderr)
    print(f"sidecar: rollups rebuilt from {total:,} events in {time.monotonic() - started:.1f} s")
    return 0


def add_rebuild_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    rebuild = commands.add_parser(
        "rebuild-rollups",
        help="recompute the event rollups from the stored events (server stopped)",
        description="Drop the event rollups of the data directory and compute them again from the "
        "stored events, which are only read. The server must be stopped.",
    )
    rebuild.add_argument(
        "--config", metavar="FILE", help="YAML config file (default: $SIDECAR_CONFIG, if set)"
    )
    rebuild.add_argument("--data-dir", metavar="DIR", help="storage directory (data_dir)")
    rebuild.set_defaults(handler=cmd_rebuild)
