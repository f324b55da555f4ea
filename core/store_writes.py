"""How a batch of ``task-events`` records becomes rows of the task store, cheaply.

This is the core's hot path (every execution is four records), so it does as little
Python work per record as it can:

- **Decoding** (:func:`decode_record`). Every record is parsed once, with orjson.
  Records the store has no use for (:data:`STORE_IGNORED`) stop there; reading the
  ``event-type`` header instead would cost more than it saves, as they are rare. The
  execution lifecycle events (``ExecutionScheduled``, ``ExecutionStarted`` and the four
  terminal ones: three of the four records of an execution) become an
  :class:`ExecutionFact`, after checks of the envelope, of the payload's keys (no unknown
  one, no required one missing) and of the type of every field the store reads. Anything
  unusual (another version, a time that pydantic parses and
  :meth:`datetime.fromisoformat` does not...) goes to the full decoder,
  :func:`taskstream.schemas.decode_event`, like every other type; a record it rejects is poison,
  which the projection logs and skips. Fields the store does not read (``worker_id``,
  ``output``...) are not validated.
- **Folding** (:class:`Fold`). The batch's tasks are read in a few queries as plain
  dicts; events change the dicts. A task's :class:`TaskState` (its spec validated) is
  built only for an event that changes more than counters and the last slot, and through
  :func:`taskstream.core.aggregate.apply`; a scheduled slot goes through
  :func:`taskstream.core.aggregate.after_slot`, so the aggregate still decides every transition.
- **Writing** (:func:`write`). One executemany per table: the changed tasks and the
  unfinished executions upserted (``INSERT ... ON CONFLICT DO UPDATE``), the finished
  ones and the fired pending runs deleted by id, inside the caller's transaction, which
  also advances the offsets.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Table, bindparam, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from taskstream.core.aggregate import (
    Rejected,
    TaskState,
    TaskStatus,
    after_slot,
    apply,
    folds,
    pending_run,
)
from taskstream.schemas import (
    EVENT_TYPES,
    CancelRequested,
    Event,
    EventData,
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
    decode_event,
    recorded,
)
from taskstream.schemas.codec import event_from_document

__all__ = [
    "STORE_IGNORED",
    "ExecutionFact",
    "Fold",
    "as_fact",
    "decode_record",
    "execution_ids",
    "read_held",
    "read_tasks",
    "write",
]

STORE_IGNORED = frozenset({CancelRequested.TYPE})
"""Events that change nothing in the store: skipped by header, never decoded."""

_FINAL_STATUS = {
    ExecutionSucceeded.TYPE: "succeeded",
    ExecutionFailed.TYPE: "failed",
    ExecutionTimedOut.TYPE: "timed_out",
    ExecutionCancelled.TYPE: "cancelled",
}
_FAILURES = frozenset({ExecutionFailed.TYPE, ExecutionTimedOut.TYPE})
"""Outcomes the executor follows with a decision (a retry or the dead-letter topic)."""
_FAST: dict[str, type[EventData]] = {
    model.TYPE: model
    for model in (
        ExecutionScheduled,
        ExecutionStarted,
        ExecutionSucceeded,
        ExecutionFailed,
        ExecutionTimedOut,
        ExecutionCancelled,
    )
}
_VERSIONS = {
    name: frozenset(version for kind, version in EVENT_TYPES if kind == name) for name in _FAST
}
"""The versions of each fast type the fast path reads: every registered one, as an older
version's fields are a subset of its current model's (v1 outcomes lack ``started_at``
and ``handler``, which the store does not read)."""
_ENVELOPE = frozenset({"id", "type", "version", "task_id", "occurred_at", "data"})
_FIELDS = {name: frozenset(model.model_fields) for name, model in _FAST.items()}
_REQUIRED = {
    name: frozenset(key for key, info in model.model_fields.items() if info.is_required())
    for name, model in _FAST.items()
}
_TRIGGERS = {trigger.value: trigger for trigger in Trigger}


@dataclass(slots=True)
class ExecutionFact:
    """What the store reads from an execution lifecycle event.

    Treat it as frozen: it is not declared so because a frozen dataclass takes three
    times as long to build, and there is one per record.
    """

    id: str
    type: str
    task_id: str
    occurred_at: datetime
    """UTC, like every time here."""
    execution_id: str
    attempt: int
    scheduled_for: datetime
    trigger: Trigger
    """``ExecutionScheduled``'s; ``schedule`` for the others (they do not carry one)."""


def decode_record(value: bytes | None) -> Event | ExecutionFact | None:
    """The store's reading of one record: an :class:`ExecutionFact`, an :class:`Event`,
    or None for a record it has no use for (:data:`STORE_IGNORED`).

    Raises :class:`taskstream.schemas.EventDecodeError` for a record
    :func:`taskstream.schemas.decode_event` rejects (poison).
    """
    if value is None:
        return decode_event(value)  # raises
    try:
        document = orjson.loads(value)
    except orjson.JSONDecodeError:
        return decode_event(value)  # raises, with orjson's message
    if type(document) is dict and document.keys() == _ENVELOPE:
        kind = document["type"]
        if kind in _FAST:
            fact = _fact(kind, document)
            if fact is not None:
                return fact
        elif kind in STORE_IGNORED:
            return None
    return event_from_document(document, value)


def _fact(kind: str, document: dict[str, Any]) -> ExecutionFact | None:
    """The fact, or None to leave the record to the full decoder."""
    data = document["data"]
    if document["version"] not in _VERSIONS[kind] or type(data) is not dict:
        return None
    keys = data.keys()
    if not (keys <= _FIELDS[kind] and keys >= _REQUIRED[kind]):
        return None
    event_id, task_id = document["id"], document["task_id"]
    execution_id, attempt = data["execution_id"], data["attempt"]
    occurred_at, scheduled_for = document["occurred_at"], data["scheduled_for"]
    trigger = _TRIGGERS.get(data.get("trigger", "schedule"))
    if (
        type(event_id) is not str
        or type(task_id) is not str
        or type(execution_id) is not str
        or type(attempt) is not int
        or attempt < 1
        or type(occurred_at) is not str
        or type(scheduled_for) is not str
        or trigger is None
    ):
        return None
    try:
        occurred = datetime.fromisoformat(occurred_at)
        scheduled = datetime.fromisoformat(scheduled_for)
    except ValueError:
        return None
    if occurred.tzinfo is None or scheduled.tzinfo is None:
        return None
    if occurred.tzinfo is not UTC:
        occurred = occurred.astimezone(UTC)
    if scheduled.tzinfo is not UTC:
        scheduled = scheduled.astimezone(UTC)
    return ExecutionFact(
        event_id, kind, task_id, occurred, execution_id, attempt, scheduled, trigger
    )


def as_fact(event: Event) -> Event | ExecutionFact:
    """An already decoded event in the form :class:`Fold` takes (tests, live callers)."""
    data = event.data
    if event.type not in _FAST or event.version not in _VERSIONS[event.type]:
        return event
    assert isinstance(
        data,
        ExecutionScheduled
        | ExecutionStarted
        | ExecutionSucceeded
        | ExecutionFailed
        | ExecutionTimedOut
        | ExecutionCancelled,
    )
    return ExecutionFact(
        event.id,
        event.type,
        event.task_id,
        event.occurred_at.astimezone(UTC),
        data.execution_id,
        data.attempt,
        data.scheduled_for.astimezone(UTC),
        data.trigger if isinstance(data, ExecutionScheduled) else Trigger.SCHEDULE,
    )


_TIMES = ("created_at", "updated_at", "anchor", "last_slot")
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
                self.runs[run.execution_id] = {
                    "execution_id": run.execution_id,
                    "task_id": run.task_id,
                    "partition": partition,
                    "trigger": run.trigger.value,
                    "attempt": run.attempt,
                    "scheduled_for": run.scheduled_for,
                    "due_at": run.due_at,
                }
        return None

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


def read_held(connection: Connection, table: Table, ids: Iterable[str]) -> set[str]:
    """Those of ``ids`` that ``table`` holds (its key is ``execution_id``): the batch's
    open executions in ``active_executions``, its undecided ones in ``undecided_failures``."""
    ordered = sorted(ids)
    found: set[str] = set()
    column = table.c.execution_id
    for start in range(0, len(ordered), 500):
        query = select(column).where(column.in_(ordered[start : start + 500]))
        found.update(connection.execute(query).scalars())
    return found


def read_tasks(
    connection: Connection, tasks: Table, ids: Iterable[str]
) -> dict[str, dict[str, Any]]:
    """The rows of ``ids`` that exist, as dicts with UTC times, in a few queries."""
    ordered = sorted(ids)
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(ordered), 500):
        query = select(tasks).where(tasks.c.id.in_(ordered[start : start + 500]))
        for mapping in connection.execute(query).mappings():
            row = dict(mapping)
            for name in _TIMES:
                value = row[name]
                if value is not None:
                    row[name] = (
                        value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
                    )
            found[row["id"]] = row
    return found


_MUTABLE = (
    "status",
    "version",
    "updated_at",
    "anchor",
    "last_slot",
    "last_change_event_id",
    "last_execution_id",
    "last_status",
    "executions_scheduled",
    "executions_succeeded",
    "executions_failed",
    "executions_skipped",
    "quarantine",
)
"""The columns of a task that change while its spec does not."""


def write(
    connection: Connection,
    fold: Fold,
    tasks: Table,
    active: Table,
    runs: Table,
    undecided: Table,
) -> None:
    """The batch's changes; deletes before upserts, so an id finished and re-scheduled
    ends scheduled."""
    _upsert(connection, tasks, [fold.tasks[task_id] for task_id in sorted(fold.whole)])
    if fold.changed - fold.whole:
        rows = [
            {"b_id": task_id, **{name: fold.tasks[task_id][name] for name in _MUTABLE}}
            for task_id in sorted(fold.changed - fold.whole)
        ]
        connection.execute(_statement(connection, tasks, "update"), rows)
    _delete(connection, active, fold.finished - set(fold.active))
    _upsert(connection, active, list(fold.active.values()))
    if fold.status:
        # SET status, updated_at (the other keys of each dict) WHERE the id matches
        connection.execute(_statement(connection, active, "update"), list(fold.status.values()))
    _delete(connection, runs, fold.fired)
    _upsert(connection, runs, list(fold.runs.values()))
    _delete(connection, undecided, fold.decided - set(fold.undecided))
    _upsert(connection, undecided, list(fold.undecided.values()))


_STATEMENTS: dict[tuple[str, str, str], Any] = {}


def _statement(connection: Connection, table: Table, kind: str) -> Any:
    """The statements :func:`write` runs, built once per dialect and table.

    ``upsert``: insert, or replace the row with that primary key. ``update`` and
    ``delete``: the row whose (one-column) primary key is the parameter ``b_<column>``;
    an update sets the other parameters.
    """
    dialect = connection.dialect.name
    key = (dialect, table.name, kind)
    statement = _STATEMENTS.get(key)
    if statement is None:
        keys = [column.name for column in table.primary_key.columns]
        if kind == "upsert":
            insert = postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)
            updates = {
                column.name: insert.excluded[column.name]
                for column in table.columns
                if column.name not in keys
            }
            statement = insert.on_conflict_do_update(index_elements=keys, set_=updates)
        else:
            (name,) = keys
            match = table.c[name] == bindparam(f"b_{name}")
            statement = (update if kind == "update" else delete)(table).where(match)
        statement = _STATEMENTS[key] = statement
    return statement


def _upsert(connection: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert ``rows``, replacing those whose primary key exists (idempotent replays)."""
    if not rows:
        return
    if connection.dialect.name == "postgresql":
        # One statement whatever the number of rows: an array per column, unnested.
        sql, names, json_columns = _unnest_upsert(connection, table)
        columns: dict[str, list[Any]] = {name: [] for name in names}
        for row in rows:
            for name in names:
                columns[name].append(row[name])
        for name in json_columns:
            columns[name] = [None if v is None else json.dumps(v) for v in columns[name]]
        connection.exec_driver_sql(sql, columns)
        return
    # One statement, the rows as its parameters: compiled once and cached, and sqlite3
    # loops over them in C.
    connection.execute(_statement(connection, table, "upsert"), rows)


_UNNEST: dict[str, tuple[str, list[str], list[str]]] = {}


def _unnest_upsert(connection: Connection, table: Table) -> tuple[str, list[str], list[str]]:
    """PostgreSQL's ``INSERT ... SELECT FROM unnest(<one array per column>) ON CONFLICT``.

    Returns the SQL (``%(column)s`` parameters), the columns, and those holding JSON
    (sent as text: psycopg has no array of JSON adapter).
    """
    cached = _UNNEST.get(table.name)
    if cached is None:
        dialect = connection.dialect
        quote = dialect.identifier_preparer.quote
        names = [column.name for column in table.columns]
        keys = [column.name for column in table.primary_key.columns]
        arrays = ", ".join(
            f"%({column.name})s::{column.type.compile(dialect=dialect)}[]"
            for column in table.columns
        )
        updates = ", ".join(f"{quote(n)} = EXCLUDED.{quote(n)}" for n in names if n not in keys)
        sql = (
            f"INSERT INTO {quote(table.name)} ({', '.join(quote(n) for n in names)}) "
            f"SELECT * FROM unnest({arrays}) "
            f"ON CONFLICT ({', '.join(quote(k) for k in keys)}) DO UPDATE SET {updates}"
        )
        json_columns = [c.name for c in table.columns if c.type.compile(dialect=dialect) == "JSON"]
        cached = _UNNEST[table.name] = (sql, names, json_columns)
    return cached


def _delete(connection: Connection, table: Table, ids: set[str]) -> None:
    if not ids:
        return
    if connection.dialect.name == "postgresql":
        sql = f"DELETE FROM {table.name} WHERE execution_id = ANY(%(ids)s::varchar[])"
        connection.exec_driver_sql(sql, {"ids": list(ids)})
    else:
        parameters = [{"b_execution_id": value} for value in ids]
        connection.execute(_statement(connection, table, "delete"), parameters)
