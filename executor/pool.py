"""The bounded pool: ``TASKSTREAM_EXECUTOR_CONCURRENCY`` slots taking orders from the lanes.

Each slot is a thread that takes the most urgent waiting order (high before medium
before low, see :mod:`executor.lanes`) and processes it to the end, so no more than
``concurrency`` executions run at once. A sync handler runs on a thread of its own
(the slot waits for it with a deadline), an async one on the runner's event loop.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from executor.execution import Received
from executor.lanes import Lanes
from taskstream.infra.logs import fields

__all__ = ["ExecutionPool"]

logger = logging.getLogger(__name__)


class ExecutionPool:
    """``size`` slot threads running ``process`` on items from ``lanes``."""

    def __init__(
        self, lanes: Lanes[Received], size: int, process: Callable[[Received], None]
    ) -> None:
        self._lanes = lanes
        self._process = process
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._busy = 0
        self.size = size
        self._slots = [
            threading.Thread(target=self._slot, name=f"slot-{n}", daemon=True) for n in range(size)
        ]

    def start(self) -> None:
        for slot in self._slots:
            slot.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Take no more orders; wait up to ``timeout`` for running ones to finish."""
        self._stop.set()
        self._lanes.close()
        for slot in self._slots:
            if slot.is_alive():
                slot.join(timeout / max(len(self._slots), 1))

    @property
    def busy(self) -> int:
        """Slots processing an order now."""
        with self._lock:
            return self._busy

    def _slot(self) -> None:
        while not self._stop.is_set():
            item = self._lanes.take(timeout=0.5)
            if item is None or self._stop.is_set():
                continue
            with self._lock:
                self._busy += 1
            try:
                self._process(item)
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
            finally:
                with self._lock:
                    self._busy -= 1
