"""The executor directory: which executors are live, and what they serve.

Every core instance reads the compacted ``workers`` topic from its beginning (it assigns
every partition; no consumer group, nothing committed) and keeps the latest heartbeat of
each executor; a tombstone (null value) removes the executor. An executor is live while
its latest heartbeat's ``sent_at`` is younger than ``core_worker_timeout``. A record that
cannot be decoded is logged with its position and skipped: it never stops the directory.

:class:`WorkerTable` is the fold, without I/O; :class:`WorkerDirectory` runs it on a
thread and says when it has read up to the end offsets it saw at start (:attr:`ready`).
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)
from prometheus_client import Counter, Gauge

from taskstream.core.settings import CoreSettings
from taskstream.infra.consumer_loop import ConsumerLoop, OnLoop
from taskstream.infra.kafka import consumer_config, retrying_kafka
from taskstream.infra.logs import fields
from taskstream.schemas import EventDecodeError, WorkerHeartbeat
from taskstream.schemas.workers import is_live, read_workers_record, serves

__all__ = [
    "WorkerDirectory",
    "WorkerTable",
    "loading_message",
    "unserved_message",
]

logger = logging.getLogger(__name__)

LIVE_EXECUTORS = Gauge(
    "taskstream_core_live_executors", "executors whose latest heartbeat is recent enough"
)
POISON_HEARTBEATS = Counter(
    "taskstream_core_workers_undecodable_total", "workers records the core could not decode"
)


_LISTED = 5  # live executors named in a message; the rest are counted


def unserved_message(handler: str, queue: str, live: list[WorkerHeartbeat]) -> str | None:
    """None if one of the ``live`` executors serves ``handler`` on ``queue``; else why not.

    The message says how to start an executor that does, and which executors are live.
    """
    if any(serves(beat, handler, queue) for beat in live):
        return None
    command = f"TASKSTREAM_EXECUTOR_QUEUES='[\"{queue}\"]' taskstream executor"
    if handler == "shell":
        command = f"TASKSTREAM_EXECUTOR_SHELL_ENABLED=true {command}"
    listed = [
        f"{beat.executor_id} (queues {', '.join(beat.queues)}; "
        f"handlers {', '.join(beat.handlers) or 'none'})"
        for beat in live[:_LISTED]
    ]
    if len(live) > _LISTED:
        listed.append(f"and {len(live) - _LISTED} more")
    return (
        f"no live executor serves handler {handler!r} on queue {queue!r}; start one with "
        f"`{command}` where {handler!r} is installed "
        f"(live executors: {', '.join(listed) or 'none'})"
    )


def loading_message(handler: str, queue: str) -> str:
    return (
        f"cannot tell yet whether a live executor serves handler {handler!r} on queue "
        f"{queue!r}: the executor directory is still loading the workers topic"
    )


class WorkerTable:
    """The latest heartbeat of every executor, folded from ``workers`` records."""

    def __init__(self, timeout: timedelta) -> None:
        self.timeout = timeout
        self._latest: dict[str, WorkerHeartbeat] = {}

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        """Fold one record; raise ``EventDecodeError`` (and change nothing) if it is bad."""
        executor, heartbeat = read_workers_record(key, value)
        if heartbeat is None:
            self._latest.pop(executor, None)
        else:
            self._latest[executor] = heartbeat

    def known(self) -> list[WorkerHeartbeat]:
        """Every executor's latest heartbeat, live or not, by executor id."""
        return [self._latest[name] for name in sorted(self._latest)]

    def live(self, now: datetime) -> list[WorkerHeartbeat]:
        return [beat for beat in self.known() if is_live(beat, now, self.timeout)]

    def serving(self, handler: str, queue: str, now: datetime) -> list[WorkerHeartbeat]:
        """The live executors that run ``handler`` on ``queue``."""
        return [beat for beat in self.live(now) if serves(beat, handler, queue)]


class WorkerDirectory(OnLoop):
    """A thread that keeps a :class:`WorkerTable` up with the ``workers`` topic."""

    def __init__(self, settings: CoreSettings) -> None:
        self.topic = settings.topics.workers
        self.timeout = settings.core_worker_timeout
        self._table = WorkerTable(self.timeout)
        self._lock = threading.Lock()
        self._consumer = Consumer(
            consumer_config(
                settings,
                f"{settings.topic_prefix}core-workers-{settings.instance_id}",
                **{"enable.partition.eof": True},
            )
        )
        self._targets: dict[int, int] = {}  # partition -> end offset seen at start, not reached
        self._ready = threading.Event()
        self._loop = ConsumerLoop(
            "workers",
            consumer=self._consumer,
            setup=self._setup,
            handle_batch=self._apply,
            handle_record=lambda message: self._apply([message]),
            record_failed=self._skip,
            ready=self._ready.is_set,
            poll_timeout=0.5,
            batch_size=500,
            essential=False,
            stall_after=settings.loop_stall_after,
        )

    name = "workers"
    essential = False
    """The API only warns about a handler no executor serves without it."""

    def start(self) -> None:
        self._loop.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._loop.stop(timeout)
        self._consumer.close()

    @property
    def ready(self) -> bool:
        """True once every record that was on the topic at start has been read."""
        return self._ready.is_set()

    def wait_ready(self, timeout: float) -> bool:
        return self._ready.wait(timeout)

    def known(self) -> list[WorkerHeartbeat]:
        with self._lock:
            return self._table.known()

    def live(self, now: datetime | None = None) -> list[WorkerHeartbeat]:
        with self._lock:
            return self._table.live(now or datetime.now(UTC))

    def serving(
        self, handler: str, queue: str, now: datetime | None = None
    ) -> list[WorkerHeartbeat]:
        with self._lock:
            return self._table.serving(handler, queue, now or datetime.now(UTC))

    # -- the thread ---------------------------------------------------------------------

    def _setup(self) -> None:
        # Right after the topic is created its leader may not be elected yet.
        for attempt in retrying_kafka("reading the workers topic", 60):
            with attempt:
                self._assign()

    def _assign(self) -> None:
        topic = self._consumer.list_topics(self.topic, timeout=30).topics[self.topic]
        if topic.error is not None:
            raise KafkaException(topic.error)
        for partition in sorted(topic.partitions):
            low, high = self._consumer.get_watermark_offsets(
                TopicPartition(self.topic, partition), timeout=30
            )
            if high > low:
                self._targets[partition] = high
        self._consumer.assign(
            [TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in sorted(topic.partitions)]
        )
        if not self._targets:
            self._ready.set()

    def _skip(self, message: Message, exc: Exception) -> None:
        """A heartbeat the table could not apply: log it and read on."""
        partition, offset = message.partition() or 0, message.offset() or 0
        logger.error(
            "skipping a heartbeat the directory cannot apply: %s: %s",
            type(exc).__name__,
            exc,
            extra=fields(topic=self.topic, partition=partition, offset=offset),
        )
        with self._lock:
            self._reached(partition, offset + 1)

    def _apply(self, messages: list[Message]) -> None:
        with self._lock:
            for message in messages:
                partition, offset = message.partition() or 0, message.offset() or 0
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        self._reached(partition, offset)
                    else:
                        logger.warning("workers consumer: %s", error.str())
                    continue
                try:
                    self._table.apply(message.key(), message.value())
                except EventDecodeError as exc:
                    POISON_HEARTBEATS.inc()
                    logger.error(
                        "skipping undecodable heartbeat: %s",
                        exc,
                        extra=fields(topic=self.topic, partition=partition, offset=offset),
                    )
                self._reached(partition, offset + 1)
            LIVE_EXECUTORS.set(len(self._table.live(datetime.now(UTC))))

    def _reached(self, partition: int, next_offset: int) -> None:
        target = self._targets.get(partition)
        if target is not None and next_offset >= target:
            del self._targets[partition]
            if not self._targets:
                self._ready.set()
