"""GET /api/logs and GET /api/logs/tail against a live ``sidecar serve``, fed over OTLP/HTTP: each
filter, newest-first order, cursor paging while a writer adds records, CSV and NDJSON bytes, 400s
naming the parameter, and a live tail that sees a record sent after it opened and ends on shutdown.
"""

from __future__ import annotations

import csv
import http.client
import io
import json
import threading
import time
import urllib.parse
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from tests.e2e.conftest import SidecarFactory
from tests.e2e.harness import PROTOBUF, Sidecar, http_request

T0 = 1_700_000_000_000_000_000
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"


def send(sc: Sidecar, service: str, records: list[dict[str, Any]]) -> None:
    """One OTLP/HTTP export; each record: body, time, severity, and optional attrs / trace / span."""
    req = ExportLogsServiceRequest()
    rl = req.resource_logs.add()
    rl.resource.attributes.append(KeyValue(key="service.name", value=AnyValue(string_value=service)))
    sl = rl.scope_logs.add()
    sl.scope.name = "e2e.queries"
    for r in records:
        rec = sl.log_records.add(time_unix_nano=r["time"], severity_number=r.get("severity", 9))
        rec.body.string_value = r["body"]
        for key, value in r.get("attrs", {}).items():
            v = AnyValue(int_value=value) if isinstance(value, int) else AnyValue(string_value=value)
            rec.attributes.append(KeyValue(key=key, value=v))
        if "trace" in r:
            rec.trace_id = bytes.fromhex(r["trace"])
        if "span" in r:
            rec.span_id = bytes.fromhex(r["span"])
    status, _, body = http_request(
        "POST", f"{sc.http_url}/v1/logs", req.SerializeToString(), {"Content-Type": PROTOBUF}
    )
    assert status == 200, body


def bodies(sc: Sidecar, **query: Any) -> list[str]:
    status, answer = sc.get_json("/api/logs", query)
    assert status == 200, answer
    return [r["body"] for r in answer["data"]]


def test_each_filter_and_newest_first(sidecar: Sidecar) -> None:
    svc = "lq-filters"
    send(
        sidecar,
        svc,
        [
            {"body": "cart loaded", "time": T0 + 1, "severity": 9, "attrs": {"user": "ann"}},
            {"body": "payment DECLINED order 17", "time": T0 + 2, "severity": 17, "attrs": {"order": 17}},
            {"body": "slow query 250ms", "time": T0 + 3, "severity": 13, "trace": TRACE, "span": SPAN},
            {"body": "debug detail", "time": T0 + 4, "severity": 5, "trace": TRACE},
        ],
    )
    send(sidecar, "lq-other", [{"body": "payment declined elsewhere", "time": T0 + 5, "severity": 17}])
    assert bodies(sidecar, service=svc) == [
        "debug detail",
        "slow query 250ms",
        "payment DECLINED order 17",
        "cart loaded",
    ]
    warn_up = ["slow query 250ms", "payment DECLINED order 17"]
    assert bodies(sidecar, service=svc, severity_min="warn") == warn_up
    assert bodies(sidecar, service=svc, severity_min="WARN") == warn_up
    assert bodies(sidecar, service=svc, severity_min="13") == warn_up
    assert bodies(sidecar, service=svc, severity_min="fatal") == []
    assert bodies(sidecar, service=svc, q="declined") == ["payment DECLINED order 17"]
    assert set(bodies(sidecar, q="payment declined")) >= {
        "payment DECLINED order 17",
        "payment declined elsewhere",
    }
    assert bodies(sidecar, service=svc, regex=r"\d+ms$") == ["slow query 250ms"]
    assert bodies(sidecar, service=svc, trace_id=TRACE) == ["debug detail", "slow query 250ms"]
    assert bodies(sidecar, service=svc, trace_id=TRACE.upper(), span_id=SPAN) == ["slow query 250ms"]
    assert bodies(sidecar, service=svc, **{"attr.order": "17"}) == ["payment DECLINED order 17"]
    assert bodies(sidecar, service=svc, **{"attr.user": "ann", "attr.order": "17"}) == []
    assert bodies(sidecar, service=svc, **{"from": str(T0 + 2), "to": str(T0 + 4)}) == warn_up
    rfc = "2023-11-14T22:13:20.000000003Z"  # T0 + 3 ns
    assert bodies(sidecar, service=svc, **{"from": rfc}) == ["debug detail", "slow query 250ms"]
    _, answer = sidecar.get_json("/api/logs", {"service": svc, "span_id": SPAN})
    (record,) = answer["data"]
    assert record == {
        "time_unix_nano": T0 + 3,
        "observed_time_unix_nano": 0,
        "severity_number": 13,
        "severity_text": "",
        "body": "slow query 250ms",
        "attributes": {},
        "trace_id": TRACE,
        "span_id": SPAN,
        "service": svc,
        "scope": "e2e.queries",
        "event_name": "",
    }
    assert answer["next_cursor"] is None


def test_cursor_paging_while_a_writer_adds_records(sidecar: Sidecar) -> None:
    svc = "lq-paging"
    first = [f"line {i:03d}" for i in range(53)]
    send(sidecar, svc, [{"body": b, "time": T0 + i} for i, b in enumerate(first)])
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        query = {"service": svc, "limit": 7, **({"cursor": cursor} if cursor else {})}
        status, answer = sidecar.get_json("/api/logs", query)
        assert status == 200, answer
        seen += [r["body"] for r in answer["data"]]
        pages += 1
        # a writer keeps adding, newer and older record times alike
        send(sidecar, svc, [{"body": f"late {pages}", "time": T0 + 10**9 * (pages % 2) + 20}])
        cursor = answer["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)), "a record came twice"
    assert seen == first[::-1], "a gap, a duplicate or a record out of order"
    assert pages == 8
    status, answer = sidecar.get_json("/api/logs", {"service": svc, "limit": 1000})
    assert len(answer["data"]) == 53 + pages


def test_csv_bytes_quoting_and_formula_injection(sidecar: Sidecar) -> None:
    svc = "lq-csv"
    risky = ["=SUM(A1:A2)", "+1", "-2", "@cmd", "\ttab", "\rcr", 'say "hi", then\nbye', "plain"]
    send(
        sidecar,
        svc,
        [{"body": b, "time": T0 + i, "attrs": {"k": "v,1", "n": i}} for i, b in enumerate(risky)],
    )
    send(sidecar, "lq-csv-other", [{"body": "x", "time": T0, "attrs": {"other": "o"}}])
    status, headers, raw = http_request(
        "GET", f"{sidecar.api_url}/api/logs?" + urllib.parse.urlencode({"service": svc, "format": "csv"})
    )
    assert status == 200 and headers["content-type"].startswith("text/csv")
    lines = raw.split(b"\r\n")
    assert lines[0] == (
        b"timestamp,severity_number,severity_text,service,scope,body,trace_id,span_id,event_name,k,n"
    )  # one column per attribute key of the service's records, from the key registry
    assert lines[1] == b'2023-11-14T22:13:20.000000007Z,9,,lq-csv,e2e.queries,plain,,,,"v,1",7'
    prefix = b"2023-11-14T22:13:20.00000000%dZ,9,,lq-csv,e2e.queries,"
    attrs = b',,,,"v,1",%d'
    assert lines[2] == prefix % 6 + b'"say ""hi"", then\nbye"' + attrs % 6
    cr_then_tab = prefix % 5 + b'"\'\rcr"' + attrs % 5 + b"\r\n" + prefix % 4 + b"'\ttab" + attrs % 4
    assert cr_then_tab + b"\r\n" in raw
    assert prefix % 0 + b"'=SUM(A1:A2)" + attrs % 0 + b"\r\n" == lines[-2] + b"\r\n" and lines[-1] == b""
    rows = list(csv.reader(io.StringIO(raw.decode(), newline="")))
    assert [r[5] for r in rows[1:]] == [
        "plain",
        'say "hi", then\nbye',
        "'\rcr",
        "'\ttab",
        "'@cmd",
        "'-2",
        "'+1",
        "'=SUM(A1:A2)",
    ]
    assert raw.endswith(b"\r\n")
    # Without a service filter the columns are every service's keys; a record lacking one leaves it empty.
    status, headers, raw = http_request(
        "GET", f"{sidecar.api_url}/api/logs?" + urllib.parse.urlencode({"q": "x", "format": "csv"})
    )
    rows = list(csv.DictReader(io.StringIO(raw.decode(), newline="")))
    assert {"k", "n", "other"} <= set(rows[0]) and "attributes" not in rows[0]
    assert [(r["service"], r["other"], r["k"]) for r in rows if r["service"].startswith("lq-csv")] == [
        ("lq-csv-other", "o", "")
    ]


def test_ndjson_and_the_cursor_header(sidecar: Sidecar) -> None:
    svc = "lq-ndjson"
    send(sidecar, svc, [{"body": f"n{i}", "time": T0 + i} for i in range(3)])
    url = f"{sidecar.api_url}/api/logs?" + urllib.parse.urlencode(
        {"service": svc, "format": "ndjson", "limit": 2}
    )
    status, headers, raw = http_request("GET", url)
    assert status == 200 and headers["content-type"].startswith("application/x-ndjson")
    assert [json.loads(line)["body"] for line in raw.decode().splitlines()] == ["n2", "n1"]
    status, headers, raw = http_request("GET", f"{url}&cursor={headers['x-next-cursor']}")
    assert [json.loads(line)["body"] for line in raw.decode().splitlines()] == ["n0"]
    assert "x-next-cursor" not in headers


def test_bad_parameters_answer_400_naming_them(sidecar: Sidecar) -> None:
    cases = {
        "severity_min": ["loud", "0", "25"],
        "regex": ["(unclosed", "(?<=a)b", r"(a)\1"],  # RE2 has no look-behind, no back-references
        "trace_id": ["xyz", "ab" * 15],
        "span_id": ["12"],
        "from": ["yesterday"],
        "to": ["2023-13-01T00:00:00Z"],
        "limit": ["0", "10001", "many"],
        "cursor": ["zz", "abcd"],
        "format": ["xml"],
        "attr.": ["v"],
    }
    for name, values in cases.items():
        for value in values:
            for path in (
                ("/api/logs", "/api/logs/tail")
                if name not in ("limit", "cursor", "format")
                else ("/api/logs",)
            ):
                status, answer = sidecar.get_json(path, {name: value})
                assert status == 400, (path, name, value, answer)
                assert f"'{name}'" in answer["error"]["message"], (path, name, answer)
    status, answer = sidecar.get_json("/api/logs", {"from": str(T0 + 5), "to": str(T0)})
    assert status == 400 and "'from'" in answer["error"]["message"]


def test_a_catastrophic_regex_answers_at_once(sidecar: Sidecar) -> None:
    """``(a+)+$`` backtracks for ages in Python's re; RE2 answers in linear time, so one client's
    pattern cannot stall the sidecar (the request has the test's short timeout)."""
    svc = "lq-redos"
    send(sidecar, svc, [{"body": "a" * 5_000 + "!", "time": T0}, {"body": "aaa", "time": T0 + 1}])
    assert bodies(sidecar, service=svc, regex="(a+)+$") == ["aaa"]
    status, answer = sidecar.get_json("/api/logs", {"regex": "(?<=a)b"})
    assert status == 400
    assert answer["error"]["message"] == (
        "parameter 'regex': not a regular expression RE2 accepts: invalid perl operator: (?<="
    )


def _open_tail(
    sc: Sidecar, query: dict[str, str]
) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    host, port = urllib.parse.urlsplit(sc.api_url).netloc.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=15)
    conn.request("GET", "/api/logs/tail?" + urllib.parse.urlencode(query))
    resp = conn.getresponse()
    assert resp.status == 200 and resp.headers["content-type"].startswith("text/event-stream")
    assert resp.readline() == b": tail open\n"
    assert resp.readline() == b"\n"
    return conn, resp


def test_tail_receives_a_record_sent_after_it_opened(sidecar: Sidecar) -> None:
    svc = "lq-tail"
    send(sidecar, svc, [{"body": "before the tail", "time": T0, "severity": 17}])
    conn, resp = _open_tail(sidecar, {"service": svc, "severity_min": "error"})
    try:
        send(sidecar, svc, [{"body": "too quiet", "time": T0 + 1, "severity": 9}])
        send(sidecar, "lq-not-tailed", [{"body": "other service", "time": T0 + 2, "severity": 17}])
        send(sidecar, svc, [{"body": "after the tail", "time": T0 + 3, "severity": 17, "attrs": {"a": 1}}])
        line = resp.readline()
        assert line.startswith(b"data: ") and resp.readline() == b"\n"
        record = json.loads(line[len(b"data: ") :])
        assert (record["body"], record["service"], record["attributes"]) == ("after the tail", svc, {"a": 1})
    finally:
        conn.close()  # the server notices on its next write and ends the stream
    # the server still answers after the client left
    assert bodies(sidecar, service=svc) == ["after the tail", "too quiet", "before the tail"]


def test_tail_ends_cleanly_on_shutdown(sidecar_factory: SidecarFactory) -> None:
    sc = sidecar_factory()
    conn, resp = _open_tail(sc, {})
    ended: list[bytes] = []
    reader = threading.Thread(target=lambda: ended.append(resp.read()), daemon=True)
    reader.start()
    started = time.monotonic()
    code, _ = sc.stop()
    reader.join(10)
    assert code == 0 and not reader.is_alive() and ended == [b""]
    assert time.monotonic() - started < 5, "the open tail held the shutdown"
    conn.close()


def test_trace_id_pages_through_the_trace_index(sidecar: Sidecar) -> None:
    """A trace's records in several writes, with other records between: paged one at a time."""
    trace = "ab" * 16
    for i in range(4):
        send(
            sidecar,
            "lq-trace",
            [
                {"body": f"in trace {i}", "time": T0 + i, "trace": trace},
                {"body": f"outside {i}", "time": T0 + i},
            ],
        )
    seen, cursor = [], None
    while True:
        query = {"trace_id": trace, "limit": 1, **({"cursor": cursor} if cursor else {})}
        status, answer = sidecar.get_json("/api/logs", query)
        assert status == 200, answer
        seen += [r["body"] for r in answer["data"]]
        cursor = answer["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"in trace {i}" for i in (3, 2, 1, 0)]


def test_unknown_parameters_are_refused_not_ignored(sidecar: Sidecar) -> None:
    """``severity=error`` for ``severity_min=error`` would otherwise answer every record."""
    for path, name in (("/api/logs", "severity"), ("/api/logs", "level"), ("/api/logs/tail", "limit")):
        status, answer = sidecar.get_json(path, {name: "error"})
        assert status == 400, (path, name, answer)
        assert answer["error"]["message"].startswith(f"parameter '{name}': unknown parameter"), answer


def test_unix_times_are_read_by_magnitude(sidecar: Sidecar) -> None:
    """Seconds (as Loki and the CLI take them), milliseconds and nanoseconds all mean the same time."""
    svc = "lq-unix"
    send(sidecar, svc, [{"body": "early", "time": T0}, {"body": "late", "time": T0 + 5 * 10**9}])
    for since in (str(T0 // 10**9 + 1), str(T0 // 10**6 + 1000), str(T0 + 10**9), f"{T0 / 1e9 + 1:.3f}"):
        assert bodies(sidecar, service=svc, **{"from": since}) == ["late"], since


def test_warning_is_warn_and_zero_ids_are_no_ids(sidecar: Sidecar) -> None:
    svc = "lq-aliases"
    zero_trace, zero_span = "00" * 16, "00" * 8
    send(
        sidecar,
        svc,
        [
            {"body": "w", "time": T0, "severity": 13, "trace": zero_trace, "span": zero_span},
            {"body": "i", "time": T0 + 1},
        ],
    )
    for name in ("warning", "WARNING", "warn", "13"):
        assert bodies(sidecar, service=svc, severity_min=name) == ["w"], name
    status, answer = sidecar.get_json("/api/logs", {"service": svc, "severity_min": "warning"})
    assert status == 200
    assert (answer["data"][0]["trace_id"], answer["data"][0]["span_id"]) == ("", "")
