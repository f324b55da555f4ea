"""The core's side of per-execution logs: the table on SQLite and PostgreSQL, and the
projection from a real ``execution-logs`` topic (replays, poison records, restarts)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from confluent_kafka import Producer

from taskstream.core.execution_logs import ExecutionLogStore, LogProjection, StoredChunk
from taskstream.core.settings import CoreSettings
from taskstream.core.store import TaskStore, make_engine
from taskstream.infra.kafka import ensure_topics, standard_topics
from taskstream.schemas import ExecutionLogChunk, LogLine
from tests.support import eventually

NOW = datetime(2030, 1, 1, 9, tzinfo=UTC)
TOPIC = "t.execution-logs"


@pytest.fixture(params=["sqlite", "postgres"])
def log_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ExecutionLogStore]:
    url = (
        f"sqlite:///{tmp_path / 'store.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    engine = make_engine(url)
    TaskStore(engine, "t.task-events").create_schema()
    try:
        yield ExecutionLogStore(engine, TOPIC)
    finally:
        engine.dispose()


def _chunk(
    execution_id: str,
    seq: int,
    *messages: str,
    run_id: str = "run-a",
    final: bool = False,
    sent_at: datetime = NOW,
    dropped: int = 0,
) -> ExecutionLogChunk:
    return ExecutionLogChunk(
        execution_id=execution_id,
        task_id="task-1",
        attempt=2,
        run_id=run_id,
        worker_id="worker-1",
        seq=seq,
        lines=tuple(LogLine(at=sent_at, stream="stdout", message=m) for m in messages),
        final=final,
        dropped_lines=dropped,
        dropped_bytes=dropped * 10,
        sent_at=sent_at,
    )


def test_chunks_join_into_runs_and_replays_change_nothing(log_store: ExecutionLogStore) -> None:
    records = [
        StoredChunk(0, 0, _chunk("e1", 0, "a", "b")),
        StoredChunk(0, 1, None),  # a record that was not a chunk: only the offset moves
        StoredChunk(0, 2, _chunk("e1", 1, "c", final=True, dropped=3)),
        StoredChunk(1, 0, _chunk("e1", 0, "again", run_id="run-b", sent_at=NOW + timedelta(1))),
    ]
    assert log_store.apply(records) == 3
    assert log_store.apply(records) == 0  # the same offsets again: a replay
    assert log_store.offsets() == {0: 3, 1: 1}

    log = log_store.get("e1")
    assert log is not None and log.task_id == "task-1"
    first, second = log.runs
    assert [line["message"] for line in first.lines] == ["a", "b", "c"]
    assert first.complete and first.dropped_lines == 3 and first.attempt == 2
    assert [line["message"] for line in second.lines] == ["again"]
    assert not second.complete  # no final chunk yet
    assert "[3 lines (30 bytes) over the size cap" in log.as_text()
    assert log_store.get("e2") is None


def test_a_run_missing_a_chunk_is_not_complete(log_store: ExecutionLogStore) -> None:
    log_store.apply(
        [
            StoredChunk(0, 0, _chunk("e1", 0, "a")),
            StoredChunk(0, 1, _chunk("e1", 2, "z", final=True)),
        ]
    )
    log = log_store.get("e1")
    assert log is not None and not log.runs[0].complete


def test_prune_deletes_only_what_is_past_retention(log_store: ExecutionLogStore) -> None:
    log_store.apply(
        [
            StoredChunk(0, 0, _chunk("old", 0, "x", final=True, sent_at=NOW - timedelta(days=8))),
            StoredChunk(0, 1, _chunk("new", 0, "y", final=True, sent_at=NOW)),
        ]
    )
    assert log_store.prune(NOW - timedelta(days=7)) == 1
    assert log_store.get("old") is None and log_store.get("new") is not None


@pytest.mark.kafka
def test_the_projection_keeps_chunks_skips_poison_and_resumes(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    settings = CoreSettings(
        kafka_bootstrap_servers=kafka_bootstrap,
        topic_prefix=topic_prefix,
        execution_partitions=2,
        database_url=f"sqlite:///{tmp_path / 'store.db'}",
    )
    ensure_topics(settings, standard_topics(settings, settings.queues))
    engine = make_engine(settings.database_url)
    TaskStore(engine, settings.topics.task_events).create_schema()
    store = ExecutionLogStore(engine, settings.topics.execution_logs)
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    topic = settings.topics.execution_logs
    execution = f"exec-{uuid.uuid4().hex[:8]}"
    producer.produce(topic, key=execution.encode(), value=_chunk(execution, 0, "one").encode())
    producer.produce(topic, key=execution.encode(), value=b"\xff not json")
    producer.produce(
        topic, key=execution.encode(), value=_chunk(execution, 1, "two", final=True).encode()
    )
    assert producer.flush(30) == 0

    def lines() -> list[str] | None:
        log = store.get(execution)
        if log is None or not log.runs[0].complete:
            return None
        return [line["message"] for line in log.runs[0].lines]

    projection = LogProjection(settings, store, "first")
    projection.start()
    try:
        assert eventually(lines, timeout=30, what="both chunks stored") == ["one", "two"]
        assert projection.alive  # the poison record did not stop it
    finally:
        projection.stop()

    later = f"exec-{uuid.uuid4().hex[:8]}"
    producer.produce(topic, key=later.encode(), value=_chunk(later, 0, "x", final=True).encode())
    assert producer.flush(30) == 0
    restarted = LogProjection(settings, store, "second")
    restarted.start()
    try:
        eventually(lambda: store.get(later), timeout=30, what="the later chunk")
        log = store.get(execution)
        assert log is not None and [len(run.lines) for run in log.runs] == [2]  # not twice
    finally:
        restarted.stop()
        engine.dispose()
