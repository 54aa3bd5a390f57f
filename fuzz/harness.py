"""What every fuzz target shares: where the instrumented core is, writing seeds, atheris's loop."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from types import ModuleType

import atheris

# make fuzz points this at a copy of the core built with clang, AddressSanitizer and libFuzzer's
# coverage counters; each target puts it first on sidecar.core's path before importing the core.
FUZZ_CORE = os.environ.get("SIDECAR_FUZZ_CORE", "")


def main(
    core: ModuleType, seeds: Callable[[], Mapping[str, bytes]], one_input: Callable[[bytes], None]
) -> None:
    """``--seed DIR`` writes the target's seed inputs into DIR; anything else is libFuzzer's
    command line, run on ``one_input`` (``core``: the module named in the log, to show which build
    was fuzzed)."""
    if sys.argv[1:2] == ["--seed"]:
        for name, body in seeds().items():
            with open(os.path.join(sys.argv[2], name), "wb") as out:
                out.write(body)
        return
    print(f"fuzzing {core.__file__}", file=sys.stderr)
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
