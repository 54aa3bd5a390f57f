"""Plain-text output shared by the query commands: tables, durations, times, terminal width."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Sequence
from datetime import UTC, datetime


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
    return [max([len(h), *(len(row[i]) for row in rows)]) for i, h in enumerate(headers)]


def table_lines(headers: Sequence[str], rows: Sequence[Sequence[str]], right: frozenset[int]) -> list[str]:
    """Aligned plain-text table, header first; columns in ``right`` are right-aligned (numbers)."""
    widths = column_widths(headers, rows)
    lines = []
    for row in [headers, *rows]:
        cells = [
            cell.rjust(width) if i in right else cell.ljust(width)
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
