"""The store's batch writes (core.store_writes) on SQLite and PostgreSQL.

A log with every kind of event the store reads, applied in batches of several sizes, from
encoded records (the projection's cheap decoder) and from pydantic events, must give the
same rows; the tasks must be the ones the scheduler's fold (core.shard.Shard) holds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from taskstream.core.aggregate import backfill_run_key
from taskstream.core.shard import Shard
from taskstream.core.store import AppliedRecord, TaskStore, make_engine
from taskstream.core.store_fold import decode_record
from taskstream.infra.settings import CommonSettings
from taskstream.schemas import (
    BackfillFinished,
    BackfillRequested,
    BackfillState,
    BackfillStep,
    CancelRequested,
    Event,
    ExecutionDeadLettered,
    ExecutionFailed,
    ExecutionScheduled,
    ExecutionSkipped,
    ExecutionStarted,
    ExecutionSucceeded,
    Priority,
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
    execution_id,
)

T0 = datetime(2030, 1, 1, 9, tzinfo=UTC)
TOPIC = "t.task-events"


@pytest.fixture(params=["sqlite", "postgres"])
def new_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], TaskStore]]:
    """Makes empty stores, each in a database of its own."""
    stores: list[TaskStore] = []

    def create() -> TaskStore:
        if request.param == "sqlite":
            url = f"sqlite:///{tmp_path / str(len(stores))}.db"
        else:
            url = request.getfixturevalue("new_postgres_database")()
        store = TaskStore(make_engine(url), TOPIC)
        store.create_schema()
        stores.append(store)
        return store

    yield create
    for store in stores:
        store.engine.dispose()


def _scheduled(task_id: str, execution_id: str, slot: datetime, **extra: Any) -> Event:
    data = ExecutionScheduled(
        execution_id=execution_id,
        attempt=extra.pop("attempt", 1),
        scheduled_for=slot,
        topic="x",
        queue="default",
        priority=Priority.MEDIUM,
        **extra,
    )
    return Event.create(task_id, data, occurred_at=slot)


def _run(task_id: str, execution_id: str, slot: datetime, ok: bool = True) -> list[Event]:
    common: dict[str, Any] = {"execution_id": execution_id, "attempt": 1, "scheduled_for": slot}
    end = (
        ExecutionSucceeded(worker_id="w", duration_seconds=0.1, **common)
        if ok
        else ExecutionFailed(
            worker_id="w", duration_seconds=0.1, error_type="E", error_message="m", **common
        )
    )
    return [
        Event.create(task_id, ExecutionStarted(worker_id="w", handler="h", **common)),
        Event.create(task_id, end),
    ]


def _log() -> list[tuple[int, Event]]:
    """(partition, event): tasks over two partitions, every event type the store reads."""
    every = TaskSpec(name="every", schedule=Schedule(every=timedelta(minutes=1)), handler="h")
    once = TaskSpec(name="once", schedule=Schedule(at=T0), handler="h")
    log: list[tuple[int, Event]] = []

    def add(partition: int, *events: Event) -> None:
        log.extend((partition, event) for event in events)

    add(0, Event.create("a", TaskCreated(task=every), occurred_at=T0 - timedelta(hours=1)))
    add(1, Event.create("b", TaskCreated(task=once), occurred_at=T0 - timedelta(hours=1)))
    add(0, _scheduled("a", "a1", T0), *_run("a", "a1", T0))
    add(1, _scheduled("b", "b1", T0))  # the one-shot completes
    add(0, _scheduled("a", "a2", T0 + timedelta(minutes=1)))
    add(1, *_run("b", "b1", T0, ok=False))
    add(
        1,
        Event.create(
            "b",
            RetryScheduled(
                execution_id="b1-2",
                failed_execution_id="b1",
                attempt=2,
                scheduled_for=T0,
                due_at=T0 + timedelta(seconds=30),
            ),
        ),
    )
    add(0, *_run("a", "a2", T0 + timedelta(minutes=1)))  # started in a later batch
    add(0, Event.create("a", CancelRequested(execution_id="a2")))
    add(0, Event.create("a", TaskPaused(expected_version=1)))
    add(0, Event.create("a", TaskPaused(expected_version=1)))  # stale: rejected
    add(
        0,
        Event.create(
            "a",
            ExecutionSkipped(scheduled_for=T0 + timedelta(minutes=2), reason=SkipReason.PAUSED),
        ),
    )
    add(0, Event.create("a", TaskResumed()))
    add(1, _scheduled("b", "b1-2", T0, attempt=2, trigger=Trigger.RETRY))
    add(
        1,
        Event.create(
            "b",
            ExecutionDeadLettered(
                execution_id="b1-2", attempt=2, scheduled_for=T0, reason="max_attempts"
            ),
        ),
    )
    changed = every.model_copy(update={"name": "renamed", "params": {"k": [1, 2]}})
    add(0, Event.create("a", TaskUpdated(task=changed, expected_version=3)))
    add(0, Event.create("a", RunRequested(), occurred_at=T0 + timedelta(minutes=5)))
    add(0, Event.create("c", TaskCreated(task=every), occurred_at=T0))
    add(0, Event.create("c", TaskDeleted()))
    add(0, _scheduled("ghost", "g1", T0), *_run("ghost", "g1", T0))  # an unknown task
    return log


def _records(log: list[tuple[int, Event]], encoded: bool) -> list[AppliedRecord]:
    offsets = {0: 0, 1: 0}
    records = []
    for partition, event in log:
        decoded = decode_record(encode_event(event)) if encoded else event
        records.append(AppliedRecord(partition, offsets[partition], decoded))
        offsets[partition] += 1
    return records


@pytest.mark.parametrize("size", [1, 3, 1000])
def test_encoded_records_and_events_give_the_same_rows_in_any_batches(
    new_store: Callable[[], TaskStore], size: int
) -> None:
    log = _log()
    stores = {name: new_store() for name in ("fast", "model")}
    for name, store in stores.items():
        records = _records(log, encoded=name == "fast")
        for start in range(0, len(records), size):
            store.apply(records[start : start + size])
        store.apply(records)  # a replay changes nothing
    fast, model = (stores[name].dump() for name in ("fast", "model"))
    assert fast == model

    a, b = (stores["fast"].get(task_id) for task_id in ("a", "b"))
    assert a is not None and b is not None
    assert (a.name, a.status, a.version, a.last_status) == ("renamed", "active", 4, "succeeded")
    assert (a.executions_scheduled, a.executions_succeeded, a.executions_skipped) == (2, 2, 1)
    assert (b.status, b.executions_scheduled, b.executions_failed) == ("completed", 2, 1)
    assert b.last_status == "scheduled" and b.last_execution_id == "b1-2"
    assert stores["fast"].get("ghost") is None
    snapshot = stores["fast"].snapshot([0, 1])
    assert snapshot.active == [("b", "b1-2", T0)]
    assert [(run.task_id, run.trigger) for run in snapshot.runs] == [("a", Trigger.MANUAL)]
    assert stores["fast"].offsets() == {p: sum(1 for q, _ in log if q == p) for p in (0, 1)}


def test_the_store_holds_the_tasks_the_scheduler_folds(new_store: Callable[[], TaskStore]) -> None:
    log = _log()
    store = new_store()
    records = _records(log, encoded=True)
    for start in range(0, len(records), 4):
        store.apply(records[start : start + 4])
    shard = Shard(CommonSettings().topics)
    for partition, event in log:
        shard.apply(event, partition)
    stored = {state.task_id: state for state in store.snapshot([0, 1]).tasks}
    assert set(stored) == {"a", "b"}  # c is deleted
    for task_id, state in stored.items():
        assert state == shard.state(task_id)


def test_a_task_created_in_one_batch_and_run_in_others_keeps_its_spec(
    new_store: Callable[[], TaskStore],
) -> None:
    """Later batches update a task's counters and status, not its spec (written once)."""
    store = new_store()
    spec = TaskSpec(name="x", schedule=Schedule(at=T0), handler="h", params={"n": 1})
    events = [
        Event.create("x", TaskCreated(task=spec), occurred_at=T0 - timedelta(minutes=1)),
        _scheduled("x", "x1", T0),
        *_run("x", "x1", T0),
    ]
    for offset, event in enumerate(events):
        store.apply([AppliedRecord(0, offset, decode_record(encode_event(event)))])
    row = store.get("x")
    assert row is not None
    assert row.spec == spec.model_dump(mode="json")
    assert (row.status, row.last_status, row.executions_succeeded) == (
        "completed",
        "succeeded",
        1,
    )
    assert store.snapshot([0]).active == []


@pytest.mark.parametrize("size", [1, 2, 1000])
def test_a_late_copy_of_a_retry_that_ran_leaves_no_pending_run(
    new_store: Callable[[], TaskStore], size: int
) -> None:
    """An executor killed after reporting a failure, before committing, leaves the order to
    another: the rerun writes the failure and the retry again, after the retry ran. Only the
    first failure of an execution decides a retry (in batches of any size)."""
    spec = TaskSpec(name="x", schedule=Schedule(at=T0), handler="h")
    retry = Event.create(
        "x",
        RetryScheduled(
            execution_id="x1-2",
            failed_execution_id="x1",
            attempt=2,
            scheduled_for=T0,
            due_at=T0 + timedelta(seconds=30),
        ),
    )
    rerun_retry = Event.create("x", retry.data)  # same payload, a new event id
    events = [
        Event.create("x", TaskCreated(task=spec), occurred_at=T0 - timedelta(minutes=1)),
        _scheduled("x", "x1", T0),
        *_run("x", "x1", T0, ok=False),
        retry,
        _scheduled("x", "x1-2", T0, attempt=2, trigger=Trigger.RETRY),
        *_run("x", "x1-2", T0),
        *_run("x", "x1", T0, ok=False),  # the rerun of attempt 1
        rerun_retry,
    ]
    store = new_store()
    records = [
        AppliedRecord(0, offset, decode_record(encode_event(event)))
        for offset, event in enumerate(events)
    ]
    for start in range(0, len(records), size):
        store.apply(records[start : start + size])
    snapshot = store.snapshot([0])
    assert snapshot.runs == [], "the retry ran already"
    assert snapshot.active == []
    row = store.get("x")
    assert row is not None
    assert (row.executions_scheduled, row.executions_failed, row.executions_succeeded) == (2, 1, 1)


def _backfill_log(cancel: bool) -> list[tuple[int, Event]]:
    """A task, a backfill of 3 hourly slots, its first slot fired with the next step."""
    spec = TaskSpec(name="hourly", schedule=Schedule(cron="0 * * * *"), handler="h")
    start = T0 - timedelta(days=1)
    key = backfill_run_key("bf")
    plan: dict[str, Any] = {"backfill_id": "bf", "end": start + timedelta(hours=2), "rate": 2.0}
    log = [
        Event.create("t", TaskCreated(task=spec), occurred_at=T0 - timedelta(hours=1)),
        Event.create(
            "t",
            BackfillRequested(start=start, first_slot=start, total=3, **plan),
            occurred_at=T0,
        ),
        _scheduled(
            "t", execution_id("t", start, 1, key), start, trigger=Trigger.BACKFILL, run_key=key
        ),
        Event.create(
            "t",
            BackfillStep(
                slot=start + timedelta(hours=1),
                index=2,
                total=3,
                due_at=T0 + timedelta(seconds=1),
                **plan,
            ),
        ),
    ]
    if cancel:
        finished = BackfillFinished(backfill_id="bf", state=BackfillState.CANCELLED, fired=1)
        log.append(Event.create("t", finished))
        late = BackfillStep(slot=start + timedelta(hours=2), index=3, total=3, due_at=T0, **plan)
        log.append(Event.create("t", late))  # raced the cancel: fires nothing
    return [(0, event) for event in log]


@pytest.mark.parametrize("cancel", [False, True])
@pytest.mark.parametrize("size", [1, 1000])
def test_a_backfill_s_progress_and_next_step_are_kept_until_it_ends(
    new_store: Callable[[], TaskStore], size: int, cancel: bool
) -> None:
    log = _backfill_log(cancel)
    stores = {name: new_store() for name in ("fast", "model")}
    for name, store in stores.items():
        records = _records(log, encoded=name == "fast")
        for start in range(0, len(records), size):
            store.apply(records[start : start + size])
    fast, model = (stores[name].dump() for name in ("fast", "model"))
    assert fast == model
    row = stores["fast"].get("t")
    assert row is not None and row.backfill is not None
    assert (row.backfill["fired"], row.backfill["total"]) == (1, 3)
    assert row.backfill["state"] == ("cancelled" if cancel else "running")
    runs = stores["fast"].snapshot([0]).runs
    shard = Shard(CommonSettings().topics)
    for partition, event in log:
        shard.apply(event, partition)
    if cancel:
        assert runs == []
        # a new owner restored from the store, then a step that raced the cancel: nothing
        restored = Shard(CommonSettings().topics, stores["fast"].snapshot([0]))
        restored.mark_ready(0)
        late = BackfillStep(
            backfill_id="bf",
            end=T0,
            total=3,
            rate=2.0,
            slot=T0 - timedelta(hours=1),
            index=3,
            due_at=T0,
        )
        restored.apply(Event.create("t", late), 0)
        plan = restored.due(T0 + timedelta(seconds=5), limit=10)
        fired = [e.data for e in plan.events if isinstance(e.data, ExecutionScheduled)]
        assert [f.trigger for f in fired] == [Trigger.SCHEDULE]  # the task's own 09:00 only
        return
    [run] = runs  # the next step, with its cursor: a new owner goes on from there
    assert run.trigger is Trigger.BACKFILL and run.run_key == backfill_run_key("bf")
    assert run.backfill is not None and (run.backfill.index, run.backfill.total) == (2, 3)
    assert run.scheduled_for == T0 - timedelta(days=1) + timedelta(hours=1)
    assert run == shard._runs[run.execution_id]  # the scheduler's fold holds the same timer
