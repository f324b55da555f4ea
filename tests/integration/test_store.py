"""The task store on real SQLite and PostgreSQL databases: events in, rows and offsets out, once."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect

from taskstream.core.migrate import downgrade, upgrade
from taskstream.core.store import AppliedRecord, Base, TaskStore, make_engine
from taskstream.schemas import (
    Event,
    ExecutionFailed,
    ExecutionScheduled,
    ExecutionSkipped,
    ExecutionStarted,
    ExecutionSucceeded,
    Priority,
    Schedule,
    SkipReason,
    TaskCreated,
    TaskSpec,
)

SLOT = datetime(2030, 1, 1, 9, tzinfo=UTC)
TOPIC = "t.task-events"
STORE_TABLES = set(Base.metadata.tables)


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TaskStore]:
    """A migrated, empty store on SQLite (a file in a new directory) or PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'nested' / 'store.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    engine = make_engine(url)
    store = TaskStore(engine, TOPIC)
    store.create_schema()
    try:
        yield store
    finally:
        engine.dispose()


def _history(task_id: str) -> list[Event]:
    spec = TaskSpec(name="report", schedule=Schedule(cron="0 9 * * *"), handler="echo")
    common: dict[str, Any] = {"attempt": 1, "scheduled_for": SLOT}
    return [
        Event.create(task_id, TaskCreated(task=spec)),
        Event.create(
            task_id,
            ExecutionScheduled(
                execution_id="e1", topic="x", queue="default", priority=Priority.MEDIUM, **common
            ),
        ),
        Event.create(
            task_id,
            ExecutionSucceeded(execution_id="e1", worker_id="w", duration_seconds=0.1, **common),
        ),
        Event.create(
            task_id,
            ExecutionScheduled(
                execution_id="e2", topic="x", queue="default", priority=Priority.MEDIUM, **common
            ),
        ),
        Event.create(
            task_id,
            ExecutionFailed(
                execution_id="e2",
                worker_id="w",
                duration_seconds=0.2,
                error_type="E",
                error_message="m",
                **common,
            ),
        ),
    ]


def test_events_become_rows_and_offsets_advance(store: TaskStore) -> None:
    store.apply([AppliedRecord(2, offset, event) for offset, event in enumerate(_history("t1"))])
    row = store.get("t1")
    assert row is not None
    assert (row.executions_scheduled, row.executions_succeeded, row.executions_failed) == (2, 1, 1)
    assert row.last_status == "failed"
    assert row.partition == 2
    assert store.offsets() == {2: 5}


@pytest.mark.parametrize("batch", [1, 2, 100])
def test_an_execution_id_counts_once_however_often_it_is_on_the_log(
    store: TaskStore, batch: int
) -> None:
    """A rerun after a crash repeats Started and the outcome (new event ids); an outcome
    whose execution was never scheduled counts nothing either: never more finished than
    scheduled, in batches of any size (the open executions are read from the table)."""
    history = _history("t1")
    common: dict[str, Any] = {"attempt": 1, "scheduled_for": SLOT}
    rerun = [
        Event.create(
            "t1", ExecutionStarted(execution_id="e1", worker_id="w2", handler="echo", **common)
        ),
        Event.create(
            "t1",
            ExecutionFailed(
                execution_id="e1",
                worker_id="w2",
                duration_seconds=0.1,
                error_type="E",
                error_message="m",
                **common,
            ),
        ),
        Event.create(
            "t1",
            ExecutionSucceeded(execution_id="never", worker_id="w", duration_seconds=0.1, **common),
        ),
    ]
    log = [*history[:3], *rerun, *history[3:], *rerun[:2]]
    for start in range(0, len(log), batch):
        store.apply(
            [AppliedRecord(0, start + i, e) for i, e in enumerate(log[start : start + batch])]
        )
    row = store.get("t1")
    assert row is not None
    assert (row.executions_scheduled, row.executions_succeeded, row.executions_failed) == (2, 1, 1)
    assert row.last_status == "failed" and row.last_execution_id == "e2"


def test_replaying_applied_records_changes_nothing(store: TaskStore) -> None:
    records = [AppliedRecord(0, offset, event) for offset, event in enumerate(_history("t1"))]
    store.apply(records[:3])
    store.apply(records)  # the first three again, then the rest
    row = store.get("t1")
    assert row is not None
    assert (row.executions_scheduled, row.executions_succeeded, row.executions_failed) == (2, 1, 1)
    assert store.offsets() == {0: 5}


def test_an_undecodable_record_still_advances_the_offset(store: TaskStore) -> None:
    store.apply([AppliedRecord(1, 7, None)])
    assert store.offsets() == {1: 8}
    assert store.list_tasks(page=0, size=10) == ([], 0)


def test_snapshot_reads_offsets_then_the_partitions_tasks(store: TaskStore) -> None:
    created_b = _history("b")[0]
    store.apply([AppliedRecord(0, 0, _history("a")[0]), AppliedRecord(1, 0, created_b)])
    snapshot = store.snapshot([1])
    assert snapshot.offsets == {1: 1}
    tasks = list(snapshot.tasks)
    assert [task.task_id for task in tasks] == ["b"]
    assert tasks[0].created_at == created_b.occurred_at  # the instant survives the DB


def test_offsets_beyond_32_bits_are_kept(store: TaskStore) -> None:
    """Kafka offsets are 64-bit; a long-lived partition passes 2**31."""
    offset = 2**40
    store.apply([AppliedRecord(3, offset, _history("t1")[0])])
    assert store.offsets() == {3: offset + 1}


def test_migrations_go_down_to_base_and_up_again(store: TaskStore) -> None:
    store.apply([AppliedRecord(0, offset, event) for offset, event in enumerate(_history("t1"))])
    assert STORE_TABLES <= set(inspect(store.engine).get_table_names())

    downgrade(store.engine, "base")
    assert not STORE_TABLES & set(inspect(store.engine).get_table_names())

    upgrade(store.engine)
    assert STORE_TABLES <= set(inspect(store.engine).get_table_names())
    assert store.offsets() == {}
    assert store.get("t1") is None
    store.apply([AppliedRecord(0, offset, event) for offset, event in enumerate(_history("t1"))])
    row = store.get("t1")
    assert row is not None
    assert (row.executions_scheduled, row.executions_succeeded, row.executions_failed) == (2, 1, 1)


PARTITIONS = 4
TASKS = 24


def _log() -> list[AppliedRecord]:
    """A log of several tasks over several partitions, with undecodable records in it."""
    per_partition: dict[int, list[Event | None]] = {p: [] for p in range(PARTITIONS)}
    spec = TaskSpec(name="job", schedule=Schedule(every=timedelta(minutes=1)), handler="echo")
    for number in range(TASKS):
        task_id = f"task-{number:02d}"
        events = per_partition[number % PARTITIONS]
        events.append(Event.create(task_id, TaskCreated(task=spec)))
        for run in range(3):
            execution_id = f"{task_id}-run-{run}"
            slot = SLOT + timedelta(minutes=run)
            common: dict[str, Any] = {
                "execution_id": execution_id,
                "attempt": 1,
                "scheduled_for": slot,
            }
            events.append(
                Event.create(
                    task_id,
                    ExecutionScheduled(
                        topic="x", queue="default", priority=Priority.MEDIUM, **common
                    ),
                )
            )
            events.append(
                Event.create(task_id, ExecutionStarted(worker_id="w", handler="echo", **common))
            )
            outcome = (
                ExecutionSucceeded(worker_id="w", duration_seconds=0.1, **common)
                if run != 1
                else ExecutionFailed(
                    worker_id="w", duration_seconds=0.1, error_type="E", error_message="m", **common
                )
            )
            events.append(Event.create(task_id, outcome))
        events.append(
            Event.create(
                task_id,
                ExecutionSkipped(
                    scheduled_for=SLOT + timedelta(minutes=3),
                    reason=SkipReason.MISFIRE,
                    count=2,
                    last_scheduled_for=SLOT + timedelta(minutes=4),
                ),
            )
        )
        if number % 5 == 0:
            events.append(None)  # an undecodable record
    records = [
        AppliedRecord(partition, offset, event)
        for partition, events in per_partition.items()
        for offset, event in enumerate(events)
    ]
    # Interleave the partitions as a consumer does: each partition in order.
    return sorted(records, key=lambda r: (r.offset, r.partition))


def _apply_in_batches(store: TaskStore, records: Sequence[AppliedRecord], size: int) -> None:
    for start in range(0, len(records), size):
        store.apply(records[start : start + size])


def _rows_by_key(store: TaskStore) -> dict[str, list[dict[str, Any]]]:
    """The dump, in an order that does not depend on the database's collation."""
    return {
        table: sorted(rows, key=lambda row: sorted((k, repr(v)) for k, v in row.items()))
        for table, rows in store.dump().items()
    }


def test_two_appliers_on_one_postgres_database_apply_each_record_once(
    postgres_url: str, tmp_path: Path
) -> None:
    """Two core instances project the same records into one database at the same time."""
    log = _log()
    engines = [make_engine(postgres_url) for _ in range(2)]
    stores = [TaskStore(engine, TOPIC) for engine in engines]
    stores[0].create_schema()
    start = threading.Barrier(2, timeout=30)

    def project(store: TaskStore, size: int, records: Sequence[AppliedRecord]) -> None:
        start.wait()
        _apply_in_batches(store, records, size)

    try:
        for round_ in range(3):  # first rows are inserted concurrently, then updated
            part = log[: len(log) * (round_ + 1) // 3]
            with ThreadPoolExecutor(2) as pool:
                futures = [
                    pool.submit(project, stores[0], 7, part),
                    pool.submit(project, stores[1], 5, part),
                ]
                for future in futures:
                    future.result(timeout=120)
            start.reset()

        events = [record.event for record in log if record.event is not None]
        kinds = Counter((event.task_id, type(event.data).__name__) for event in events)
        for number in range(TASKS):
            task_id = f"task-{number:02d}"
            row = stores[1].get(task_id)
            assert row is not None
            counted = (
                row.executions_scheduled,
                row.executions_succeeded,
                row.executions_failed,
                row.executions_skipped,
            )
            distinct = (
                kinds[task_id, "ExecutionScheduled"],
                kinds[task_id, "ExecutionSucceeded"],
                kinds[task_id, "ExecutionFailed"],
                2 * kinds[task_id, "ExecutionSkipped"],  # each skip stands for 2 slots
            )
            assert counted == distinct == (3, 2, 1, 2), task_id
        ends = Counter(record.partition for record in log)
        assert stores[0].offsets() == dict(ends)

        engines.append(make_engine(f"sqlite:///{tmp_path / 'sequential.db'}"))
        sequential = TaskStore(engines[-1], TOPIC)
        sequential.create_schema()
        sequential.apply(log)
        assert _rows_by_key(stores[0]) == _rows_by_key(sequential)
    finally:
        for engine in engines:
            engine.dispose()


def test_the_migrations_build_exactly_the_models(store: TaskStore) -> None:
    """A model changed without a migration fails here (``python -m taskstream.core.migrate
    revision``)."""
    from alembic import command

    from taskstream.core.migrate import alembic_config

    command.check(alembic_config(store.engine))  # raises if autogenerate finds a difference


def test_a_sqlite_file_store_writes_ahead_and_syncs_at_checkpoints(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'nested' / 'store.db'}")
    try:
        TaskStore(engine, "t.task-events").create_schema()
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
        assert (tmp_path / "nested" / "store.db-wal").exists()
    finally:
        engine.dispose()
    memory = make_engine("sqlite://")
    try:
        with memory.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "memory"
    finally:
        memory.dispose()
