from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from taskstream.executor.outcomes import Ending, Outcome, backoff_seconds, records_for
from taskstream.schemas import (
    ExecutionCancelled,
    ExecutionDeadLettered,
    ExecutionFailed,
    ExecutionSucceeded,
    ExecutionTimedOut,
    Priority,
    RetryPolicy,
    RetryScheduled,
    WorkOrder,
    decode_work_order,
    execution_id,
)

NOW = datetime(2030, 1, 1, 12, tzinfo=UTC)
POLICY = RetryPolicy(
    max_attempts=3,
    initial_delay=timedelta(seconds=2),
    multiplier=3,
    max_delay=timedelta(seconds=10),
    jitter=timedelta(seconds=1),
)


def _order(attempt: int = 1, policy: RetryPolicy = POLICY) -> WorkOrder:
    return WorkOrder(
        execution_id=execution_id("t", NOW, attempt),
        task_id="t",
        task_name="n",
        handler="fail",
        attempt=attempt,
        scheduled_for=NOW,
        priority=Priority.LOW,
        queue="default",
        retry=policy,
    )


def test_backoff_is_exponential_capped_and_jittered() -> None:
    no_jitter = POLICY.model_copy(update={"jitter": timedelta(0)})
    assert [backoff_seconds(no_jitter, n) for n in (1, 2, 3, 4)] == [2.0, 6.0, 10.0, 10.0]
    waits = [backoff_seconds(POLICY, 1, rng=random.Random(n)) for n in range(100)]
    assert all(2.0 <= w < 3.0 for w in waits) and len(set(waits)) > 90
    assert 7.0 <= backoff_seconds(POLICY, 1, retry_after=7.0) < 8.0


def test_success_is_one_event() -> None:
    records = records_for(_order(), Outcome(Ending.SUCCEEDED, 0.5, output={"ok": 1}), "w", NOW)
    [event] = records.events
    assert isinstance(event.data, ExecutionSucceeded) and event.data.output == {"ok": 1}
    assert records.dead_letter is None


def test_a_retryable_failure_schedules_the_next_attempt() -> None:
    outcome = Outcome(Ending.FAILED, 0.1, error_type="RetryableError", error_message="busy")
    failed, retry = records_for(_order(), outcome, "w", NOW, rng=random.Random(0)).events
    assert isinstance(failed.data, ExecutionFailed) and failed.data.retryable
    assert isinstance(retry.data, RetryScheduled)
    assert retry.data.attempt == 2
    assert retry.data.execution_id == execution_id("t", NOW, 2)
    assert NOW + timedelta(seconds=2) <= retry.data.due_at < NOW + timedelta(seconds=3)


def test_the_last_attempt_is_dead_lettered() -> None:
    outcome = Outcome(Ending.FAILED, 0.1, error_type="RetryableError", error_message="busy")
    records = records_for(_order(attempt=3), outcome, "w", NOW)
    failed, dead = records.events
    assert isinstance(failed.data, ExecutionFailed)
    assert isinstance(dead.data, ExecutionDeadLettered) and dead.data.reason == "max_attempts"
    assert records.dead_letter is not None
    value, headers = records.dead_letter
    assert decode_work_order(value).attempt == 3
    assert dict(headers)["dead-letter-reason"] == b"max_attempts"


def test_a_permanent_error_is_dead_lettered_at_once() -> None:
    outcome = Outcome(
        Ending.FAILED, 0.1, error_type="PermanentError", error_message="bad input", retryable=False
    )
    records = records_for(_order(), outcome, "w", NOW)
    assert [type(e.data) for e in records.events] == [ExecutionFailed, ExecutionDeadLettered]
    assert records.events[1].data.reason == "permanent"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("ending", "kind"),
    [(Ending.TIMED_OUT, ExecutionTimedOut), (Ending.CANCELLED, ExecutionCancelled)],
)
def test_timeouts_retry_and_cancellations_do_not(ending: Ending, kind: type) -> None:
    outcome = Outcome(ending, 5.0, timeout=5.0, error_message="stop")
    events = records_for(_order(), outcome, "w", NOW).events
    assert isinstance(events[0].data, kind)
    assert (len(events) == 2) == (ending is Ending.TIMED_OUT)
