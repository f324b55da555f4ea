"""From how a run ended to the records that say so: outcome events, retries, dead letters.

Pure functions, no I/O. After a run the executor appends :attr:`OutcomeRecords.events`
to ``task-events`` and, if there is one, :attr:`OutcomeRecords.dead_letter` to the
dead-letter topic, and only then commits the work order's offset.

Every outcome event (v2) carries when the handler started and which one it was, so a run
that ends quickly needs no ``ExecutionStarted`` (:mod:`taskstream.executor.started`).

- success: ``ExecutionSucceeded``;
- cancelled: ``ExecutionCancelled`` (never retried);
- timed out or failed: ``ExecutionTimedOut`` / ``ExecutionFailed``, then
  - retryable and attempts left: ``RetryScheduled(due_at=now + backoff)``; the core fires
    the next attempt when due (no executor sleeps on a partition);
  - otherwise: ``ExecutionDeadLettered`` and the work order on the dead-letter topic, with
    the reason (``permanent`` or ``max_attempts``) and the error in its headers.

Backoff is tenacity's exponential wait (``initial_delay * multiplier**(attempt-1)``,
capped at ``max_delay``) plus a random ``[0, jitter)``; a ``RetryableError(delay=...)``
from the handler replaces the exponential part.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from tenacity import RetryCallState, wait_exponential, wait_random

from taskstream.schemas import (
    Event,
    EventData,
    ExecutionCancelled,
    ExecutionDeadLettered,
    ExecutionFailed,
    ExecutionSucceeded,
    ExecutionTimedOut,
    RetryPolicy,
    RetryScheduled,
    WorkOrder,
    encode_work_order,
    execution_id,
)
from taskstream.schemas.codec import Headers, work_order_version

__all__ = ["Ending", "Outcome", "OutcomeRecords", "backoff_seconds", "records_for"]


class Ending(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one run ended."""

    ending: Ending
    duration: float
    output: Any = None
    error_type: str = ""
    error_message: str = ""
    retryable: bool = True
    retry_after: float | None = None
    """Seconds the handler asked to wait before the next attempt (``RetryableError``)."""
    timeout: float | None = None

    @property
    def succeeded(self) -> bool:
        return self.ending is Ending.SUCCEEDED

    @classmethod
    def cancelled(cls, duration: float, reason: str) -> Outcome:
        """Stopped because someone asked (never retried)."""
        return cls(Ending.CANCELLED, duration, error_message=reason, retryable=False)

    @classmethod
    def past_deadline(cls, duration: float, timeout: float) -> Outcome:
        """Still running at its timeout: the executor stopped waiting for it."""
        return cls(
            Ending.TIMED_OUT,
            duration,
            error_type="TimeoutError",
            error_message=f"handler ran past its timeout of {timeout:g}s",
            timeout=timeout,
        )


@dataclass(frozen=True, slots=True)
class OutcomeRecords:
    events: list[Event]
    dead_letter: tuple[bytes, Headers] | None = None


def backoff_seconds(
    policy: RetryPolicy,
    attempt: int,
    *,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> float:
    """The wait after failed attempt ``attempt`` (1-based) before the next one."""
    state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
    state.attempt_number = attempt
    if retry_after is not None:
        base = max(retry_after, 0.0)
    else:
        base = wait_exponential(
            multiplier=policy.initial_delay.total_seconds(),
            exp_base=policy.multiplier,
            max=policy.max_delay.total_seconds(),
        )(state)
    jitter = policy.jitter.total_seconds()
    if jitter <= 0:
        return base
    if rng is not None:
        return base + rng.uniform(0, jitter)
    return base + wait_random(0, jitter)(state)


def records_for(
    order: WorkOrder,
    outcome: Outcome,
    worker_id: str,
    now: datetime,
    rng: random.Random | None = None,
    *,
    started_at: datetime | None = None,
) -> OutcomeRecords:
    """The records of ``order``'s run that ended as ``outcome``; ``started_at``: when
    its handler began (None: it never ran), carried by the outcome event."""
    common: dict[str, Any] = {
        "execution_id": order.execution_id,
        "attempt": order.attempt,
        "scheduled_for": order.scheduled_for,
        "worker_id": worker_id,
        "duration_seconds": round(outcome.duration, 6),
        "started_at": started_at,
        "handler": order.handler,
    }
    if outcome.ending is Ending.SUCCEEDED:
        return OutcomeRecords([_event(order, ExecutionSucceeded(**common, output=outcome.output))])
    if outcome.ending is Ending.CANCELLED:
        cancelled = ExecutionCancelled(**common, reason=outcome.error_message)
        return OutcomeRecords([_event(order, cancelled)])
    ended: EventData
    if outcome.ending is Ending.TIMED_OUT:
        ended = ExecutionTimedOut(**common, timeout_seconds=outcome.timeout or 1.0)
    else:
        ended = ExecutionFailed(
            **common,
            error_type=outcome.error_type or "Error",
            error_message=outcome.error_message,
            retryable=outcome.retryable,
        )
    events = [_event(order, ended)]
    if outcome.retryable and order.attempt < order.retry.max_attempts:
        delay = backoff_seconds(
            order.retry, order.attempt, retry_after=outcome.retry_after, rng=rng
        )
        events.append(
            _event(
                order,
                RetryScheduled(
                    execution_id=execution_id(
                        order.task_id, order.scheduled_for, order.attempt + 1, order.run_key
                    ),
                    failed_execution_id=order.execution_id,
                    attempt=order.attempt + 1,
                    scheduled_for=order.scheduled_for,
                    due_at=now + timedelta(seconds=delay),
                    run_key=order.run_key,
                ),
            )
        )
        return OutcomeRecords(events)
    reason = "max_attempts" if outcome.retryable else "permanent"
    events.append(
        _event(
            order,
            ExecutionDeadLettered(
                execution_id=order.execution_id,
                attempt=order.attempt,
                scheduled_for=order.scheduled_for,
                reason=reason,
                error_type=outcome.error_type or ("TimeoutError" if outcome.timeout else ""),
                error_message=outcome.error_message,
            ),
        )
    )
    headers: Headers = [
        ("dead-letter-reason", reason.encode()),
        ("dead-letter-detail", f"{outcome.error_type}: {outcome.error_message}"[:4000].encode()),
        ("execution-id", order.execution_id.encode()),
        ("task-id", order.task_id.encode()),
        ("attempt", str(order.attempt).encode()),
        ("event-type", WorkOrder.TYPE.encode()),
        ("event-version", str(work_order_version(order)).encode()),
    ]
    return OutcomeRecords(events, (encode_work_order(order), headers))


def _event(order: WorkOrder, data: EventData) -> Event:
    return Event.create(order.task_id, data)
