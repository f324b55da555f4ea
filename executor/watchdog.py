"""One thread that watches the deadlines of sync handlers running on pool slots.

A sync handler runs on the slot that took its order (:meth:`HandlerRunner.run_here`):
no thread, future or wake-up per run, which at thousands of short runs a second is most
of what a run costs. Nothing can stop a Python function from outside, so when a run
passes its deadline or is cancelled while it runs, the watchdog *overruns* it: it sets
``ctx.cancelled``, counts the slot's thread as lingering, and calls the run's
``overrun`` callback with the ending (``TIMED_OUT`` or ``CANCELLED``), which hands the
slot's work over to a new thread (:meth:`taskstream.executor.pool.Slot.hand_over`). When the
handler returns at last, :meth:`Watch.finish` tells its thread that the run is no
longer its own: the result is dropped and the thread ends.

The watchdog wakes at the earliest deadline of what runs (at most the pool's size of
runs), or when a run is cancelled; a run that starts or ends costs two lock
acquisitions and one small object.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from taskstream.executor.metrics import LINGERING_THREADS
from taskstream.executor.outcomes import Outcome
from taskstream.infra.logs import fields
from taskstream.schemas import WorkOrder

__all__ = ["RunWatchdog", "Watch"]

logger = logging.getLogger(__name__)

_RUNNING, _FINISHED, _OVERRUN = 0, 1, 2
_IDLE_WAIT = 1.0
"""The longest the watchdog sleeps with nothing due (it is woken for anything sooner)."""


class Watch:
    """One run under the watchdog: its deadline, its cancellation, who ended it."""

    __slots__ = (
        "_order",
        "cancelled",
        "deadline",
        "handed_over",
        "overrun",
        "reason",
        "started",
        "state",
        "timeout",
    )

    def __init__(
        self,
        started: float,
        deadline: float,
        timeout: float,
        cancelled: threading.Event,
        overrun: Callable[[Outcome], None],
        order: WorkOrder,
    ) -> None:
        self.started = started
        self.deadline = deadline
        self.timeout = timeout
        self.cancelled = cancelled
        self.overrun = overrun
        self.reason: str | None = None
        self.state = _RUNNING
        self.handed_over: threading.Event | None = None
        """Set once ``overrun`` returned (made only for a run that overran)."""
        self._order = order

    @property
    def log_fields(self) -> dict[str, object]:
        order = self._order
        return fields(task_id=order.task_id, execution_id=order.execution_id, attempt=order.attempt)


class RunWatchdog:
    """Overruns the runs that pass their deadline or are cancelled while they run."""

    def __init__(self, name: str = "handler-watchdog") -> None:
        self._ready = threading.Condition()
        self._running: set[Watch] = set()
        self._wake_at = float("inf")
        """When the watchdog thread wakes next (a run due sooner notifies it)."""
        self._closed = False
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def watch(
        self,
        started: float,
        timeout: float,
        cancelled: threading.Event,
        overrun: Callable[[Outcome], None],
        order: WorkOrder,
    ) -> Watch:
        """Start watching a run that began at ``started`` (:func:`time.monotonic`) and may
        go on for ``timeout`` seconds; ``overrun`` is called, once, if it does not end in
        time or is cancelled first."""
        deadline = started + timeout
        watch = Watch(started, deadline, timeout, cancelled, overrun, order)
        with self._ready:
            self._running.add(watch)
            if deadline < self._wake_at:
                self._ready.notify()
        return watch

    def cancel(self, watch: Watch, reason: str) -> None:
        """The run was cancelled: overrun it now, unless it finished already."""
        with self._ready:
            if watch.state != _RUNNING or watch.reason is not None:
                return
            watch.reason = reason or "cancelled"
            watch.deadline = 0.0
            self._ready.notify()

    def finish(self, watch: Watch) -> bool:
        """The handler returned: True if the run is still its thread's to report."""
        with self._ready:
            if watch.state == _RUNNING:
                watch.state = _FINISHED
                self._running.discard(watch)
                return True
            handed_over = watch.handed_over
        if handed_over is not None:  # the slot is someone else's once this returns
            handed_over.wait()
        LINGERING_THREADS.dec()
        logger.info("abandoned handler thread finished", extra=watch.log_fields)
        return False

    @property
    def running(self) -> int:
        with self._ready:
            return len(self._running)

    def close(self) -> None:
        with self._ready:
            self._closed = True
            self._ready.notify()
        self._thread.join(2.0)

    def _serve(self) -> None:
        while True:
            with self._ready:
                if self._closed:
                    return
                now = time.monotonic()
                due = [watch for watch in self._running if watch.deadline <= now]
                for watch in due:
                    watch.state = _OVERRUN
                    watch.handed_over = threading.Event()
                    self._running.discard(watch)
                self._wake_at = min((w.deadline for w in self._running), default=float("inf"))
                if not due:
                    self._ready.wait(min(self._wake_at - now, _IDLE_WAIT))
                    continue
            for watch in due:
                self._overrun(watch, now)

    def _overrun(self, watch: Watch, now: float) -> None:
        watch.cancelled.set()
        LINGERING_THREADS.inc()
        logger.warning(
            "handler thread still running after its execution ended; it is left to finish",
            extra=watch.log_fields,
        )
        duration = now - watch.started
        outcome = (
            Outcome.past_deadline(duration, watch.timeout)
            if watch.reason is None
            else Outcome.cancelled(duration, watch.reason)
        )
        try:
            watch.overrun(outcome)
        except Exception:  # the watchdog outlives any one run's hand-over
            logger.exception("handing over an overrun run failed", extra=watch.log_fields)
        finally:
            assert watch.handed_over is not None
            watch.handed_over.set()
