"""Plain-text output shared by the query commands: tables, durations, times, terminal width, and
``printable``, through which every stored value passes before a table or line printer shows it."""

from __future__ import annotations

import re
import shutil
import sys
from collections.abc import Sequence
from datetime import UTC, datetime

# C0 controls, DEL and C1 controls: what a terminal may act on (ESC starts CSI/OSC sequences, and
# 0x9b/0x9d are one-byte CSI/OSC to some terminals) rather than print.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    return _NAMED.get(char) or f"\\x{ord(char):02x}"


def printable(text: str) -> str:
    """``text`` with each control character (C0, DEL, C1) written as a visible escape: ``\\n``,
    ``\\r``, ``\\t``, else ``\\xHH`` (ESC is ``\\x1b``).

    Log bodies, event names and span tags come from whoever can reach the ingest ports, without
    auth: printed raw, an escape sequence in them could retitle the operator's terminal, clear it or
    move the cursor, and a newline would break a table's layout. Tables and line output pass every
    stored value through here; ``--json``, ``--csv`` and export files are left byte-exact.
    Idempotent: the result holds no control characters.
    """
    return text if text.isprintable() else _CONTROL.sub(_escape, text)


def human_duration(us: float) -> str:
    """Compact duration for tables: ``850µs``, ``12.3ms``, ``1.20s``, ``2m05s``, ``1h02m``."""
    if us < 999.5:
        return f"{us:.0f}µs"
    if us < 999_950:
        return f"{us / 1e3:.1f}ms"
    if us < 59_995_000:
        return f"{us / 1e6:.2f}s"
    seconds = round(us / 1e6)
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def utc_time(us: int) -> str:
    """RFC 3339 UTC to the second: unambiguous on any machine, and valid input for ``--start``/``--end``."""
    return datetime.fromtimestamp(us // 1_000_000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def column_widths(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[int]:
    """Widths of the columns as ``table_lines`` prints them (control characters escaped)."""
    return [
        max([len(printable(h)), *(len(printable(row[i])) for row in rows)]) for i, h in enumerate(headers)
    ]


def table_lines(headers: Sequence[str], rows: Sequence[Sequence[str]], right: frozenset[int]) -> list[str]:
    """Aligned plain-text table, header first; columns in ``right`` are right-aligned (numbers).

    Every cell and header goes through ``printable``, so a stored value cannot break the layout or
    reach the terminal as an escape sequence.
    """
    widths = column_widths(headers, rows)
    lines = []
    for row in [headers, *rows]:
        cells = [
            printable(cell).rjust(width) if i in right else printable(cell).ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    return lines


def render_table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: frozenset[int]) -> str:
    return "\n".join(table_lines(headers, rows, right))


def terminal_width() -> int | None:
    """Columns to cut long lines at, or None when stdout is not a terminal (pipes get everything)."""
    return shutil.get_terminal_size().columns if sys.stdout.isatty() else None


def fit(line: str, width: int | None) -> str:
    return line if width is None or len(line) <= width else line[: max(width - 1, 0)] + "…"
