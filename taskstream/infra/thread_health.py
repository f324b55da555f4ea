"""Health of components that run as one thread, and the watchdog that ends a dead service.

:class:`ThreadHealth` adapts any component with ``.alive`` and ``.error`` (the consumer
threads of the core and the executor) to a :class:`~taskstream.infra.health.HealthSource`:
``ok`` while its thread runs, ``failed`` with the error that stopped it.

:class:`Watchdog` asks a service's board every second; once an essential component
``failed`` (:attr:`~taskstream.infra.health.HealthSnapshot.fatal`) it logs why, lingers
:data:`EXIT_LINGER` seconds (``/health`` answers 503 naming the component meanwhile, so
that a prober or the dashboard sees why before the process goes) and calls the service's
``on_fatal``, which ends the process non-zero so that its supervisor (``taskstream dev``,
systemd, Kubernetes) restarts it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Protocol

from taskstream.infra.health import ComponentStatus, HealthBoard, HealthSnapshot, State

__all__ = ["EXIT_FATAL", "ThreadHealth", "Watchdog"]

logger = logging.getLogger(__name__)

EXIT_FATAL = 70
"""Exit status of a service whose essential component died (``EX_SOFTWARE``)."""

EXIT_LINGER = 2.0
"""Seconds a dead service keeps answering 503 on ``/health`` before it exits."""


class _Threaded(Protocol):
    @property
    def alive(self) -> bool: ...


class ThreadHealth:
    """``ok`` while ``component.alive``; ``failed`` with its ``error`` (if it keeps one)."""

    def __init__(self, name: str, component: _Threaded, *, essential: bool = True) -> None:
        self.name = name
        self.essential = essential
        self._component = component

    def health(self) -> ComponentStatus:
        if self._component.alive:
            return ComponentStatus.ok()
        error: BaseException | None = getattr(self._component, "error", None)
        reason = f"stopped: {error!r}" if error is not None else "its thread is not running"
        return ComponentStatus(State.FAILED, reason)


class Watchdog:
    """A thread that calls ``on_fatal(snapshot)`` once an essential component failed."""

    def __init__(
        self,
        board: HealthBoard,
        on_fatal: Callable[[HealthSnapshot], None],
        interval: float = 1.0,
        linger: float = EXIT_LINGER,
    ) -> None:
        self._board = board
        self._on_fatal = on_fatal
        self._interval = interval
        self._linger = linger
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="watchdog", daemon=True)
        self.fired: HealthSnapshot | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def check(self) -> HealthSnapshot | None:
        """The snapshot if an essential component failed (and ``on_fatal`` was called, after
        the linger)."""
        snapshot = self._board.snapshot()
        if not snapshot.fatal or self.fired is not None:
            return self.fired
        self.fired = snapshot
        reasons = "; ".join(
            f"{name}: {snapshot.components[name].reason}" for name in snapshot.fatal
        )
        logger.critical(
            "%s: essential component(s) died (%s); exiting in %.1f s with status %d so that it "
            "is restarted",
            snapshot.service,
            reasons,
            self._linger,
            EXIT_FATAL,
        )
        self._stop.wait(self._linger)
        self._on_fatal(snapshot)
        return snapshot

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            if self.check() is not None:
                return
