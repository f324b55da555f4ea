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


def _outcome(offset: int, event_id: str) -> Record:
    record = _record(
        offset,
        "ExecutionSucceeded",
        execution_id=FAILED,
        attempt=1,
        started_at="2026-12-06T21:42:06.5+00:00",
    )
    return Record(record.topic, record.partition, offset, {**record.value, "id": event_id})


def test_a_copy_of_an_outcome_is_one_event_and_not_a_rerun() -> None:
    """A producer that could not confirm a delivery sends the record again: the same
    event (same id) twice on the log, which every consumer reads once."""
    records = [_scheduled(0, FAILED, 1, "schedule"), _outcome(1, "e-1"), _outcome(2, "e-1")]
    folded = _fold_task_events(records, None)
    assert folded.event_copies == 1
    assert folded.executions[FAILED].ends == [(1, "succeeded")]
    assert len(folded.executions[FAILED].starts) == 1


def test_a_second_outcome_with_its_own_id_is_a_second_run() -> None:
    records = [_scheduled(0, FAILED, 1, "schedule"), _outcome(1, "e-1"), _outcome(2, "e-2")]
    folded = _fold_task_events(records, None)
    assert folded.event_copies == 0
    assert [end for end, _ in folded.executions[FAILED].ends] == [1, 2]
