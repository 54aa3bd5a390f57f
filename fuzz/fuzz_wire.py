"""Coverage-guided fuzzing of the compiled core (atheris): no crash, and the official classes' verdict.

Run with ``make fuzz`` (FUZZ_SECONDS, default 600; it runs ``python -m fuzz.fuzz_wire`` from the
repository root). Each input is a request body, read as a trace export and as a logs export by
every entry point of the core (span check, trace shaper, log shaper): the core must not
crash, must refuse only bytes the official classes refuse, and on bytes they decode must reject
exactly the spans the partial-success rules reject, with the same texts, and keep the others.
Where clang is installed, ``make fuzz`` builds the core with AddressSanitizer and libFuzzer's
coverage counters so the fuzzer sees the C code's branches; otherwise it sees the Python side only,
and says so.
"""

from __future__ import annotations

import contextlib

import atheris
from google.protobuf.message import DecodeError

import sidecar.core
from fuzz.harness import FUZZ_CORE, main

if FUZZ_CORE:  # make fuzz's instrumented build of the core, searched first
    sidecar.core.__path__.insert(0, FUZZ_CORE)

from sidecar.core._wire import WireError, span_problems
from sidecar.ingest.logs import _SHAPER as LOG_SHAPER
from sidecar.ingest.traces import _SHAPER as TRACE_SHAPER
from tests.unit.test_wire_core import CORNERS, official_verdict  # the differential test's oracle


@atheris.instrument_func
def test_one_input(data: bytes) -> None:
    # A shaper's callbacks decode resources and scopes with protobuf (DecodeError on bad bytes): on
    # bytes from the network ingest runs the official decode first, so such bytes never get here.
    try:
        got = span_problems(data)
        shaped = TRACE_SHAPER.shape(data)
    except (WireError, DecodeError):
        got = shaped = None
    with contextlib.suppress(WireError, DecodeError):
        LOG_SHAPER.shape(data, 1)
    verdict = official_verdict(data)
    if verdict is None:
        return  # the core may accept what it skips as bytes (attributes, UTF-8): ingest checks that first
    if got is None or shaped is None:
        raise AssertionError("the core refused bytes the official classes decode")
    expected, kept = verdict
    if got != expected or shaped[0] != expected:
        raise AssertionError(f"core {got!r} != official {expected!r}")
    stored = sorted((part.trace_id, sid) for part in shaped[1] for sid in part.span_ids)
    if stored != sorted(kept):
        raise AssertionError("the trace shaper kept other spans than the official classes")


def seeds() -> dict[str, bytes]:
    """Seed inputs: two bench requests (512 spans each) and the tests' wire-format corner cases."""
    from bench.workload import build_workload

    return {
        **{f"bench-{i}": r for i, r in enumerate(build_workload(2, seed=1).requests)},
        **{f"corner-{i}": b for i, b in enumerate(CORNERS.values())},
    }


if __name__ == "__main__":
    main(sidecar.core._wire, seeds, test_one_input)
