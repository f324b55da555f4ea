"""Priority lanes: received work orders wait here until a slot of the pool is free.

One lane per priority, first in first out within a lane; :meth:`Lanes.take` always
serves high before medium before low. The lanes are shared by every queue an executor
serves, so a slot takes the most urgent order of any queue. Thread-safe: consumer
threads put, pool slots take, and a revoke removes what it no longer owns.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

from taskstream.schemas import Priority

__all__ = ["PRIORITY_ORDER", "Lanes"]

PRIORITY_ORDER: tuple[Priority, ...] = (Priority.HIGH, Priority.MEDIUM, Priority.LOW)

T = TypeVar("T")


class Lanes(Generic[T]):
    """Waiting items by priority. ``take`` blocks until an item comes or the lanes close."""

    def __init__(self) -> None:
        self._lanes: dict[Priority, deque[T]] = {p: deque() for p in PRIORITY_ORDER}
        self._ready = threading.Condition()
        self._closed = False

    def put(self, priority: Priority, item: T) -> None:
        with self._ready:
            self._lanes[priority].append(item)
            self._ready.notify()

    def take(self, timeout: float | None = None) -> T | None:
        """The oldest item of the most urgent non-empty lane; None on timeout or close."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._ready:
            while True:
                for priority in PRIORITY_ORDER:
                    lane = self._lanes[priority]
                    if lane:
                        return lane.popleft()
                if self._closed:
                    return None
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._ready.wait(remaining)

    def remove(self, predicate: Callable[[T], bool]) -> list[T]:
        """Take out every waiting item ``predicate`` accepts (a revoke drops them)."""
        removed: list[T] = []
        with self._ready:
            for priority in PRIORITY_ORDER:
                keep: deque[T] = deque()
                for item in self._lanes[priority]:
                    (removed if predicate(item) else keep).append(item)
                self._lanes[priority] = keep
        return removed

    def waiting(self, priority: Priority | None = None) -> int:
        with self._ready:
            if priority is not None:
                return len(self._lanes[priority])
            return sum(len(lane) for lane in self._lanes.values())

    def close(self) -> None:
        """Wake every taker; ``take`` returns what is left, then None."""
        with self._ready:
            self._closed = True
            self._ready.notify_all()
