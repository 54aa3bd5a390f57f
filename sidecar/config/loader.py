"""Configuration loading: defaults < YAML file < ``SIDECAR_*`` environment < overrides (CLI flags).

Every layer is type-checked as it is applied and the merged result is validated at the end; all
problems are collected and raised together as one :class:`ConfigError`, so a user fixes their
config in one round instead of one error per restart.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import typing
from collections.abc import Iterator, Mapping
from typing import Any

import yaml

from sidecar.config.model import COMMA_SEPARATED_KEYS, DURATION_KEYS, Config, join_path

ENV_PREFIX = "SIDECAR_"
CONFIG_FILE_ENV = "SIDECAR_CONFIG"
API_URL_ENV = "SIDECAR_API_URL"  # reserved for the CLI client, never a config key
_RESERVED_ENV = frozenset({CONFIG_FILE_ENV, API_URL_ENV})
_OVERRIDE_ORIGIN = "command line"
# How alike a whole unknown path must be to a real one to be named as meant: typos such as
# storage_trace_retention_days or log_levl pass; endpoint (0.8 to api_endpoint, but also one of
# three endpoints) does not.
_CLOSE_PATH = 0.85
_TYPE_WORDS: dict[type, str] = {
    bool: "a boolean (true/false)",
    int: "an integer",
    float: "a number",
    str: "a string",
}


class ConfigError(Exception):
    """Every problem found in the configuration, each as ``"dotted.path: reason"``."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = list(errors)
        super().__init__("\n".join(self.errors))

    def __str__(self) -> str:
        return "\n".join(self.errors)


def env_var_name(path: str) -> str:
    """Environment variable that sets the key at dotted ``path``."""
    return ENV_PREFIX + path.upper().replace(".", "__")


def _fields(cls: type) -> dict[str, type]:
    """Resolved field types of a config dataclass (annotations are strings in model.py)."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def iter_leaves(cls: type = Config, prefix: str = "") -> Iterator[tuple[str, type]]:
    """All settable keys as ``(dotted_path, type)`` in declaration order, for env mapping and docs."""
    for name, tp in _fields(cls).items():
        path = join_path(prefix, name)
        if dataclasses.is_dataclass(tp):
            yield from iter_leaves(typing.cast(type, tp), path)
        else:
            yield path, tp


def _section_paths(cls: type = Config, prefix: str = "") -> Iterator[str]:
    """Dotted paths of every section (``receivers``, ``receivers.otlp``, ...)."""
    for name, tp in _fields(cls).items():
        if dataclasses.is_dataclass(tp):
            path = join_path(prefix, name)
            yield path
            yield from _section_paths(typing.cast(type, tp), path)


def _squashed(path: str) -> str:
    """A key path with ``.``, ``__`` and ``_`` made alike: what stays when a user mixes them up."""
    return re.sub(r"[._]+", "_", path.lower()).strip("_")


def _meant_leaf(path: str) -> str | None:
    """The real key an unknown path most likely meant: the same words with ``.``/``_`` mixed up
    (``api_endpoint``), else a near spelling of the whole path (``storage.trace.retention_days``)."""
    by_squashed = {_squashed(leaf): leaf for leaf, _ in iter_leaves()}
    wanted = _squashed(path)
    if wanted in by_squashed:
        return by_squashed[wanted]
    if wanted:
        near = difflib.get_close_matches(wanted, list(by_squashed), n=1, cutoff=_CLOSE_PATH)
        if near:
            return by_squashed[near[0]]
    return None


def _nested(path: str) -> str:
    """``api.endpoint`` as the YAML that sets it, in flow style: ``api: {endpoint: ...}``."""
    *sections, key = path.split(".")
    text = f"{key}: ..."
    for section in reversed(sections):
        text = f"{section}: {{{text}}}"
    return text


def _describe(value: object) -> str:
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    kind = "null" if value is None else type(value).__name__
    return f"{text} ({kind})"


def _leaf_paths(data: Mapping[Any, Any], prefix: str) -> Iterator[str]:
    """Dotted paths of every leaf below an (unknown) mapping."""
    for key, value in data.items():
        path = join_path(prefix, str(key))
        if isinstance(value, Mapping) and value:
            yield from _leaf_paths(value, path)
        else:
            yield path


def _coerce(value: object, tp: type) -> object:
    """Value converted to ``tp``, or raise ``TypeError``; bools are never ints, ints are floats."""
    if tp is bool:
        ok = isinstance(value, bool)
    elif tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif tp is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        value = float(value) if ok else value  # type: ignore[arg-type]
    else:
        ok = isinstance(value, tp)
    if not ok:
        hint = "; quote it in YAML" if tp is str and isinstance(value, int | float | bool) else ""
        raise TypeError(f"expected {_TYPE_WORDS.get(tp, tp.__name__)}, got {_describe(value)}{hint}")
    return value


def _yaml_friendly(path: str, value: object) -> object:
    """A YAML list for a comma-separated key, joined; a bare number for a duration key, as seconds
    text. Anything else is left for ``_coerce`` to check. Raises ``TypeError`` for a list item
    that is not a plain scalar."""
    if path in COMMA_SEPARATED_KEYS and isinstance(value, list):
        bad = [item for item in value if isinstance(item, bool) or not isinstance(item, str | int | float)]
        if bad:
            raise TypeError(
                f"expected a comma-separated string or a list of strings or numbers; "
                f"the list holds {_describe(bad[0])}"
            )
        return ",".join(str(item) for item in value)
    if path in DURATION_KEYS and isinstance(value, int | float) and not isinstance(value, bool):
        return repr(value)  # seconds, as "300" would be
    return value


def _parse_text(text: str, tp: type) -> object:
    """Parse an env/flag string as a YAML scalar; string keys keep raw text YAML would mangle.

    Without the string rule, ``[::1]:4317`` (a YAML flow sequence) or ``yes`` (a YAML bool) could
    not be given for a string key from the shell.
    """
    try:
        parsed = yaml.safe_load(text)
    except yaml.YAMLError:
        parsed = text
    if tp is str and not isinstance(parsed, str):
        return text
    return parsed


class _Merger:
    """Applies layers onto a tree of plain values, remembering where each value came from."""

    def __init__(self) -> None:
        self.tree: dict[str, Any] = dataclasses.asdict(Config())
        self.origins: dict[str, str] = {}
        self.errors: list[str] = []

    def _error(self, path: str, reason: str, origin: str | None) -> None:
        """Record ``path: reason``, naming the layer the value came from."""
        suffix = f" (from {origin})" if origin else ""
        self.errors.append(f"{path}: {reason}{suffix}")

    def _unknown(
        self,
        section: str,
        name: str,
        value: object,
        known: Mapping[str, type],
        origin: str,
        *,
        from_yaml: bool = False,
    ) -> None:
        """Report an unknown key; under an unknown section, name each leaf so the full path shows.

        A YAML key with no near spelling in its own section may still spell a real key's whole path
        flat (``api_endpoint`` or ``api.endpoint`` at the top level): then the hint shows the nesting.
        """
        close = difflib.get_close_matches(name, list(known), n=1)
        hint = f" (did you mean {join_path(section, close[0])!r}?)" if close else ""
        meant = _meant_leaf(join_path(section, name)) if from_yaml and not close else None
        if meant is not None and not isinstance(value, Mapping):
            hint = f" (did you mean {meant!r}? YAML nests keys: {_nested(meant)})"
        bad = join_path(section, name)
        leaves = list(_leaf_paths(value, bad)) if isinstance(value, Mapping) and value else [bad]
        for leaf in leaves:
            reason = "unknown key" if leaf == bad else f"unknown key: there is no section {bad!r}"
            self._error(leaf, reason + hint, origin)

    def apply_mapping(self, data: object, cls: type, prefix: str, tree: dict[str, Any], origin: str) -> None:
        """Merge a parsed YAML mapping for section ``cls`` at ``prefix``."""
        if data is None:
            return  # "section:" with every key commented out
        if not isinstance(data, Mapping):
            where = prefix or "<top level>"
            self._error(where, f"expected a mapping, got {_describe(data)}", origin)
            return
        known = _fields(cls)
        for key, value in data.items():
            path = join_path(prefix, str(key))
            tp = known.get(key) if isinstance(key, str) else None
            if tp is None:
                self._unknown(prefix, str(key), value, known, origin, from_yaml=True)
            elif dataclasses.is_dataclass(tp):
                self.apply_mapping(value, typing.cast(type, tp), path, tree[key], origin)
            else:
                self.set_leaf(path, tp, tree, key, value, origin, text=False)

    def set_leaf(
        self, path: str, tp: type, tree: dict[str, Any], key: str, value: object, origin: str, text: bool
    ) -> None:
        """Type-check and store one value."""
        if text and isinstance(value, str):
            value = _parse_text(value, tp)
        try:
            tree[key] = _coerce(_yaml_friendly(path, value), tp)
        except TypeError as exc:
            reason = str(exc)
            if path in COMMA_SEPARATED_KEYS and not isinstance(value, list):
                reason = reason.replace("expected a string", "expected a comma-separated string or a list", 1)
            self._error(path, reason, origin)
            return
        self.origins[path] = origin

    def apply_path(self, path: str, value: object, origin: str, text: bool) -> None:
        """Set one dotted path (env variable or CLI override)."""
        cls: type = Config
        tree = self.tree
        parts = path.split(".")
        for depth, part in enumerate(parts):
            known = _fields(cls)
            tp = known.get(part)
            if tp is None:
                rest = ".".join(parts[depth + 1 :])
                self._unknown(".".join(parts[:depth]), part, {rest: value} if rest else value, known, origin)
                return
            if depth == len(parts) - 1:
                if dataclasses.is_dataclass(tp):
                    self._error(path, "is a section; set its keys individually", origin)
                else:
                    self.set_leaf(path, tp, tree, part, value, origin, text)
                return
            if not dataclasses.is_dataclass(tp):
                self._error(path, f"unknown key ({'.'.join(parts[: depth + 1])} is not a section)", origin)
                return
            cls = typing.cast(type, tp)
            tree = tree[part]

    def annotate(self, error: str) -> str:
        """Add the origin to a validation error so users know which layer to fix."""
        path = error.partition(": ")[0]
        origin = self.origins.get(path)
        return f"{error} (from {origin})" if origin else error


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys, which PyYAML would otherwise silently let win."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[object] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # "<<: *anchor" merges are meant to be overridden by explicit keys
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, typing.Hashable) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _read_yaml(config_file: str) -> tuple[object, str | None]:
    """Parsed file content, or ``(None, error)`` for an unreadable file or a syntax error."""
    try:
        with open(config_file, encoding="utf-8") as fh:
            return yaml.load(fh, Loader=_UniqueKeyLoader), None  # a SafeLoader subclass
    except OSError as exc:
        return None, f"{config_file}: cannot read config file: {exc.strerror or exc}"
    except UnicodeDecodeError as exc:
        return None, f"{config_file}: config file is not UTF-8: {exc}"
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{config_file}:{mark.line + 1}:{mark.column + 1}" if mark is not None else config_file
        problem = getattr(exc, "problem", None) or str(exc)
        return None, f"{where}: invalid YAML: {problem}"


def _build(cls: type, tree: Mapping[str, Any]) -> Any:
    kwargs = {
        name: _build(typing.cast(type, tp), tree[name]) if dataclasses.is_dataclass(tp) else tree[name]
        for name, tp in _fields(cls).items()
    }
    return cls(**kwargs)


def load_config(
    config_file: str | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, object] | None = None,
) -> Config:
    """Load, merge and validate the configuration, or raise :class:`ConfigError` listing every problem.

    ``config_file`` falls back to ``$SIDECAR_CONFIG``; with neither, only defaults, environment and
    overrides apply. ``env=None`` reads ``os.environ``. ``overrides`` maps dotted paths to values
    (strings are parsed like environment values); ``None`` values mean "flag not given".
    """
    environ: Mapping[str, str] = os.environ if env is None else env
    merger = _Merger()

    path = config_file if config_file is not None else (environ.get(CONFIG_FILE_ENV) or None)
    if path is not None:
        data, error = _read_yaml(path)
        if error is not None:
            merger.errors.append(error)
        elif data is not None and not isinstance(data, Mapping):
            merger.errors.append(f"{path}: top level must be a mapping of keys, got {_describe(data)}")
        else:
            merger.apply_mapping(data, Config, "", merger.tree, path)

    settable = {leaf for leaf, _ in iter_leaves()} | set(_section_paths())
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX) or name in _RESERVED_ENV:
            continue
        key_path = name[len(ENV_PREFIX) :].lower().replace("__", ".")
        if key_path not in settable:
            # SIDECAR_API_ENDPOINT for SIDECAR_API__ENDPOINT is the usual slip: name the variable meant.
            meant = _meant_leaf(name[len(ENV_PREFIX) :])
            if meant is not None:
                merger.errors.append(
                    f"{name}: unknown setting; did you mean {env_var_name(meant)} ({meant})?"
                )
                continue
        if not key_path or any(not part for part in key_path.split(".")):
            merger.errors.append(f"{name}: unknown environment variable (not a config key)")
            continue
        merger.apply_path(key_path, environ[name], name, text=True)

    for key_path, value in (overrides or {}).items():
        if value is not None:
            merger.apply_path(key_path, value, _OVERRIDE_ORIGIN, text=True)

    # Rejected values were never stored, so the tree is well-typed and can be validated regardless.
    config: Config = _build(Config, merger.tree)
    errors = merger.errors + [merger.annotate(e) for e in config.validate("")]
    if errors:
        raise ConfigError(list(dict.fromkeys(errors)))
    return config
