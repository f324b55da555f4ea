"""How a batch of ``task-events`` records changes the rows of the task store: the fold.

This is the core's hot path (every execution is four records), so it does as little
Python work per record as it can. Records come decoded by :func:`decode_record` (the
schemas' fast decoder, :mod:`taskstream.schemas.facts`). The batch's tasks are read in a
few queries as plain dicts (:mod:`taskstream.core.store_writes`); events change the
dicts. A task's :class:`TaskState` (its spec validated) is built only for an event that
changes more than counters and the last slot, and through
:func:`taskstream.core.aggregate.apply`; a scheduled slot goes through
:func:`taskstream.core.aggregate.after_slot`, so the aggregate still decides every
transition. :func:`taskstream.core.store_writes.write` then writes what changed.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import orjson

from taskstream.core.aggregate import (
    PendingRunState,
    Rejected,
    TaskState,
    TaskStatus,
    after_slot,
    apply,
    backfill_run_key,
    cursor_as_json,
    folds,
    pending_run,
)
from taskstream.schemas import (
    BackfillFinished,
    BackfillRequested,
    BackfillStep,
    CancelRequested,
    Event,
    ExecutionCancelled,
    ExecutionDeadLettered,
    ExecutionFailed,
    ExecutionScheduled,
    ExecutionSkipped,
    ExecutionStarted,
    ExecutionSucceeded,
    ExecutionTimedOut,
    RetryScheduled,
    Schedule,
    TaskQuarantined,
    TaskSpec,
    Trigger,
    recorded,
)
from taskstream.schemas.facts import ExecutionFact, as_fact, decode_fast

__all__ = ["STORE_IGNORED", "Fold", "decode_record", "execution_ids", "quarantine_record"]

STORE_IGNORED = frozenset({CancelRequested.TYPE})
"""Events that change nothing in the store: skipped by header, never decoded."""


def decode_record(value: bytes | None) -> Event | ExecutionFact | None:
    """The store's reading of one record (:func:`taskstream.schemas.facts.decode_fast`):
    None for a record it has no use for (:data:`STORE_IGNORED`)."""
    return decode_fast(value, STORE_IGNORED)


_FINAL_STATUS = {
    ExecutionSucceeded.TYPE: "succeeded",
    ExecutionFailed.TYPE: "failed",
    ExecutionTimedOut.TYPE: "timed_out",
    ExecutionCancelled.TYPE: "cancelled",
}
_FAILURES = frozenset({ExecutionFailed.TYPE, ExecutionTimedOut.TYPE})
"""Outcomes the executor follows with a decision (a retry or the dead-letter topic)."""
_SCHEDULES: dict[bytes, Schedule] = {}
"""Validated schedules by their JSON: tasks on the same ``every``/``cron`` share one."""
_MAX_SCHEDULES = 10_000


def _schedule(spec: dict[str, Any]) -> Schedule:
    key = orjson.dumps(spec["schedule"], option=orjson.OPT_SORT_KEYS)
    schedule = _SCHEDULES.get(key)
    if schedule is None:
        if len(_SCHEDULES) >= _MAX_SCHEDULES:
            _SCHEDULES.clear()
        with recorded():
            schedule = _SCHEDULES[key] = Schedule.model_validate(spec["schedule"])
    return schedule


class Fold:
    """One batch's tasks, executions and pending runs, as plain dicts, changed by events.

    **Each execution id counts once**, however often its events are on the log (an
    executor killed after reporting, before committing, leaves the order to another,
    whose rerun writes ``ExecutionStarted`` and an outcome again, with new event ids). An
    execution is *open* from its ``ExecutionScheduled`` to its first outcome: it is in
    ``active_executions`` (``open_ids``: those of the batch's ids that the table held when
    the batch began) or was scheduled in this batch. Only an open execution counts its
    schedule, changes status or counts an outcome; events of one that is not open are
    ignored. The bound is the table itself (unfinished executions), no set of every id.

    **Only the first failure of an execution decides a retry.** A counted failure makes
    the execution *undecided* (``undecided_failures``) until its decision, the
    ``RetryScheduled`` or ``ExecutionDeadLettered`` the executor writes in the same
    transaction. A ``RetryScheduled`` of an execution that is not undecided (the failed
    attempt rerun after a crash, its retry maybe run already) asks for nothing.
    """

    def __init__(
        self,
        tasks: dict[str, dict[str, Any]],
        open_ids: Iterable[str] = (),
        undecided_ids: Iterable[str] = (),
    ) -> None:
        self.tasks = tasks
        self.open_ids = set(open_ids)
        """Execution ids in ``active_executions`` before the batch (see the class doc)."""
        self.undecided_ids = set(undecided_ids)
        """Execution ids in ``undecided_failures`` before the batch."""
        self.undecided: dict[str, dict[str, Any]] = {}
        """Failures counted in this batch and not decided in it: rows to write."""
        self.decided: set[str] = set()
        """Execution ids decided in this batch: rows to delete."""
        """Rows by id, as read (times in UTC) and then changed."""
        self.changed: set[str] = set()
        """Tasks to write."""
        self.whole: set[str] = set()
        """Of those, the ones new or with a new spec: written whole (others: :data:`_MUTABLE`)."""
        self._specs: dict[str, TaskSpec] = {}
        self.active: dict[str, dict[str, Any]] = {}
        self.status: dict[str, dict[str, Any]] = {}
        self.finished: set[str] = set()
        self.runs: dict[str, dict[str, Any]] = {}
        self.fired: set[str] = set()
        self.dropped_run_keys: set[str] = set()
        """Backfills that ended in this batch: their pending rows to delete by run key."""

    def apply(self, partition: int, event: Event | ExecutionFact) -> Rejected | None:
        if isinstance(event, Event):
            event = as_fact(event)
        if isinstance(event, ExecutionFact):
            self._execution(partition, event)
            return None
        row = self.tasks.get(event.task_id)
        if folds(event):
            state = self._state(row) if row is not None else None
            outcome = apply(state, event, partition)
            if isinstance(outcome, Rejected):
                return outcome
            if outcome is not None and outcome != state:
                row = self._set_state(outcome)
        if row is None:
            return None
        data = event.data
        if isinstance(data, RetryScheduled | ExecutionDeadLettered):
            failed = (
                data.failed_execution_id if isinstance(data, RetryScheduled) else data.execution_id
            )
            if not self._decide(failed):
                return None  # a late copy: its execution was decided already
            if isinstance(data, ExecutionDeadLettered):
                return None
        if isinstance(data, BackfillRequested | BackfillStep | BackfillFinished):
            self._backfill(row, event, data, partition)
            return None
        if isinstance(data, TaskQuarantined):
            if row["status"] == TaskStatus.QUARANTINED.value and row.get("quarantine") is None:
                row["quarantine"] = quarantine_record(event.occurred_at, data)
                self.changed.add(event.task_id)
        elif isinstance(data, ExecutionSkipped):
            row["executions_skipped"] += data.count
            self.changed.add(event.task_id)
        else:
            run = pending_run(event, partition)
            if run is not None and run.execution_id not in self.fired:
                self._keep_run(run, partition)
        return None

    def _keep_run(self, run: PendingRunState, partition: int) -> None:
        self.runs[run.execution_id] = {
            "execution_id": run.execution_id,
            "task_id": run.task_id,
            "partition": partition,
            "trigger": run.trigger.value,
            "attempt": run.attempt,
            "scheduled_for": run.scheduled_for,
            "due_at": run.due_at,
            "run_key": run.run_key,
            "backfill": None if run.backfill is None else cursor_as_json(run.backfill),
        }

    def _backfill(
        self,
        row: dict[str, Any],
        event: Event,
        data: BackfillRequested | BackfillStep | BackfillFinished,
        partition: int,
    ) -> None:
        """A backfill's request, next step or end: its progress on the task, its timer."""
        progress = row.get("backfill")
        if isinstance(data, BackfillRequested):
            if progress is not None and progress["state"] == "running":
                return  # the API refuses a second one; a copy of the first changes nothing
            row["backfill"] = {
                "id": data.backfill_id,
                "start": data.start.astimezone(UTC).isoformat(),
                "end": data.end.astimezone(UTC).isoformat(),
                "total": data.total,
                "fired": 0,
                "state": "running",
            }
        elif progress is None or progress["id"] != data.backfill_id:
            return  # of another backfill
        elif isinstance(data, BackfillFinished):
            if progress["state"] != "running":
                return
            row["backfill"] = {**progress, "state": data.state.value}
            key = backfill_run_key(data.backfill_id)
            for ident in [i for i, run in self.runs.items() if run["run_key"] == key]:
                del self.runs[ident]
            self.dropped_run_keys.add(key)
        elif progress["state"] != "running":
            return  # a step written with a fire that raced the backfill's end
        self.changed.add(event.task_id)
        run = pending_run(event, partition)
        if run is not None and run.execution_id not in self.fired:
            self._keep_run(run, partition)

    def _decide(self, execution_id: str) -> bool:
        """Take the execution's decision: False if it was not undecided."""
        if self.undecided.pop(execution_id, None) is not None:
            self.decided.add(execution_id)
            return True
        if execution_id in self.undecided_ids and execution_id not in self.decided:
            self.decided.add(execution_id)
            return True
        return False

    def _execution(self, partition: int, fact: ExecutionFact) -> None:
        row = self.tasks.get(fact.task_id)
        if row is None:
            return  # an unknown (or not yet created) task: nothing to count
        kind = fact.type
        execution = fact.execution_id
        is_open = execution in self.active or (
            execution in self.open_ids and execution not in self.finished
        )
        if kind == ExecutionScheduled.TYPE and is_open:
            return  # the same fire read twice: counted already
        if kind != ExecutionScheduled.TYPE and not is_open:
            return  # a rerun of a finished execution (or one never scheduled): not counted
        self.changed.add(fact.task_id)
        if kind == ExecutionScheduled.TYPE:
            if fact.trigger is Trigger.SCHEDULE:
                specs = self._specs.get(fact.task_id)
                schedule = specs.schedule if specs is not None else _schedule(row["spec"])
                status, last_slot = after_slot(
                    TaskStatus(row["status"]),
                    schedule,
                    row["anchor"],
                    row["last_slot"],
                    fact.scheduled_for,
                )
                row["status"], row["last_slot"] = status.value, last_slot
            row["executions_scheduled"] += 1
            row["last_execution_id"], row["last_status"] = fact.execution_id, "scheduled"
            progress = row.get("backfill")
            if fact.trigger is Trigger.BACKFILL and progress and progress["state"] == "running":
                row["backfill"] = {**progress, "fired": progress["fired"] + 1}
            self.finished.discard(fact.execution_id)
            self.active[fact.execution_id] = {
                "execution_id": fact.execution_id,
                "task_id": fact.task_id,
                "partition": partition,
                "attempt": fact.attempt,
                "scheduled_for": fact.scheduled_for,
                "status": "scheduled",
                "updated_at": fact.occurred_at,
            }
            self.runs.pop(fact.execution_id, None)
            self.fired.add(fact.execution_id)
        elif kind == ExecutionStarted.TYPE:
            row["last_status"] = "running"
            pending = self.active.get(fact.execution_id)
            if pending is not None:
                pending["status"], pending["updated_at"] = "running", fact.occurred_at
            elif fact.execution_id not in self.finished:
                self.status[fact.execution_id] = {
                    "b_execution_id": fact.execution_id,
                    "status": "running",
                    "updated_at": fact.occurred_at,
                }
        else:
            if kind == ExecutionSucceeded.TYPE:
                row["executions_succeeded"] += 1
            else:
                row["executions_failed"] += 1
            row["last_status"] = _FINAL_STATUS[kind]
            if kind in _FAILURES:
                self.decided.discard(execution)
                self.undecided[execution] = {
                    "execution_id": execution,
                    "task_id": fact.task_id,
                    "partition": partition,
                }
            self.active.pop(fact.execution_id, None)
            self.status.pop(fact.execution_id, None)
            self.finished.add(fact.execution_id)

    def _state(self, row: dict[str, Any]) -> TaskState:
        spec = self._specs.get(row["id"])
        if spec is None:
            with recorded():
                spec = self._specs[row["id"]] = TaskSpec.model_validate(row["spec"])
        return TaskState(
            task_id=row["id"],
            partition=row["partition"],
            spec=spec,
            status=TaskStatus(row["status"]),
            version=row["version"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            anchor=row["anchor"],
            last_slot=row["last_slot"],
            last_change_event_id=row["last_change_event_id"],
        )

    def _set_state(self, state: TaskState) -> dict[str, Any]:
        row = self.tasks.get(state.task_id)
        if row is None:
            row = self.tasks[state.task_id] = {
                "id": state.task_id,
                "last_execution_id": None,
                "last_status": None,
                "executions_scheduled": 0,
                "executions_succeeded": 0,
                "executions_failed": 0,
                "executions_skipped": 0,
                "quarantine": None,
                "backfill": None,
            }
        spec = state.spec
        if self._specs.get(state.task_id) is not spec or "spec" not in row:
            row["spec"] = spec.model_dump(mode="json")
            self._specs[state.task_id] = spec
            self.whole.add(state.task_id)
        elif row["partition"] != state.partition:
            self.whole.add(state.task_id)
        row.update(
            name=spec.name,
            handler=spec.handler,
            queue=spec.queue,
            priority=spec.priority.value,
            status=state.status.value,
            version=state.version,
            partition=state.partition,
            created_at=state.created_at,
            updated_at=state.updated_at,
            anchor=state.anchor,
            last_slot=state.last_slot,
            last_change_event_id=state.last_change_event_id,
        )
        if state.status is not TaskStatus.QUARANTINED:
            row["quarantine"] = None  # a change lifted it
        self.changed.add(state.task_id)
        return row


def quarantine_record(at: datetime, data: TaskQuarantined) -> dict[str, Any]:
    """What the API shows of a quarantine (the ``quarantined`` field of a task)."""
    return {
        "reason": f"{data.error_type}: {data.error_message}",
        "component": data.component,
        "at": at.astimezone(UTC).isoformat(),
        "error_type": data.error_type,
        "event_id": data.event_id,
        "partition": data.partition,
        "offset": data.offset,
    }


def execution_ids(events: Iterable[Event | ExecutionFact | None]) -> set[str]:
    """The execution ids of the lifecycle events and the decisions among ``events`` (for
    :func:`read_held`)."""
    ids = set()
    for event in events:
        if isinstance(event, Event):
            data = event.data
            if isinstance(data, RetryScheduled):
                ids.add(data.failed_execution_id)
                continue
            if isinstance(data, ExecutionDeadLettered):
                ids.add(data.execution_id)
                continue
            event = as_fact(event)
        if isinstance(event, ExecutionFact):
            ids.add(event.execution_id)
    return ids
