"""Config loading: layer precedence, strict keys and types, and full error reporting."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from sidecar.config.loader import ConfigError, env_var_name, iter_leaves, load_config
from sidecar.config.model import Config, split_endpoint

ROOT = Path(__file__).resolve().parents[2]
SIDECAR_YAML = ROOT / "config" / "sidecar.yaml"


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "sidecar.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def errors_of(**kwargs: object) -> list[str]:
    kwargs.setdefault("env", {})
    with pytest.raises(ConfigError) as info:
        load_config(**kwargs)  # type: ignore[arg-type]
    return info.value.errors


def test_defaults() -> None:
    config = load_config(env={})
    assert config == Config()
    assert config.data_dir == "./data"
    assert config.log_level == "info"
    assert config.shutdown_timeout_s == 8.0
    assert config.receivers.otlp.grpc.endpoint == "127.0.0.1:4317"
    assert config.receivers.otlp.http.max_request_body_size_mib == 64
    assert config.api.default_search_limit == 20
    assert config.storage.traces.retention_days == 7
    assert config.storage.compression == "lz4"
    assert config.storage.wal_sync is False
    assert config.storage.memtable_cap_mib == 48
    assert config.ingest.max_queue_spans == 262144


def test_yaml_overrides_defaults(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
data_dir: /var/lib/sidecar
shutdown_timeout_s: 3          # int accepted for a float
receivers:
  otlp:
    grpc:
      enabled: false
      endpoint: "[::1]:5317"
storage:
  traces:
    retention_days: 30
  compression: zstd
  wal_sync: true
""",
    )
    config = load_config(path, env={})
    assert config.data_dir == "/var/lib/sidecar"
    assert config.shutdown_timeout_s == 3.0 and isinstance(config.shutdown_timeout_s, float)
    assert config.receivers.otlp.grpc == dataclasses.replace(
        Config().receivers.otlp.grpc, enabled=False, endpoint="[::1]:5317"
    )
    assert config.storage.traces.retention_days == 30
    assert config.storage.compression == "zstd"
    assert config.storage.wal_sync is True
    assert config.api == Config().api  # untouched sections keep defaults


@pytest.mark.parametrize("text", ["", "# only comments\n", "storage:\n"])
def test_empty_file_and_empty_section_are_fine(tmp_path: Path, text: str) -> None:
    assert load_config(write(tmp_path, text), env={}) == Config()


def test_config_file_from_env(tmp_path: Path) -> None:
    path = write(tmp_path, "log_level: debug\n")
    assert load_config(env={"SIDECAR_CONFIG": path}).log_level == "debug"
    other = tmp_path / "other.yaml"
    other.write_text("log_level: error\n", encoding="utf-8")
    assert load_config(str(other), env={"SIDECAR_CONFIG": path}).log_level == "error"  # explicit file wins


def test_env_overrides_file(tmp_path: Path) -> None:
    path = write(tmp_path, "log_level: debug\nstorage:\n  traces:\n    retention_days: 30\n")
    env = {
        "SIDECAR_LOG_LEVEL": "warning",
        "SIDECAR_STORAGE__TRACES__RETENTION_DAYS": "3",
        "SIDECAR_STORAGE__WAL_SYNC": "true",
        "SIDECAR_SHUTDOWN_TIMEOUT_S": "0.5",
        "SIDECAR_RECEIVERS__OTLP__GRPC__ENDPOINT": "[::1]:4317",  # not valid YAML, kept as text
        "SIDECAR_API_URL": "http://example:16686",  # reserved for the CLI: ignored
        "HOME": "/root",  # not ours: ignored
    }
    config = load_config(path, env=env)
    assert config.log_level == "warning"
    assert config.storage.traces.retention_days == 3
    assert config.storage.wal_sync is True
    assert config.shutdown_timeout_s == 0.5
    assert config.receivers.otlp.grpc.endpoint == "[::1]:4317"


def test_overrides_win_over_env(tmp_path: Path) -> None:
    path = write(tmp_path, "receivers:\n  otlp:\n    grpc:\n      endpoint: 127.0.0.1:6317\n")
    env = {"SIDECAR_RECEIVERS__OTLP__GRPC__ENDPOINT": "127.0.0.1:7317", "SIDECAR_DATA_DIR": "/env"}
    overrides = {"receivers.otlp.grpc.endpoint": "127.0.0.1:5317", "storage.traces.retention_days": "9"}
    config = load_config(path, env=env, overrides=overrides)
    assert config.receivers.otlp.grpc.endpoint == "127.0.0.1:5317"
    assert config.storage.traces.retention_days == 9
    assert config.data_dir == "/env"


def test_unknown_key_in_file_names_dotted_path(tmp_path: Path) -> None:
    path = write(tmp_path, "storage:\n  trace:\n    retention_days: 3\n  compresion: zstd\nbogus: 1\n")
    errors = errors_of(config_file=path)
    assert len(errors) == 3
    assert errors[0].startswith("storage.trace.retention_days: unknown key")
    assert "did you mean 'storage.traces'" in errors[0]
    assert errors[1].startswith("storage.compresion: unknown key")
    assert errors[2].startswith("bogus: unknown key")


def test_unknown_env_variable_is_named() -> None:
    errors = errors_of(env={"SIDECAR_STORAGE__TRACE__RETENTION_DAYS": "3", "SIDECAR_NOPE": "1"})
    assert errors == [
        "nope: unknown key (from SIDECAR_NOPE)",
        "SIDECAR_STORAGE__TRACE__RETENTION_DAYS: unknown setting; "
        "did you mean SIDECAR_STORAGE__TRACES__RETENTION_DAYS (storage.traces.retention_days)?",
    ]


@pytest.mark.parametrize(
    ("var", "path"),
    [
        ("SIDECAR_API_ENDPOINT", "api.endpoint"),
        ("SIDECAR_API_MAX_SEARCH_LIMIT", "api.max_search_limit"),
        ("SIDECAR_RECEIVERS_OTLP_GRPC_ENDPOINT", "receivers.otlp.grpc.endpoint"),
        ("SIDECAR_STORAGE_TRACES__RETENTION_DAYS", "storage.traces.retention_days"),
        ("SIDECAR_API____ENDPOINT", "api.endpoint"),
        ("SIDECAR_DATA__DIR", "data_dir"),  # the other way round
        ("SIDECAR_LOG_LEVL", "log_level"),  # a typo
        ("SIDECAR_API__ENDPIONT", "api.endpoint"),
    ],
)
def test_env_variable_for_a_real_key_with_underscores_mixed_up_names_the_right_one(
    var: str, path: str
) -> None:
    assert errors_of(env={var: "1"}) == [
        f"{var}: unknown setting; did you mean {env_var_name(path)} ({path})?"
    ]


def test_env_variable_like_several_keys_gets_no_guess() -> None:
    """``endpoint`` is the last word of three keys; naming one would be a guess."""
    assert errors_of(env={"SIDECAR_ENDPOINT": "127.0.0.1:1"}) == [
        "endpoint: unknown key (from SIDECAR_ENDPOINT)"
    ]


def test_every_key_is_told_apart_with_underscores_mixed_up() -> None:
    """The hint above is unambiguous only while no two keys differ just in ``.`` versus ``_``."""
    squashed = [path.replace(".", "_") for path, _ in iter_leaves()]
    assert len(set(squashed)) == len(squashed)


@pytest.mark.parametrize(
    ("key", "path", "nesting"),
    [
        ("api_endpoint", "api.endpoint", "api: {endpoint: ...}"),
        ("api.endpoint", "api.endpoint", "api: {endpoint: ...}"),
        (
            "storage_traces_retention_days",
            "storage.traces.retention_days",
            "storage: {traces: {retention_days: ...}}",
        ),
    ],
)
def test_flat_yaml_key_names_the_nested_one(tmp_path: Path, key: str, path: str, nesting: str) -> None:
    file = write(tmp_path, f"{key}: 7\n")
    (error,) = errors_of(config_file=file)
    assert error == f"{key}: unknown key (did you mean {path!r}? YAML nests keys: {nesting}) (from {file})"


@pytest.mark.parametrize("level", ["DEBUG", "Info", "WARNING", "Error", "warning"])
def test_log_level_in_any_case_is_kept_lowercase(tmp_path: Path, level: str) -> None:
    lower = level.lower()
    assert load_config(write(tmp_path, f"log_level: {level}\n"), env={}).log_level == lower
    assert load_config(env={"SIDECAR_LOG_LEVEL": level}).log_level == lower
    assert load_config(env={}, overrides={"log_level": level}).log_level == lower  # serve --log-level
    assert Config(log_level=level).log_level == lower


def test_unknown_log_level_is_quoted_as_written() -> None:
    (error,) = errors_of(overrides={"log_level": "LOUD"})
    assert error == "log_level: must be one of debug, info, warning, error; got 'LOUD' (from command line)"


def test_env_cannot_set_a_whole_section() -> None:
    (error,) = errors_of(env={"SIDECAR_STORAGE": "{compression: zstd}"})
    assert error.startswith("storage: is a section")


def nested(path: str, value: str) -> str:
    """YAML text setting one dotted path to a YAML-literal value."""
    parts = path.split(".")
    lines = [f"{'  ' * depth}{part}:" for depth, part in enumerate(parts[:-1])]
    return "\n".join([*lines, f"{'  ' * (len(parts) - 1)}{parts[-1]}: {value}"]) + "\n"


@pytest.mark.parametrize(
    ("path", "value", "fragment"),
    [
        ("receivers.otlp.grpc.endpoint", "localhost", "HOST:PORT"),
        ("receivers.otlp.http.endpoint", "'h:70000'", "1-65535"),
        ("api.endpoint", "'::1:16686'", "bracketed"),
        ("storage.traces.retention_days", "-1", "between 1 and 3650"),
        ("storage.block_cache_mib", "'32'", "expected an integer, got '32'"),
        ("storage.max_write_buffers", "true", "expected an integer, got True"),
        ("storage.max_write_buffers", "1", ">= 2"),
        ("storage.wal_sync", "1", "expected a boolean"),
        ("storage.compression", "gzip", "lz4, zstd, none"),
        ("storage.bloom_bits_per_key", "33", "between 0 and 32"),
        ("log_level", "verbose", "debug, info, warning, error"),
        ("shutdown_timeout_s", "61", "<= 60"),
        ("shutdown_timeout_s", "0", "> 0"),
        ("data_dir", "''", "must not be empty"),
        ("data_dir", "null", "expected a string, got None"),
        ("api.default_search_limit", "2000", "between 1 and 1500"),
        ("ingest.max_queue_spans", "10", ">= ingest.max_batch_spans"),
        ("receivers", "[1, 2]", "expected a mapping"),
    ],
)
def test_bad_values(tmp_path: Path, path: str, value: str, fragment: str) -> None:
    (error,) = errors_of(config_file=write(tmp_path, nested(path, value)))
    assert error.startswith(f"{path}: ")
    assert fragment in error


def test_every_error_is_reported_at_once(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
log_level: loud
receivers:
  otlp:
    grpc:
      endpoint: nope
storage:
  traces:
    retention_days: -5
  bloom_bits_per_key: x
""",
    )
    env = {"SIDECAR_INGEST__MAX_BATCH_SPANS": "0"}
    errors = errors_of(config_file=path, env=env, overrides={"data_dir": ""})
    paths = [e.split(": ", 1)[0] for e in errors]
    assert sorted(paths) == sorted(
        [
            "log_level",
            "receivers.otlp.grpc.endpoint",
            "storage.traces.retention_days",
            "storage.bloom_bits_per_key",
            "ingest.max_batch_spans",
            "data_dir",
        ]
    )
    by_path = dict(zip(paths, errors, strict=True))
    assert "SIDECAR_INGEST__MAX_BATCH_SPANS" in by_path["ingest.max_batch_spans"]  # says which layer to fix
    assert "command line" in by_path["data_dir"]


def test_listener_conflict(tmp_path: Path) -> None:
    (error,) = errors_of(overrides={"api.endpoint": "0.0.0.0:4317"})
    assert error.startswith("api.endpoint: ") and "receivers.otlp.grpc.endpoint" in error
    load_config(env={}, overrides={"api.endpoint": "127.0.0.1:4317", "receivers.otlp.grpc.enabled": "false"})


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("a: [1\n", "invalid YAML"),
        ("- 1\n- 2\n", "top level must be a mapping"),
        ("a: 1\na: 2\n", "duplicate key"),
    ],
)
def test_malformed_file(tmp_path: Path, text: str, fragment: str) -> None:
    path = write(tmp_path, text)
    (error,) = errors_of(config_file=path)
    assert error.startswith(path) and fragment in error
    assert str(ConfigError([error])) == error


def test_missing_file() -> None:
    errors = errors_of(config_file="/nonexistent/sidecar.yaml")
    assert errors == ["/nonexistent/sidecar.yaml: cannot read config file: No such file or directory"]


def test_config_error_str_joins_lines() -> None:
    assert str(ConfigError(["a: x", "b: y"])) == "a: x\nb: y"


def test_split_endpoint() -> None:
    assert split_endpoint("127.0.0.1:4317") == ("127.0.0.1", 4317)
    assert split_endpoint("[::1]:4318") == ("::1", 4318)
    for bad in ("4317", ":4317", "h:0", "h:x", "[::1]4317", "h :1"):
        with pytest.raises(ValueError):
            split_endpoint(bad)


def test_env_var_name() -> None:
    assert env_var_name("data_dir") == "SIDECAR_DATA_DIR"
    assert env_var_name("receivers.otlp.grpc.endpoint") == "SIDECAR_RECEIVERS__OTLP__GRPC__ENDPOINT"


def test_sidecar_yaml_equals_defaults() -> None:
    """The documented default file must load to exactly the built-in defaults."""
    assert load_config(str(SIDECAR_YAML), env={}) == Config()


def test_sidecar_yaml_sets_and_documents_every_key() -> None:
    """Every key appears explicitly in the file with its env variable named, so docs cannot drift."""
    import yaml

    data = yaml.safe_load(SIDECAR_YAML.read_text(encoding="utf-8"))
    text = SIDECAR_YAML.read_text(encoding="utf-8")
    for path, _ in iter_leaves():
        node = data
        for part in path.split("."):
            assert isinstance(node, dict) and part in node, f"{path} missing from config/sidecar.yaml"
            node = node[part]
        assert env_var_name(path) in text, f"{env_var_name(path)} not mentioned in config/sidecar.yaml"


@pytest.mark.parametrize("doc", ["docs/config.md", "README.md"])
def test_config_docs_list_every_key(doc: str) -> None:
    text = (ROOT / doc).read_text(encoding="utf-8")
    missing = [path for path, _ in iter_leaves() if f"`{path}`" not in text or env_var_name(path) not in text]
    assert not missing, f"undocumented in {doc}: {missing}"


def test_rollup_dimensions_are_a_short_list_of_property_names() -> None:
    env = {"SIDECAR_STORAGE__EVENTS__ROLLUP_DIMENSIONS": "a, b,c,d,e,f"}
    assert errors_of(env=env) == [
        "storage.events.rollup_dimensions: 6 properties; the limit is 5"
        " (from SIDECAR_STORAGE__EVENTS__ROLLUP_DIMENSIONS)"
    ]
    assert load_config(
        None, env={"SIDECAR_STORAGE__EVENTS__ROLLUP_DIMENSIONS": " screen, plan "}
    ).storage.events.dimensions() == (
        "screen",
        "plan",
    )


@pytest.mark.parametrize(
    ("path", "dimension", "label", "why"),
    [
        ("metrics.spanmetrics.dimensions", "__name__", "__name__", "which is reserved"),
        ("metrics.spanmetrics.dimensions", "__meta.x", "__meta_x", "which is reserved"),
        ("metrics.spanmetrics.dimensions", "le", "le", "which is reserved"),
        ("metrics.spanmetrics.dimensions", "quantile", "quantile", "which is reserved"),
        (
            "metrics.spanmetrics.dimensions",
            "otel.metric.overflow",
            "otel_metric_overflow",
            "which is reserved",
        ),
        ("metrics.spanmetrics.dimensions", "job", "job", "which is reserved"),
        ("metrics.spanmetrics.dimensions", "instance:i-1", "instance", "which is reserved"),
        ("metrics.spanmetrics.dimensions", "service.name", "service_name", "the family already has"),
        ("metrics.spanmetrics.dimensions", "span.kind", "span_kind", "the family already has"),
        ("metrics.spanmetrics.dimensions", "span_name", "span_name", "the family already has"),
        ("metrics.spanmetrics.dimensions", "status_code", "status_code", "the family already has"),
        ("metrics.spanmetrics.dimensions", "service", "service", "the family already has"),
        ("metrics.events.dimensions", "__name__", "__name__", "which is reserved"),
        ("metrics.events.dimensions", "job", "job", "which is reserved"),
        ("metrics.events.dimensions", "le", "le", "which is reserved"),
        ("metrics.events.dimensions", "event.name", "event_name", "the family already has"),
    ],
)
def test_dimensions_refuse_reserved_and_clashing_label_names(
    tmp_path: Path, path: str, dimension: str, label: str, why: str
) -> None:
    """One span with a ``__name__`` attribute would otherwise break the whole /metrics page."""
    (error,) = errors_of(config_file=write(tmp_path, nested(path, f"'http.route,{dimension}'")))
    assert error.startswith(f"{path}: {dimension.partition(':')[0]!r} would be the label {label!r}, ")
    assert why in error


def test_dimensions_that_are_fine_labels_are_taken(tmp_path: Path) -> None:
    config = load_config(
        write(tmp_path, "metrics:\n  spanmetrics:\n    dimensions: 'http.route,_private,jobs'\n"), env={}
    )
    assert config.metrics.spanmetrics.dimensions == "http.route,_private,jobs"


def test_yaml_lists_and_bare_seconds_are_taken(tmp_path: Path) -> None:
    text = (
        "metrics:\n"
        "  staleness: 300\n"
        "  events: {dimensions: [plan, btn.color]}\n"
        "  spanmetrics: {buckets: [0.1, 1, 5], dimensions: [http.route, 'env:prod']}\n"
        "storage: {events: {rollup_dimensions: [screen]}}\n"
        "ingest: {events: {cors_allowed_origins: ['https://a.example', 'https://b.example']}}\n"
    )
    config = load_config(write(tmp_path, text), env={})
    assert config.metrics.staleness_s() == 300
    assert config.metrics.spanmetrics.bucket_list() == [0.1, 1, 5]
    assert config.metrics.spanmetrics.dimension_list() == [("http.route", None), ("env", "prod")]
    assert config.metrics.events.labels() == (("plan", "plan"), ("btn.color", "btn_color"))
    assert config.storage.events.dimensions() == ("screen",)
    assert config.ingest.events.origins() == {"https://a.example", "https://b.example"}
    config = load_config(write(tmp_path, "metrics: {staleness: 1.5}\n"), env={})
    assert config.metrics.staleness_s() == 1.5


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (
            "metrics: {spanmetrics: {buckets: [0.1, [1]]}}\n",
            "a list of strings or numbers; the list holds [1]",
        ),
        ("metrics: {spanmetrics: {dimensions: [true]}}\n", "the list holds True (bool)"),
        ("metrics: {spanmetrics: {dimensions: 5}}\n", "expected a comma-separated string or a list, got 5"),
        ("metrics: {spanmetrics: {buckets: [0.1, x]}}\n", "'x' is not a number"),
        ("metrics: {staleness: [300]}\n", "expected a string, got [300]"),
        ("metrics: {staleness: 0}\n", "must be between 1 s and 604800 s"),
        ("metrics: {staleness: true}\n", "expected a string, got True"),
        ("api: {endpoint: [a, b]}\n", "expected a string, got ['a', 'b']"),
    ],
)
def test_yaml_values_that_are_still_refused(tmp_path: Path, text: str, fragment: str) -> None:
    (error,) = errors_of(config_file=write(tmp_path, text))
    assert fragment in error, error


def test_servicegraph_wait_must_be_positive_as_documented() -> None:
    (error,) = errors_of(env={"SIDECAR_METRICS__SERVICEGRAPH__WAIT_S": "0"})
    assert error.startswith("metrics.servicegraph.wait_s: must be > 0 and <= 3600 seconds")
    for doc in ("README.md", "docs/config.md"):
        row = next(
            line
            for line in (ROOT / doc).read_text(encoding="utf-8").splitlines()
            if line.startswith("| `metrics.servicegraph.wait_s`")
        )
        assert "more than 0" in row and "(0\N{EN DASH}3600)" not in row, (doc, row)


def test_readme_serve_usage_lists_every_flag() -> None:
    import argparse

    from sidecar.cli.main import build_parser

    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    flags = {o for action in commands.choices["serve"]._actions for o in action.option_strings if o != "-h"}
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    cli = text[text.index("## CLI") :]
    usage = cli[cli.index("sidecar serve [") : cli.index("sidecar traces get")]
    assert sorted(f for f in flags - {"--help"} if f not in usage) == []
