"""Binding the listeners: a taken port is an operator mistake, reported in one line that says where.

The server wraps each listener's start; an ``OSError`` from it becomes :class:`CannotListen`, which
``sidecar serve`` prints as ``sidecar: cannot listen on ADDRESS (config.key, --flag): reason`` and
exits 2 after shutting down what had started.
"""

from __future__ import annotations

import errno
import os
import socket

from sidecar.config.model import split_endpoint


class CannotListen(Exception):
    """A listen address could not be bound; the message names the config key and the flag that set it."""

    def __init__(self, endpoint: str, key: str, flag: str, reason: str) -> None:
        super().__init__(f"cannot listen on {endpoint} ({key}, {flag}): {reason}")


def bind_error_reason(exc: OSError) -> str:
    """``address already in use`` rather than ``[Errno 98] error while attempting to bind on ...``."""
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve the host ({exc.strerror})"
    if exc.errno is not None and exc.errno > 0:
        text = os.strerror(exc.errno)
        return text[:1].lower() + text[1:]
    return str(exc)


def probe_bind(endpoint: str) -> None:
    """Bind (without listening) each address ``endpoint`` resolves to; raise the ``OSError`` if one fails.

    For the gRPC receiver: gRPC reports a failed bind only as "Failed to bind to address", after
    writing its own line to stderr, so the sidecar checks first and can say why in its one line.
    An address in use anywhere fails, as it does for the HTTP listeners; an address that cannot be
    assigned (``::1`` without IPv6) fails only if no address can be bound, as gRPC treats it.
    """
    host, port = split_endpoint(endpoint)
    infos = list(
        dict.fromkeys(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE))
    )
    failures: list[OSError] = []
    for family, kind, proto, _, address in infos:
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gRPC: TIME_WAIT is no clash
            try:
                sock.bind(address)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise
                failures.append(exc)
    if failures and len(failures) == len(infos):
        raise failures[0]
