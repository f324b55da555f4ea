"""Folding execution events into execution records: pure functions, no I/O.

A record is a JSON object per execution id. Applying the same event twice changes
nothing (its id is remembered), and a late event never moves a finished execution
back to an earlier status.
"""

from __future__ import annotations

from typing import Any

from taskstream.schemas import (
    TERMINAL_EVENT_TYPES,
    Event,
    ExecutionCancelled,
    ExecutionDeadLettered,
    ExecutionFailed,
    ExecutionScheduled,
    ExecutionStarted,
    ExecutionSucceeded,
    ExecutionTimedOut,
)

__all__ = [
    "EXECUTION_EVENTS",
    "TERMINAL_STATUSES",
    "apply_event",
    "execution_id_of",
    "public_record",
    "push_history",
    "push_recent",
]

EXECUTION_EVENTS = (
    ExecutionScheduled,
    ExecutionStarted,
    ExecutionSucceeded,
    ExecutionFailed,
    ExecutionTimedOut,
    ExecutionCancelled,
    ExecutionDeadLettered,
)
_RANK = {
    "scheduled": 0,
    "running": 1,
    "succeeded": 2,
    "failed": 2,
    "timed_out": 2,
    "cancelled": 2,
    "dead_lettered": 3,
}
_MAX_REMEMBERED_EVENTS = 16
TERMINAL_STATUSES = frozenset(status for status, rank in _RANK.items() if rank >= 2)


def execution_id_of(event: Event) -> str | None:
    data = event.data
    return data.execution_id if isinstance(data, EXECUTION_EVENTS) else None


def apply_event(record: dict[str, Any] | None, event: Event) -> dict[str, Any] | None:
    """The record after ``event``; None if the event changes nothing (e.g. a duplicate)."""
    data = event.data
    if not isinstance(data, EXECUTION_EVENTS):
        return None
    record = (
        dict(record)
        if record
        else {
            "execution_id": data.execution_id,
            "task_id": event.task_id,
            "attempt": data.attempt,
            "scheduled_for": data.scheduled_for.isoformat(),
            "status": None,
            "event_ids": [],
        }
    )
    if event.id in record["event_ids"]:
        return None
    record["event_ids"] = [*record["event_ids"], event.id][-_MAX_REMEMBERED_EVENTS:]
    at = event.occurred_at.isoformat()
    if isinstance(data, ExecutionScheduled):
        record.update(fired_at=at, queue=data.queue, priority=data.priority.value)
        status = "scheduled"
    elif isinstance(data, ExecutionStarted):
        record.update(started_at=at, worker_id=data.worker_id, handler=data.handler)
        status = "running"
    elif isinstance(data, ExecutionSucceeded):
        record.update(
            finished_at=at,
            duration_seconds=data.duration_seconds,
            output=data.output,
            worker_id=data.worker_id,
        )
        status = "succeeded"
    elif isinstance(data, ExecutionTimedOut):
        record.update(
            finished_at=at,
            duration_seconds=data.duration_seconds,
            error_type="TimeoutError",
            error_message=f"ran past its timeout of {data.timeout_seconds:g}s",
            worker_id=data.worker_id,
        )
        status = "timed_out"
    elif isinstance(data, ExecutionCancelled):
        record.update(
            finished_at=at,
            duration_seconds=data.duration_seconds,
            error_message=data.reason,
            worker_id=data.worker_id,
        )
        status = "cancelled"
    elif isinstance(data, ExecutionDeadLettered):
        record.update(dead_letter_reason=data.reason)
        status = "dead_lettered"
    else:
        assert isinstance(data, ExecutionFailed)
        record.update(
            finished_at=at,
            duration_seconds=data.duration_seconds,
            error_type=data.error_type,
            error_message=data.error_message,
            retryable=data.retryable,
            worker_id=data.worker_id,
        )
        status = "failed"
    if isinstance(data, TERMINAL_EVENT_TYPES) and data.started_at is not None:
        # v2: a run that ended quickly has no ExecutionStarted; its outcome says it
        record.update(started_at=data.started_at.isoformat(), handler=data.handler)
    current = record["status"]
    if current is None or _RANK[status] >= _RANK[current]:
        record["status"] = status
    return record


def push_history(history: list[str] | None, execution_id: str, size: int) -> list[str] | None:
    """The task's history (newest first) with ``execution_id``; None if already there."""
    history = list(history or [])
    if execution_id in history:
        return None
    return [execution_id, *history][:size]


def push_recent(
    recent: list[list[Any]] | None, ended_at: float, execution_id: str, size: int
) -> list[list[Any]] | None:
    """The recent list (``[ended_at, execution id]`` pairs, newest first) with one more.

    None if ``execution_id`` is already there. ``ended_at`` is in epoch seconds.
    """
    recent = list(recent or [])
    if any(entry[1] == execution_id for entry in recent):
        return None
    at = next((i for i, entry in enumerate(recent) if entry[0] < ended_at), len(recent))
    recent.insert(at, [ended_at, execution_id])
    return recent[:size]


def public_record(record: dict[str, Any]) -> dict[str, Any]:
    """A record as the API shows it (without the bookkeeping of event ids)."""
    return {key: value for key, value in record.items() if key != "event_ids"}
