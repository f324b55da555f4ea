"""taskstream rebuild: a store replayed from task-events equals the one projected live.

A realistic log (creations, updates, one stale update, pause/resume, deletes, runs that
succeed, fail, retry, are skipped or still run, a run-now, a cancel, one record that is
not JSON, and one the store cannot apply: the fire of a task whose cron never matches, which
raises while it is folded) goes to a real broker over three partitions. The "live" store is
built by a running projection thread, which steps over the poison record and appends the
task's ``TaskQuarantined``; the "rebuilt" one by :func:`taskstream.core.rebuild.rebuild` into
another database that first holds rubbish, which must step over the same record; both must hold the
same rows, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError, Message, Producer

from taskstream.core.projection import Projection
from taskstream.core.publisher import EventPublisher
from taskstream.core.rebuild import RebuildError, rebuild
from taskstream.core.settings import CoreSettings
from taskstream.core.store import AppliedRecord, TaskStore, make_engine
from taskstream.infra.kafka import ensure_topics, standard_topics
from taskstream.schemas import (
    CancelRequested,
    Event,
    EventData,
    ExecutionFailed,
    ExecutionScheduled,
    ExecutionSkipped,
    ExecutionStarted,
    ExecutionSucceeded,
    Priority,
    RetryPolicy,
    RetryScheduled,
    RunRequested,
    Schedule,
    SkipReason,
    TaskCreated,
    TaskDeleted,
    TaskPaused,
    TaskResumed,
    TaskSpec,
    TaskUpdated,
    Trigger,
    encode_event,
    event_headers,
    execution_id,
)
from tests.support import eventually

pytestmark = pytest.mark.kafka

TASKS = 50
PARTITIONS = 3
START = datetime(2030, 3, 1, 8, tzinfo=UTC)
STALE_TASK = "task-00"
POISON_TASK = "task-poison-cron"


@pytest.fixture(params=["sqlite", "postgres"])
def database_urls(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    """Two empty databases of one kind: the live store's and the rebuilt store's."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'live.db'}", f"sqlite:///{tmp_path / 'rebuilt.db'}"
    new_database: Callable[[], str] = request.getfixturevalue("new_postgres_database")
    return new_database(), new_database()


def _settings(bootstrap: str, prefix: str, database_url: str) -> CoreSettings:
    return CoreSettings(
        kafka_bootstrap_servers=bootstrap,
        topic_prefix=prefix,
        task_events_partitions=PARTITIONS,
        database_url=database_url,
    )


class _Clock:
    """Strictly increasing event times, as a real log has them."""

    def __init__(self) -> None:
        self.now = START

    def tick(self, seconds: float = 1.0) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


def _spec(number: int, name: str | None = None) -> TaskSpec:
    schedules = [
        Schedule(every=timedelta(minutes=1)),
        Schedule(cron="*/5 * * * *"),
        Schedule(cron="0 9 * * 1-5", timezone="Europe/Berlin"),
        Schedule(at=START + timedelta(hours=2)),
    ]
    return TaskSpec(
        name=name or f"job-{number}",
        schedule=schedules[number % len(schedules)],
        handler=["echo", "noop", "fail", "sleep"][number % 4],
        params={"n": number, "tags": ["a", "b"], "nested": {"ok": number % 2 == 0}},
        priority=list(Priority)[number % 3],
        retry=RetryPolicy(max_attempts=3),
    )


def _task_history(number: int, clock: _Clock) -> list[Event]:
    """The events of one task, in the order its writers would append them."""
    task_id = f"task-{number:02d}"
    events: list[Event] = []

    def add(data: EventData) -> None:
        events.append(Event.create(task_id, data, occurred_at=clock.tick()))

    def run(slot: datetime, attempt: int = 1, *, trigger: Trigger = Trigger.SCHEDULE) -> str:
        run_id = execution_id(task_id, slot, attempt)
        add(
            ExecutionScheduled(
                execution_id=run_id,
                attempt=attempt,
                scheduled_for=slot,
                topic="executions.default.medium",
                queue="default",
                priority=Priority.MEDIUM,
                trigger=trigger,
            )
        )
        return run_id

    def outcome(run_id: str, slot: datetime, attempt: int, *, fail: bool = False) -> None:
        common: dict[str, Any] = {
            "execution_id": run_id,
            "attempt": attempt,
            "scheduled_for": slot,
            "worker_id": f"worker-{number % 3}",
        }
        add(ExecutionStarted(handler="echo", **common))
        if fail:
            add(
                ExecutionFailed(
                    duration_seconds=0.25,
                    error_type="ValueError",
                    error_message=f"bad input {number}",
                    **common,
                )
            )
        else:
            add(ExecutionSucceeded(duration_seconds=0.01 * number, output={"n": number}, **common))

    add(TaskCreated(task=_spec(number)))
    if number == 0:
        add(TaskUpdated(task=_spec(number, "updated-once"), expected_version=1))
        add(TaskUpdated(task=_spec(number, "stale-update"), expected_version=1))  # rejected
    elif number % 6 == 1:
        add(TaskUpdated(task=_spec(number + 1, f"renamed-{number}")))

    slots = [START + timedelta(minutes=minute) for minute in (5, 10, 15)]
    first = run(slots[0])
    outcome(first, slots[0], 1, fail=number % 4 == 2)
    if number % 4 == 2:  # failed: a retry, fired and succeeded
        retry_at = slots[0] + timedelta(seconds=30)
        retry_id = execution_id(task_id, slots[0], 2)
        add(
            RetryScheduled(
                execution_id=retry_id,
                failed_execution_id=first,
                attempt=2,
                scheduled_for=slots[0],
                due_at=retry_at,
            )
        )
        if number % 8 == 2:
            run(slots[0], 2, trigger=Trigger.RETRY)
            outcome(retry_id, slots[0], 2)
        # else: the retry is still pending (a durable timer in the store)
    if number % 7 == 3:
        add(TaskPaused())
        add(ExecutionSkipped(scheduled_for=slots[1], reason=SkipReason.PAUSED))
        add(TaskResumed())
    else:
        add(
            ExecutionSkipped(
                scheduled_for=slots[1],
                reason=SkipReason.MISFIRE,
                count=2,
                last_scheduled_for=slots[1] + timedelta(minutes=1),
            )
        )
    running = run(slots[2])  # still running at the end of the log: an active execution
    if number % 5 == 4:
        outcome(running, slots[2], 1)
    if number % 9 == 5:
        add(RunRequested())
        add(CancelRequested(reason="operator"))
    if number % 11 == 10:
        add(TaskDeleted())
    return events


def _log() -> list[Event]:
    """The tasks' histories interleaved, each task's events in order."""
    clock = _Clock()
    histories = [_task_history(number, clock) for number in range(TASKS)]
    interleaved: list[Event] = []
    for step in range(max(len(history) for history in histories)):
        interleaved.extend(history[step] for history in histories if step < len(history))
    return interleaved


def _poison() -> list[tuple[bytes, bytes]]:
    """A task whose cron never matches (30 February) and a fire of it, as (key, value).

    Such a task is on old logs (the API once accepted it). The creation applies; folding
    the fire asks the schedule for its next slot, and the evaluator raises. The cron is
    put into the bytes, so that no model validation of today refuses to build it.
    """
    created = Event.create(
        POISON_TASK,
        TaskCreated(
            task=TaskSpec(name="never", handler="noop", schedule=Schedule(cron="0 0 1 1 *"))
        ),
        occurred_at=START,
    )
    fire = Event.create(
        POISON_TASK,
        ExecutionScheduled(
            execution_id=execution_id(POISON_TASK, START, 1),
            attempt=1,
            scheduled_for=START,
            topic="executions.default.medium",
            queue="default",
            priority=Priority.MEDIUM,
        ),
        occurred_at=START + timedelta(seconds=1),
    )
    never = encode_event(created).replace(b'"0 0 1 1 *"', b'"0 0 30 2 *"')
    assert b'"0 0 30 2 *"' in never
    return [(POISON_TASK.encode(), never), (POISON_TASK.encode(), encode_event(fire))]


def _produce(bootstrap: str, topic: str, events: list[Event]) -> dict[int, int]:
    """Produce the events, one undecodable record and the poison pair; the partition ends."""
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "partitioner": "murmur2_random",
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
        }
    )
    ends: dict[int, int] = {}
    failures: list[str] = []

    def delivered(error: KafkaError | None, message: Message) -> None:
        if error is not None:
            failures.append(error.str())
            return
        partition, offset = message.partition() or 0, message.offset() or 0
        ends[partition] = max(ends.get(partition, 0), offset + 1)

    for number, event in enumerate(events):
        producer.produce(
            topic,
            key=event.task_id.encode(),
            value=encode_event(event),
            headers=event_headers(event),
            on_delivery=delivered,
        )
        if number == len(events) // 2:
            producer.produce(topic, key=b"task-poison", value=b"not json", on_delivery=delivered)
            for key, value in _poison():
                producer.produce(topic, key=key, value=value, on_delivery=delivered)
        producer.poll(0)
    remaining = producer.flush(30)
    assert remaining == 0, f"{remaining} records not delivered in 30s"
    assert not failures, failures
    return ends


@pytest.fixture
def log_on_broker(kafka_bootstrap: str, topic_prefix: str) -> Iterator[tuple[list[Event], int]]:
    """Create ``<prefix>task-events`` (3 partitions) and fill it: (events, records)."""
    settings = _settings(kafka_bootstrap, topic_prefix, "sqlite://")
    task_events = settings.topics.task_events
    ensure_topics(
        settings, [s for s in standard_topics(settings, settings.queues) if s.name == task_events]
    )
    events = _log()
    ends = _produce(kafka_bootstrap, task_events, events)
    assert len(ends) == PARTITIONS, f"the keys should spread over every partition: {ends}"
    yield events, sum(ends.values())


def _live_store(settings: CoreSettings, records: int) -> TaskStore:
    """The store as a live core projects it, quarantining what it cannot apply."""
    store = TaskStore(make_engine(settings.database_url), settings.topics.task_events)
    store.create_schema()
    publisher = EventPublisher(settings)
    projection = Projection(
        settings, store, instance_id=f"live-{uuid.uuid4().hex[:8]}", quarantine=publisher.publish
    )
    projection.start()
    try:
        eventually(
            lambda: sum(store.offsets().values()) == records or not projection.alive,
            timeout=60,
            what=f"the live projection to apply {records} records",
        )
        assert projection.error is None, f"the projection stopped: {projection.error!r}"
        assert projection.health().details["record_errors"] == 1  # the poison fire
    finally:
        projection.stop()
        publisher.close()
    return store


def test_a_rebuilt_store_equals_the_live_one(
    kafka_bootstrap: str,
    topic_prefix: str,
    database_urls: tuple[str, str],
    log_on_broker: tuple[list[Event], int],
) -> None:
    events, produced = log_on_broker
    assert produced == len(events) + 3  # the record that is not JSON, the poison pair
    records = produced + 1  # and the TaskQuarantined the live projection appends
    live_url, rebuilt_url = database_urls
    live = _live_store(_settings(kafka_bootstrap, topic_prefix, live_url), records)

    # The target holds a store with rows the log does not have: the rebuild drops them.
    rebuilt = TaskStore(make_engine(rebuilt_url), live.topic)
    rebuilt.create_schema()
    bogus = Event.create("not-in-the-log", TaskCreated(task=_spec(99)))
    rebuilt.apply([AppliedRecord(0, 10_000, bogus)])

    progress: list[int] = []
    try:
        report = rebuild(
            _settings(kafka_bootstrap, topic_prefix, rebuilt_url), progress.append, timeout=120
        )
        assert report.events == records
        assert report.seconds > 0 and report.events_per_second > 0
        assert report.stepped_over == 1  # the poison fire, stepped over as live
        assert progress == sorted(progress) and progress[-1] == records

        expected = live.dump()
        assert rebuilt.dump() == expected
        assert sum(len(rows) for rows in expected.values()) > TASKS
        for table in ("tasks", "active_executions", "pending_runs", "projection_offsets"):
            assert expected[table], f"the log should leave rows in {table}"

        stale = rebuilt.get(STALE_TASK)
        assert stale is not None
        assert (stale.name, stale.version) == ("updated-once", 2)  # the stale update lost
        deleted = rebuilt.get("task-10")
        assert deleted is not None and deleted.status == "deleted"
        assert rebuilt.get("not-in-the-log") is None
        poisoned = rebuilt.get(POISON_TASK)
        assert poisoned is not None and poisoned.status == "quarantined"
        assert poisoned.quarantine is not None
        assert poisoned.quarantine["component"] == "projection"
        assert "0 0 30 2 *" in poisoned.quarantine["reason"]

        again = rebuild(_settings(kafka_bootstrap, topic_prefix, rebuilt_url), timeout=120)
        assert again.events == records and again.stepped_over == 1
        assert rebuilt.dump() == expected
    finally:
        live.engine.dispose()
        rebuilt.engine.dispose()


def test_a_missing_topic_leaves_the_store_alone(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    """A wrong prefix must not wipe the store and call an empty log a success."""
    settings = _settings(kafka_bootstrap, topic_prefix, f"sqlite:///{tmp_path / 'store.db'}")
    store = TaskStore(make_engine(settings.database_url), settings.topics.task_events)
    store.create_schema()
    store.apply([AppliedRecord(1, 4, None)])
    try:
        with pytest.raises(RebuildError, match=r"task-events does not exist.*not touched"):
            rebuild(settings, timeout=30)
        assert store.offsets() == {1: 5}
    finally:
        store.engine.dispose()
