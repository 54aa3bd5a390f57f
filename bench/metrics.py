"""``python -m bench.metrics``: what span metrics and the service graph cost ingest, and what a scrape costs.

**Overhead.** bench.run's trace workload over OTLP/gRPC into a fresh ``sidecar serve``, with
``metrics.spanmetrics.enabled`` and ``metrics.servicegraph.enabled`` both off, then both on,
alternating (off, on, off, on, ...) so a shared machine's load falls on both alike. Per run: server
CPU-seconds per 100k spans and spans/s (median 1 s window, ``bench.senders.drive``); the report
gives each mode's medians, their ratio, and the median of the per-round on/off ratios. After an
"on" run, the spans counted in ``traces_span_metrics_calls_total`` are compared with the spans
acknowledged: a tap that fell behind drops batches (and would look cheap), so the share is shown.
The same taps are also timed in this process (CPU µs per span of both taps' ``consume`` over fresh
prepared batches of the same workload), a figure the machine's load moves far less.

**Scrape.** A fresh sidecar (``metrics.series_limit`` raised) filled with ``--series`` series,
then ``GET /metrics`` timed from request to last byte, text 0.0.4, OpenMetrics, and OpenMetrics
gzipped (what Prometheus asks for), median of ``--scrapes``. Two mixes: *counters*, one
``sidecar_events_total`` series per event name; *histograms*, half the series
``traces_span_metrics_duration_seconds`` histograms (one series each; its 16 buckets + ``+Inf``,
``_count`` and ``_sum`` are 19 samples), half their ``traces_span_metrics_calls_total``. Each is
timed *changed* (one item written before each scrape: its series is encoded again, the family's
other series' lines are reused), *all changed* (every series of the mix written again before each
scrape, ``--scrapes-all`` times: everything is encoded) and *unchanged* (the same family bytes
reused). ``--skip-overhead`` runs the scrape part alone.
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import json
import os
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, Span
from prometheus_client.parser import text_string_to_metric_families

from bench import proc
from bench.ingest import drive_summary
from bench.senders import drive
from bench.server import Sidecar
from bench.stream import RequestStream
from bench.workload import build_workload

TEXT = "text/plain;version=0.0.4"
OPENMETRICS = "application/openmetrics-text;version=1.0.0"
MODES = ("off", "on")


def say(msg: str) -> None:
    print(f"[metrics {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.metrics", description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=float, help="seconds of each ingest run (default 15, quick 4)")
    p.add_argument("--rounds", type=int, help="off/on pairs (default 4, quick 1)")
    p.add_argument("--senders", type=int, default=4, help="concurrent gRPC senders (default 4)")
    p.add_argument("--pool", type=int, help="distinct pre-serialized requests (default 256, quick 64)")
    p.add_argument("--series", type=int, help="series in each scrape mix (default 10000, quick 2000)")
    p.add_argument("--scrapes", type=int, help="timed scrapes per format and state (default 9, quick 3)")
    p.add_argument(
        "--scrapes-all", type=int, help="timed all-changed scrapes per format (default 5, quick 2)"
    )
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--skip-overhead", action="store_true")
    p.add_argument("--skip-scrape", action="store_true")
    p.add_argument("--quick", action="store_true", help="a short smoke run")
    p.add_argument("--out", type=Path, default=Path("bench/out/metrics.json"))
    args = p.parse_args(argv)
    defaults = {"duration": (15.0, 4.0), "rounds": (4, 1), "pool": (256, 64), "series": (10_000, 2000)}
    defaults["scrapes"] = (9, 3)
    defaults["scrapes_all"] = (5, 2)
    for key, (full, quick) in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, quick if args.quick else full)
    return args


def write_config(path: Path, derived: bool, series_limit: int = 2000) -> Path:
    """A config file with span metrics and the service graph both on or both off."""
    flag = "true" if derived else "false"
    path.write_text(
        f"metrics:\n  series_limit: {series_limit}\n"
        f"  spanmetrics:\n    enabled: {flag}\n  servicegraph:\n    enabled: {flag}\n"
    )
    return path


def get(server: Sidecar, path: str, headers: dict[str, str] | None = None) -> tuple[bytes, float]:
    """Body and seconds from sending the request to its last byte (a new connection each time)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.api_port, timeout=120)
    try:
        t0 = time.perf_counter()
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        body = response.read()
        elapsed = time.perf_counter() - t0
        if response.status != 200:
            raise RuntimeError(f"GET {path}: {response.status} {body[:200]!r}")
        return body, elapsed
    finally:
        conn.close()


def post(server: Sidecar, path: str, body: bytes, content_type: str) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=120)
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": content_type})
        response = conn.getresponse()
        answer = response.read()
        if response.status != 200:
            raise RuntimeError(f"POST {path}: {response.status} {answer[:300]!r}")
    finally:
        conn.close()


def counted_spans(server: Sidecar) -> float:
    body, _ = get(server, "/metrics?name[]=traces_span_metrics_calls_total")
    return sum(s.value for family in text_string_to_metric_families(body.decode()) for s in family.samples)


# -- overhead: ingest with the derived metrics off and on -----------------------------------------
def overhead_run(
    args: argparse.Namespace, workload: Any, mode: str, workdir: Path, out_dir: Path
) -> dict[str, Any]:
    config = write_config(workdir / f"config-{mode}.yaml", derived=mode == "on")
    data_dir = workdir / f"data-{mode}"
    server = Sidecar(data_dir, out_dir / f"sidecar-metrics-{mode}.log", config)
    try:
        server.wait_ready()
        result = drive("grpc", server, RequestStream(workload), args.senders, duration=args.duration)
        summary = drive_summary(result, "span")
        if mode == "on":
            server.wait_idle(quiet_s=1.0, timeout=60)  # the taps catch up with what was acknowledged
            summary["span_metrics_counted_share"] = round(
                counted_spans(server) / max(result.items_total, 1), 4
            )
    finally:
        summary_stop = server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
    summary["stop"] = summary_stop
    return summary


def overhead(args: argparse.Namespace, workdir: Path, out_dir: Path) -> dict[str, Any]:
    workload = build_workload(args.pool, args.seed)
    runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
    for i in range(args.rounds):
        for mode in MODES:
            say(f"round {i + 1}/{args.rounds}: derived metrics {mode}, {args.duration:g} s")
            r = overhead_run(args, workload, mode, workdir, out_dir)
            runs[mode].append(r)
            say(
                f"  {r['server_cpu_s_per_100k_spans']} CPU-s/100k spans, {r['spans_per_s_median_1s']} spans/s"
                f" (other load {r['other_cores']} cores)"
            )
    cpu, rate = "server_cpu_s_per_100k_spans", "spans_per_s_median_1s"
    medians = {mode: {k: statistics.median(r[k] for r in runs[mode]) for k in (cpu, rate)} for mode in MODES}
    pairs = [on[cpu] / off[cpu] for off, on in zip(runs["off"], runs["on"], strict=True)]
    in_process = tap_cost(workload)
    off_us = medians["off"][cpu] * 10  # CPU-s per 100k spans -> µs per span
    return {
        "runs": runs,
        "medians": medians,
        "taps_in_process": {
            **in_process,
            "share_of_off_ingest_cpu": round(in_process["both_us_per_span"] / off_us, 4),
        },
        "cpu_on_over_off": round(medians["on"][cpu] / medians["off"][cpu], 4),
        "cpu_on_over_off_paired_median": round(statistics.median(pairs), 4),
        "spans_per_s_on_over_off": round(medians["on"][rate] / medians["off"][rate], 4),
    }


def tap_cost(workload: Any, passes: int = 3, requests: int = 256) -> dict[str, float]:
    """CPU µs per span of the span metrics and service graph taps (as the server builds them, with
    the default config), each pass over new prepared batches (new trace ids); medians."""
    import asyncio

    from sidecar.config.model import MetricsConfig
    from sidecar.ingest.traces import prepare_traces
    from sidecar.metrics.families import Overflows
    from sidecar.metrics.servicegraph import ServiceGraphMetrics
    from sidecar.metrics.spans import SpanMetrics

    config, overflows = MetricsConfig(), Overflows()
    taps = {
        "spanmetrics": SpanMetrics(config.spanmetrics, config.series_limit, overflows),
        "servicegraph": ServiceGraphMetrics(config.servicegraph, config.series_limit, overflows),
    }
    stream = RequestStream(workload)
    times: dict[str, list[float]] = {name: [] for name in taps}

    async def consume(tap: Any, batches: list[Any]) -> None:
        for batch in batches:
            await tap.consume(batch)

    for i in range(passes):
        batches = [prepare_traces(stream.body(seq)) for seq in range(i * requests, (i + 1) * requests)]
        spans = sum(b.accepted for b in batches)
        for name, tap in taps.items():
            t0 = time.process_time()
            asyncio.run(consume(tap, batches))
            times[name].append((time.process_time() - t0) / spans * 1e6)
    out = {f"{name}_us_per_span": round(statistics.median(t), 2) for name, t in times.items()}
    out["both_us_per_span"] = round(sum(out.values()), 2)
    return out


# -- scrape: ~N series, then GET /metrics ------------------------------------------------------------
def span_request(names: list[str], seed: int) -> bytes:
    """One SERVER span per name in one service, 1 to 400 ms long, ending now."""
    rng = random.Random(seed)
    now = time.time_ns()
    rs = ResourceSpans()
    rs.resource.attributes.append(KeyValue(key="service.name", value=AnyValue(string_value="scrape-bench")))
    spans = rs.scope_spans.add().spans
    for name in names:
        duration = rng.randrange(1_000_000, 400_000_000)
        spans.append(
            Span(
                trace_id=rng.randbytes(16),
                span_id=rng.randbytes(8),
                name=name,
                kind=Span.SPAN_KIND_SERVER,
                start_time_unix_nano=now - duration,
                end_time_unix_nano=now,
            )
        )
    return ExportTraceServiceRequest(resource_spans=[rs]).SerializeToString()


def fill(server: Sidecar, mix: str, series: int) -> None:
    if mix == "counters":
        for start in range(0, series, 1000):
            lines = [
                json.dumps({"event": f"bench_event_{i:06d}", "userid": "1"})
                for i in range(start, start + 1000)
            ]
            post(server, "/v1/events", "\n".join(lines[: series - start]).encode(), "application/x-ndjson")
    else:  # a calls counter and a duration histogram per span name
        names = [f"GET /bench/route/{i:06d}" for i in range(series // 2)]
        for start in range(0, len(names), 1000):
            post(
                server,
                "/v1/traces",
                span_request(names[start : start + 1000], start),
                "application/x-protobuf",
            )


def touch(server: Sidecar, mix: str, i: int) -> None:
    """Write one item into the filled family, so its next scrape must encode it again."""
    if mix == "counters":
        post(
            server,
            "/v1/events",
            json.dumps({"event": "bench_event_000000", "userid": str(i)}).encode(),
            "application/json",
        )
    else:
        post(server, "/v1/traces", span_request(["GET /bench/route/000000"], i), "application/x-protobuf")


def count_series(text: str) -> dict[str, int]:
    """Series (a histogram's is one, however many bucket samples) and samples in a text scrape."""
    series = samples = 0
    for family in text_string_to_metric_families(text):
        samples += len(family.samples)
        if family.type in ("histogram", "summary"):
            series += sum(1 for s in family.samples if s.name.endswith("_count"))
        else:
            series += len(family.samples)
    return {"series": series, "samples": samples}


def scrape_mix(args: argparse.Namespace, mix: str, workdir: Path, out_dir: Path) -> dict[str, Any]:
    config = write_config(workdir / f"config-{mix}.yaml", derived=True, series_limit=args.series + 1000)
    data_dir = workdir / f"data-{mix}"
    server = Sidecar(data_dir, out_dir / f"sidecar-scrape-{mix}.log", config)
    try:
        server.wait_ready()
        say(f"scrape, {mix}: filling {args.series:,} series")
        fill(server, mix, args.series)
        server.wait_idle(quiet_s=1.0, timeout=60)
        body, _ = get(server, "/metrics", {"Accept": TEXT})
        out: dict[str, Any] = {**count_series(body.decode()), "bytes_text": len(body)}
        formats = {
            "text": {"Accept": TEXT},
            "openmetrics": {"Accept": OPENMETRICS},
            "openmetrics_gzip": {"Accept": OPENMETRICS, "Accept-Encoding": "gzip"},
        }
        n = 0
        for name, headers in formats.items():
            changed, unchanged = [], []
            for _ in range(args.scrapes):
                n += 1
                touch(server, mix, n)
                time.sleep(0.3)  # the tap applies it (it runs after the acknowledgement)
                body, seconds = get(server, "/metrics", headers)
                changed.append(seconds)
                _, seconds = get(server, "/metrics", headers)
                unchanged.append(seconds)
            every = []
            for _ in range(args.scrapes_all):
                fill(server, mix, args.series)  # every series of the mix written again
                server.wait_idle(quiet_s=0.5, timeout=60)
                _, seconds = get(server, "/metrics", headers)
                every.append(seconds)
            if name == "openmetrics_gzip":
                out["bytes_openmetrics_gzip"] = len(body)
                assert gzip.decompress(body).endswith(b"# EOF\n")
            out[name] = {
                "changed_ms_median": round(statistics.median(changed) * 1000, 1),
                "changed_ms_min": round(min(changed) * 1000, 1),
                "unchanged_ms_median": round(statistics.median(unchanged) * 1000, 1),
                "all_changed_ms_median": round(statistics.median(every) * 1000, 1),
            }
            r = out[name]
            say(
                f"  {name}: changed {r['changed_ms_median']} ms, all changed {r['all_changed_ms_median']} ms,"
                f" unchanged {r['unchanged_ms_median']} ms"
            )
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
    return out


def render(results: dict[str, Any]) -> str:
    lines = [f"machine: {results['machine']}"]
    o = results.get("overhead")
    if o:
        cpu, rate = "server_cpu_s_per_100k_spans", "spans_per_s_median_1s"
        for mode in MODES:
            m = o["medians"][mode]
            per_run = ", ".join(str(r[cpu]) for r in o["runs"][mode])
            lines.append(
                f"derived metrics {mode:>3}: {m[cpu]:.3f} CPU-s/100k spans (runs: {per_run}),"
                f" {m[rate]:,.0f} spans/s"
            )
        counted = [r.get("span_metrics_counted_share") for r in o["runs"]["on"]]
        lines.append(
            f"on/off: CPU {o['cpu_on_over_off']:.3f}"
            f" (paired median {o['cpu_on_over_off_paired_median']:.3f}),"
            f" spans/s {o['spans_per_s_on_over_off']:.3f};"
            f" spans counted by the taps / acknowledged: {counted}"
        )
        t = o["taps_in_process"]
        lines.append(
            f"taps in process: span metrics {t['spanmetrics_us_per_span']} + service graph"
            f" {t['servicegraph_us_per_span']} = {t['both_us_per_span']} µs/span,"
            f" {100 * t['share_of_off_ingest_cpu']:.1f} % of the off runs' server CPU per span"
        )
    for mix, s in results.get("scrape", {}).items():
        lines.append(
            f"scrape {mix}: {s['series']:,} series, {s['samples']:,} samples,"
            f" {s['bytes_text']:,} bytes of text"
        )
        for name in ("text", "openmetrics", "openmetrics_gzip"):
            r = s[name]
            lines.append(
                f"  {name:<17} changed {r['changed_ms_median']:>7.1f} ms (min {r['changed_ms_min']:.1f}),"
                f" all changed {r['all_changed_ms_median']:>7.1f} ms,"
                f" unchanged {r['unchanged_ms_median']:>6.1f} ms"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    proc.exit_on_sigterm()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    results: dict[str, Any] = {
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "machine": {"cpus": os.cpu_count(), "loadavg_start": [round(x, 2) for x in os.getloadavg()]},
    }
    workdir = Path(tempfile.mkdtemp(prefix="sidecar-bench-metrics-"))
    try:
        if not args.skip_overhead:
            results["overhead"] = overhead(args, workdir, args.out.parent)
        if not args.skip_scrape:
            results["scrape"] = {
                mix: scrape_mix(args, mix, workdir, args.out.parent) for mix in ("counters", "histograms")
            }
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        proc.kill_children()
    results["machine"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    results["elapsed_s"] = round(time.monotonic() - t0, 1)
    args.out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print()
    print(render(results))
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
