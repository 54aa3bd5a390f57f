"""``python -m sidecar``: the same entry point as the ``sidecar`` console script."""

from sidecar.cli.main import main

raise SystemExit(main())
