"""Regular expressions from requests, compiled with RE2 (Google's engine, as Loki and Prometheus use).

A query string is untrusted: with Python's backtracking ``re`` a pattern such as ``(a+)+$`` over one
long log line runs for hours and, holding the GIL, stalls the whole sidecar. RE2 matches in time
linear in the text for every pattern it accepts; it refuses look-around and back-references, and
the refusal names the construct.
"""

from __future__ import annotations

from typing import Protocol, cast

import re2  # google-re2

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # a bad pattern is the client's 400, not a line on the sidecar's stderr


class Pattern(Protocol):
    """What a filter needs of a compiled pattern (``re.Pattern`` fits too)."""

    def search(self, text: str, /) -> object | None: ...


def compile_regex(pattern: str) -> Pattern:
    """The compiled pattern; ValueError with RE2's reason when it is not one RE2 accepts."""
    try:
        return cast(Pattern, re2.compile(pattern, options=_OPTIONS))
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise ValueError(f"not a regular expression RE2 accepts: {reason}") from None
