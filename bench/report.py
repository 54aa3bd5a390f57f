"""Human-readable tables of a results dict (the same dict run.py writes as JSON)."""

from __future__ import annotations

import statistics
from typing import Any


def _n(x: float) -> str:
    return f"{x:,.0f}"


def _row(label: str, values: list[str], width: int = 16) -> str:
    return f"  {label:<34}" + "".join(f"{v:>{width}}" for v in values)


def ingest_table(results: dict[str, Any]) -> list[str]:
    ingest: dict[str, dict[str, Any]] = results["ingest"]
    names = list(ingest)
    limit = results["limit"]["spans_per_s"] or 1
    limit_cpu = results["limit"]["cpu_s_per_100k_spans"]
    rows: list[tuple[str, Any]] = [
        ("spans/s, median of 1 s windows", lambda r: _n(r["spans_per_s_median_1s"])),
        ("spans/s, overall", lambda r: _n(r["spans_per_s_overall"])),
        ("sidecar / limit, spans/s (median)", lambda r: f"{r['spans_per_s_median_1s'] / limit:.3f}"),
        ("sidecar / limit, CPU per span", lambda r: f"{limit_cpu / r['server_cpu_s_per_100k_spans']:.3f}"),
        ("spans acknowledged", lambda r: _n(r["spans"])),
        ("server CPU-s per 100k spans", lambda r: f"{r['server_cpu_s_per_100k_spans']:.2f}"),
        ("server cores used", lambda r: f"{r['server_cores']:.2f}"),
        ("client CPU-s per 100k spans", lambda r: f"{r['client_cpu_s_per_100k_spans']:.3f}"),
        ("client cores used", lambda r: f"{r['client_cores']:.2f}"),
        ("other processes' cores / steal", lambda r: f"{r['other_cores']:.2f} / {r['steal_cores']:.2f}"),
        (
            "export latency p50 / p99 ms",
            lambda r: f"{r['request_latency_p50_ms']:.0f} / {r['request_latency_p99_ms']:.0f}",
        ),
        (
            "peak RSS MiB (phase / lifetime)",
            lambda r: f"{r['peak_rss_mib']:.0f} / {r['lifetime_peak_rss_mib']:.0f}",
        ),
        (
            "client errors / dropped requests",
            lambda r: f"{sum(r['client_errors'].values())} / {r['dropped_requests']}",
        ),
        ("spans stored at shutdown", lambda r: _n(r["stored_spans"])),
        ("OTLP protobuf B/span (sent)", lambda r: f"{r['otlp_bytes_per_span']:.0f}"),
        ("disk B/span after stop", lambda r: f"{r['disk'].get('after_stop_bytes_per_span', 0):.1f}"),
        ("disk B/span compacted (no LOG*)", lambda r: f"{r['disk'].get('bytes_per_span', 0):.1f}"),
        ("SST B/span compacted", lambda r: f"{r['disk'].get('sst_bytes_per_span', 0):.1f}"),
        (
            "disk / OTLP bytes",
            lambda r: f"{r['disk'].get('bytes_per_span', 0) / r['otlp_bytes_per_span']:.3f}",
        ),
    ]
    title = "ingest"
    if results.get("ingest_pairs"):  # a --baseline run: this table is ours; the baseline's is below
        title = "ingest, current" + (" (last run)" if results["config"].get("pairs", 1) > 1 else "")
    lines = [_row(title, [f"OTLP/{n}" for n in names]), "  " + "-" * (34 + 16 * len(names))]
    for label, fmt in rows:
        lines.append(_row(label, [fmt(ingest[n]) for n in names]))
    return lines


def pair_median(pairs: list[dict[str, Any]], side: str, key: str) -> float:
    """Median of one ingest figure over one checkout's runs (``side``: "baseline" or "current")."""
    return float(statistics.median(p[side][key] for p in pairs))


def pair_ratio(pairs: list[dict[str, Any]], key: str) -> float:
    """Median over the pairs of current / baseline for one figure.

    The two runs of a pair ran back to back, so they share the machine's load and drift; their
    ratio is steadier than the ratio of two medians taken over the whole run.
    """
    return float(statistics.median(p["current"][key] / p["baseline"][key] for p in pairs))


def _checkout(c: dict[str, Any]) -> str:
    return f"{c.get('dir')} @ {c.get('commit') or '?'}" + (
        " + uncommitted changes" if c.get("uncommitted_changes") else ""
    )


def baseline_table(results: dict[str, Any]) -> list[str]:
    """Before/after per transport from ``ingest_pairs`` (a ``--baseline`` run): medians over pairs."""
    by_transport: dict[str, list[dict[str, Any]]] = results["ingest_pairs"]
    n = len(next(iter(by_transport.values())))
    limit = results["limit"]["spans_per_s"] or 1
    limit_cpu = results["limit"]["cpu_s_per_100k_spans"]
    checkouts = results.get("checkouts") or {}
    lines = [
        f"Before/after: baseline {_checkout(checkouts.get('baseline', {}))}",
        f"          vs current {_checkout(checkouts.get('current', {}))}",
        "  "
        + (
            "one pair of runs, baseline first"
            if n == 1
            else f"medians of {n} pairs of runs (baseline first in each); "
            "current/baseline is the median of the per-pair ratios"
        ),
    ]
    figures = [
        ("spans/s, median of 1 s windows", "spans_per_s_median_1s", _n),
        ("spans/s, overall", "spans_per_s_overall", _n),
        ("server CPU-s per 100k spans", "server_cpu_s_per_100k_spans", lambda x: f"{x:.2f}"),
        ("peak RSS MiB (phase)", "peak_rss_mib", lambda x: f"{x:.0f}"),
    ]
    for transport, pairs in by_transport.items():
        lines += ["", _row(f"OTLP/{transport}", ["baseline", "current", "current/baseline"], 18)]
        lines.append("  " + "-" * (34 + 18 * 3))
        for label, key, fmt in figures:
            b, c = pair_median(pairs, "baseline", key), pair_median(pairs, "current", key)
            lines.append(_row(label, [fmt(b), fmt(c), f"{pair_ratio(pairs, key):.3f}"], 18))
        sps = [pair_median(pairs, side, "spans_per_s_median_1s") for side in ("baseline", "current")]
        cpu = [pair_median(pairs, side, "server_cpu_s_per_100k_spans") for side in ("baseline", "current")]
        lines.append(_row("sidecar / limit, spans/s (median)", [f"{x / limit:.3f}" for x in sps], 18))
        lines.append(_row("sidecar / limit, CPU per span", [f"{limit_cpu / x:.3f}" for x in cpu], 18))
        lines.append(
            _row(
                "client errors / dropped (all runs)",
                [
                    f"{sum(sum(p[side]['client_errors'].values()) for p in pairs)} / "
                    f"{sum(p[side]['dropped_requests'] for p in pairs)}"
                    for side in ("baseline", "current")
                ],
                18,
            )
        )
        if n > 1:
            each = ", ".join(
                f"{p['current']['spans_per_s_median_1s'] / p['baseline']['spans_per_s_median_1s']:.2f}"
                for p in pairs
            )
            lines.append(f"  {'current/baseline spans/s, each pair':<34}  {each}")
    return lines


def query_table(q: dict[str, Any]) -> list[str]:
    lines = [
        f"Query: {q['stored_spans']:,} spans stored, waited {q['idle_wait_s']} s for idle CPU, "
        f"server RSS {q['rss_mib']:.0f} MiB"
        + (
            f"; loaded {q['load']['spans']:,} more at {q['load']['spans_per_s']:,} spans/s"
            if q["load"]
            else ""
        ),
        *query_rows(q["queries"]),
    ]
    return lines


def query_rows(queries: list[dict[str, Any]]) -> list[str]:
    """A header and one line per ``bench.query.QueryStat`` (as a dict)."""
    lines = [
        f"  {'query':<44}{'n':>5}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}"
        f"{'results':>9}{'correct':>9}{'errors':>8}"
    ]
    for s in queries:
        lines.append(
            f"  {s['name']:<44}{s['n']:>5}{s['p50_ms']:>9.1f}{s['p99_ms']:>9.1f}{s['max_ms']:>9.1f}"
            f"{s['avg_results']:>9.1f}{s['correct_pct']:>8.0f}%{s['http_errors']:>8}"
        )
    return lines


def profile_lines(p: dict[str, Any]) -> list[str]:
    lines = [f"Profile (py-spy, {p['samples']} samples): {p['svg']}  raw: {p['raw']}"]
    lines.append(
        "  threads, % of wall time busy: " + ", ".join(f"{k} {v}%" for k, v in p["threads_busy_pct"])
    )
    lines.append("  top functions by own time (% of samples):")
    lines += [f"    {v:5.1f}%  {k}" for k, v in p["self"][:15]]
    lines.append(
        "  top functions by total time (% of samples, excluding frames above the event loop/threads):"
    )
    skip = (
        "_bootstrap",
        "Thread.run",
        "runpy",
        "<module>",
        "main (",
        "serve (",
        "run (",
        "run_until",
        "run_forever",
    )
    lines += [f"    {v:5.1f}%  {k}" for k, v in p["inclusive"] if not any(s in k for s in skip)][:15]
    return lines


def render(results: dict[str, Any]) -> str:
    w = results["workload"]
    lim = results["limit"]
    out = [
        f"Machine: {results['machine']['cpus']} CPUs, "
        f"load average at start {results['machine']['loadavg_start']}",
        f"Workload: {w['requests']} distinct requests x 512 spans (replayed with new trace ids), "
        f"{w['bytes_per_span']} B/span OTLP, {w['spans_per_trace']} spans/trace, "
        f"{w['attributes_per_span']} attributes/span, {100 * w['error_span_fraction']:.1f}% error spans",
        f"Limit (FromString + 1 WriteBatch/request, pinned to CPU {lim['pinned_cpu']}): "
        f"{_n(lim['spans_per_s'])} spans/s ({_n(lim['spans'])} spans in {lim['busy_s']:.1f} s busy), "
        f"{lim['cpu_s_per_100k_spans']:.2f} CPU-s per 100k spans",
        "",
        *ingest_table(results),
    ]
    if results.get("ingest_pairs"):
        out += ["", *baseline_table(results)]
    if results["config"].get("profile"):
        which = "first gRPC run of each checkout" if results.get("ingest_pairs") else "gRPC phase"
        out.append(f"  (the {which} ran under py-spy: its numbers include the sampling overhead)")
    if results.get("query"):
        out += ["", *query_table(results["query"])]
    for name, p in (results.get("profiles") or {}).items():
        out += ["", f"[{name}]", *profile_lines(p)]
    out += ["", f"Total {results['elapsed_s']:.0f} s"]
    return "\n".join(out)
