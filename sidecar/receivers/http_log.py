"""aiohttp's server logger for one port, without the flood a client speaking the wrong protocol makes.

An OTLP/gRPC exporter pointed at an HTTP port opens HTTP/2 connections, which aiohttp's HTTP/1.1
parser cannot read. aiohttp answers 400 and logs ``ERROR aiohttp.server: Error handling request``
with a traceback that quotes the raw bytes, once per attempt, and the exporter retries for ever.
Here such parse errors become one event of a :class:`RateLimitedLog` reason that says what is
probably wrong; everything else, a bug in a handler above all, is logged by aiohttp as before.
aiohttp logs only when something went wrong, so a served request never comes through here.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.log import server_logger

from sidecar.receivers.rejections import RateLimitedLog


class HttpServerLog(logging.LoggerAdapter[logging.Logger]):
    """Pass as ``logger=`` to an ``AppRunner``: unreadable requests count towards ``reason``."""

    def __init__(
        self, rejections: RateLimitedLog, reason: str, logger: logging.Logger = server_logger
    ) -> None:
        super().__init__(logger, {})
        self._rejections = rejections
        self._reason = reason

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        """aiohttp passes the parser's exception as ``exc_info``; its own debug lines stay as they are."""
        if level > logging.DEBUG and isinstance(kwargs.get("exc_info"), HttpProcessingError):
            self._rejections.event(self._reason)
            return
        super().log(level, msg, *args, **kwargs)
