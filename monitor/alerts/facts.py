"""What the alert rules know about a task, folded from ``task-events``: pure, no I/O.

:func:`fold` applies one event to a task's :class:`TaskFacts` and returns the new facts,
or None when the event changes nothing (a duplicate by event id, or an event no rule
looks at). The schedule part follows the core's aggregate: a change whose
``expected_version`` is not the task's version is ignored, ``anchor`` moves when the
schedule changes, and ``last_slot`` is the latest scheduled slot that fired
(``ExecutionScheduled`` with trigger ``schedule``) or was skipped (``ExecutionSkipped``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict

from taskstream.schemas import (
    Event,
    ExecutionCancelled,
    ExecutionDeadLettered,
    ExecutionFailed,
    ExecutionScheduled,
    ExecutionSkipped,
    ExecutionStarted,
    ExecutionSucceeded,
    ExecutionTimedOut,
    Schedule,
    TaskCreated,
    TaskDeleted,
    TaskPaused,
    TaskQuarantined,
    TaskResumed,
    TaskUpdated,
    Trigger,
)

__all__ = ["Outcome", "TaskFacts", "fold"]

_EVENT_IDS = 32
_OUTCOMES = 500
_RUNNING = 100
_OUTCOME_AGE = timedelta(days=7)

Status = Literal["active", "paused", "quarantined", "deleted", "unknown"]


class Outcome(BaseModel):
    """One attempt that ended: when, and whether it succeeded."""

    model_config = ConfigDict(frozen=True)

    at: AwareDatetime
    ok: bool


class TaskFacts(BaseModel):
    """A task as the alert rules see it (a JSON object in the monitor's table)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    task_id: str
    name: str | None = None
    status: Status = "unknown"
    """``unknown``: execution events seen, but not the task's creation."""
    version: int = 0
    schedule: Schedule | None = None
    anchor: AwareDatetime | None = None
    last_slot: AwareDatetime | None = None
    consecutive_failures: int = 0
    last_failure: dict[str, Any] | None = None
    outcomes: tuple[Outcome, ...] = ()
    running: dict[str, AwareDatetime] = {}
    """Executions started and not ended: execution id -> when it (last) started."""
    dead_letters: int = 0
    """Dead letters since the last success."""
    last_dead_letter: dict[str, Any] | None = None
    event_ids: tuple[str, ...] = ()
    change_event_id: str | None = None
    """The task's last change (creation, update, pause...): a ``TaskQuarantined`` that
    names another one is stale, as in the core's aggregate."""
    quarantine: dict[str, Any] | None = None
    """While ``quarantined``: the component, the error and when (``TaskQuarantined``)."""

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def _ended(facts: TaskFacts, execution_id: str, at: datetime, ok: bool) -> dict[str, Any]:
    horizon = at - _OUTCOME_AGE
    outcomes = [o for o in facts.outcomes if o.at >= horizon][-(_OUTCOMES - 1) :]
    running = {k: v for k, v in facts.running.items() if k != execution_id}
    return {"outcomes": (*outcomes, Outcome(at=at, ok=ok)), "running": running}


def fold(facts: TaskFacts | None, event: Event) -> TaskFacts | None:
    """The task's facts after ``event``; None if it changes nothing."""
    current = facts or TaskFacts(task_id=event.task_id)
    if event.id in current.event_ids:
        return None
    changes = _changes(current, event)
    if changes is None:
        return None
    changes["event_ids"] = (*current.event_ids, event.id)[-_EVENT_IDS:]
    return current.model_copy(update=changes)


def _changes(facts: TaskFacts, event: Event) -> dict[str, Any] | None:
    data, at = event.data, _utc(event.occurred_at)
    if isinstance(data, TaskCreated):
        if facts.status != "unknown":
            return None
        return {
            "name": data.task.name,
            "status": "active",
            "version": 1,
            "schedule": data.task.schedule,
            "anchor": at,
            "change_event_id": event.id,
        }
    if isinstance(data, TaskQuarantined):
        if facts.status in ("unknown", "deleted", "quarantined"):
            return None
        if facts.change_event_id is not None and data.change_event_id != facts.change_event_id:
            return None  # the task changed since the component failed on it
        return {
            "status": "quarantined",
            "quarantine": {
                "component": data.component,
                "reason": f"{data.error_type}: {data.error_message}"[:500],
                "at": at.isoformat(),
            },
        }
    if isinstance(data, TaskUpdated | TaskPaused | TaskResumed | TaskDeleted):
        if facts.status in ("unknown", "deleted"):
            return None
        if data.expected_version is not None and data.expected_version != facts.version:
            return None
        changes: dict[str, Any] = {"version": facts.version + 1, "change_event_id": event.id}
        if isinstance(data, TaskUpdated):
            changes.update(name=data.task.name, schedule=data.task.schedule)
            if facts.status == "quarantined":  # a new definition lifts the quarantine
                changes.update(status="active", quarantine=None)
            if data.task.schedule != facts.schedule:
                changes["anchor"] = at
        elif isinstance(data, TaskPaused):
            if facts.status != "active":
                return None
            changes["status"] = "paused"
        elif isinstance(data, TaskResumed):
            if facts.status not in ("paused", "quarantined"):
                return None
            changes.update(status="active", quarantine=None)
        else:
            changes["status"] = "deleted"
        return changes
    if isinstance(data, ExecutionScheduled):
        if data.trigger is not Trigger.SCHEDULE:
            return None
        return _slot(facts, _utc(data.scheduled_for))
    if isinstance(data, ExecutionSkipped):
        return _slot(facts, _utc(data.last_scheduled_for or data.scheduled_for))
    if isinstance(data, ExecutionStarted):
        running = dict(facts.running)
        running.pop(data.execution_id, None)
        running[data.execution_id] = at
        return {"running": dict(list(running.items())[-_RUNNING:])}
    if isinstance(data, ExecutionSucceeded):
        return {
            **_ended(facts, data.execution_id, at, ok=True),
            "consecutive_failures": 0,
            "dead_letters": 0,
        }
    if isinstance(data, ExecutionFailed | ExecutionTimedOut):
        if isinstance(data, ExecutionFailed):
            error_type, message = data.error_type, data.error_message
        else:
            error_type, message = "TimeoutError", f"ran past {data.timeout_seconds:g}s"
        return {
            **_ended(facts, data.execution_id, at, ok=False),
            "consecutive_failures": facts.consecutive_failures + 1,
            "last_failure": {
                "execution_id": data.execution_id,
                "attempt": data.attempt,
                "error_type": error_type,
                "error_message": message[:500],
                "at": at.isoformat(),
            },
        }
    if isinstance(data, ExecutionCancelled):
        return {"running": {k: v for k, v in facts.running.items() if k != data.execution_id}}
    if isinstance(data, ExecutionDeadLettered):
        return {
            "running": {k: v for k, v in facts.running.items() if k != data.execution_id},
            "dead_letters": facts.dead_letters + 1,
            "last_dead_letter": {
                "execution_id": data.execution_id,
                "attempt": data.attempt,
                "reason": data.reason,
                "error_type": data.error_type,
                "error_message": data.error_message[:500],
                "at": at.isoformat(),
            },
        }
    return None


def _slot(facts: TaskFacts, slot: datetime) -> dict[str, Any] | None:
    if facts.last_slot is not None and slot <= facts.last_slot:
        return None
    return {"last_slot": slot}
