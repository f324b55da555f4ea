"""The task store: a SQL projection of ``task-events`` (the query side).

Rows and the consumed offsets are written in one database transaction, so replaying
never applies an event twice and a crash never loses one: the projection resumes at
the offsets the database holds. Task state comes from :func:`taskstream.core.aggregate.apply`,
the same fold the scheduler uses.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, overload

import orjson
from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Integer,
    String,
    bindparam,
    create_engine,
    func,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.event import listen
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_exponential

from taskstream.core.aggregate import PendingRunState, TaskState, TaskStatus, cursor_from_json
from taskstream.core.spec_reader import SpecReader
from taskstream.core.store_fold import Fold, execution_ids
from taskstream.core.store_writes import read_held, read_tasks, write
from taskstream.schemas import Event, Trigger
from taskstream.schemas.facts import ExecutionFact

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


class Base(DeclarativeBase):
    pass


TASK_EVENT_TABLES = frozenset(
    {"tasks", "active_executions", "pending_runs", "undecided_failures", "projection_offsets"}
)
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
    quarantine: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    """Why the task is quarantined (``component``, ``error_type``, ``reason``, ``at``...)."""
    backfill: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    """The task's last backfill: ``id``, ``start``, ``end``, ``total``, ``fired``, ``state``
    (``running``, ``completed``, ``cancelled``)."""


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
    run_key: Mapped[str | None] = mapped_column(String(128), nullable=True)
    backfill: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    """A backfill's slot: its cursor (:class:`taskstream.core.aggregate.BackfillCursor`)."""

    def as_run(self) -> PendingRunState:
        return PendingRunState(
            execution_id=self.execution_id,
            task_id=self.task_id,
            partition=self.partition,
            trigger=Trigger(self.trigger),
            attempt=self.attempt,
            scheduled_for=as_utc(self.scheduled_for),
            due_at=as_utc(self.due_at),
            run_key=self.run_key,
            backfill=cursor_from_json(self.backfill) if self.backfill is not None else None,
        )


class UndecidedFailure(Base):
    """An execution whose first outcome was a failure, its decision not read yet.

    The executor writes the decision (``RetryScheduled`` or ``ExecutionDeadLettered``) in
    the failure's transaction, so a row lives from one record to the next. Only the first
    outcome of an execution makes one: a late copy of a retry (the failed attempt rerun
    by another executor after a crash) finds none and fires nothing.
    """

    __tablename__ = "undecided_failures"

    execution_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    task_id: Mapped[str] = mapped_column(String(64))
    partition: Mapped[int] = mapped_column(Integer, index=True)


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
    event: Event | ExecutionFact | None
    """None for an undecodable record, or one the store has no use for."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the scheduler needs to take over partitions."""

    offsets: dict[int, int]
    tasks: Iterable[TaskState]
    """Read once: :meth:`TaskStore.snapshot` streams them from the database."""
    active: list[tuple[str, str, datetime]]
    """(task id, execution id, scheduled for) of unfinished executions."""
    runs: list[PendingRunState]
    undecided: list[str] = field(default_factory=list)
    """Execution ids of :class:`UndecidedFailure` rows."""
    finished_backfills: list[str] = field(default_factory=list)
    """Ids of the tasks' last backfills that ended: a step of one still on the log after
    the offsets (written with a fire that raced its cancel) fires nothing."""


def _json_loads(text: str | bytes) -> Any:
    """JSON columns read with orjson (several times faster than ``json``), as the events
    they come from were; what it refuses (``NaN``, which ``json`` writes) with ``json``."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        # several writers share the file (projections, the API's reads): wait for the lock
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            json_deserializer=_json_loads,
        )
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            listen(engine, "connect", _write_ahead_log)
        return engine
    return create_engine(url, pool_pre_ping=True, json_deserializer=_json_loads)


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
        from taskstream.core.migrate import upgrade

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
        Records before an offset the store holds are skipped: replays are no-ops.
        """
        rejected: dict[str, str] = {}
        if not records:
            return rejected
        tables = Base.metadata.tables
        offsets = tables[ProjectionOffset.__tablename__]
        with self.engine.begin() as connection:
            stored = _lock_positions(connection, self.topic, {r.partition for r in records})
            positions = dict(stored)
            fresh = [r for r in records if r.offset >= positions.get(r.partition, 0)]
            tasks = tables[TaskRow.__tablename__]
            active = tables[ActiveExecution.__tablename__]
            undecided = tables[UndecidedFailure.__tablename__]
            ids = execution_ids(r.event for r in fresh)
            fold = Fold(
                read_tasks(connection, tasks, {r.event.task_id for r in fresh if r.event}),
                read_held(connection, active, ids),
                read_held(connection, undecided, ids),
            )
            for record in fresh:
                if record.offset < positions[record.partition]:
                    continue  # twice in this batch
                event = record.event
                if event is not None:
                    outcome = fold.apply(record.partition, event)
                    if outcome is not None:
                        rejected[event.id] = outcome.reason
                positions[record.partition] = record.offset + 1
            write(connection, fold, tasks, active, tables[PendingRun.__tablename__], undecided)
            moved = [
                {"b_topic": self.topic, "b_partition": p, "next_offset": o}
                for p, o in sorted(positions.items())
                if o != stored[p]
            ]
            if moved:
                statement = update(offsets).where(
                    offsets.c.topic == bindparam("b_topic"),
                    offsets.c.partition == bindparam("b_partition"),
                )
                connection.execute(statement, moved)
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
            undecided = list(
                session.scalars(
                    select(UndecidedFailure.execution_id).where(
                        UndecidedFailure.partition.in_(wanted)
                    )
                )
            )
            backfills = session.scalars(
                select(TaskRow.backfill).where(
                    TaskRow.partition.in_(wanted), TaskRow.backfill.is_not(None)
                )
            )
            finished = [b["id"] for b in backfills if b and b["state"] != "running"]
        return Snapshot(offsets, self._stream_tasks(wanted), active, runs, undecided, finished)

    def _stream_tasks(self, partitions: list[int]) -> Iterator[TaskState]:
        """The live tasks of ``partitions``, a batch of rows at a time (a million fit).

        Plain rows rather than ``TaskRow`` objects (no identity map to fill and empty), and
        specs validated once per shape (:class:`taskstream.core.spec_reader.SpecReader`): restoring
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


def _lock_positions(connection: Connection, topic: str, partitions: set[int]) -> dict[int, int]:
    """:func:`lock_offsets` in SQLAlchemy Core: next offset by partition, rows locked."""
    _ensure_offset_rows(connection, topic, partitions)
    offsets = Base.metadata.tables[ProjectionOffset.__tablename__]
    query = (
        select(offsets.c.partition, offsets.c.next_offset)
        .where(offsets.c.topic == topic)
        .order_by(offsets.c.partition)  # one lock order: no deadlock
        .with_for_update()
    )
    return {partition: offset for partition, offset in connection.execute(query)}


def _ensure_offset_rows(session: Session | Connection, topic: str, partitions: set[int]) -> None:
    """Insert the missing offset rows of ``partitions`` (at 0), so that there is a row to lock.

    ``SELECT ... FOR UPDATE`` locks only rows that exist: without this, two instances
    applying the first records of a partition at once would both see no row, both apply
    the records, and one would fail on the duplicate keys. ``ON CONFLICT DO NOTHING``
    waits for a concurrent insert of the same row to commit, then skips it. On SQLite the
    insert also takes the write lock before the offsets are read.
    """
    values = [{"topic": topic, "partition": p, "next_offset": 0} for p in sorted(partitions)]
    bind = session if isinstance(session, Connection) else session.get_bind()
    dialect = bind.dialect.name
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
        "quarantined": row.quarantine,
        "backfill": row.backfill,
        "executions": {
            "scheduled": row.executions_scheduled,
            "succeeded": row.executions_succeeded,
            "failed": row.executions_failed,
            "skipped": row.executions_skipped,
        },
    }
