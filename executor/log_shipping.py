"""Shipping each run's captured lines to ``execution-logs`` while it runs, and at its end.

:meth:`LogShipper.open` starts a run's :class:`~taskstream.executor.capture.RunLog`; a thread ships
the lines kept so far every ``interval`` seconds, so a long run's log can be read while
it runs; :meth:`LogShipper.close` ships the rest in a ``final`` chunk and answers the
delivery future, which the execution waits for before its offset is committed. A run
that logged and printed nothing ships nothing (no record per no-op execution).

The flushing thread is a :class:`taskstream.infra.consumer_loop.ConsumerLoop`
(``log-shipper``): a flush that raises is logged and counted, and the next interval
flushes again (the lines stay with their runs until then). It is not essential: the
executions run, and their final chunks are shipped by :meth:`LogShipper.close` on the
execution's own thread, without it; only the live view of a long run's log waits. While
every flush fails its health says ``unavailable`` with the error.
"""

from __future__ import annotations

import logging
import threading
import uuid
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime

from prometheus_client import Counter

from taskstream.executor.capture import RunLog, release
from taskstream.executor.publisher import Publisher
from taskstream.infra.consumer_loop import ConsumerLoop, OnLoop
from taskstream.schemas import ExecutionLogChunk, LogLine, WorkOrder

__all__ = ["CHUNK_BYTES", "LogShipper", "ShippedRun"]

logger = logging.getLogger(__name__)

CHUNK_BYTES = 256 * 1024
"""Lines per record stay under this many bytes (a broker takes 1 MiB by default)."""

LOG_LINES_DROPPED = Counter(
    "taskstream_executor_log_lines_dropped_total",
    "handler log lines dropped because a run went over executor_log_max_bytes",
)
LOG_CHUNKS = Counter("taskstream_executor_log_chunks_total", "execution-logs records produced")


@dataclass
class ShippedRun:
    """One run's log and what has been shipped of it."""

    order: WorkOrder
    log: RunLog
    run_id: str
    lock: threading.Lock = field(default_factory=threading.Lock)
    seq: int = 0
    closed: bool = False


class LogShipper(OnLoop):
    """Produces the chunks of every open run; one thread flushes them periodically."""

    def __init__(
        self,
        publisher: Publisher,
        topic: str,
        worker_id: str,
        *,
        max_bytes: int,
        interval: float,
        stall_after: float = 30.0,
    ) -> None:
        """``stall_after``: seconds of failing flushes before the health says unavailable."""
        self._publisher = publisher
        self._topic = topic
        self._worker_id = worker_id
        self._max_bytes = max_bytes
        self._runs: dict[str, ShippedRun] = {}
        self._lock = threading.Lock()
        self._loop = ConsumerLoop(
            "log-shipper",
            tick=self.flush,
            interval=interval,
            isolate_ticks=True,
            essential=False,
            stall_after=max(stall_after, 2 * interval),
        )

    name = "log-shipper"
    essential = False
    """Runs and their final chunks go on without it; only a running log's live view waits."""

    def start(self) -> None:
        self._loop.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._loop.stop(timeout)

    def open(self, order: WorkOrder) -> ShippedRun:
        run = ShippedRun(order, RunLog(order.execution_id, self._max_bytes), uuid.uuid4().hex)
        with self._lock:
            self._runs[run.run_id] = run
        return run

    def close(self, run: ShippedRun) -> Future[None]:
        """Ship what is left in a ``final`` chunk; the future completes on delivery.

        A run that logged and printed nothing ships nothing at all (most runs of a
        high-rate task say nothing): its future is complete at once.
        """
        with self._lock:
            self._runs.pop(run.run_id, None)
        release(run.log)
        with run.lock:
            run.closed = True
            tail = run.log.finish()
            if tail.dropped_lines:
                LOG_LINES_DROPPED.inc(tail.dropped_lines)
            if run.seq == 0 and not tail.lines and not tail.dropped_lines:
                silent: Future[None] = Future()
                silent.set_result(None)
                return silent
            return self._ship(
                run,
                tail.lines,
                final=True,
                dropped_lines=tail.dropped_lines,
                dropped_bytes=tail.dropped_bytes,
            )

    def flush(self) -> None:
        """Ship the lines every open run kept since the last flush."""
        with self._lock:
            runs = list(self._runs.values())
        for run in runs:
            with run.lock:
                if run.closed:
                    continue
                lines = run.log.take()
                if lines:
                    self._ship(run, lines, final=False)

    def _ship(
        self,
        run: ShippedRun,
        lines: list[LogLine],
        *,
        final: bool,
        dropped_lines: int = 0,
        dropped_bytes: int = 0,
    ) -> Future[None]:
        """Produce ``lines`` in records under :data:`CHUNK_BYTES`; the last one's future."""
        pieces = _split(lines)
        future: Future[None] = Future()
        for index, piece in enumerate(pieces):
            last = index == len(pieces) - 1
            chunk = ExecutionLogChunk(
                execution_id=run.order.execution_id,
                task_id=run.order.task_id,
                attempt=run.order.attempt,
                run_id=run.run_id,
                worker_id=self._worker_id,
                seq=run.seq,
                lines=tuple(piece),
                final=final and last,
                dropped_lines=dropped_lines if last else 0,
                dropped_bytes=dropped_bytes if last else 0,
                sent_at=datetime.now(UTC),
            )
            run.seq += 1
            future = self._publisher.send(
                self._topic, run.order.execution_id.encode(), chunk.encode()
            )
            LOG_CHUNKS.inc()
        return future


def _split(lines: list[LogLine]) -> list[list[LogLine]]:
    """``lines`` in pieces under :data:`CHUNK_BYTES` each; at least one (maybe empty)."""
    pieces: list[list[LogLine]] = [[]]
    size = 0
    for line in lines:
        line_size = len(line.message) * 4 + 200  # an upper bound of its JSON
        if pieces[-1] and size + line_size > CHUNK_BYTES:
            pieces.append([])
            size = 0
        pieces[-1].append(line)
        size += line_size
    return pieces
