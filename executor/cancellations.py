"""Cancellation: ``CancelRequested`` events reach the executions they name.

:class:`CancelRegistry` (no I/O) knows the running executions and signals the ones a
request names: one ``execution_id``, or every running execution of the task when
``execution_id`` is null. It also remembers recent requests for a few minutes, so a
work order that arrives after its cancel (it waited in a backlog) is cancelled before
it starts; a task-wide request covers orders whose slot is not later than the request.

:class:`CancelListener` feeds it: a consumer with no group that assigns every partition
of the ``cancellations`` topic at its end when the executor starts. That topic holds a
copy of each ``CancelRequested`` of ``task-events``, forwarded by the core instance that
owns its partition in the same transaction as the offsets it read
(:mod:`taskstream.core.scheduler`), so an executor reads a few records instead of all of
``task-events``. A copy may come twice (a core that takes a partition over reads again
what its predecessor had not committed); a request is idempotent. It reads only records
whose ``event-type`` header is ``CancelRequested`` (anything else is never parsed).
Its thread is a :class:`taskstream.infra.consumer_loop.ConsumerLoop` (``cancellations``,
essential: without it no cancel reaches a running execution): a record that cannot be
decoded is logged and skipped, and one whose handling raises anything else is isolated by
the loop (logged, counted, shown in its health); the next request is served as usual.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from confluent_kafka import Consumer, KafkaError, Message, TopicPartition

from taskstream.infra.consumer_loop import ConsumerLoop, OnLoop
from taskstream.infra.kafka import consumer_config, retrying_kafka
from taskstream.infra.logs import fields
from taskstream.infra.settings import CommonSettings
from taskstream.schemas import CancelRequested, EventDecodeError, WorkOrder, decode_event
from taskstream.schemas.codec import HEADER_EVENT_TYPE, header_value

__all__ = ["CancelListener", "CancelRegistry", "Cancellable"]

logger = logging.getLogger(__name__)

REMEMBER_SECONDS = 300.0
"""How long a request is kept for work orders that have not arrived yet."""
REMEMBER_MAX = 10_000
"""At most this many remembered requests of each kind (oldest forgotten first)."""


class Cancellable(Protocol):
    """A running execution, as the registry sees it."""

    def cancel(self, reason: str) -> None: ...


@dataclass(frozen=True, slots=True)
class _TaskWide:
    requested_at: datetime
    reason: str
    expires: float


class CancelRegistry:
    """Running executions by id and task, and recent requests. Thread-safe."""

    def __init__(self, remember: float = REMEMBER_SECONDS, limit: int = REMEMBER_MAX) -> None:
        self._lock = threading.Lock()
        self._running: dict[str, tuple[str, Cancellable]] = {}
        self._by_task: dict[str, set[str]] = {}
        self._recent: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._recent_tasks: OrderedDict[str, _TaskWide] = OrderedDict()
        self._remember = remember
        self._limit = limit

    def register(self, execution_id: str, task_id: str, run: Cancellable) -> None:
        with self._lock:
            self._running[execution_id] = (task_id, run)
            self._by_task.setdefault(task_id, set()).add(execution_id)

    def unregister(self, execution_id: str) -> None:
        with self._lock:
            entry = self._running.pop(execution_id, None)
            if entry is None:
                return
            ids = self._by_task.get(entry[0])
            if ids is not None:
                ids.discard(execution_id)
                if not ids:
                    del self._by_task[entry[0]]

    def request(
        self,
        task_id: str,
        execution_id: str | None,
        reason: str,
        requested_at: datetime,
        now: float | None = None,
    ) -> int:
        """Signal the executions a request names and remember it; the number signalled."""
        now = time.monotonic() if now is None else now
        with self._lock:
            self._expire(now)
            if execution_id is not None:
                targets = [execution_id] if execution_id in self._running else []
                self._recent[execution_id] = (reason, now + self._remember)
                self._recent.move_to_end(execution_id)
            else:
                targets = sorted(self._by_task.get(task_id, ()))
                self._recent_tasks[task_id] = _TaskWide(requested_at, reason, now + self._remember)
                self._recent_tasks.move_to_end(task_id)
            self._trim()
            runs = [self._running[target][1] for target in targets]
        for run in runs:
            run.cancel(reason)
        return len(runs)

    def pending_reason(self, order: WorkOrder, now: float | None = None) -> str | None:
        """The reason of a remembered request covering ``order``, if there is one."""
        now = time.monotonic() if now is None else now
        with self._lock:
            self._expire(now)
            exact = self._recent.get(order.execution_id)
            if exact is not None:
                return exact[0]
            wide = self._recent_tasks.get(order.task_id)
            if wide is not None and order.scheduled_for <= wide.requested_at:
                return wide.reason
            return None

    def running(self) -> int:
        with self._lock:
            return len(self._running)

    def _expire(self, now: float) -> None:
        while self._recent and next(iter(self._recent.values()))[1] <= now:
            self._recent.popitem(last=False)
        while self._recent_tasks and next(iter(self._recent_tasks.values())).expires <= now:
            self._recent_tasks.popitem(last=False)

    def _trim(self) -> None:
        while len(self._recent) > self._limit:
            self._recent.popitem(last=False)
        while len(self._recent_tasks) > self._limit:
            self._recent_tasks.popitem(last=False)


class CancelListener(OnLoop):
    """Reads ``CancelRequested`` from the ``cancellations`` topic (from its end now) into
    a registry."""

    def __init__(self, settings: CommonSettings, registry: CancelRegistry, name: str) -> None:
        self._topic = settings.topics.cancellations
        self._registry = registry
        self._consumer = Consumer(
            consumer_config(
                settings,
                f"{settings.topic_prefix}executor-cancellations-{name}",
                **{"enable.auto.offset.store": False, "fetch.wait.max.ms": 100},
            )
        )
        self._loop = ConsumerLoop(
            "cancellations",
            consumer=self._consumer,
            handle_record=self._handle,
            poll_timeout=0.2,
            batch_size=500,
            stall_after=settings.loop_stall_after,
        )

    name = "cancellations"
    essential = True
    """Without it a cancel never reaches a running execution: the executor is broken."""

    def start(self, timeout: float = 30.0) -> None:
        """Assign every partition at its current end, then read in the background."""
        deadline = time.monotonic() + timeout
        metadata = self._consumer.list_topics(self._topic, timeout=timeout)
        partitions = sorted(metadata.topics[self._topic].partitions)
        assignment = [
            TopicPartition(self._topic, partition, self._end_of(partition, deadline))
            for partition in partitions
        ]
        self._consumer.assign(assignment)
        self._loop.start()

    def _end_of(self, partition: int, deadline: float) -> int:
        """The partition's end now (retried while a new topic's leader is being elected)."""
        topic_partition = TopicPartition(self._topic, partition)
        for attempt in retrying_kafka(
            f"the end of {self._topic}[{partition}]", max(deadline - time.monotonic(), 0)
        ):
            with attempt:
                _, high = self._consumer.get_watermark_offsets(
                    topic_partition, timeout=max(deadline - time.monotonic(), 1.0)
                )
        return int(high)

    def stop(self, timeout: float = 5.0) -> None:
        self._loop.stop(timeout)
        self._consumer.close()

    def _handle(self, message: Message) -> None:
        error = message.error()
        if error is not None:
            if error.code() != KafkaError._PARTITION_EOF:
                logger.warning("cancellation consumer: %s", error.str())
            return
        if header_value(message.headers(), HEADER_EVENT_TYPE) != CancelRequested.TYPE:
            return
        self._apply(message.value())

    def _apply(self, raw: bytes | None) -> None:
        try:
            event = decode_event(raw)
        except EventDecodeError as exc:
            logger.warning("unreadable CancelRequested skipped: %s", exc)
            return
        data = event.data
        if not isinstance(data, CancelRequested):
            return
        signalled = self._registry.request(
            event.task_id, data.execution_id, data.reason, event.occurred_at
        )
        logger.info(
            "cancel requested (%s): %d running execution(s) signalled",
            data.reason,
            signalled,
            extra=fields(task_id=event.task_id, execution_id=data.execution_id, action="cancel"),
        )
