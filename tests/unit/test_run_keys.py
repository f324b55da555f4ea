"""A run of a slot beside the schedule's own (a backfill's) keeps ids of its own.

``run_key`` is part of every id of that run: its first attempt, its retries (computed by
the executor), the pending run the core fires for a retry, its work order and its
``ExecutionScheduled``. Without one, every id and every record is what it was before v2.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson

from taskstream.core.aggregate import pending_run
from taskstream.core.shard import Shard
from taskstream.executor.outcomes import Ending, Outcome, records_for
from taskstream.infra.settings import Topics
from taskstream.schemas import (
    DeadLetterReplayed,
    Event,
    ExecutionScheduled,
    Priority,
    RetryPolicy,
    RetryScheduled,
    Schedule,
    TaskCreated,
    TaskSpec,
    Trigger,
    WorkOrder,
    decode_event,
    decode_work_order,
    encode_event,
    encode_work_order,
    execution_id,
)
from taskstream.schemas.codec import work_order_headers
from taskstream.schemas.events import ExecutionScheduledV1, RetryScheduledV1

TASK = "7b4f3c2e-0000-4000-8000-000000000001"
SLOT = datetime(2030, 1, 1, 9, tzinfo=UTC)
KEY = "backfill:2c1e"


def _order(run_key: str | None) -> WorkOrder:
    return WorkOrder(
        execution_id=execution_id(TASK, SLOT, 1, run_key),
        task_id=TASK,
        task_name="t",
        handler="fail",
        attempt=1,
        scheduled_for=SLOT,
        priority=Priority.MEDIUM,
        queue="default",
        retry=RetryPolicy(max_attempts=3),
        run_key=run_key,
    )


def test_a_run_key_gives_ids_no_attempt_of_the_schedules_run_shares() -> None:
    own = {execution_id(TASK, SLOT, attempt) for attempt in range(1, 6)}
    keyed = {execution_id(TASK, SLOT, attempt, KEY) for attempt in range(1, 6)}
    assert len(own) == len(keyed) == 5 and not own & keyed
    assert execution_id(TASK, SLOT, 1, KEY) == execution_id(TASK, SLOT, 1, KEY)
    assert execution_id(TASK, SLOT, 1, None) == execution_id(TASK, SLOT, 1)


def test_a_retry_keeps_the_run_key_in_its_id_and_its_event() -> None:
    failed = Outcome(Ending.FAILED, 0.1, error_type="E", error_message="boom", retryable=True)
    for run_key in (None, KEY):
        records = records_for(_order(run_key), failed, "worker-1", SLOT)
        [retry] = [e.data for e in records.events if isinstance(e.data, RetryScheduled)]
        assert retry.execution_id == execution_id(TASK, SLOT, 2, run_key)
        assert retry.run_key == run_key
        run = pending_run(Event.create(TASK, retry), 0)
        assert run is not None and run.run_key == run_key and run.trigger is Trigger.RETRY


def test_a_replayed_dead_letter_keeps_the_run_key() -> None:
    replayed = DeadLetterReplayed(
        execution_id=execution_id(TASK, SLOT, 4, KEY),
        dead_lettered_execution_id=execution_id(TASK, SLOT, 3, KEY),
        attempt=4,
        scheduled_for=SLOT,
        due_at=SLOT,
        run_key=KEY,
    )
    run = pending_run(Event.create(TASK, replayed), 0)
    assert run is not None and run.run_key == KEY and run.execution_id == replayed.execution_id


def test_the_core_fires_a_keyed_retry_with_its_key_on_the_order_and_the_event() -> None:
    shard = Shard(Topics("t."))
    shard.mark_ready(0)
    spec = TaskSpec(name="t", handler="noop", schedule=Schedule(every=timedelta(days=1)))
    shard.apply(Event.create(TASK, TaskCreated(task=spec), occurred_at=SLOT), 0)
    retry = RetryScheduled(
        execution_id=execution_id(TASK, SLOT, 2, KEY),
        failed_execution_id=execution_id(TASK, SLOT, 1, KEY),
        attempt=2,
        scheduled_for=SLOT,
        due_at=SLOT + timedelta(seconds=5),
        run_key=KEY,
    )
    shard._undecided[retry.failed_execution_id] = None  # its first failure was folded
    shard.apply(Event.create(TASK, retry), 0)
    plan = shard.due(SLOT + timedelta(seconds=6), limit=10)
    [order] = plan.orders
    assert order.execution_id == retry.execution_id and order.run_key == KEY
    [fired] = [e.data for e in plan.events if isinstance(e.data, ExecutionScheduled)]
    assert fired.run_key == KEY and fired.trigger is Trigger.RETRY


def test_an_order_without_a_run_key_is_written_as_v1() -> None:
    plain = encode_work_order(_order(None))
    assert b"run_key" not in plain and decode_work_order(plain) == _order(None)
    assert dict(work_order_headers(_order(None)))["event-version"] == b"1"
    keyed = encode_work_order(_order(KEY))
    assert orjson.loads(keyed)["run_key"] == KEY and decode_work_order(keyed) == _order(KEY)
    assert dict(work_order_headers(_order(KEY)))["event-version"] == b"2"


def test_v1_events_read_as_v2_with_no_run_key() -> None:
    scheduled = ExecutionScheduledV1.model_validate(
        {
            "execution_id": "e",
            "attempt": 1,
            "scheduled_for": SLOT.isoformat(),
            "topic": "t",
            "queue": "default",
            "priority": "medium",
            "trigger": "manual",
        }
    )
    retry = RetryScheduledV1(
        execution_id="e2", failed_execution_id="e", attempt=2, scheduled_for=SLOT, due_at=SLOT
    )
    for old in (scheduled, retry):
        raw = orjson.dumps(
            {
                "id": "i",
                "type": old.TYPE,
                "version": 1,
                "task_id": TASK,
                "occurred_at": SLOT.isoformat(),
                "data": old.model_dump(mode="json"),
            }
        )
        event = decode_event(raw)
        assert isinstance(event.data, ExecutionScheduled | RetryScheduled)
        assert event.version == 2 and event.data.run_key is None
        assert decode_event(encode_event(event)) == event
    read = decode_event(
        orjson.dumps(
            {
                "id": "i",
                "type": "ExecutionScheduled",
                "version": 1,
                "task_id": TASK,
                "occurred_at": SLOT.isoformat(),
                "data": scheduled.model_dump(mode="json"),
            }
        )
    ).data
    assert isinstance(read, ExecutionScheduled) and read.trigger is Trigger.MANUAL
