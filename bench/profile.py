"""py-spy sampling of the server: collapsed stacks -> top functions, per-thread shares and a flame graph SVG.

py-spy writes one format per run, so we record ``--format raw`` (collapsed stacks; the text is kept)
and draw the SVG ourselves from the same samples instead of attaching a second sampler.
"""

from __future__ import annotations

import html
import re
import shutil
import subprocess
import sys
import zlib
from collections import Counter
from pathlib import Path

from bench import proc

_LINE = re.compile(r"^(.*) (\d+)$")
_FRAME_LINE = re.compile(r":\d+\)$")


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    return found


RATE = 100


def start(pid: int, duration: float, raw_path: Path, rate: int = RATE) -> subprocess.Popen[bytes]:
    argv = [py_spy(), "record", "--format", "raw", "-o", str(raw_path), "--pid", str(pid)]
    argv += ["--duration", str(max(1, round(duration))), "--rate", str(rate), "--nonblocking", "--threads"]
    log = open(raw_path.with_suffix(".log"), "wb")  # noqa: SIM115 - the child owns it
    return proc.spawn(argv, stdout=log)


def read_stacks(raw_path: Path) -> Counter[tuple[str, ...]]:
    stacks: Counter[tuple[str, ...]] = Counter()
    for line in raw_path.read_text(errors="replace").splitlines():
        m = _LINE.match(line)
        if m:
            stacks[tuple(m.group(1).split(";"))] += int(m.group(2))
    return stacks


def _short(frame: str, keep_line: bool = False) -> str:
    """``func (/long/path/pkg/mod.py:12)`` -> ``func (pkg/mod.py)``."""
    name, _, where = frame.partition(" (")
    if not where or frame.startswith("thread ("):
        return frame
    path = where.rstrip(")")
    if not keep_line:
        path = path.rsplit(":", 1)[0]
    parts = path.split("/")
    if "site-packages" in parts:
        parts = parts[parts.index("site-packages") + 1 :]
    return f"{name} ({'/'.join(parts[-3:])})"


def summarize(stacks: Counter[tuple[str, ...]], wall_samples: float, top: int = 15) -> dict[str, object]:
    """Shares of all samples (``self``, ``inclusive``); ``threads`` as % of wall time (100 = always busy)."""
    total = sum(stacks.values()) or 1
    threads: Counter[str] = Counter()
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for stack, n in stacks.items():
        thread = stack[0].split(": ", 1)[-1] if stack[0].startswith("thread") else "?"
        threads[thread] += n
        frames = [_short(f) for f in stack[1:]]
        if frames:
            self_time[frames[-1]] += n
        for f in set(frames):
            inclusive[f] += n

    def pct(c: Counter[str]) -> list[tuple[str, float]]:
        return [(k, round(100 * v / total, 1)) for k, v in c.most_common(top)]

    busy = [(k, round(100 * v / wall_samples, 1)) for k, v in threads.most_common(top)]
    return {"samples": total, "threads_busy_pct": busy, "self": pct(self_time), "inclusive": pct(inclusive)}


def flame_svg(stacks: Counter[tuple[str, ...]], path: Path, title: str, width: int = 1600) -> None:
    """A plain flame graph (root at the bottom); hover a box for its name and share."""
    tree: dict[str, object] = {}
    counts: Counter[tuple[str, ...]] = Counter()
    for stack, n in stacks.items():
        for depth in range(1, len(stack) + 1):
            counts[stack[:depth]] += n
        node = tree
        for frame in stack:
            node = node.setdefault(frame, {})  # type: ignore[assignment]
    total = sum(stacks.values()) or 1
    row = 16
    max_depth = max((len(s) for s in stacks), default=1)
    height = (max_depth + 3) * row
    boxes: list[str] = []

    def draw(node: dict[str, object], prefix: tuple[str, ...], x: float, depth: int) -> None:
        for frame in sorted(node):
            key = (*prefix, frame)
            w = counts[key] / total * width
            if w >= 0.5:
                y = height - (depth + 2) * row
                label = html.escape(_short(frame, keep_line=True))
                share = f"{100 * counts[key] / total:.1f}%"
                hue = 10 + zlib.crc32(frame.split(" (")[0].encode()) % 50
                text = f'<text x="{x + 2:.1f}" y="{y + 11}">{label[: int(w / 7)]}</text>' if w > 30 else ""
                boxes.append(
                    f"<g><title>{label} ({counts[key]} samples, {share})</title>"
                    f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{row - 1}" '
                    f'fill="hsl({hue},85%,60%)"/>'
                    f"{text}</g>"
                )
                draw(node[frame], key, x, depth + 1)  # type: ignore[arg-type]
            x += w

    draw(tree, (), 0.0, 0)
    path.write_text(
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="monospace" font-size="11">'
        f'<text x="4" y="14" font-size="13">{html.escape(title)} - {total} samples</text>'
        + "".join(boxes)
        + "</svg>\n"
    )
