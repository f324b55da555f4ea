"""The bounded pool: ``TASKSTREAM_EXECUTOR_CONCURRENCY`` slots taking orders from the lanes.

Each slot is a thread that takes the most urgent waiting order (high before medium
before low, see :mod:`taskstream.executor.lanes`) and processes it to the end, so no more than
``concurrency`` executions run at once. A sync handler runs on the slot's own thread
(:meth:`taskstream.executor.runner.HandlerRunner.run_here`), an async one on the runner's event
loop. A run that overruns its deadline keeps its thread: the slot is handed over to a
new thread (:meth:`Slot.hand_over`) that reports the run and goes on taking orders,
and the old thread ends when its handler returns.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from taskstream.executor.execution import Received
from taskstream.executor.lanes import Lanes
from taskstream.infra.logs import fields

__all__ = ["ExecutionPool", "Slot"]

logger = logging.getLogger(__name__)


class Slot:
    """One place in the pool, held by one thread at a time."""

    def __init__(self, pool: ExecutionPool, number: int) -> None:
        self._pool = pool
        self.number = number
        self.thread: threading.Thread | None = None

    def hand_over(self, first: Callable[[], None]) -> None:
        """Give the slot to a new thread, which runs ``first`` (the overrun run's report)
        and then takes orders; the current holder ends once its ``process`` returns."""
        self._pool._hand_over(self, first)


class ExecutionPool:
    """``size`` slots running ``process`` on items from ``lanes``."""

    def __init__(
        self,
        lanes: Lanes[Received],
        size: int,
        process: Callable[[Received, Slot], None],
    ) -> None:
        self._lanes = lanes
        self._process = process
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._busy = 0
        self.size = size
        self._slots = [Slot(self, n) for n in range(size)]
        self.handed_over = 0
        """Slots given to a new thread because a run overran (its thread lingers)."""

    def start(self) -> None:
        for slot in self._slots:
            self._start(slot, None)

    def stop(self, timeout: float = 5.0) -> None:
        """Take no more orders; wait up to ``timeout`` for running ones to finish."""
        self._stop.set()
        self._lanes.close()
        for slot in self._slots:
            thread = slot.thread
            if thread is not None and thread.is_alive():
                thread.join(timeout / max(len(self._slots), 1))

    @property
    def busy(self) -> int:
        """Slots processing an order now (a lingering thread holds none)."""
        with self._lock:
            return self._busy

    def _start(self, slot: Slot, first: Callable[[], None] | None) -> None:
        thread = threading.Thread(
            target=self._serve, args=(slot, first), name=f"slot-{slot.number}", daemon=True
        )
        slot.thread = thread
        thread.start()

    def _hand_over(self, slot: Slot, first: Callable[[], None]) -> None:
        with self._lock:
            self.handed_over += 1
        self._start(slot, first)  # the busy count passes to the new thread with the run

    def _serve(self, slot: Slot, first: Callable[[], None] | None) -> None:
        me = threading.current_thread()
        if first is not None:
            try:
                first()
            except Exception:
                logger.exception("reporting an overrun run failed; it runs again after a restart")
            with self._lock:
                self._busy -= 1
        while not self._stop.is_set() and slot.thread is me:
            item = self._lanes.take(timeout=0.5)
            if item is None or self._stop.is_set():
                continue
            with self._lock:
                self._busy += 1
            try:
                self._process(item, slot)
            except Exception:
                order = item.order
                logger.exception(
                    "processing a work order failed; it runs again after a restart",
                    extra=fields(
                        task_id=order.task_id,
                        execution_id=order.execution_id,
                        attempt=order.attempt,
                    ),
                )
            if slot.thread is not me:
                return  # handed over while the handler ran: the new holder counts the run
            with self._lock:
                self._busy -= 1
