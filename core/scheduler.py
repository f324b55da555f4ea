"""The scheduler: fires each slot of the tasks this instance owns, exactly once.

Core instances share one consumer group on ``task-events``; an instance schedules the
tasks of the partitions the group gives it. On assignment it loads those tasks from
the store, then reads the partitions from the store's offsets to their end before it
fires anything there, so it has seen every slot the previous owner fired. A fire is
one Kafka transaction: the work orders, the events (``ExecutionScheduled``,
``ExecutionSkipped``, ``CancelRequested``) and the consumed offsets with the group's
generation, so a fenced zombie's commit fails. The same transactions copy every
``CancelRequested`` read (or written) to the ``cancellations`` topic, which executors read
instead of all of ``task-events``; a new owner of a partition reads from the group's
commit when it is behind the store's offset, for the copies only, so none is lost when
an instance dies between reading a request and its next commit. What is due is decided by
:class:`taskstream.core.shard.Shard`; this module does the I/O.

The thread is a :class:`taskstream.infra.consumer_loop.ConsumerLoop`: a record whose
task the shard cannot evaluate quarantines that task (a ``TaskQuarantined`` in the next
fire transaction) and the loop goes on; only a fault of the loop itself (a fenced
producer, a fatal client error) stops it, and :meth:`Scheduler.health` then says why.
"""

from __future__ import annotations

import gc
import logging
import time
import uuid
from datetime import UTC, datetime

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from prometheus_client import Counter, Gauge, Histogram

from taskstream.core.settings import CoreSettings
from taskstream.core.shard import IGNORED_EVENT_TYPES, Plan, Shard
from taskstream.core.store import TaskStore
from taskstream.infra.bounded_call import BoundedCaller, CallTimedOut
from taskstream.infra.consumer_loop import ConsumerLoop, LoopFault
from taskstream.infra.health import ComponentStatus
from taskstream.infra.kafka import consumer_config, producer_config
from taskstream.infra.logs import fields
from taskstream.schemas import (
    CancelRequested,
    EventDecodeError,
    ExecutionScheduled,
    ExecutionSkipped,
    TaskQuarantined,
    decode_event,
    encode_event,
    encode_work_order,
    event_headers,
    work_order_headers,
)
from taskstream.schemas.codec import HEADER_EVENT_TYPE, Headers

__all__ = ["Scheduler"]

logger = logging.getLogger(__name__)

FIRES = Counter("taskstream_scheduler_fires_total", "executions scheduled", ["trigger"])
SKIPS = Counter("taskstream_scheduler_skipped_slots_total", "slots skipped", ["reason"])
FIRE_LATENESS = Histogram(
    "taskstream_schedule_lag_seconds",
    "fire time (transaction committed) minus due time (the slot, or a retry's due_at)",
    ["queue", "priority"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
OWNED_TASKS = Gauge("taskstream_scheduler_owned_tasks", "tasks this instance schedules")
OWNED_PARTITIONS = Gauge("taskstream_scheduler_owned_partitions", "task-events partitions owned")
ABORTED = Counter("taskstream_scheduler_aborted_transactions_total", "fire transactions aborted")
RENEWED = Counter(
    "taskstream_scheduler_producer_renewals_total",
    "fire producers replaced by a new one (fenced after an outage, or stuck in a call)",
    ["reason"],
)
QUARANTINED = Gauge(
    "taskstream_quarantined_tasks",
    "tasks this instance's scheduler set aside (quarantined) because it cannot evaluate them",
)
UNFOLDED = Counter(
    "taskstream_scheduler_unfolded_records_total",
    "task-events records the scheduler could not fold and skipped (no task to quarantine)",
)

_MAX_IDLE_WAIT = 0.1
_MAX_RENEWALS = 5
_RENEWAL_WINDOW = 300.0
"""More than ``_MAX_RENEWALS`` fatal producer errors in this many seconds stop the scheduler."""
_OFFSETS_GRACE = 5.0
"""Seconds past the transaction timeout (which librdkafka caps the call's timeout to) that
the scheduler waits for ``send_offsets_to_transaction`` before it gives the producer up."""
_MAX_ABANDONED = 3
"""Given-up producer calls still blocked at which the scheduler stops (a restart cleans up)."""
_MAX_FIRING = 1.0
"""Seconds of firing before the loop reads the log again, even with more timers due."""
_IGNORED = frozenset((HEADER_EVENT_TYPE, kind.encode()) for kind in IGNORED_EVENT_TYPES)
HEADER_FIRED_BY = "fired-by"
"""A header on the events a scheduler fired: the assignment that fired them (random)."""
_CANCEL = (HEADER_EVENT_TYPE, CancelRequested.TYPE.encode())


def _forwarded(headers: Headers | dict[str, str | bytes | None]) -> Headers:
    """A record's headers as its copy on ``cancellations`` carries them."""
    pairs = headers.items() if isinstance(headers, dict) else headers
    return [(name, value) for name, value in pairs if name != HEADER_FIRED_BY]


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
        self._producer = self._new_producer()
        self._calls = BoundedCaller("scheduler-txn")
        """Runs ``send_offsets_to_transaction``, which may block past its timeout."""
        self._offsets_wait = (
            min(30.0, settings.scheduler_transaction_timeout_ms / 1000) + _OFFSETS_GRACE
        )
        self._renewals: list[float] = []
        """When the producer was renewed after a fatal error (monotonic), recent ones."""
        self._shard = Shard(settings.topics)
        self._committed: dict[int, int] = {}
        """The task-events offset last committed per owned partition."""
        self._apply_from: dict[int, int] = {}
        """The store's offset of each owned partition: the shard applies records from it."""
        self._forward: list[tuple[bytes | None, bytes | None, Headers]] = []
        """``CancelRequested`` records read and not yet copied to the ``cancellations``
        topic: the next fire transaction copies them, with the offsets past them."""
        self._fired_by = (HEADER_FIRED_BY, uuid.uuid4().hex.encode())
        """Marks the events fired under the current assignment: the shard applied them at
        commit, so reading them back is skipped. A new assignment rebuilds the shard from
        the store, so it takes a new mark and applies what the previous one fired."""
        self._assigned: set[int] = set()
        self._assignment_seen = False
        self._loop = ConsumerLoop(
            "scheduler",
            consumer=self._consumer,
            handle_record=self._handle,
            record_failed=self._record_failed,
            tick=self._fire_due,
            poll_timeout=self._wait,
            ready=self._caught_up,
            stall_after=settings.loop_stall_after,
        )

    def _new_producer(self) -> Producer:
        settings = self.settings
        return Producer(
            producer_config(
                settings,
                **{
                    "transactional.id": settings.scheduler_transactional_id,
                    "transaction.timeout.ms": settings.scheduler_transaction_timeout_ms,
                    "partitioner": "murmur2_random",
                },
            )
        )

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        self._producer.init_transactions(30)
        self._consumer.subscribe([self.topic], on_assign=self._on_assign, on_revoke=self._on_revoke)
        self._loop.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._loop.stop(timeout)
        self._consumer.close()
        try:
            self._producer.flush(timeout)
        except KafkaException as exc:  # fenced or failed for good: its transaction is void
            logger.warning("the fire producer did not flush at stop (%s)", exc.args[0])
        self._calls.close()

    @property
    def alive(self) -> bool:
        return self._loop.alive

    @property
    def error(self) -> BaseException | None:
        return self._loop.error

    # -- HealthSource -------------------------------------------------------------------

    name = "scheduler"
    essential = True

    def health(self) -> ComponentStatus:
        status = self._loop.health()
        details = {
            **status.details,
            "owned_partitions": sorted(self._assigned),
            "quarantined_tasks": self._shard.quarantined,
        }
        return ComponentStatus(status.state, status.reason, details)

    def _caught_up(self) -> bool:
        return self._assignment_seen and self._shard.ready_partitions >= self._assigned

    @property
    def owned_partitions(self) -> set[int]:
        return self._shard.ready_partitions

    # -- group membership --------------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        owned = [tp.partition for tp in partitions]
        began = time.monotonic()
        snapshot = self.store.snapshot(owned)
        self._shard = Shard(self.settings.topics, snapshot)
        self._assigned = set(owned)
        self._assignment_seen = True
        QUARANTINED.set(0)
        # The shard's timers live as long as the assignment: keep the cyclic collector
        # from walking them again and again (a million tasks are millions of objects).
        gc.freeze()
        committed = self._group_offsets(consumer, partitions)
        self._apply_from = {}
        for tp in partitions:
            stored = snapshot.offsets.get(tp.partition, OFFSET_BEGINNING)
            self._apply_from[tp.partition] = stored
            since = committed.get(tp.partition, -1)
            # from the group's commit if it is behind the store: see _handle
            tp.offset = since if 0 <= since < stored else stored
        self._committed = {}
        self._fired_by = (HEADER_FIRED_BY, uuid.uuid4().hex.encode())
        consumer.assign(partitions)
        OWNED_PARTITIONS.set(len(owned))
        OWNED_TASKS.set(len(self._shard))
        logger.info(
            "assigned partitions %s with %d tasks (restored from the store in %.1fs); catching up",
            owned,
            len(self._shard),
            time.monotonic() - began,
        )

    @staticmethod
    def _group_offsets(consumer: Consumer, partitions: list[TopicPartition]) -> dict[int, int]:
        """The group's committed offsets (what the last fire transactions covered); none
        if the coordinator does not answer (the store's offsets are used then)."""
        try:
            return {
                tp.partition: tp.offset
                for tp in consumer.committed(
                    [TopicPartition(tp.topic, tp.partition) for tp in partitions], timeout=10
                )
            }
        except KafkaException as exc:
            logger.warning("the group's offsets are unknown (%s): reading from the store's", exc)
            return {}

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        logger.info("revoked partitions %s", [tp.partition for tp in partitions])
        self._shard = Shard(self.settings.topics)
        self._committed = {}
        self._assigned = set()
        OWNED_PARTITIONS.set(0)
        OWNED_TASKS.set(0)
        QUARANTINED.set(0)

    # -- the loop ----------------------------------------------------------------------

    def _wait(self) -> float:
        due = self._shard.next_due()
        if due is None:
            return _MAX_IDLE_WAIT
        return min(max(due - time.time(), 0.0), _MAX_IDLE_WAIT)

    def _handle(self, message: Message) -> None:
        partition = message.partition() or 0
        error = message.error()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                if partition not in self._shard.ready_partitions:
                    self._shard.mark_ready(partition)
                    logger.info("partition %d caught up; scheduling its tasks", partition)
                    if self._shard.ready_partitions >= self._assigned:
                        gc.freeze()  # and the tasks read from the log since the assignment
            else:
                logger.warning("scheduler consumer: %s", error.str())
            return
        headers = message.headers()
        if (message.offset() or 0) < self._apply_from.get(partition, -1):
            # before the store's offset: read again only for the cancellations the previous
            # owner may have read and not forwarded yet (it died before its next commit)
            if headers and _CANCEL in headers:
                self._forward.append((message.key(), message.value(), _forwarded(headers)))
            return
        if headers and any(header in _IGNORED or header == self._fired_by for header in headers):
            # ExecutionStarted: nothing to schedule; or fired here and applied at commit
            return
        try:
            event = decode_event(message.value())
        except EventDecodeError:
            return  # the projection logs undecodable records
        if isinstance(event.data, CancelRequested):  # for the executors, with the next commit
            self._forward.append((message.key(), message.value(), _forwarded(headers or [])))
        self._shard.apply(event, partition)  # quarantines the task if it cannot fold it

    def _record_failed(self, message: Message, exc: Exception) -> None:
        """A record the shard could not fold and that names no task it holds: skip it."""
        UNFOLDED.inc()
        key = message.key()
        logger.error(
            "skipping a record the scheduler cannot fold: %s: %s",
            type(exc).__name__,
            exc,
            exc_info=exc,
            extra=fields(
                task_id=key.decode(errors="replace") if key else None,
                topic=message.topic(),
                partition=message.partition(),
                offset=message.offset(),
                action="record_skipped",
            ),
        )

    def _fire_due(self) -> None:
        """Fire what is due, a batch per transaction, for at most ``_MAX_FIRING`` seconds.

        Then the loop reads the log again (timers still due make it wait no longer than
        for what is already fetched): an instance that fires no faster than slots fall due
        (a backlog while it caught up, a loaded machine) still reads the partitions it is
        catching up with, and still polls its consumer within the group's poll interval.
        """
        deadline = time.monotonic() + _MAX_FIRING
        while True:
            plan = self._shard.due(datetime.now(UTC), self.settings.fire_batch_size)
            if not plan:
                if self._forward:
                    self._commit(plan)  # the cancellations alone, with the offsets read
                return
            if not self._commit(plan):
                return
            OWNED_TASKS.set(len(self._shard))
            if time.monotonic() >= deadline:
                return

    def _commit(self, plan: Plan) -> bool:
        producer = self._producer
        try:
            producer.begin_transaction()
            for order in plan.orders:
                producer.produce(
                    self.settings.topics.execution(order.queue, order.priority.value),
                    key=order.task_id.encode(),
                    value=encode_work_order(order),
                    headers=work_order_headers(order),
                )
            forwarded = len(self._forward)
            cancellations = self.settings.topics.cancellations
            for event in plan.events:
                value = encode_event(event)
                headers = event_headers(event)
                producer.produce(
                    self.topic,
                    key=event.task_id.encode(),
                    value=value,
                    headers=[*headers, self._fired_by],
                )
                if isinstance(event.data, CancelRequested):  # overlap "replace"
                    producer.produce(
                        cancellations, key=event.task_id.encode(), value=value, headers=headers
                    )
            for raw_key, raw_value, raw_headers in self._forward[:forwarded]:
                producer.produce(cancellations, key=raw_key, value=raw_value, headers=raw_headers)
            positions = self._moved_positions()
            metadata = self._consumer.consumer_group_metadata()
            self._calls.call(
                lambda: producer.send_offsets_to_transaction(positions, metadata, 30),
                self._offsets_wait,
            )
            producer.commit_transaction(30)
        except KafkaException as exc:
            self._recover(exc, plan)
            return False
        except CallTimedOut:
            self._give_up_producer()
            return False
        del self._forward[:forwarded]
        self._committed.update((tp.partition, tp.offset) for tp in positions)
        QUARANTINED.set(self._shard.quarantined)
        committed_at = datetime.now(UTC)
        debug = logger.isEnabledFor(logging.DEBUG)  # spare building a record's fields per fire
        for event in plan.events:
            self._shard.apply(event, plan.partitions[event.task_id])
            data = event.data
            if isinstance(data, ExecutionScheduled):
                FIRES.labels(data.trigger.value).inc()
                due = plan.due.get(data.execution_id, data.scheduled_for)
                FIRE_LATENESS.labels(data.queue, data.priority.value).observe(
                    max((committed_at - due).total_seconds(), 0)
                )
                if debug:
                    logger.debug(
                        "fired %s",
                        data.scheduled_for.isoformat(),
                        extra=fields(
                            task_id=event.task_id, execution_id=data.execution_id, action="fire"
                        ),
                    )
            elif isinstance(data, TaskQuarantined):
                logger.error(
                    "quarantined the task: %s: %s (it is not scheduled until it changes)",
                    data.error_type,
                    data.error_message,
                    extra=fields(task_id=event.task_id, action="quarantine"),
                )
            elif isinstance(data, ExecutionSkipped):
                SKIPS.labels(data.reason.value).inc(data.count)
                logger.info(
                    "skipped %d slot(s) from %s: %s (%s)",
                    data.count,
                    data.scheduled_for.isoformat(),
                    data.reason.value,
                    data.detail,
                    extra=fields(task_id=event.task_id, action="skip"),
                )
        return True

    def _moved_positions(self) -> list[TopicPartition]:
        """The positions to commit with a fire: those that moved since the last commit.

        At least one is always sent, even unmoved: the offsets tie the transaction to the
        group's generation, so an instance that lost its partitions in a rebalance it has
        not seen yet is fenced instead of firing them twice.
        """
        positions = [
            tp for tp in self._consumer.position(self._consumer.assignment()) if tp.offset >= 0
        ]
        moved = [tp for tp in positions if self._committed.get(tp.partition) != tp.offset]
        return moved or positions[:1]

    def _recover(self, exc: KafkaException, plan: Plan) -> None:
        error: KafkaError = exc.args[0]
        if error.fatal():
            self._renew_producer(exc)
            return
        ABORTED.inc()
        logger.warning("fire transaction failed (%s); aborting and retrying", error.str())
        try:
            self._producer.abort_transaction(30)
        except KafkaException:
            logger.exception("abort failed")
        self._loop.stopping.wait(0.2)  # do not spin on a broker that keeps refusing
        self._shard.rearm(plan)

    def _give_up_producer(self) -> None:
        """``send_offsets_to_transaction`` did not return: replace the producer.

        librdkafka waits for the group coordinator's answer with no deadline, and after
        an outage it may not ask again until some broker changes state
        (confluentinc/librdkafka#5456, #5511): minutes with the broker back. The call is
        left to return on its own thread; a new producer with the same transactional id
        fences the old one and aborts the open transaction, so nothing of the plan is on
        the log, and the shard is rebuilt as after a fence.
        """
        ABORTED.inc()
        if self._calls.abandoned >= _MAX_ABANDONED:
            raise LoopFault(
                f"{self._calls.abandoned} fire producers are stuck in "
                "send_offsets_to_transaction; restart the core"
            )
        logger.error(
            "the fire producer's send_offsets_to_transaction did not return in %.0fs "
            "(confluentinc/librdkafka#5456); starting a new producer",
            self._offsets_wait,
        )
        RENEWED.labels("stuck").inc()
        self._replace_producer(purge=False)

    def _renew_producer(self, exc: KafkaException) -> None:
        """Start over with a new transactional producer after a fatal error.

        A broker outage longer than ``transaction.timeout.ms`` ends this way: the broker
        aborts the open fire transaction by bumping the producer's epoch, and librdkafka
        then reports the producer *fenced* (fatal) although no other instance exists
        (confluentinc/librdkafka#3928). ``init_transactions`` on a new producer takes the
        transactional id back; the transaction was aborted, so nothing of the plan is on
        the log, and the shard is rebuilt from the store and the log as after an
        assignment. Fencing is still safe: every fire commits the group's generation, so
        an instance that lost its partitions cannot fire them. Only a fence that comes
        back again and again (another live instance with this instance id) stops the
        scheduler.
        """
        now = time.monotonic()
        self._renewals = [t for t in self._renewals if now - t < _RENEWAL_WINDOW] + [now]
        if len(self._renewals) > _MAX_RENEWALS:
            logger.error(
                "the fire producer was fenced %d times in %.0fs: another instance runs with "
                "instance id %r? set a distinct TASKSTREAM_INSTANCE_ID",
                len(self._renewals),
                _RENEWAL_WINDOW,
                self.settings.instance_id,
            )
            raise exc
        logger.warning("fire producer failed for good (%s); starting a new one", exc.args[0])
        RENEWED.labels("fatal").inc()
        self._replace_producer(purge=True)

    def _replace_producer(self, *, purge: bool) -> None:
        """Start a transactional producer that takes the id over, then rebuild the shard.

        ``purge``: drop what the old producer still queues (not while a call of another
        thread is inside it); a new producer fences the old one's epoch either way.
        """
        if purge:
            self._producer.purge()
        while not self._loop.stopping.is_set():
            producer = self._new_producer()
            try:
                producer.init_transactions(30)
            except KafkaException as init_error:
                logger.warning("new fire producer not ready (%s); retrying", init_error)
                self._loop.stopping.wait(1.0)
                continue
            self._producer = producer
            break
        else:
            return
        assignment = self._consumer.assignment()
        self._on_revoke(self._consumer, assignment)
        if assignment:
            self._on_assign(self._consumer, assignment)
