"""The task store on a real SQLite database: events in, rows and offsets out, once."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from core.store import AppliedRecord, TaskStore, as_utc, make_engine
from schemas import (
    Event,
    ExecutionFailed,
    ExecutionScheduled,
    ExecutionSucceeded,
    Priority,
    Schedule,
    TaskCreated,
    TaskSpec,
)

SLOT = datetime(2030, 1, 1, 9, tzinfo=UTC)


def _store(tmp_path: Path) -> TaskStore:
    store = TaskStore(make_engine(f"sqlite:///{tmp_path / 'nested' / 'store.db'}"), "t.task-events")
    store.create_schema()
    return store


def _history(task_id: str) -> list[Event]:
    spec = TaskSpec(name="report", schedule=Schedule(cron="0 9 * * *"), handler="echo")
    common = {"attempt": 1, "scheduled_for": SLOT}
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


def test_events_become_rows_and_offsets_advance(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.apply([AppliedRecord(2, offset, event) for offset, event in enumerate(_history("t1"))])
    row = store.get("t1")
    assert row is not None
    assert (row.executions_scheduled, row.executions_succeeded, row.executions_failed) == (1, 1, 1)
    assert row.last_status == "failed"
    assert row.partition == 2
    assert store.offsets() == {2: 4}


def test_replaying_applied_records_changes_nothing(tmp_path: Path) -> None:
    store = _store(tmp_path)
    records = [AppliedRecord(0, offset, event) for offset, event in enumerate(_history("t1"))]
    store.apply(records[:3])
    store.apply(records)  # the first three again, then the fourth
    row = store.get("t1")
    assert row is not None
    assert (row.executions_scheduled, row.executions_succeeded, row.executions_failed) == (1, 1, 1)
    assert store.offsets() == {0: 4}


def test_an_undecodable_record_still_advances_the_offset(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.apply([AppliedRecord(1, 7, None)])
    assert store.offsets() == {1: 8}
    assert store.list_tasks(page=0, size=10) == ([], 0)


def test_snapshot_reads_offsets_then_the_partitions_tasks(tmp_path: Path) -> None:
    store = _store(tmp_path)
    created_b = _history("b")[0]
    store.apply([AppliedRecord(0, 0, _history("a")[0]), AppliedRecord(1, 0, created_b)])
    offsets, rows = store.snapshot([1])
    assert offsets == {1: 1}
    assert [row.id for row in rows] == ["b"]
    assert as_utc(rows[0].created_at) == created_b.occurred_at  # the instant survives SQLite
