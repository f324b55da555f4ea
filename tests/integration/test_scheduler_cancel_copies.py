"""The scheduler's copies of ``CancelRequested`` on ``cancellations``, on a real broker.

The executors read cancellations only from the copies the core's scheduler makes in its
fire transactions. A core that read a request and died before its next commit leaves
the group's offset behind the store's (the projection applied the request): the next
owner reads that stretch again, for the copies only, so the request still reaches the
executors.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterable
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from taskstream.core.scheduler import Scheduler
from taskstream.core.settings import CoreSettings
from taskstream.core.store import Snapshot, TaskStore, make_engine
from taskstream.infra.kafka import ensure_topics, standard_topics
from taskstream.schemas import CancelRequested, Event, encode_event, event_headers
from tests.kafka_read import read_topic
from tests.support import eventually

pytestmark = pytest.mark.kafka


def test_a_new_owner_copies_the_requests_its_predecessor_read_and_did_not_commit(
    kafka_bootstrap: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = CoreSettings(
        kafka_bootstrap_servers=kafka_bootstrap,
        topic_prefix=f"copies-{uuid.uuid4().hex[:8]}.",
        task_events_partitions=1,
        instance_id="copier",
    )
    ensure_topics(settings, standard_topics(settings, []))
    topic = settings.topics.task_events
    requests = [
        Event.create(f"task-{n}", CancelRequested(execution_id=f"e-{n}", reason="ops"))
        for n in range(3)
    ]
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for event in requests:
        producer.produce(
            topic,
            key=event.task_id.encode(),
            value=encode_event(event),
            headers=event_headers(event),
            partition=0,
        )
    assert producer.flush(30) == 0
    # the previous owner committed before the first request (offset 0) ...
    group = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": settings.scheduler_group})
    group.commit(offsets=[TopicPartition(topic, 0, 0)], asynchronous=False)
    group.close()
    # ... while the store had applied the first two requests (its offset is 2)
    engine = make_engine(f"sqlite:///{tmp_path / 'store.db'}")
    store = TaskStore(engine, topic)
    store.create_schema()
    snapshot = store.snapshot

    def ahead(partitions: Iterable[int]) -> Snapshot:
        return dataclasses.replace(snapshot(partitions), offsets={0: 2})

    monkeypatch.setattr(store, "snapshot", ahead)
    scheduler = Scheduler(settings, store)
    scheduler.start()
    try:
        copies = eventually(
            lambda: (
                records
                if len(records := read_topic(kafka_bootstrap, settings.topics.cancellations))
                >= len(requests)
                else None
            ),
            timeout=60,
            what="a copy of every request on cancellations",
        )
    finally:
        scheduler.stop()
        engine.dispose()
    assert sorted(str(r.value["id"]) for r in copies) == sorted(e.id for e in requests)
    assert all(r.headers["event-type"] == b"CancelRequested" for r in copies)
    assert all("fired-by" not in r.headers for r in copies)
