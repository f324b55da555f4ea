"""The task aggregate: how events change a task, in one place.

The store's projection and the scheduler both fold ``task-events`` through
:func:`apply`, so they agree on every task's status, version and last slot. The fold
is deterministic and idempotent: a change whose ``expected_version`` is not the task's
version is *rejected* (a no-op for every consumer, since they all read the log in the
same order), and replaying an event that is already applied changes nothing.

:func:`folds` says which events :func:`apply` reads a task for; for any other event it
returns None whatever the state, so a consumer that keeps tasks in another form (the
scheduler's :class:`taskstream.core.shard.Shard`) need not build a :class:`TaskState` for them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from taskstream.schemas import (
    BackfillOverlap,
    BackfillRequested,
    BackfillStep,
    DeadLetterReplayed,
    Event,
    ExecutionScheduled,
    ExecutionSkipped,
    RetryScheduled,
    RunRequested,
    Schedule,
    TaskCreated,
    TaskDeleted,
    TaskPaused,
    TaskQuarantined,
    TaskResumed,
    TaskSpec,
    TaskUpdated,
    Trigger,
)
from taskstream.schemas import execution_id as make_execution_id
from taskstream.schemas.schedules import next_slot
from taskstream.schemas.task import TaskStatus

__all__ = [
    "BackfillCursor",
    "PendingRunState",
    "Rejected",
    "TaskState",
    "TaskStatus",
    "after_slot",
    "apply",
    "backfill_run_key",
    "cursor_as_json",
    "cursor_from_json",
    "folds",
    "pending_run",
    "slot_folded",
]


@dataclass(frozen=True, slots=True)
class TaskState:
    task_id: str
    partition: int
    spec: TaskSpec
    status: TaskStatus
    version: int
    created_at: datetime
    updated_at: datetime
    anchor: datetime
    """When the current schedule took effect: creation or the last schedule change."""
    last_slot: datetime | None
    """The last scheduled slot that fired or was skipped."""
    last_change_event_id: str


@dataclass(frozen=True, slots=True)
class Rejected:
    """A change that did not apply, and why (``stale_version``, ``deleted``...)."""

    reason: str


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def after_slot(
    status: TaskStatus,
    schedule: Schedule,
    anchor: datetime,
    last_slot: datetime | None,
    slot: datetime,
) -> tuple[TaskStatus, datetime | None]:
    """A task's status and last slot once ``slot`` fired or was skipped.

    The part of :func:`apply` for ``ExecutionScheduled`` (from the schedule) and
    ``ExecutionSkipped``, on the fields it reads: the store calls it without building a
    :class:`TaskState` (whose spec it would have to validate).
    """
    if last_slot is not None and slot <= last_slot:
        return status, last_slot
    if status is TaskStatus.ACTIVE and next_slot(schedule, anchor=anchor, after=slot) is None:
        return TaskStatus.COMPLETED, slot
    return status, slot


def slot_folded(event: Event) -> datetime | None:
    """The slot a fire from the schedule or a skip moves a task past (UTC), else None."""
    data = event.data
    if isinstance(data, ExecutionScheduled):
        return _utc(data.scheduled_for) if data.trigger is Trigger.SCHEDULE else None
    if isinstance(data, ExecutionSkipped):
        return _utc(data.last_scheduled_for or data.scheduled_for)
    return None


def _quarantined(state: TaskState | None, data: TaskQuarantined) -> TaskState | Rejected:
    """Set the task aside, unless it changed since the component failed on it."""
    if state is None:
        return Rejected("unknown_task")
    if state.status is TaskStatus.QUARANTINED:
        return state  # a replay, or a second component failing on the same task
    if state.status in (TaskStatus.DELETED, TaskStatus.COMPLETED):
        return Rejected(f"a {state.status.value} task is not scheduled")
    if data.change_event_id != state.last_change_event_id:
        return Rejected("stale_quarantine: the task changed since")
    return replace(state, status=TaskStatus.QUARANTINED)


def _after_slot(state: TaskState, slot: datetime) -> TaskState:
    status, last_slot = after_slot(
        state.status, state.spec.schedule, state.anchor, state.last_slot, slot
    )
    if status is state.status and last_slot == state.last_slot:
        return state
    return replace(state, status=status, last_slot=last_slot)


_CHANGES = TaskUpdated | TaskPaused | TaskResumed | TaskDeleted


def folds(event: Event) -> bool:
    """Whether :func:`apply` may change a task for ``event``.

    When False, :func:`apply` returns None for any state: the event does not concern
    task state (executions starting or ending, retries, run-now, cancellations, and runs
    that did not come from the schedule).
    """
    data = event.data
    if isinstance(data, ExecutionScheduled):
        return data.trigger is Trigger.SCHEDULE
    return isinstance(data, TaskCreated | ExecutionSkipped | TaskQuarantined | _CHANGES)


def apply(state: TaskState | None, event: Event, partition: int) -> TaskState | Rejected | None:
    """The task after ``event``; None if the event does not concern task state."""
    if not folds(event):
        return None
    data = event.data
    at = _utc(event.occurred_at)
    if isinstance(data, TaskCreated):
        if state is not None:
            return state  # a replay
        return TaskState(
            task_id=event.task_id,
            partition=partition,
            spec=data.task,
            status=TaskStatus.ACTIVE,
            version=1,
            created_at=at,
            updated_at=at,
            anchor=at,
            last_slot=None,
            last_change_event_id=event.id,
        )
    if isinstance(data, TaskQuarantined):
        return _quarantined(state, data)
    if isinstance(data, _CHANGES):
        if state is None:
            return Rejected("unknown_task")
        if state.last_change_event_id == event.id:
            return state  # a replay
        if state.status is TaskStatus.DELETED:
            return Rejected("deleted")
        if data.expected_version is not None and data.expected_version != state.version:
            return Rejected("stale_version")
        changed = replace(
            state, version=state.version + 1, updated_at=at, last_change_event_id=event.id
        )
        if isinstance(data, TaskUpdated):
            schedule_changed = data.task.schedule != state.spec.schedule
            changed = replace(
                changed, spec=data.task, anchor=at if schedule_changed else state.anchor
            )
            if changed.status is TaskStatus.QUARANTINED:
                # a new definition: the scheduler evaluates it afresh (and quarantines it
                # again, naming this change, if it still cannot)
                changed = replace(changed, status=TaskStatus.ACTIVE)
            elif (
                changed.status is TaskStatus.COMPLETED
                and next_slot(data.task.schedule, anchor=changed.anchor, after=changed.last_slot)
                is not None
            ):
                changed = replace(changed, status=TaskStatus.ACTIVE)
            return changed
        if isinstance(data, TaskPaused):
            if state.status is not TaskStatus.ACTIVE:
                return Rejected(f"cannot pause a {state.status.value} task")
            return replace(changed, status=TaskStatus.PAUSED)
        if isinstance(data, TaskResumed):
            if state.status not in (TaskStatus.PAUSED, TaskStatus.QUARANTINED):
                return Rejected(f"cannot resume a {state.status.value} task")
            return replace(changed, status=TaskStatus.ACTIVE)
        return replace(changed, status=TaskStatus.DELETED)
    if state is None:
        return None
    slot = slot_folded(event)
    return None if slot is None else _after_slot(state, slot)


@dataclass(frozen=True, slots=True)
class BackfillCursor:
    """Where a backfill's pending run stands in its range, and how it goes on."""

    backfill_id: str
    index: int
    """This slot's place in the range, from 1."""
    total: int
    end: datetime
    overlap: BackfillOverlap
    rate: float
    """Slots started per second, at most."""


def cursor_as_json(cursor: BackfillCursor) -> dict[str, Any]:
    """A cursor as the store keeps it (JSON)."""
    return {
        "backfill_id": cursor.backfill_id,
        "index": cursor.index,
        "total": cursor.total,
        "end": cursor.end.isoformat(),
        "overlap": cursor.overlap.value,
        "rate": cursor.rate,
    }


def cursor_from_json(document: dict[str, Any]) -> BackfillCursor:
    """The cursor :func:`cursor_as_json` kept."""
    return BackfillCursor(
        backfill_id=document["backfill_id"],
        index=document["index"],
        total=document["total"],
        end=_utc(datetime.fromisoformat(document["end"])),
        overlap=BackfillOverlap(document["overlap"]),
        rate=document["rate"],
    )


def backfill_run_key(backfill_id: str) -> str:
    """The ``run_key`` of a backfill's executions (part of their ids)."""
    return f"backfill:{backfill_id}"


@dataclass(frozen=True, slots=True)
class PendingRunState:
    """A run asked for outside the schedule (a retry, run-now, a backfill's slot) and not
    fired yet: a durable timer."""

    execution_id: str
    task_id: str
    partition: int
    trigger: Trigger
    attempt: int
    scheduled_for: datetime
    due_at: datetime
    run_key: str | None = None
    """Which run of the slot (``backfill:<id>``); None for the schedule's, run-now's."""
    backfill: BackfillCursor | None = None
    """A backfill's slot (trigger ``backfill``): its place in the range, its pace."""


def pending_run(event: Event, partition: int) -> PendingRunState | None:
    """The pending run an event asks for, if it asks for one."""
    data = event.data
    if isinstance(data, RetryScheduled | DeadLetterReplayed):
        return PendingRunState(
            execution_id=data.execution_id,
            task_id=event.task_id,
            partition=partition,
            trigger=Trigger.RETRY,
            attempt=data.attempt,
            scheduled_for=_utc(data.scheduled_for),
            due_at=_utc(data.due_at),
            run_key=data.run_key,
        )
    if isinstance(data, BackfillRequested):
        return _backfill_run(event, partition, data, data.first_slot, 1, event.occurred_at)
    if isinstance(data, BackfillStep):
        return _backfill_run(event, partition, data, data.slot, data.index, data.due_at)
    if isinstance(data, RunRequested):
        at = _utc(event.occurred_at)
        return PendingRunState(
            execution_id=make_execution_id(event.task_id, at, 1),
            task_id=event.task_id,
            partition=partition,
            trigger=Trigger.MANUAL,
            attempt=1,
            scheduled_for=at,
            due_at=at,
        )
    return None


def _backfill_run(
    event: Event,
    partition: int,
    plan: BackfillRequested | BackfillStep,
    slot: datetime,
    index: int,
    due_at: datetime,
) -> PendingRunState:
    """The pending run of slot ``index`` of a backfill (the first: due when requested)."""
    at = _utc(slot)
    key = backfill_run_key(plan.backfill_id)
    return PendingRunState(
        execution_id=make_execution_id(event.task_id, at, 1, key),
        task_id=event.task_id,
        partition=partition,
        trigger=Trigger.BACKFILL,
        attempt=1,
        scheduled_for=at,
        due_at=_utc(due_at),
        run_key=key,
        backfill=BackfillCursor(
            backfill_id=plan.backfill_id,
            index=index,
            total=plan.total,
            end=_utc(plan.end),
            overlap=plan.overlap,
            rate=plan.rate,
        ),
    )
