"""Rate-limited warnings for refused and partly refused exports ("where are my spans?").

A client with a bug can send thousands of bad requests a second; the operator needs to see that it
happens, why, and how often, not every instance. So each reason gets at most one log line per
interval: the first event of a quiet reason is logged at once, later ones are counted and reported
together when the interval is over. Lines carry fixed reason texts and counts only, never the
client-facing error message (which may quote payload values) and never payloads.

Nothing here runs on the success path: receivers call :meth:`RateLimitedLog.event` only after they
have decided to refuse something.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

INTERVAL_S = 10.0


@dataclass(slots=True)
class _Reason:
    last_line: float  # clock time of the latest line for this reason
    events: int = 0  # held back since then
    items: int = 0
    item_noun: str | None = None  # when the caller names the items (a signal's), else the log's
    timer: asyncio.TimerHandle | None = None


class RateLimitedLog:
    """At most one line per reason key every ``interval_s``, saying how many events it stands for.

    Reusable by any receiver: ``event_noun`` counts calls (``request``), ``item_noun`` the things a
    call carried (``span``, ``log record``) when the caller knows them. Held-back events are reported
    by a timer on the running event loop when the interval ends, so a burst followed by silence is
    still counted; without a running loop they go out with the next line, or with :meth:`flush`.
    Call it from one thread (the event loop's): it takes no lock.
    """

    def __init__(
        self,
        logger: logging.Logger,
        *,
        interval_s: float = INTERVAL_S,
        level: int = logging.WARNING,
        event_noun: str = "request",
        item_noun: str = "span",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._interval = interval_s
        self._level = level
        self._event_noun = event_noun
        self._item_noun = item_noun
        self._clock = clock
        self._reasons: dict[str, _Reason] = {}

    def event(self, reason: str, items: int = 0, item_noun: str | None = None) -> None:
        """Record one event for ``reason`` (a fixed text, never payload); log now or hold it back.

        ``item_noun`` names the items when a reason belongs to one signal (``log record``); a
        reason keeps the noun of its first event.
        """
        if not self._logger.isEnabledFor(self._level):
            return
        now = self._clock()
        state = self._reasons.get(reason)
        if state is None or (not state.events and now - state.last_line >= self._interval):
            if state is None:
                self._reasons[reason] = state = _Reason(last_line=now, item_noun=item_noun)
            state.last_line = now
            self._emit(reason, 1, items, None, state.item_noun)
            return
        state.events += 1
        state.items += items
        if now - state.last_line >= self._interval:
            self._report(reason, state, now)
        elif state.timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return  # reported with the next line for this reason, or by flush()
            state.timer = loop.call_later(state.last_line + self._interval - now, self._on_timer, reason)

    def flush(self) -> None:
        """Report every held-back count now (at shutdown), and cancel the timers."""
        now = self._clock()
        for reason, state in self._reasons.items():
            if state.timer is not None:
                state.timer.cancel()
                state.timer = None
            if state.events:
                self._report(reason, state, now)

    def _on_timer(self, reason: str) -> None:
        state = self._reasons[reason]
        state.timer = None
        if state.events:
            self._report(reason, state, self._clock())

    def _report(self, reason: str, state: _Reason, now: float) -> None:
        if state.timer is not None:
            state.timer.cancel()
            state.timer = None
        self._emit(reason, state.events, state.items, now - state.last_line, state.item_noun)
        state.last_line = now
        state.events = state.items = 0

    def _emit(
        self, reason: str, events: int, items: int, elapsed: float | None, item_noun: str | None
    ) -> None:
        count = f"{events} {_plural(self._event_noun, events)}"
        if items:
            count += f", {items} {_plural(item_noun or self._item_noun, items)}"
        if elapsed is None:
            window = f"further ones are counted and reported at most every {self._interval:g} s"
            self._logger.log(self._level, "%s (%s; %s)", reason, count, window)
        else:
            self._logger.log(self._level, "%s (%s in the last %.3g s)", reason, count, elapsed)


def _plural(noun: str, n: int) -> str:
    return noun if n == 1 else noun + "s"


def rejection_log(interval_s: float = INTERVAL_S) -> RateLimitedLog:
    """The warning log both OTLP receivers share, for every signal (one per process, made by the server)."""
    return RateLimitedLog(logging.getLogger("sidecar.receivers"), interval_s=interval_s)
