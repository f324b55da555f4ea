"""The projection loop: ``task-events`` -> the SQL store, and read-your-writes waits.

Every core instance projects every partition (it assigns them, it does not join a
group), resuming at the offsets the store holds. A record that cannot be decoded is
logged with its position and skipped, so one poison record never stops the store.

A batch is applied as soon as a record is there, with whatever else the client has
already fetched (up to ``batch_size``, 1000; a rebuild takes more), so a write waits for
the store no longer than one fetch and one transaction. Records are decoded and applied by
:mod:`core.store_writes` (cheaply: most of an execution's records skip pydantic).
Writers wait with :meth:`Projection.applied`, a future resolved by the projection thread
(no thread per waiting request).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, TopicPartition
from prometheus_client import Counter, Gauge

from core.store import AppliedRecord, TaskStore, retrying_transient
from core.store_writes import decode_record
from schemas import EventDecodeError
from taskstream.infra.kafka import consume_available, consumer_config
from taskstream.infra.logs import fields
from taskstream.infra.settings import CommonSettings

__all__ = ["Projection"]

logger = logging.getLogger(__name__)

EVENTS_PROJECTED = Counter(
    "taskstream_projection_events_total", "task-events records applied to the task store"
)
POISON_RECORDS = Counter(
    "taskstream_projection_undecodable_total", "task-events records the store could not decode"
)
PROJECTION_LAG = Gauge(
    "taskstream_projection_lag_records", "records of task-events not yet in the task store"
)


class Projection:
    """A thread that keeps the store up with the log."""

    def __init__(
        self,
        settings: CommonSettings,
        store: TaskStore,
        instance_id: str,
        batch_size: int = 1000,
    ) -> None:
        """``batch_size``: the most records applied in one transaction (a rebuild takes more)."""
        self.store = store
        self.batch_size = batch_size
        self.topic = settings.topics.task_events
        self._consumer = Consumer(
            consumer_config(
                settings,
                f"{settings.topic_prefix}core-projection-{instance_id}",
                **{"enable.partition.eof": True},
            )
        )
        self._applied: dict[int, int] = {}
        self._waiters: dict[int, list[tuple[int, int, Future[bool]]]] = {}
        self._sequence = itertools.count()
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="projection", daemon=True)
        self.error: BaseException | None = None

    def start(self) -> None:
        self._assign()
        self._thread.start()

    def _assign(self) -> set[int]:
        metadata = self._consumer.list_topics(self.topic, timeout=30)
        partitions = sorted(metadata.topics[self.topic].partitions)
        stored = self.store.offsets()
        self._applied = {p: stored.get(p, 0) for p in partitions}
        self._consumer.assign(
            [TopicPartition(self.topic, p, stored.get(p, OFFSET_BEGINNING)) for p in partitions]
        )
        return set(partitions)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout)
        self._consumer.close()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def wait_applied(self, partition: int, offset: int, timeout: float) -> bool:
        """Wait until the record at ``offset`` of ``partition`` is in the store."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._applied.get(partition, 0) <= offset:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self.alive:
                    return False
                self._changed.wait(remaining)
        return True

    def applied(self, partition: int, offset: int) -> Future[bool]:
        """A future that turns True once the record at ``offset`` is in the store.

        It turns False if the projection stops first; a caller that stops waiting may
        cancel it.
        """
        future: Future[bool] = Future()
        with self._changed:
            if self._applied.get(partition, 0) > offset:
                future.set_result(True)
            elif self.error is not None or self._stop.is_set():
                future.set_result(False)
            else:
                heapq.heappush(
                    self._waiters.setdefault(partition, []),
                    (offset, next(self._sequence), future),
                )
        return future

    def _release(self, partitions: set[int] | None = None, result: bool = True) -> None:
        """Resolve the waiters the store has reached (all of them with ``result``: None)."""
        with self._changed:
            for partition in list(self._waiters) if partitions is None else partitions:
                waiting = self._waiters.get(partition)
                applied = self._applied.get(partition, 0)
                while waiting and (partitions is None or waiting[0][0] < applied):
                    _, _, future = heapq.heappop(waiting)
                    try:
                        future.set_result(result)
                    except InvalidStateError:
                        pass  # the waiter gave up (cancelled)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self._step()
        except BaseException as exc:  # the service's health turns red; see alive
            self.error = exc
            logger.exception("projection stopped")
            with self._changed:
                self._changed.notify_all()
            self._release(None, result=False)
        else:
            self._release(None, result=False)

    def catch_up(self, timeout: float, progress: Callable[[int], None] | None = None) -> int:
        """Project in this thread until every partition is at its end; return the count.

        For ``taskstream rebuild``: call instead of :meth:`start`.
        """
        partitions = self._assign()
        deadline = time.monotonic() + timeout
        at_end: set[int] = set()
        applied = 0
        while at_end != partitions:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"the store did not reach the end of {self.topic} in "
                    f"{timeout:.0f}s; {applied} records applied"
                )
            ended, count = self._step()
            at_end |= ended
            applied += count
            if count and progress is not None:
                progress(applied)
        self._consumer.close()
        return applied

    def _step(self) -> tuple[set[int], int]:
        """Consume and apply one batch; return the partitions found at their end, and the count."""
        ended: set[int] = set()
        records = []
        for message in consume_available(self._consumer, self.batch_size, 0.1):
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    ended.add(message.partition() or 0)
                else:
                    logger.warning("projection consumer: %s", error.str())
                continue
            records.append(self._decode(message))
        if records:
            applying = retrying_transient("applying task-events to the store")
            rejected = applying(self.store.apply, records)
            for event_id, reason in rejected.items():
                logger.info("change %s rejected: %s", event_id, reason)
            EVENTS_PROJECTED.inc(len(records))
            reached: dict[int, int] = {}
            for record in records:  # in offset order within each partition
                reached[record.partition] = record.offset + 1
            with self._changed:
                for partition, offset in reached.items():
                    self._applied[partition] = max(self._applied.get(partition, 0), offset)
                self._changed.notify_all()
            self._release(set(reached))
            self._update_lag()
        return ended, len(records)

    def _decode(self, message: Message) -> AppliedRecord:
        partition, offset = message.partition() or 0, message.offset() or 0
        try:
            event = decode_record(message.value())
            return AppliedRecord(partition, offset, event)
        except EventDecodeError as exc:
            POISON_RECORDS.inc()
            logger.error(
                "skipping undecodable record: %s",
                exc,
                extra=fields(topic=self.topic, partition=partition, offset=offset),
            )
            return AppliedRecord(partition, offset, None)

    def _update_lag(self) -> None:
        lag = 0
        for partition, applied in self._applied.items():
            _, high = self._consumer.get_watermark_offsets(
                TopicPartition(self.topic, partition), cached=True
            )
            if high >= 0:
                lag += max(high - applied, 0)
        PROJECTION_LAG.set(lag)
