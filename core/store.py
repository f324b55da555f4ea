"""The task store: a SQL projection of ``task-events`` (the query side).

Rows and the consumed offsets are written in one database transaction, so replaying
never applies an event twice and a crash never loses one: the projection resumes at
the offsets the database holds. Task state comes from :func:`core.aggregate.apply`,
the same fold the scheduler uses.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast, overload

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Integer,
    String,
    create_engine,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.event import listen
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_exponential

from core.aggregate import (
    PendingRunState,
    Rejected,
    TaskState,
    TaskStatus,
    apply,
    folds,
    pending_run,
)
from core.spec_reader import SpecReader
from schemas import (
    TERMINAL_EVENT_TYPES,
    Event,
    ExecutionCancelled,
    ExecutionFailed,
    ExecutionScheduled,
    ExecutionSkipped,
    ExecutionStarted,
    ExecutionSucceeded,
    ExecutionTimedOut,
    TaskSpec,
    Trigger,
)

__all__ = [
    "ActiveExecution",
    "AppliedRecord",
    "PendingRun",
    "ProjectionOffset",
    "Snapshot",
    "TaskRow",
    "TaskStore",
    "as_utc",
    "lock_offsets",
    "make_engine",
    "retrying_transient",
    "task_as_dict",
]


logger = logging.getLogger(__name__)

_FINAL_STATUS = {
    ExecutionSucceeded: "succeeded",
    ExecutionFailed: "failed",
    ExecutionTimedOut: "timed_out",
    ExecutionCancelled: "cancelled",
}


class Base(DeclarativeBase):
    pass


TASK_EVENT_TABLES = frozenset({"tasks", "active_executions", "pending_runs", "projection_offsets"})
"""The tables the task projection writes (``projection_offsets`` also holds other topics')."""


class TaskRow(Base):
    __tablename__ = "tasks"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), index=True)
    handler: Mapped[str] = mapped_column(String(300), index=True)
    queue: Mapped[str] = mapped_column(String(63), index=True)
    priority: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(16), index=True)
    version: Mapped[int] = mapped_column(Integer)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    partition: Mapped[int] = mapped_column(Integer, index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    anchor: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_slot: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_change_event_id: Mapped[str] = mapped_column(String(64))
    last_execution_id: Mapped[str | None] = mapped_column(String(64))
    last_status: Mapped[str | None] = mapped_column(String(16))
    executions_scheduled: Mapped[int] = mapped_column(Integer, default=0)
    executions_succeeded: Mapped[int] = mapped_column(Integer, default=0)
    executions_failed: Mapped[int] = mapped_column(Integer, default=0)
    executions_skipped: Mapped[int] = mapped_column(Integer, default=0)

    def state(self) -> TaskState:
        return TaskState(
            task_id=self.id,
            partition=self.partition,
            spec=TaskSpec.model_validate(self.spec),
            status=TaskStatus(self.status),
            version=self.version,
            created_at=as_utc(self.created_at),
            updated_at=as_utc(self.updated_at),
            anchor=as_utc(self.anchor),
            last_slot=as_utc(self.last_slot),
            last_change_event_id=self.last_change_event_id,
        )

    def set_state(self, state: TaskState) -> None:
        spec = state.spec
        self.name, self.handler, self.queue = spec.name, spec.handler, spec.queue
        self.priority = spec.priority.value
        self.status, self.version = state.status.value, state.version
        self.spec = spec.model_dump(mode="json")
        self.partition = state.partition
        self.created_at, self.updated_at = state.created_at, state.updated_at
        self.anchor, self.last_slot = state.anchor, state.last_slot
        self.last_change_event_id = state.last_change_event_id


class ActiveExecution(Base):
    """An execution that was scheduled and has not finished (for overlap policies)."""

    __tablename__ = "active_executions"

    execution_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    task_id: Mapped[str] = mapped_column(String(64), index=True)
    partition: Mapped[int] = mapped_column(Integer, index=True)
    attempt: Mapped[int] = mapped_column(Integer)
    scheduled_for: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(16))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class PendingRun(Base):
    """A run that was asked for and not fired yet: a retry or a run-now (a durable timer)."""

    __tablename__ = "pending_runs"

    execution_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    task_id: Mapped[str] = mapped_column(String(64), index=True)
    partition: Mapped[int] = mapped_column(Integer, index=True)
    trigger: Mapped[str] = mapped_column(String(16))
    attempt: Mapped[int] = mapped_column(Integer)
    scheduled_for: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    def as_run(self) -> PendingRunState:
        return PendingRunState(
            execution_id=self.execution_id,
            task_id=self.task_id,
            partition=self.partition,
            trigger=Trigger(self.trigger),
            attempt=self.attempt,
            scheduled_for=as_utc(self.scheduled_for),
            due_at=as_utc(self.due_at),
        )


class ProjectionOffset(Base):
    __tablename__ = "projection_offsets"

    topic: Mapped[str] = mapped_column(String(249), primary_key=True)
    partition: Mapped[int] = mapped_column(Integer, primary_key=True)
    next_offset: Mapped[int] = mapped_column(BigInteger)
    """Kafka offsets are 64-bit (PostgreSQL's INTEGER is 32-bit; SQLite's is 64-bit)."""


@dataclass(frozen=True, slots=True)
class AppliedRecord:
    """One consumed record: where it was, and the event (None if undecodable)."""

    partition: int
    offset: int
    event: Event | None


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the scheduler needs to take over partitions."""

    offsets: dict[int, int]
    tasks: Iterable[TaskState]
    """Read once: :meth:`TaskStore.snapshot` streams them from the database."""
    active: list[tuple[str, str, datetime]]
    """(task id, execution id, scheduled for) of unfinished executions."""
    runs: list[PendingRunState]


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        # several writers share the file (projections, the API's reads): wait for the lock
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            listen(engine, "connect", _write_ahead_log)
        return engine
    return create_engine(url, pool_pre_ping=True)


def _write_ahead_log(connection: Any, _: Any) -> None:
    """SQLite in WAL mode, synced at checkpoints rather than at every commit.

    In the default (rollback journal) mode a commit takes two or three fsyncs and locks
    readers out while it writes, so every API read waited for the projection's commit.
    With WAL readers never wait for the writer. ``synchronous=NORMAL`` may lose the last
    commits on a power cut (never corrupting the file): the store is a projection whose
    offsets commit with its rows, so it reads those records again from the log.
    """
    cursor = connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def retrying_transient(what: str) -> Retrying:
    """Retry a database write that failed transiently (a lock, a dropped connection).

    Up to five minutes with exponential waits; then the error is raised and the caller's
    thread stops (its ``/health`` component turns red).
    """
    return Retrying(
        retry=retry_if_exception_type(OperationalError),
        wait=wait_exponential(multiplier=0.2, max=5),
        stop=stop_after_delay(300),
        before_sleep=lambda state: logger.warning(
            "%s failed (%s); retrying", what, state.outcome.exception() if state.outcome else "?"
        ),
        reraise=True,
    )


@overload
def as_utc(value: datetime) -> datetime: ...
@overload
def as_utc(value: None) -> None: ...
def as_utc(value: datetime | None) -> datetime | None:
    """Times are stored in UTC; SQLite hands them back without a zone."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class TaskStore:
    """Reads and writes of the projection."""

    def __init__(self, engine: Engine, topic: str) -> None:
        self.engine = engine
        self.topic = topic

    def create_schema(self) -> None:
        """Bring the database to the newest schema (Alembic migrations)."""
        from core.migrate import upgrade

        upgrade(self.engine)

    def offsets(self) -> dict[int, int]:
        """Next offset to consume, per partition of the topic."""
        with Session(self.engine) as session:
            rows = session.scalars(
                select(ProjectionOffset).where(ProjectionOffset.topic == self.topic)
            )
            return {row.partition: row.next_offset for row in rows}

    def apply(self, records: Sequence[AppliedRecord]) -> dict[str, str]:
        """Apply a batch and advance the offsets in one transaction.

        Returns the ids of the events in the batch that were rejected, with the reason.
        """
        rejected: dict[str, str] = {}
        if not records:
            return rejected
        with Session(self.engine) as session, session.begin():
            stored = lock_offsets(session, self.topic, {record.partition for record in records})
            batch = _Batch(session)
            session.autoflush = False
            batch.prefetch({r.event.task_id for r in records if r.event is not None})
            for record in records:
                position = stored.get(record.partition)
                if position is not None and record.offset < position.next_offset:
                    continue  # already applied: replays are no-ops
                if record.event is not None:
                    outcome = batch.apply(record.partition, record.event)
                    if outcome is not None:
                        rejected[record.event.id] = outcome.reason
                if position is None:
                    position = ProjectionOffset(
                        topic=self.topic,
                        partition=record.partition,
                        next_offset=record.offset + 1,
                    )
                    session.add(position)
                    stored[record.partition] = position
                else:
                    position.next_offset = record.offset + 1
            session.flush()
            batch.executions.write(session)
        return rejected

    def get(self, task_id: str) -> TaskRow | None:
        with Session(self.engine, expire_on_commit=False) as session:
            return session.get(TaskRow, task_id)

    def list_tasks(
        self,
        *,
        page: int,
        size: int,
        status: str | None = None,
        handler: str | None = None,
        queue: str | None = None,
    ) -> tuple[list[TaskRow], int]:
        """A page of tasks, oldest first; deleted ones only when ``status="deleted"``."""
        query = select(TaskRow)
        if status is not None:
            query = query.where(TaskRow.status == status)
        else:
            query = query.where(TaskRow.status != TaskStatus.DELETED.value)
        if handler is not None:
            query = query.where(TaskRow.handler == handler)
        if queue is not None:
            query = query.where(TaskRow.queue == queue)
        with Session(self.engine, expire_on_commit=False) as session:
            total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
            rows = list(
                session.scalars(
                    query.order_by(TaskRow.created_at, TaskRow.id).offset(page * size).limit(size)
                )
            )
            return rows, total

    def snapshot(self, partitions: Iterable[int]) -> Snapshot:
        """The offsets, then the tasks, executions and retries of ``partitions``.

        Offsets are read first: rows may then be newer than the offsets, never older, so
        a reader that re-applies events from those offsets idempotently misses nothing.
        """
        wanted = list(partitions)
        offsets = {p: o for p, o in self.offsets().items() if p in wanted}
        with Session(self.engine, expire_on_commit=False) as session:
            active = [
                (row.task_id, row.execution_id, as_utc(row.scheduled_for))
                for row in session.scalars(
                    select(ActiveExecution).where(ActiveExecution.partition.in_(wanted))
                )
            ]
            runs = [
                row.as_run()
                for row in session.scalars(
                    select(PendingRun).where(PendingRun.partition.in_(wanted))
                )
            ]
        return Snapshot(offsets, self._stream_tasks(wanted), active, runs)

    def _stream_tasks(self, partitions: list[int]) -> Iterator[TaskState]:
        """The live tasks of ``partitions``, a batch of rows at a time (a million fit).

        Plain rows rather than ``TaskRow`` objects (no identity map to fill and empty), and
        specs validated once per shape (:class:`core.spec_reader.SpecReader`): restoring
        a million tasks is several times faster than through the ORM.
        """
        specs = SpecReader()
        columns = TaskRow.__table__.c
        query = select(
            columns.id,
            columns.partition,
            columns.spec,
            columns.status,
            columns.version,
            columns.created_at,
            columns.updated_at,
            columns.anchor,
            columns.last_slot,
            columns.last_change_event_id,
        ).where(columns.partition.in_(partitions), columns.status != TaskStatus.DELETED.value)
        with self.engine.connect() as connection:
            rows = connection.execution_options(yield_per=2000).execute(query)
            for row in rows:
                yield TaskState(
                    task_id=row.id,
                    partition=row.partition,
                    spec=specs.read(row.spec),
                    status=TaskStatus(row.status),
                    version=row.version,
                    created_at=as_utc(row.created_at),
                    updated_at=as_utc(row.updated_at),
                    anchor=as_utc(row.anchor),
                    last_slot=as_utc(row.last_slot),
                    last_change_event_id=row.last_change_event_id,
                )

    def dump(self) -> dict[str, list[dict[str, Any]]]:
        """Every row of every table ``task-events`` projects to, in a stable order.

        To compare two stores; execution logs (another topic) are not in it.
        """
        tables: dict[str, list[dict[str, Any]]] = {}
        with Session(self.engine) as session:
            for mapper in Base.registry.mappers:
                model = mapper.class_
                table = Base.metadata.tables[model.__tablename__]
                if table.name not in TASK_EVENT_TABLES:
                    continue
                keys = [column.key for column in table.primary_key.columns]
                query = select(model).order_by(*(getattr(model, k) for k in keys))
                if model is ProjectionOffset:
                    query = query.where(ProjectionOffset.topic == self.topic)
                rows = session.scalars(query)
                tables[table.name] = [
                    {column.key: _comparable(getattr(row, column.key)) for column in table.columns}
                    for row in rows
                ]
        return tables


def lock_offsets(session: Session, topic: str, partitions: set[int]) -> dict[int, ProjectionOffset]:
    """The offset rows of ``topic``, locked for this transaction (missing ones made at 0)."""
    _ensure_offset_rows(session, topic, partitions)
    return {
        row.partition: row
        for row in session.scalars(
            select(ProjectionOffset)
            .where(ProjectionOffset.topic == topic)
            .order_by(ProjectionOffset.partition)  # one lock order: no deadlock
            .with_for_update()
        )
    }


def _ensure_offset_rows(session: Session, topic: str, partitions: set[int]) -> None:
    """Insert the missing offset rows of ``partitions`` (at 0), so that there is a row to lock.

    ``SELECT ... FOR UPDATE`` locks only rows that exist: without this, two instances
    applying the first records of a partition at once would both see no row, both apply
    the records, and one would fail on the duplicate keys. ``ON CONFLICT DO NOTHING``
    waits for a concurrent insert of the same row to commit, then skips it. On SQLite the
    insert also takes the write lock before the offsets are read.
    """
    values = [{"topic": topic, "partition": p, "next_offset": 0} for p in sorted(partitions)]
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        session.execute(postgresql.insert(ProjectionOffset).values(values).on_conflict_do_nothing())
    elif dialect == "sqlite":
        session.execute(sqlite.insert(ProjectionOffset).values(values).on_conflict_do_nothing())


def _comparable(value: Any) -> Any:
    return as_utc(value) if isinstance(value, datetime) else value


def task_as_dict(row: TaskRow) -> dict[str, Any]:
    return {
        "id": row.id,
        **row.spec,
        "status": row.status,
        "version": row.version,
        "created_at": as_utc(row.created_at),
        "updated_at": as_utc(row.updated_at),
        "last_scheduled_for": as_utc(row.last_slot),
        "last_execution_id": row.last_execution_id,
        "last_status": row.last_status,
        "executions": {
            "scheduled": row.executions_scheduled,
            "succeeded": row.executions_succeeded,
            "failed": row.executions_failed,
            "skipped": row.executions_skipped,
        },
    }


_UNREAD = object()
"""A row's :class:`TaskState` not built yet: only events that fold a task need it."""


class _Batch:
    """One transaction's view of the tasks it touches: each row read and decoded once.

    A row's state (its spec validated) is built only for an event that folds the task;
    executions starting and ending only move counters.
    """

    def __init__(self, session: Session) -> None:
        self.session = session
        self._tasks: dict[str, tuple[TaskRow | None, TaskState | object | None]] = {}
        self.executions = _Executions()

    def prefetch(self, task_ids: set[str]) -> None:
        """Read the batch's tasks in a few queries instead of one per task."""
        ordered = sorted(task_ids)
        for start in range(0, len(ordered), 500):
            query = select(TaskRow).where(TaskRow.id.in_(ordered[start : start + 500]))
            for row in self.session.scalars(query):
                self._tasks[row.id] = (row, _UNREAD)
        for task_id in ordered:
            self._tasks.setdefault(task_id, (None, None))

    def apply(self, partition: int, event: Event) -> Rejected | None:
        cached = self._tasks.get(event.task_id)
        if cached is None:
            cached = (self.session.get(TaskRow, event.task_id), _UNREAD)
        row, known = cached
        if not folds(event):  # apply() would answer None: the state is not needed
            self._tasks[event.task_id] = (row, known)
            if row is not None:
                self.executions.record(row, partition, event)
            return None
        if known is _UNREAD:
            state = row.state() if row is not None else None
        else:
            state = cast(TaskState | None, known)
        outcome = apply(state, event, partition)
        if isinstance(outcome, Rejected):
            return outcome
        if outcome is not None and outcome != state:
            if row is None:
                row = TaskRow(
                    id=event.task_id,
                    executions_scheduled=0,
                    executions_succeeded=0,
                    executions_failed=0,
                    executions_skipped=0,
                )
                self.session.add(row)
            row.set_state(outcome)
            state = outcome
        self._tasks[event.task_id] = (row, state)
        if row is not None:
            self.executions.record(row, partition, event)
        return None


def _upsert(session: Session, model: type[Base], rows: list[dict[str, Any]]) -> None:
    """Insert ``rows``, replacing those whose primary key exists (idempotent replays)."""
    if not rows:
        return
    table = Base.metadata.tables[model.__tablename__]
    keys = [column.name for column in table.primary_key.columns]
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(table)
    updates = {name: statement.excluded[name] for name in rows[0] if name not in keys}
    # One statement with the rows as parameters: compiled once and cached (the driver
    # still sends them as multi-row VALUES), where ``.values(rows)`` compiled anew per batch.
    session.execute(statement.on_conflict_do_update(index_elements=keys, set_=updates), rows)


def _delete(session: Session, model: type[Base], ids: set[str]) -> None:
    table = Base.metadata.tables[model.__tablename__]
    ordered = sorted(ids)
    for start in range(0, len(ordered), 500):
        chunk = ordered[start : start + 500]
        session.execute(delete(table).where(table.c.execution_id.in_(chunk)))


class _Executions:
    """A batch's changes to unfinished executions and pending runs, written at its end."""

    def __init__(self) -> None:
        self.active: dict[str, dict[str, Any]] = {}
        self.status: dict[str, dict[str, Any]] = {}
        self.finished: set[str] = set()
        self.runs: dict[str, dict[str, Any]] = {}
        self.fired: set[str] = set()

    def record(self, row: TaskRow, partition: int, event: Event) -> None:
        data = event.data
        at = as_utc(event.occurred_at)
        if isinstance(data, ExecutionScheduled):
            row.executions_scheduled += 1
            row.last_execution_id, row.last_status = data.execution_id, "scheduled"
            self.finished.discard(data.execution_id)
            self.active[data.execution_id] = {
                "execution_id": data.execution_id,
                "task_id": event.task_id,
                "partition": partition,
                "attempt": data.attempt,
                "scheduled_for": as_utc(data.scheduled_for),
                "status": "scheduled",
                "updated_at": at,
            }
            self.runs.pop(data.execution_id, None)
            self.fired.add(data.execution_id)
        elif isinstance(data, ExecutionStarted):
            row.last_status = "running"
            pending = self.active.get(data.execution_id)
            if pending is not None:
                pending.update(status="running", updated_at=at)
            elif data.execution_id not in self.finished:
                self.status[data.execution_id] = {
                    "execution_id": data.execution_id,
                    "status": "running",
                    "updated_at": at,
                }
        elif isinstance(data, TERMINAL_EVENT_TYPES):
            if isinstance(data, ExecutionSucceeded):
                row.executions_succeeded += 1
            else:
                row.executions_failed += 1
            row.last_status = _FINAL_STATUS[type(data)]
            self.active.pop(data.execution_id, None)
            self.status.pop(data.execution_id, None)
            self.finished.add(data.execution_id)
        elif isinstance(data, ExecutionSkipped):
            row.executions_skipped += data.count
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

    def write(self, session: Session) -> None:
        """Deletes first, then upserts, so an id finished and re-scheduled ends scheduled."""
        _delete(session, ActiveExecution, self.finished - set(self.active))
        _upsert(session, ActiveExecution, list(self.active.values()))
        if self.status:
            session.execute(update(ActiveExecution), list(self.status.values()))
        _delete(session, PendingRun, self.fired)
        _upsert(session, PendingRun, list(self.runs.values()))
