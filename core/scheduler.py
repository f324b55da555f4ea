"""The scheduler: fires each slot of the tasks this instance owns, exactly once.

Core instances share one consumer group on ``task-events``; an instance schedules the
tasks of the partitions the group gives it. On assignment it loads those tasks from
the store, then reads the partitions from the store's offsets to their end before it
fires anything there, so it has seen every slot the previous owner fired. A fire is
one Kafka transaction: the work order, the ``ExecutionScheduled`` event and the
consumed offsets (with the group's generation, so a fenced zombie's commit fails).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from prometheus_client import Counter, Gauge, Histogram

from core.schedules import latest_slot_at_or_before, next_slot
from core.settings import CoreSettings
from core.store import TaskStore, as_utc
from schemas import (
    Event,
    EventDecodeError,
    ExecutionScheduled,
    Schedule,
    TaskCreated,
    TaskSpec,
    WorkOrder,
    decode_event,
    encode_event,
    encode_work_order,
    event_headers,
    execution_id,
    work_order_headers,
)
from taskstream.infra.kafka import consumer_config, producer_config
from taskstream.infra.logs import fields

__all__ = ["Scheduler"]

logger = logging.getLogger(__name__)

FIRES = Counter("taskstream_scheduler_fires_total", "slots fired (executions scheduled)")
FIRE_LATENESS = Histogram(
    "taskstream_schedule_lag_seconds",
    "fire time minus due time of each fired slot",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
OWNED_TASKS = Gauge("taskstream_scheduler_owned_tasks", "tasks this instance schedules")
OWNED_PARTITIONS = Gauge("taskstream_scheduler_owned_partitions", "task-events partitions owned")
ABORTED = Counter("taskstream_scheduler_aborted_transactions_total", "fire transactions aborted")

_MAX_IDLE_WAIT = 0.1
_MISFIRE_GRACE = timedelta(seconds=5)


@dataclass(slots=True)
class _Timer:
    task_id: str
    partition: int
    spec: TaskSpec
    anchor: datetime
    last_slot: datetime | None
    next_due: datetime | None = None
    generation: int = 0


@dataclass(slots=True)
class _Shard:
    """What this instance knows about the partitions it owns."""

    timers: dict[str, _Timer] = field(default_factory=dict)
    ready: set[int] = field(default_factory=set)
    heap: list[tuple[float, int, str, int]] = field(default_factory=list)


class Scheduler:
    def __init__(self, settings: CoreSettings, store: TaskStore) -> None:
        self.settings = settings
        self.store = store
        self.topic = settings.topics.task_events
        self._consumer = Consumer(
            consumer_config(
                settings,
                settings.scheduler_group,
                **{
                    "enable.partition.eof": True,
                    "session.timeout.ms": settings.scheduler_session_timeout_ms,
                    "heartbeat.interval.ms": max(settings.scheduler_session_timeout_ms // 5, 100),
                },
            )
        )
        self._producer = Producer(
            producer_config(
                settings,
                **{
                    "transactional.id": settings.scheduler_transactional_id,
                    "partitioner": "murmur2_random",
                    "linger.ms": 1,
                },
            )
        )
        self._shard = _Shard()
        self._sequence = itertools.count()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="scheduler", daemon=True)
        self.error: BaseException | None = None

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        self._producer.init_transactions(30)
        self._consumer.subscribe([self.topic], on_assign=self._on_assign, on_revoke=self._on_revoke)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout)
        self._consumer.close()
        self._producer.flush(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def owned_partitions(self) -> set[int]:
        return set(self._shard.ready)

    # -- group membership --------------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        owned = [tp.partition for tp in partitions]
        offsets, rows = self.store.snapshot(owned)
        shard = _Shard()
        for row in rows:
            if row.status == "deleted":
                continue
            shard.timers[row.id] = _Timer(
                task_id=row.id,
                partition=row.partition,
                spec=TaskSpec.model_validate(row.spec),
                anchor=as_utc(row.created_at),
                last_slot=as_utc(row.last_scheduled_for),
            )
        self._shard = shard
        for tp in partitions:
            tp.offset = offsets.get(tp.partition, OFFSET_BEGINNING)
        consumer.assign(partitions)
        OWNED_PARTITIONS.set(len(owned))
        OWNED_TASKS.set(len(shard.timers))
        logger.info("assigned partitions %s with %d tasks; catching up", owned, len(shard.timers))

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        logger.info("revoked partitions %s", [tp.partition for tp in partitions])
        self._shard = _Shard()
        OWNED_PARTITIONS.set(0)
        OWNED_TASKS.set(0)

    # -- the loop ----------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                for message in self._consumer.consume(num_messages=500, timeout=self._wait()):
                    self._handle(message.partition() or 0, message.value(), message.error())
                self._fire_due()
        except BaseException as exc:
            self.error = exc
            logger.exception("scheduler stopped")

    def _wait(self) -> float:
        heap = self._shard.heap
        if not heap:
            return _MAX_IDLE_WAIT
        return min(max(heap[0][0] - time.time(), 0.0), _MAX_IDLE_WAIT)

    def _handle(self, partition: int, value: bytes | None, error: KafkaError | None) -> None:
        shard = self._shard
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                if partition not in shard.ready:
                    shard.ready.add(partition)
                    for timer in shard.timers.values():
                        if timer.partition == partition:
                            self._arm(timer)
                    logger.info("partition %d caught up; scheduling its tasks", partition)
            else:
                logger.warning("scheduler consumer: %s", error.str())
            return
        try:
            event = decode_event(value)
        except EventDecodeError:
            return  # the projection logs undecodable records
        self._apply(partition, event)

    def _apply(self, partition: int, event: Event) -> None:
        shard = self._shard
        data = event.data
        if isinstance(data, TaskCreated):
            if event.task_id in shard.timers:
                return
            timer = _Timer(event.task_id, partition, data.task, event.occurred_at, None)
            shard.timers[event.task_id] = timer
            OWNED_TASKS.set(len(shard.timers))
        elif isinstance(data, ExecutionScheduled):
            timer = shard.timers.get(event.task_id)  # type: ignore[assignment]
            if timer is None or data.attempt != 1:
                return
            if timer.last_slot is not None and data.scheduled_for <= timer.last_slot:
                return
            timer.last_slot = data.scheduled_for
        else:
            return
        if partition in shard.ready:
            self._arm(timer)

    def _arm(self, timer: _Timer) -> None:
        """Compute the timer's next slot and push it on the heap (old entries go stale)."""
        schedule: Schedule = timer.spec.schedule
        slot = next_slot(schedule, anchor=timer.anchor, after=timer.last_slot)
        now = datetime.now(UTC)
        if slot is not None and slot < now - _MISFIRE_GRACE:
            # misfire (downtime): fire the latest missed slot once, not every one
            slot = latest_slot_at_or_before(
                schedule, anchor=timer.anchor, after=timer.last_slot, now=now
            )
        timer.next_due = slot
        timer.generation += 1
        if slot is not None:
            heapq.heappush(
                self._shard.heap,
                (slot.timestamp(), next(self._sequence), timer.task_id, timer.generation),
            )

    def _fire_due(self) -> None:
        shard = self._shard
        now = time.time()
        batch: list[tuple[_Timer, datetime]] = []
        while shard.heap and shard.heap[0][0] <= now and len(batch) < self.settings.fire_batch_size:
            _, _, task_id, generation = heapq.heappop(shard.heap)
            timer = shard.timers.get(task_id)
            if timer is None or timer.generation != generation or timer.next_due is None:
                continue  # stale entry
            if timer.partition not in shard.ready:
                continue
            batch.append((timer, timer.next_due))
        if batch:
            self._fire(batch)

    def _fire(self, batch: list[tuple[_Timer, datetime]]) -> None:
        producer, topics = self._producer, self.settings.topics
        try:
            producer.begin_transaction()
            for timer, slot in batch:
                spec = timer.spec
                eid = execution_id(timer.task_id, slot, 1)
                order_topic = topics.execution(spec.queue, spec.priority.value)
                order = WorkOrder(
                    execution_id=eid,
                    task_id=timer.task_id,
                    task_name=spec.name,
                    handler=spec.handler,
                    params=spec.params,
                    attempt=1,
                    scheduled_for=slot,
                    priority=spec.priority,
                    queue=spec.queue,
                    timeout=spec.timeout,
                    retry=spec.retry,
                )
                key = timer.task_id.encode()
                producer.produce(
                    order_topic,
                    key=key,
                    value=encode_work_order(order),
                    headers=work_order_headers(),
                )
                event = Event.create(
                    timer.task_id,
                    ExecutionScheduled(
                        execution_id=eid,
                        attempt=1,
                        scheduled_for=slot,
                        topic=order_topic,
                        queue=spec.queue,
                        priority=spec.priority,
                    ),
                )
                producer.produce(
                    self.topic, key=key, value=encode_event(event), headers=event_headers(event)
                )
            positions = [
                tp for tp in self._consumer.position(self._consumer.assignment()) if tp.offset >= 0
            ]
            producer.send_offsets_to_transaction(
                positions, self._consumer.consumer_group_metadata(), 30
            )
            producer.commit_transaction(30)
        except KafkaException as exc:
            self._recover(exc, batch)
            return
        fired_at = datetime.now(UTC)
        for timer, slot in batch:
            FIRE_LATENESS.observe(max((fired_at - slot).total_seconds(), 0.0))
            logger.debug(
                "fired %s", slot.isoformat(), extra=fields(task_id=timer.task_id, action="fire")
            )
            timer.last_slot = slot
            self._arm(timer)
        FIRES.inc(len(batch))

    def _recover(self, exc: KafkaException, batch: list[tuple[_Timer, datetime]]) -> None:
        error: KafkaError = exc.args[0]
        if error.fatal():
            raise exc  # fenced by a newer instance: stop, health turns red
        ABORTED.inc()
        logger.warning("fire transaction failed (%s); aborting and retrying", error.str())
        try:
            producer = self._producer
            producer.abort_transaction(30)
        except KafkaException:
            logger.exception("abort failed")
        self._stop.wait(0.2)  # do not spin on a broker that keeps refusing
        for timer, _ in batch:
            self._arm(timer)  # the slot was not fired: arm the same slot again
