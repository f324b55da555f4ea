"""Helpers of the executor's integration and e2e tests (no tests here).

Real topics on the test broker: work orders are produced as the core's scheduler would
(key = task id, the Java partitioner, WorkOrder headers), and ``task-events`` is read
back incrementally as any consumer would read it.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from taskstream.executor.service import ExecutorService, bootstrap
from taskstream.executor.settings import ExecutorSettings
from taskstream.handlers import HandlerRegistry, TaskHandler
from taskstream.handlers.builtin import EchoHandler, FailHandler, NoopHandler, SleepHandler
from taskstream.schemas import (
    TERMINAL_EVENT_TYPES,
    CancelRequested,
    Event,
    EventData,
    Priority,
    RetryPolicy,
    WorkOrder,
    decode_event,
    encode_event,
    encode_work_order,
    event_headers,
    execution_id,
)

TERMINAL_TYPES = frozenset(model.TYPE for model in TERMINAL_EVENT_TYPES)


_RAW_HEADERS = [
    ("event-type", b"WorkOrder"),
    ("event-version", b"1"),
    ("content-type", b"application/json"),
]


def executor_settings(bootstrap_servers: str, prefix: str, **overrides: Any) -> ExecutorSettings:
    values: dict[str, Any] = {
        "kafka_bootstrap_servers": bootstrap_servers,
        "topic_prefix": prefix,
        "task_events_partitions": 3,
        "execution_partitions": 2,
        "executor_port": 0,
        "executor_id": f"test-executor-{uuid.uuid4().hex[:6]}",
        "executor_heartbeat_interval": timedelta(seconds=1),
        "executor_session_timeout": timedelta(seconds=6),
        **overrides,
    }
    return ExecutorSettings(**values)


def builtin_registry(*extra: type[TaskHandler]) -> HandlerRegistry:
    """noop, echo, fail and sleep, and the ``extra`` handlers (e.g. ``ShellHandler``)."""
    registry = HandlerRegistry()
    handlers: list[type[TaskHandler]] = [NoopHandler, EchoHandler, FailHandler, SleepHandler]
    for handler in (*handlers, *extra):
        registry.register(handler)
    return registry


@contextmanager
def running_executor(
    settings: ExecutorSettings, registry: HandlerRegistry | None = None
) -> Iterator[ExecutorService]:
    service = bootstrap(settings, registry or builtin_registry())
    try:
        yield service
    finally:
        service.stop()


def work_order(
    handler: str,
    params: dict[str, Any] | None = None,
    *,
    priority: Priority = Priority.MEDIUM,
    attempt: int = 1,
    task_id: str | None = None,
    slot: datetime | None = None,
    timeout: float | None = None,
    retry: RetryPolicy | None = None,
) -> WorkOrder:
    task_id = task_id or f"task-{uuid.uuid4().hex[:12]}"
    slot = slot or datetime.now(UTC)
    return WorkOrder(
        execution_id=execution_id(task_id, slot, attempt),
        task_id=task_id,
        task_name=f"{handler}-test",
        handler=handler,
        params=params or {},
        attempt=attempt,
        scheduled_for=slot,
        priority=priority,
        queue="default",
        timeout=None if timeout is None else timedelta(seconds=timeout),
        retry=retry or RetryPolicy(),
    )


class Writer:
    """Produces work orders and events the way the core does."""

    def __init__(self, settings: ExecutorSettings) -> None:
        self.settings = settings
        self._producer = Producer(
            {
                "bootstrap.servers": settings.kafka_bootstrap_servers,
                "partitioner": "murmur2_random",
                "enable.idempotence": True,
                "linger.ms": 5,
            }
        )

    def orders(self, *orders: WorkOrder) -> None:
        for order in orders:
            self.raw(
                self.settings.topics.execution(order.queue, order.priority.value),
                order.task_id.encode(),
                encode_work_order(order),
            )
        self.flush()

    def raw(self, topic: str, key: bytes | None, value: bytes) -> None:
        """Any bytes, with the headers of a v1 work order (poison records too)."""
        while True:
            try:
                self._producer.produce(topic, key=key, value=value, headers=_RAW_HEADERS)
                return
            except BufferError:
                self._producer.poll(0.1)

    def event(self, task_id: str, data: EventData) -> None:
        """Append an event to ``task-events``, or a ``CancelRequested`` where executors
        read it: on ``cancellations``, as the core's scheduler forwards it."""
        event = Event.create(task_id, data)
        topics = self.settings.topics
        self._producer.produce(
            topics.cancellations if isinstance(data, CancelRequested) else topics.task_events,
            key=task_id.encode(),
            value=encode_event(event),
            headers=event_headers(event),
        )
        self.flush()

    def flush(self) -> None:
        assert self._producer.flush(30) == 0, "records not delivered"


class EventLog:
    """``task-events`` read from the beginning, a bit more at every :meth:`poll`."""

    def __init__(self, bootstrap_servers: str, topic: str) -> None:
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap_servers,
                "group.id": f"event-log-{uuid.uuid4().hex}",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
            }
        )
        partitions = self._consumer.list_topics(topic, timeout=10).topics[topic].partitions
        self._consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        self.events: list[Event] = []

    def poll(self, most: float = 1.0, wait: float = 0.1) -> list[Event]:
        """Read what arrived since the last poll (for at most ``most`` seconds while it keeps
        coming, waiting ``wait`` for more each time)."""
        deadline = time.monotonic() + most
        while time.monotonic() < deadline:
            messages = self._consumer.consume(num_messages=2000, timeout=wait)
            if not messages:
                break
            for message in messages:
                if message.error() is None:
                    self.events.append(decode_event(message.value()))
        return self.events

    def of(self, event_type: str, execution: str | None = None, *, poll: bool = True) -> list[Any]:
        """The payloads of ``event_type`` (for one execution id, if given)."""
        return [e.data for e in self.envelopes(event_type, execution, poll=poll)]

    def envelopes(
        self, event_type: str, execution: str | None = None, *, poll: bool = True
    ) -> list[Event]:
        """The events of ``event_type``; ``poll=False`` looks only at what was read already."""
        events = self.poll() if poll else self.events
        return [
            e
            for e in events
            if e.type == event_type
            and (execution is None or getattr(e.data, "execution_id", None) == execution)
        ]

    def run_counts(self, *, poll: bool = True) -> Counter[str]:
        """How many times each execution ran: an ``ExecutionStarted`` begins a run, and an
        outcome that carries ``started_at`` and follows no open ``ExecutionStarted`` of its
        execution is a run of its own (v2: a run that ended quickly writes only that)."""
        runs: Counter[str] = Counter()
        running: set[str] = set()
        for event in self.poll() if poll else self.events:
            execution = getattr(event.data, "execution_id", None)
            if event.type == "ExecutionStarted":
                runs[execution] += 1
                running.add(execution)
            elif event.type in TERMINAL_TYPES:
                if execution not in running and event.data.started_at is not None:
                    runs[execution] += 1
                running.discard(execution)
        return runs

    def close(self) -> None:
        self._consumer.close()


def committed_offsets(settings: ExecutorSettings, queue: str = "default") -> dict[str, int]:
    """The executor group's committed offsets, ``{"topic[p]": offset}``."""
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap_servers,
            "group.id": settings.group_id(queue),
            "enable.auto.commit": False,
        }
    )
    try:
        partitions = [
            TopicPartition(settings.topics.execution(queue, lane), p)
            for lane in ("high", "medium", "low")
            for p in range(settings.execution_partitions)
        ]
        return {
            f"{tp.topic}[{tp.partition}]": tp.offset
            for tp in consumer.committed(partitions, timeout=10)
        }
    finally:
        consumer.close()


def end_offsets(settings: ExecutorSettings, queue: str = "default") -> dict[str, int]:
    consumer = Consumer(
        {"bootstrap.servers": settings.kafka_bootstrap_servers, "group.id": "watermarks"}
    )
    try:
        ends = {}
        for lane in ("high", "medium", "low"):
            topic = settings.topics.execution(queue, lane)
            for p in range(settings.execution_partitions):
                _, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
                ends[f"{topic}[{p}]"] = high
        return ends
    finally:
        consumer.close()


def read_raw(
    bootstrap_servers: str, topic: str
) -> list[tuple[bytes | None, bytes | None, dict[str, bytes]]]:
    """Every record of ``topic`` up to its end now, as ``(key, value, headers)`` in bytes.

    It stops at the high watermarks read first, not at a partition-EOF event, which never
    comes for a topic written more often than a fetch waits (the heartbeats).
    """
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap_servers,
            "group.id": f"raw-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
        }
    )
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    ends = {
        p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
        for p in partitions
    }
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    records: list[tuple[bytes | None, bytes | None, dict[str, bytes]]] = []
    reached = {p for p, end in ends.items() if end <= 0}
    deadline = time.monotonic() + 30
    try:
        while reached != set(partitions):
            assert time.monotonic() < deadline, f"{topic}: end not reached"
            for message in consumer.consume(num_messages=500, timeout=0.5):
                if message.error() is not None:
                    continue
                partition, offset = message.partition() or 0, message.offset() or 0
                if offset >= ends[partition]:
                    reached.add(partition)
                    continue
                headers = {k: v for k, v in message.headers() or [] if v is not None}
                records.append((message.key(), message.value(), headers))
                if offset + 1 >= ends[partition]:
                    reached.add(partition)
    finally:
        consumer.close()
    return records
