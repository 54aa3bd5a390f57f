"""Coverage-guided fuzzing of the compiled token-filter builder (atheris): no crash, numpy's bits.

Run with ``make fuzz`` (``python -m fuzz.fuzz_trigrams`` from the repository root). An input is a
log block's text as bytes (decoded with ``replace``, as bodies of any bytes are), cut into lines at
newlines; the filter built by the core (sidecar/core/_trigrams.pyx) must be bit for bit the numpy
builder's in tests/unit/test_trigram_core.py. Where clang is installed, ``make fuzz`` builds the
module with AddressSanitizer and libFuzzer's coverage counters.
"""

from __future__ import annotations

import atheris

import sidecar.core
from fuzz.harness import FUZZ_CORE, main

if FUZZ_CORE:  # make fuzz's instrumented build of the core, searched first
    sidecar.core.__path__.insert(0, FUZZ_CORE)

import sidecar.core._trigrams
from sidecar.storage.rocks.logs.merge import build_filter
from tests.unit.test_trigram_core import numpy_filter


@atheris.instrument_func
def test_one_input(data: bytes) -> None:
    texts = data.decode("utf-8", "replace").split("\n")
    built = build_filter(texts)
    if built != numpy_filter(texts):
        raise AssertionError(f"filter differs from numpy's for {data[:80]!r}")


def seeds() -> dict[str, bytes]:
    """Seed inputs: logfmt lines, whitespace runs, multi-byte text."""
    return {
        "logfmt": b"\n".join(b"ts=1 level=info msg=done req=%016x" % (i * 2654435761) for i in range(50)),
        "spaces": b" \t\x0b\x0c\r\x1c\x1d\x1e\x1f" * 20 + b"abc",
        "unicode": "z\u00e9\u20ac\U0001f600 \u0130stanbul".encode() * 10,
        "short": b"ab",
    }


if __name__ == "__main__":
    main(sidecar.core._trigrams, seeds, test_one_input)
