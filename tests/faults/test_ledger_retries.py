"""The ledger's retry check: a retry is owed once, however often it is reported."""

from __future__ import annotations

from typing import Any

from tests.faults.ledger import Record, _fold_task_events

TASK = "task-1"
FAILED, RETRY = "exec-attempt-1", "exec-attempt-2"


def _record(offset: int, kind: str, **data: Any) -> Record:
    value = {"type": kind, "task_id": TASK, "occurred_at": "2026-12-06T21:42:06+00:00"}
    return Record("task-events", 0, offset, {**value, "data": data})


def _scheduled(offset: int, ident: str, attempt: int, trigger: str) -> Record:
    return _record(
        offset,
        "ExecutionScheduled",
        execution_id=ident,
        attempt=attempt,
        trigger=trigger,
        scheduled_for="2026-12-06T21:42:06+00:00",
    )


def _retry(offset: int) -> Record:
    return _record(
        offset,
        "RetryScheduled",
        execution_id=RETRY,
        failed_execution_id=FAILED,
        due_at="2026-12-06T21:42:07+00:00",
    )


def test_a_retry_reported_again_after_it_fired_is_not_a_lost_retry() -> None:
    # attempt 1 fails and reports its retry; the scheduler fires it; the executor is
    # killed before committing, reruns attempt 1, which reports the same retry again
    records = [
        _scheduled(0, FAILED, 1, "schedule"),
        _retry(1),
        _scheduled(2, RETRY, 2, "retry"),
        _retry(3),
    ]
    assert _fold_task_events(records, None).lost_retries == []


def test_a_retry_that_never_fired_is_lost() -> None:
    folded = _fold_task_events([_scheduled(0, FAILED, 1, "schedule"), _retry(1)], None)
    assert folded.lost_retries == [f"retry {RETRY} of {FAILED} (task {TASK}) was never fired"]
