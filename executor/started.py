"""``ExecutionStarted`` only for the runs still going after a threshold.

A run that ends quickly is one event on ``task-events``: its outcome (v2) carries
``started_at`` and ``handler``. A run still going after ``after`` seconds
(``executor_started_event_after``) gets an ``ExecutionStarted`` as well, stamped with the
time it began, so the running views and the long-run alerts see it while it runs.

:meth:`StartedAnnouncer.begin` notes a run when its handler starts; a thread
(``started-announcer``, a :class:`~taskstream.infra.consumer_loop.ConsumerLoop`) writes
the events of the runs past the threshold every ``after / 4`` seconds; :meth:`end`
removes a run before its outcome is produced and returns the delivery of its
``ExecutionStarted``, if one was sent, for the execution to wait for. Both hold one lock,
so an ``ExecutionStarted`` is produced before its outcome or not at all (one key, one
partition, the producer keeps the order). With ``after`` 0 the event is written at
:meth:`begin`, as before v2.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from datetime import datetime

from taskstream.infra.consumer_loop import ConsumerLoop, OnLoop
from taskstream.schemas import Event, ExecutionStarted, WorkOrder

__all__ = ["StartedAnnouncer"]

_MIN_INTERVAL = 0.05


class _Run:
    __slots__ = ("deadline", "order", "sent", "started_at")

    def __init__(self, order: WorkOrder, started_at: datetime, deadline: float) -> None:
        self.order = order
        self.started_at = started_at
        self.deadline = deadline
        self.sent: Future[None] | None = None


class StartedAnnouncer(OnLoop):
    """Writes ``ExecutionStarted`` for the runs that outlast ``after`` seconds."""

    name = "started-announcer"
    essential = False
    """Runs and their outcomes go on without it; only the running view of long runs waits."""

    def __init__(
        self,
        after: float,
        worker_id: str,
        send: Callable[[Event], Future[None]],
        *,
        clock: Callable[[], float] = time.monotonic,
        stall_after: float = 30.0,
    ) -> None:
        self.after = after
        self._worker_id = worker_id
        self._send = send
        self._clock = clock
        self._runs: dict[int, _Run] = {}
        """In the order they began, so the due ones are at the front."""
        self._lock = threading.Lock()
        interval = max(after / 4, _MIN_INTERVAL)
        self._loop = ConsumerLoop(
            self.name,
            tick=self.announce_due,
            interval=interval,
            isolate_ticks=True,
            essential=False,
            stall_after=max(stall_after, 2 * interval),
        )

    def start(self) -> None:
        if self.after > 0:
            self._loop.start()

    def stop(self, timeout: float = 5.0) -> None:
        if self.after > 0:
            self._loop.stop(timeout)

    @property
    def alive(self) -> bool:
        return self.after <= 0 or self._loop.alive

    def begin(self, token: int, order: WorkOrder, started_at: datetime) -> None:
        """The handler of ``order`` starts now (``token``: unique while it runs)."""
        with self._lock:  # the deadline under the lock: the runs stay in deadline order
            run = self._runs[token] = _Run(order, started_at, self._clock() + self.after)
            if self.after <= 0:
                run.sent = self._send(self._event(run))

    def end(self, token: int) -> Future[None] | None:
        """The run is over: no ``ExecutionStarted`` after this; the delivery of the one
        sent, if one was."""
        with self._lock:
            run = self._runs.pop(token, None)
        return None if run is None else run.sent

    def announce_due(self) -> int:
        """Send the events of the runs past the threshold; return how many were sent."""
        now = self._clock()
        sent = 0
        with self._lock:
            for run in self._runs.values():
                if run.deadline > now:
                    break
                if run.sent is None:
                    run.sent = self._send(self._event(run))
                    sent += 1
            # the sent ones stay until end() takes their delivery
        return sent

    def _event(self, run: _Run) -> Event:
        order = run.order
        started = ExecutionStarted(
            execution_id=order.execution_id,
            attempt=order.attempt,
            scheduled_for=order.scheduled_for,
            worker_id=self._worker_id,
            handler=order.handler,
        )
        return Event.create(order.task_id, started, occurred_at=run.started_at)
