"""Heartbeats: every few seconds an executor says who it is and how busy it is.

Each heartbeat is a :class:`taskstream.schemas.WorkerHeartbeat` (JSON) on the compacted ``workers``
topic, keyed by executor id, so the topic holds the latest heartbeat of every executor; a clean
shutdown writes a tombstone (null value) and compaction forgets the executor. A reader
treats an executor whose last ``sent_at`` is older than a few intervals as lost.

CPU and memory come from the process itself (``resource`` and ``/proc/self/statm``):
``cpu_percent`` is the CPU time used since the previous heartbeat over the wall time
(100 = one core busy), ``memory_rss_bytes`` the resident set size now.

The sender's thread is a :class:`taskstream.infra.consumer_loop.ConsumerLoop`
(``heartbeat``) that beats every interval; a beat that raises is logged and counted and
the next one is tried. It is not essential: an executor whose heartbeats fail still runs
and commits every order it is given (only the core's advice on unserved handlers and
``GET /api/workers`` lose it), so the executor goes on and its health says
``heartbeat: unavailable`` with the error while every beat fails.
"""

from __future__ import annotations

import logging
import os
import resource
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime

from taskstream.executor.publisher import Publisher
from taskstream.infra.consumer_loop import ConsumerLoop, OnLoop
from taskstream.schemas import WorkerHeartbeat

__all__ = ["HeartbeatSender", "ProcessStats"]

logger = logging.getLogger(__name__)


class ProcessStats:
    """CPU use between two calls and the resident memory of this process."""

    def __init__(self) -> None:
        self._last_cpu = _cpu_seconds()
        self._last_wall = time.monotonic()

    def cpu_percent(self) -> float:
        cpu, wall = _cpu_seconds(), time.monotonic()
        elapsed = wall - self._last_wall
        used = cpu - self._last_cpu
        self._last_cpu, self._last_wall = cpu, wall
        return round(max(used, 0.0) / elapsed * 100, 1) if elapsed > 0 else 0.0

    @staticmethod
    def memory_rss_bytes() -> int:
        try:
            with open("/proc/self/statm", "rb") as statm:
                resident_pages = int(statm.read().split()[1])
            return resident_pages * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):  # not Linux: the peak is the best we have
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class HeartbeatSender(OnLoop):
    """Produces a heartbeat every ``interval`` seconds, and a tombstone at :meth:`stop`."""

    def __init__(
        self,
        publisher: Publisher,
        topic: str,
        interval: float,
        snapshot: Callable[[], dict[str, object]],
        *,
        executor_id: str,
        queues: list[str],
        handlers: list[str],
        capacity: int,
        stall_after: float = 30.0,
    ) -> None:
        """``stall_after``: seconds of failing beats before the health says unavailable."""
        self._publisher = publisher
        self._topic = topic
        self._snapshot = snapshot
        self._static = {
            "executor_id": executor_id,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "queues": list(queues),
            "handlers": list(handlers),
            "capacity": capacity,
            "started_at": datetime.now(UTC),
        }
        self._key = executor_id.encode()
        self._stats = ProcessStats()
        self._loop = ConsumerLoop(
            "heartbeat",
            tick=self.beat,
            interval=interval,
            isolate_ticks=True,
            essential=False,
            stall_after=max(stall_after, 2 * interval),
        )
        self.last_sent: datetime | None = None

    name = "heartbeat"
    essential = False
    """Executions run and commit without it; the core only stops seeing this executor."""

    def start(self) -> None:
        self._loop.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop beating and write the tombstone: this executor left cleanly."""
        self._loop.stop(timeout)
        try:
            self._publisher.send(self._topic, self._key, None).result(timeout)
        except Exception as exc:
            logger.warning("heartbeat tombstone not delivered: %s", exc)

    def beat(self) -> WorkerHeartbeat:
        """Build and produce one heartbeat now."""
        heartbeat = WorkerHeartbeat.model_validate(
            {
                **self._static,
                **self._snapshot(),
                "cpu_percent": self._stats.cpu_percent(),
                "memory_rss_bytes": self._stats.memory_rss_bytes(),
                "sent_at": datetime.now(UTC),
            }
        )
        self._publisher.send(self._topic, self._key, heartbeat.encode())
        self.last_sent = heartbeat.sent_at
        return heartbeat
