"""Waiting a bounded time for a client call that may never return.

Some librdkafka calls take a timeout they do not always keep. The one that matters
here: ``Producer.send_offsets_to_transaction`` waits for its request to the group
coordinator with no deadline of its own (``RD_POLL_INFINITE``; the timeout is only
checked when a response arrives), and the coordinator lookup behind it is only
re-triggered by a broker state change (confluentinc/librdkafka#5456, #5511). After a
broker outage the call can block for minutes with the broker back, and with it the
scheduler's thread, so no task fires.

A :class:`BoundedCaller` runs such a call on a daemon worker thread and waits at most
a deadline for it. When the deadline passes it raises :class:`CallTimedOut` and gives
that worker up: the call keeps running there until the client returns (the caller
must stop using the client it was given: the scheduler starts a new producer, which
fences the old one), and the next call gets a fresh worker. How many given-up calls
have not returned yet is :attr:`BoundedCaller.abandoned`, so a caller can stop
before it leaks threads without bound.

Exceptions::

    CallTimedOut   the call did not return within its deadline (it may still run)
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TypeVar, cast

from taskstream.schemas.errors import TaskstreamError

__all__ = ["BoundedCaller", "CallTimedOut"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

_Job = tuple[Callable[[], object], "Future[object]"]


class CallTimedOut(TaskstreamError, TimeoutError):
    """A call did not return within its deadline; it may still be running."""


class _Worker:
    """One daemon thread running the jobs put on its queue, until it is told to end."""

    def __init__(self, name: str, on_exit: Callable[[_Worker], None]) -> None:
        self.jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._on_exit = on_exit
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            while (job := self.jobs.get()) is not None:
                call, future = job
                if not future.set_running_or_notify_cancel():
                    continue
                try:
                    future.set_result(call())
                except BaseException as exc:
                    future.set_exception(exc)
        finally:
            self._on_exit(self)


class BoundedCaller:
    """Runs blocking calls on a worker thread; waits at most a deadline for each."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._lock = threading.Lock()
        self._abandoned: set[_Worker] = set()
        self._worker: _Worker | None = None
        self._spawned = 0

    def call(self, fn: Callable[[], T], timeout: float) -> T:
        """``fn()``'s result (or its exception); :class:`CallTimedOut` after ``timeout``
        seconds, leaving ``fn`` to finish on its own."""
        worker = self._current()
        future: Future[object] = Future()
        worker.jobs.put((fn, future))
        try:
            result = future.result(timeout)
        except FutureTimeout:
            self._abandon(worker)
            raise CallTimedOut(
                f"{self._name}: the call did not return within {timeout:.1f}s"
            ) from None
        return cast(T, result)

    @property
    def abandoned(self) -> int:
        """Calls given up on that have not returned yet."""
        with self._lock:
            return len(self._abandoned)

    def close(self) -> None:
        """End the current worker once it is idle (given-up calls are left to finish)."""
        with self._lock:
            worker, self._worker = self._worker, None
        if worker is not None:
            worker.jobs.put(None)

    def _current(self) -> _Worker:
        with self._lock:
            if self._worker is None:
                self._spawned += 1
                self._worker = _Worker(f"{self._name}-{self._spawned}", self._ended)
            return self._worker

    def _abandon(self, worker: _Worker) -> None:
        with self._lock:
            if self._worker is worker:
                self._worker = None
            if worker.thread.is_alive():
                self._abandoned.add(worker)
        worker.jobs.put(None)  # it ends as soon as the call it is stuck in returns

    def _ended(self, worker: _Worker) -> None:
        with self._lock:
            if worker in self._abandoned:
                self._abandoned.discard(worker)
                logger.info("%s: a call given up on has returned", self._name)
