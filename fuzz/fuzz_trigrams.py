"""Coverage-guided fuzzing of the compiled token-filter builder (atheris): no crash, numpy's bits.

Run with ``make fuzz`` (``python -m fuzz.fuzz_trigrams`` from the repository root). An input is a
log block's text as bytes (decoded with ``replace``, as bodies of any bytes are), cut into lines at
newlines; the filter built by the core (sidecar/core/_trigrams.pyx) must be bit for bit the numpy
builder's in tests/unit/test_trigram_core.py. Where clang is installed, ``make fuzz`` builds the
module with AddressSanitizer and libFuzzer's coverage counters.
"""

from __future__ import annotations

import os
import sys

import atheris

import sidecar.core

if os.environ.get("SIDECAR_FUZZ_CORE"):  # make fuzz's ASan build, searched first
    sidecar.core.__path__.insert(0, os.environ["SIDECAR_FUZZ_CORE"])

import sidecar.core._trigrams
from sidecar.storage.rocks.logs.merge import build_filter
from tests.unit.test_trigram_core import numpy_filter


@atheris.instrument_func
def test_one_input(data: bytes) -> None:
    texts = data.decode("utf-8", "replace").split("\n")
    built = build_filter(texts)
    if built != numpy_filter(texts):
        raise AssertionError(f"filter differs from numpy's for {data[:80]!r}")


def write_seeds(directory: str) -> None:
    """Seed inputs: logfmt lines, whitespace runs, multi-byte text."""
    seeds = {
        "logfmt": b"\n".join(b"ts=1 level=info msg=done req=%016x" % (i * 2654435761) for i in range(50)),
        "spaces": b" \t\x0b\x0c\r\x1c\x1d\x1e\x1f" * 20 + b"abc",
        "unicode": "z\u00e9\u20ac\U0001f600 \u0130stanbul".encode() * 10,
        "short": b"ab",
    }
    for name, body in seeds.items():
        with open(os.path.join(directory, name), "wb") as out:
            out.write(body)


def main() -> None:
    if sys.argv[1:2] == ["--seed"]:
        write_seeds(sys.argv[2])
        return
    print(f"fuzzing {sidecar.core._trigrams.__file__}", file=sys.stderr)
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
