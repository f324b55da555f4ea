"""The health of the monitor's agent over ``task-events``, as a HealthSource.

faust keeps serving when an agent's coroutine raises (it logs "Agent crashed" and the web
server and timers go on), so without this the monitor's history froze while ``/health``
said 200. The agent reports to an :class:`AgentHealth`: it started, it folded a batch,
or it died with an exception; ``health()`` turns that, and the agent's consumer lag, into
a :class:`~taskstream.infra.health.ComponentStatus` for the monitor's HealthBoard.
"""

from __future__ import annotations

import time
from typing import Protocol

from taskstream.infra.health import ComponentStatus, State

__all__ = ["AgentHealth"]


class _Lag(Protocol):
    @property
    def records(self) -> int | None: ...


class AgentHealth:
    """``starting`` until the agent runs; ``failed`` once it died; ``unavailable`` when it
    has not folded a batch for ``stall_after`` seconds while records wait."""

    essential = True

    def __init__(self, lag: _Lag, stall_after: float, name: str = "agent") -> None:
        self.name = name
        self.stall_after = stall_after
        self._lag = lag
        self._running = False
        self._error: BaseException | None = None
        self._progress_at = time.monotonic()
        self._batches = 0

    def started(self) -> None:
        self._running, self._error = True, None
        self._progress_at = time.monotonic()

    def advanced(self) -> None:
        self._batches += 1
        self._progress_at = time.monotonic()

    def died(self, exc: BaseException) -> None:
        self._running, self._error = False, exc

    def stopped(self) -> None:
        self._running = False

    @property
    def error(self) -> BaseException | None:
        return self._error

    def health(self) -> ComponentStatus:
        lag = self._lag.records
        details: dict[str, object] = {"batches": self._batches, "lag": lag}
        if self._error is not None:
            text = str(self._error)
            error = type(self._error).__name__ + (f": {text}" if text else "")
            return ComponentStatus(State.FAILED, f"the task-events agent died: {error}", details)
        if not self._running:
            return ComponentStatus(State.STARTING, "the task-events agent is not running", details)
        idle = time.monotonic() - self._progress_at
        if lag and idle > self.stall_after:
            return ComponentStatus(
                State.UNAVAILABLE,
                f"the task-events agent has not advanced for {idle:.0f}s while {lag} records wait",
                details,
            )
        return ComponentStatus(State.OK, None, details)
