"""The projection loop: ``task-events`` -> the SQL store, and read-your-writes waits.

Every core instance projects every partition (it assigns them, it does not join a
group), resuming at the offsets the store holds. A record that cannot be decoded is
logged with its position and skipped, so one poison record never stops the store.

A batch is applied as soon as a record is there, with whatever else the client has
already fetched (up to ``batch_size``, 1000; a rebuild takes more), so a write waits for
the store no longer than one fetch and one transaction. Records are decoded and applied by
:mod:`taskstream.core.store_writes` (cheaply: most of an execution's records skip pydantic).
Writers wait with :meth:`Projection.applied`, a future resolved by the projection thread
(no thread per waiting request).

The thread is a :class:`taskstream.infra.consumer_loop.ConsumerLoop`. A batch whose
transaction raises (not a transient database error: those are retried) is applied again
record by record; the record that still raises is stepped over (its offset is stored
like an undecodable record's, so a restart does not meet it again), logged with its task,
and its task quarantined with a ``TaskQuarantined`` of component ``projection``.
:meth:`Projection.catch_up` (``taskstream rebuild``) runs the same loop in the caller's
thread, so a replay steps over the same records and its store equals the live one.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from typing import Any

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, TopicPartition
from prometheus_client import Counter, Gauge

from taskstream.core.store import AppliedRecord, TaskStore, retrying_transient
from taskstream.core.store_fold import decode_record
from taskstream.infra.consumer_loop import ConsumerLoop, OnLoop
from taskstream.infra.kafka import consumer_config
from taskstream.infra.logs import fields
from taskstream.infra.settings import CommonSettings
from taskstream.schemas import Event, EventDecodeError, TaskQuarantined, quarantine_event_id

__all__ = ["Projection"]

logger = logging.getLogger(__name__)

EVENTS_PROJECTED = Counter(
    "taskstream_projection_events_total", "task-events records applied to the task store"
)
POISON_RECORDS = Counter(
    "taskstream_projection_undecodable_total", "task-events records the store could not decode"
)
UNAPPLIED = Counter(
    "taskstream_projection_unapplied_total",
    "task-events records whose application raised: stepped over, their task quarantined",
)
PROJECTION_LAG = Gauge(
    "taskstream_projection_lag_records", "records of task-events not yet in the task store"
)


class Projection(OnLoop):
    """A thread that keeps the store up with the log."""

    def __init__(
        self,
        settings: CommonSettings,
        store: TaskStore,
        instance_id: str,
        batch_size: int = 1000,
        quarantine: Callable[[Event], Any] | None = None,
    ) -> None:
        """``batch_size``: the most records applied in one transaction (a rebuild takes more).

        ``quarantine`` appends a ``TaskQuarantined`` to the log (the core's publisher);
        without it a record that cannot be applied is only stepped over and logged.
        """
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
        self._quarantine = quarantine
        self._partitions: set[int] = set()
        self._at_end: set[int] = set()
        self._caught_up = False
        self._projected = 0
        """Records applied (undecodable and stepped-over ones included) by this projection."""
        self._loop = ConsumerLoop(
            "projection",
            consumer=self._consumer,
            handle_batch=self._apply_batch,
            handle_record=self._apply_one,
            record_failed=self._step_over,
            ready=self._is_caught_up,
            on_exit=self._exited,
            batch_size=batch_size,
            stall_after=settings.loop_stall_after,
        )

    name = "projection"
    essential = True

    @property
    def record_errors(self) -> int:
        """Records whose application raised and that were stepped over."""
        return self._loop.record_errors

    def start(self) -> None:
        self._assign()
        self._loop.start()

    def _assign(self) -> set[int]:
        metadata = self._consumer.list_topics(self.topic, timeout=30)
        partitions = sorted(metadata.topics[self.topic].partitions)
        stored = self.store.offsets()
        self._applied = {p: stored.get(p, 0) for p in partitions}
        self._partitions = set(partitions)
        self._consumer.assign(
            [TopicPartition(self.topic, p, stored.get(p, OFFSET_BEGINNING)) for p in partitions]
        )
        return set(partitions)

    def stop(self, timeout: float = 10.0) -> None:
        self._loop.stop(timeout)
        self._consumer.close()

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
            elif self.error is not None or self._loop.stopping.is_set():
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

    def _exited(self, error: BaseException | None) -> None:
        """The loop ended (stopped, or died: the health says why): no waiter waits on."""
        with self._changed:
            self._changed.notify_all()
        self._release(None, result=False)

    def _is_caught_up(self) -> bool:
        """Every partition was read to its end once (ready from then on)."""
        if not self._caught_up and self._partitions and self._at_end >= self._partitions:
            self._caught_up = True
        return self._caught_up

    def catch_up(self, timeout: float, progress: Callable[[int], None] | None = None) -> int:
        """Project in this thread until every partition is at its end; return the count.

        For ``taskstream rebuild``: call instead of :meth:`start`. The records go through
        the same loop as the live thread's (:meth:`ConsumerLoop.run_until`), so a record
        the store cannot apply is stepped over (its offset stored, logged, counted in the
        loop's record errors) exactly as live; a rebuild has no ``quarantine``: the task's
        ``TaskQuarantined`` the live core appended is on the log already. ``progress`` is
        called with the number of records applied so far (stepped-over ones included).
        """
        self._assign()
        reported = 0

        def finished() -> bool:
            nonlocal reported
            if progress is not None and self._projected != reported:
                reported = self._projected
                progress(reported)
            return self._is_caught_up()

        try:
            self._loop.run_until(finished, timeout)
        except TimeoutError:
            raise TimeoutError(
                f"the store did not reach the end of {self.topic} in "
                f"{timeout:.0f}s; {self._projected} records applied"
            ) from None
        finally:
            self._consumer.close()
        return self._projected

    def _apply_one(self, message: Message) -> None:
        self._apply_batch([message])

    def _apply_batch(self, messages: list[Message]) -> None:
        """Apply consumed records in one transaction."""
        ended: set[int] = set()
        records = []
        for message in messages:
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    ended.add(message.partition() or 0)
                else:
                    logger.warning("projection consumer: %s", error.str())
                continue
            records.append(self._decode(message))
        if records:
            self._store(records)
            self._at_end -= {record.partition for record in records}
        self._at_end |= ended

    def _store(self, records: list[AppliedRecord]) -> None:
        applying = retrying_transient("applying task-events to the store")
        rejected = applying(self.store.apply, records)
        for event_id, reason in rejected.items():
            logger.info("change %s rejected: %s", event_id, reason)
        EVENTS_PROJECTED.inc(len(records))
        self._projected += len(records)
        reached: dict[int, int] = {}
        for record in records:  # in offset order within each partition
            reached[record.partition] = record.offset + 1
        with self._changed:
            for partition, offset in reached.items():
                self._applied[partition] = max(self._applied.get(partition, 0), offset)
            self._changed.notify_all()
        self._release(set(reached))
        self._update_lag()

    def _step_over(self, message: Message, exc: Exception) -> None:
        """A record whose application raised on its own: store its offset, quarantine its task."""
        UNAPPLIED.inc()
        partition, offset = message.partition() or 0, message.offset() or 0
        key = message.key()
        task_id = key.decode(errors="replace") if key else None
        logger.error(
            "stepping over a record the store cannot apply: %s: %s",
            type(exc).__name__,
            exc,
            exc_info=exc,
            extra=fields(
                task_id=task_id,
                topic=self.topic,
                partition=partition,
                offset=offset,
                action="record_skipped",
            ),
        )
        self._store([AppliedRecord(partition, offset, None)])
        row = self.store.get(task_id) if task_id else None
        if row is None or self._quarantine is None:
            return
        data = TaskQuarantined(
            component=self.name,
            error_type=type(exc).__name__,
            error_message=f"applying the record at {partition}@{offset}: {exc}"[:1000],
            change_event_id=row.last_change_event_id,
            event_id=_event_id(message.value()),
            partition=partition,
            offset=offset,
        )
        event_id = quarantine_event_id(row.id, row.last_change_event_id, self.name)
        self._quarantine(Event.create(row.id, data, event_id=event_id))

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


def _event_id(value: bytes | None) -> str | None:
    """The ``id`` of a record's envelope, if it has one that reads as a string."""
    try:
        document = orjson.loads(value or b"")
    except orjson.JSONDecodeError:
        return None
    found = document.get("id") if isinstance(document, dict) else None
    return found if isinstance(found, str) else None
