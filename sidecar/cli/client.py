"""The HTTP side of the query commands: one GET, its errors, and the options every query command shares.

Stdlib only (``urllib``), so the CLI works in a minimal container next to the sidecar.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Any

from sidecar.config.model import ApiConfig

DEFAULT_API_URL = f"http://{ApiConfig.endpoint}"  # where a sidecar without a config serves the API
API_URL_ENV = "SIDECAR_API_URL"
HTTP_TIMEOUT_S = 30.0


class CliError(Exception):
    """A failure to report as ``sidecar: <message>`` with exit status ``code``."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


class ApiError(Exception):
    """The API answered with an HTTP error status; ``message`` is the server's own explanation."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message

    def cli_error(self) -> CliError:
        hint = f" (is --api the query API address, such as {DEFAULT_API_URL}?)" if self.status == 404 else ""
        return CliError(f"API error (HTTP {self.status}): {self.message}{hint}")


def envelope_message(doc: object) -> str:
    """The explanation in a Jaeger (``errors[].msg``) or generic (``error.message``) envelope, or ``""``."""
    if not isinstance(doc, Mapping):
        return ""
    errors = doc.get("errors")
    if isinstance(errors, list):
        msgs = [str(e.get("msg") or e.get("message") or e) for e in errors if isinstance(e, Mapping)]
        if msgs:
            return "; ".join(msgs)
    error = doc.get("error")
    if isinstance(error, Mapping) and error.get("message"):
        return str(error["message"])
    if isinstance(error, str):
        return error
    message = doc.get("message")  # google.rpc.Status, as the OTLP/HTTP port answers
    return message if isinstance(message, str) else ""


def error_message(body: bytes, fallback: str) -> str:
    """The server's explanation of an HTTP error: envelope message, else raw text, else ``fallback``."""
    text = body.decode("utf-8", errors="replace").strip()
    try:
        message = envelope_message(json.loads(text))
    except ValueError:
        message = ""
    if message:
        return message
    if text.startswith("<"):  # a web page: whatever answered is not the sidecar's API
        return f"{fallback} (an HTML page, not the sidecar's API)"
    first = text.splitlines()[0] if text else ""
    return (first[:200] + "..." if len(first) > 200 or len(text) > len(first) else first) or fallback


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", exc)
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    if isinstance(exc, http.client.HTTPException):  # e.g. HTTP/2 frames from the OTLP/gRPC port
        return "the server there does not answer HTTP/1.1 (is it the OTLP/gRPC port?)"
    text = str(reason) or type(reason).__name__
    return text if text.isprintable() else repr(text)[:80]


def call(
    api: str,
    path: str,
    params: Sequence[tuple[str, str]] = (),
    body: object = None,
    accept: str = "application/json",
) -> bytes:
    """GET (or, with a ``body``, POST it as JSON) ``api + path``; the answer's bytes. Raises
    ``ApiError`` on HTTP errors, ``CliError`` when the API cannot be reached."""
    url = api + path + (f"?{urllib.parse.urlencode(params)}" if params else "")
    headers = {"Accept": accept, "User-Agent": "sidecar-cli"}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:
            return bytes(response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            raise ApiError(exc.code, error_message(exc.read(), str(exc.reason))) from None
    except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
        raise CliError(f"cannot reach the API at {api}: {_reason(exc)}") from None


def fetch_json(api: str, path: str, params: Sequence[tuple[str, str]] = (), body: object = None) -> Any:
    """GET (POST with ``body``) and decode JSON; ``ApiError`` on HTTP errors, ``CliError`` otherwise."""
    answer = call(api, path, params, body)
    try:
        return json.loads(answer)
    except ValueError as exc:
        raise CliError(f"the API at {api} returned invalid JSON for {path}: {exc}") from None


def fetch_page(
    api: str, path: str, params: Sequence[tuple[str, str]] = ()
) -> tuple[Mapping[str, Any], list[Any]]:
    """The whole answer and its ``data`` list (pages also carry ``next_cursor``); any HTTP error
    becomes a ``CliError``, as does an answer without a ``data`` list."""
    try:
        doc = fetch_json(api, path, params)
    except ApiError as exc:
        raise exc.cli_error() from None
    data = doc.get("data") if isinstance(doc, Mapping) else None
    if not isinstance(data, list):
        raise CliError(f"unexpected response from {api}{path}: no 'data' list")
    return doc, data


def fetch_data(api: str, path: str, params: Sequence[tuple[str, str]] = ()) -> list[Any]:
    """The ``data`` list of a Jaeger-style envelope; any HTTP error becomes a ``CliError``."""
    return fetch_page(api, path, params)[1]


def api_url(text: str) -> str:
    """An http(s) base URL without trailing slash, so paths can be appended."""
    parts = urllib.parse.urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc or not text.isprintable() or " " in text:
        raise argparse.ArgumentTypeError(f"expected an http(s) URL such as {DEFAULT_API_URL}, got {text!r}")
    return text.rstrip("/")


def api_base(args: argparse.Namespace) -> str:
    """``--api``, else ``$SIDECAR_API_URL`` (checked like the flag, exit 2 if malformed), else the default."""
    if args.api is not None:
        return str(args.api)
    from_env = os.environ.get(API_URL_ENV)
    if not from_env:
        return DEFAULT_API_URL
    try:
        return api_url(from_env)
    except argparse.ArgumentTypeError as exc:
        raise CliError(f"{API_URL_ENV}: {exc}", code=2) from None


def add_api_option(parser: argparse.ArgumentParser) -> None:
    """``--api``, spelled alike by every command that queries the API."""
    parser.add_argument(
        "--api",
        type=api_url,
        metavar="URL",
        help=f"query API base URL (default: ${API_URL_ENV}, else {DEFAULT_API_URL})",
    )


def query_options() -> argparse.ArgumentParser:
    """``--api`` and ``--json``, as an argparse parent so every query command spells them alike."""
    common = argparse.ArgumentParser(add_help=False)
    add_api_option(common)
    common.add_argument("--json", action="store_true", help="print the API's JSON instead of a table")
    return common


def print_json(doc: object) -> None:
    print(json.dumps(doc, indent=2, ensure_ascii=False))
