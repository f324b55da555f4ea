"""The core's projection on a real broker: a record the store cannot apply is stepped over."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from confluent_kafka import Producer

from taskstream.core.aggregate import TaskStatus
from taskstream.core.projection import Projection
from taskstream.core.publisher import EventPublisher
from taskstream.core.settings import CoreSettings
from taskstream.core.store import TaskStore, make_engine
from taskstream.infra.health import State
from taskstream.infra.kafka import ensure_topics, standard_topics
from taskstream.schemas import (
    Event,
    ExecutionScheduled,
    Priority,
    Schedule,
    TaskCreated,
    TaskQuarantined,
    TaskSpec,
    encode_event,
    event_headers,
)
from tests.kafka_read import read_topic
from tests.support import eventually, recorded_schedule

pytestmark = pytest.mark.kafka


@pytest.fixture
def settings(kafka_bootstrap: str, topic_prefix: str, tmp_path: Path) -> CoreSettings:
    settings = CoreSettings(
        kafka_bootstrap_servers=kafka_bootstrap,
        topic_prefix=topic_prefix,
        task_events_partitions=2,
        database_url=f"sqlite:///{tmp_path / 'store.db'}",
    )
    ensure_topics(settings, standard_topics(settings, settings.queues))
    return settings


@pytest.fixture
def store(settings: CoreSettings) -> Iterator[TaskStore]:
    store = TaskStore(make_engine(settings.database_url), settings.topics.task_events)
    store.create_schema()
    yield store
    store.engine.dispose()


def _produce(settings: CoreSettings, events: list[Event]) -> None:
    producer = Producer(
        {"bootstrap.servers": settings.kafka_bootstrap_servers, "partitioner": "murmur2_random"}
    )
    for event in events:
        producer.produce(
            settings.topics.task_events,
            key=event.task_id.encode(),
            value=encode_event(event),
            headers=event_headers(event),
        )
    assert producer.flush(30) == 0


def _created(task_id: str, schedule: Schedule) -> Event:
    return Event.create(
        task_id, TaskCreated(task=TaskSpec(name=task_id, handler="noop", schedule=schedule))
    )


def test_a_record_the_store_cannot_apply_quarantines_its_task_and_the_others_apply(
    settings: CoreSettings, store: TaskStore
) -> None:
    # A fire of a task whose schedule cannot be evaluated: folding the fire asks the
    # schedule whether the task is complete, and cronsim raises.
    poison = _created("poison", recorded_schedule(cron="0 0 30 2 *"))
    fire = Event.create(
        "poison",
        ExecutionScheduled(
            execution_id="e1",
            attempt=1,
            scheduled_for=datetime(2030, 2, 28, tzinfo=UTC),
            topic="x",
            queue="default",
            priority=Priority.MEDIUM,
        ),
    )
    good = [_created(f"good-{n}", Schedule(cron="0 9 * * *")) for n in range(5)]
    _produce(settings, [poison, fire, *good])

    publisher = EventPublisher(settings)
    projection = Projection(
        settings, store, f"test-{uuid.uuid4().hex[:8]}", quarantine=publisher.publish
    )
    projection.start()
    try:
        eventually(
            lambda: all(store.get(e.task_id) is not None for e in good),
            timeout=60,
            what="the good tasks in the store",
        )
        row = eventually(
            lambda: (
                (r := store.get("poison")) is not None
                and r.status == TaskStatus.QUARANTINED.value
                and r
            ),
            timeout=60,
            what="the poison task quarantined in the store",
        )
        assert row.quarantine is not None
        assert row.quarantine["component"] == "projection"
        assert row.quarantine["reason"].startswith("CronError: ")
        assert row.quarantine["event_id"] == fire.id
        assert projection.alive
        eventually(lambda: projection.health().state is State.OK, timeout=30, what="health ok")
        assert projection.health().details["record_errors"] == 1
        [quarantined] = [
            r
            for r in read_topic(settings.kafka_bootstrap_servers, settings.topics.task_events)
            if r.value["type"] == TaskQuarantined.TYPE
        ]
        assert quarantined.key == b"poison"
    finally:
        projection.stop()
        publisher.close()

    # a restart resumes after the record: it does not meet it again
    again = Projection(settings, store, f"test-{uuid.uuid4().hex[:8]}")
    again.start()
    try:
        eventually(lambda: again.health().state is State.OK, timeout=60, what="caught up")
        assert again.health().details["record_errors"] == 0
    finally:
        again.stop()
