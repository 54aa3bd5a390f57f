"""Coverage-guided fuzzing of the compiled NDJSON event reader (atheris): no crash, and Python's answer.

Run with ``make fuzz`` (it runs ``python -m fuzz.fuzz_ndjson`` from the repository root, after
``fuzz.fuzz_wire``). An input is read one of two ways, by its first byte: as a request body as it
is, or as a recipe, where its next 8 bytes seed the differential test's generator of event lines
(tests/unit/test_ndjson_core.py) and the rest is spliced into that body. Either way
``parse_request`` on an NDJSON body must give exactly the answer of the all-Python oracle there,
under the default limits, small ones, or ones drawn from the seed. Where clang is installed,
``make fuzz`` builds the reader with AddressSanitizer and libFuzzer's coverage counters so the
fuzzer sees the C code's branches; otherwise it sees the Python side only, and says so.
"""

from __future__ import annotations

import random

import atheris

import sidecar.core
from fuzz.harness import FUZZ_CORE, main

if FUZZ_CORE:  # make fuzz's instrumented build of the core, searched first
    sidecar.core.__path__.insert(0, FUZZ_CORE)

import sidecar.core._ndjson
from sidecar.ingest.events import Limits
from tests.unit import test_ndjson_core as differential  # the oracle and the generator


def body_of(data: bytes) -> tuple[bytes, Limits]:
    """The body and limits an input stands for (see the module's docstring)."""
    if not data:
        return b"", differential.DEFAULT
    mode, rest = data[0] % 4, data[1:]
    if mode < 2:
        return rest, (differential.DEFAULT, differential.SMALL)[mode]
    seed = int.from_bytes(rest[:8], "little")
    body, limits = differential.case(seed, mutated=mode == 3)
    at = random.Random(seed).randint(0, len(body))
    return body[:at] + rest[8:] + body[at:], limits


@atheris.instrument_func
def test_one_input(data: bytes) -> None:
    body, limits = body_of(data)
    differential.check(body, limits)


def seeds() -> dict[str, bytes]:
    """Seed inputs: the bench's lines, the tests' tricky lines, and drawn bodies (as recipes)."""
    from bench.events import EventStream, build_batches

    bench = EventStream(build_batches(1), seed=1).body(0).split(b"\n")
    found = {f"bench-{i}": b"\x00" + b"\n".join(bench[i * 100 : i * 100 + 100]) for i in range(3)}
    for i, line in enumerate(differential.TRICKY):
        found[f"tricky-{i}"] = bytes([i % 2]) + line.encode("utf-8", "surrogatepass")
    for i in range(40):
        found[f"drawn-{i}"] = bytes([2 + i % 2]) + i.to_bytes(8, "little")
    return found


if __name__ == "__main__":
    main(sidecar.core._ndjson, seeds, test_one_input)
