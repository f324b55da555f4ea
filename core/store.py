"""The task store: a SQL projection of ``task-events`` (the query side).

Rows and the consumed offsets are written in one database transaction, so replaying
never applies an event twice and a crash never loses one: the projection resumes at
the offsets the database holds.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, overload

from sqlalchemy import JSON, DateTime, Integer, String, create_engine, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from schemas import (
    Event,
    ExecutionFailed,
    ExecutionScheduled,
    ExecutionStarted,
    ExecutionSucceeded,
    TaskCreated,
)

__all__ = ["AppliedRecord", "TaskRow", "TaskStore", "as_utc", "make_engine", "task_as_dict"]


class _Base(DeclarativeBase):
    pass


class TaskRow(_Base):
    __tablename__ = "tasks"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), index=True)
    handler: Mapped[str] = mapped_column(String(300), index=True)
    queue: Mapped[str] = mapped_column(String(63), index=True)
    priority: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(16), index=True)
    version: Mapped[int] = mapped_column(Integer)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_scheduled_for: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_execution_id: Mapped[str | None] = mapped_column(String(64))
    last_status: Mapped[str | None] = mapped_column(String(16))
    executions_scheduled: Mapped[int] = mapped_column(Integer, default=0)
    executions_succeeded: Mapped[int] = mapped_column(Integer, default=0)
    executions_failed: Mapped[int] = mapped_column(Integer, default=0)
    partition: Mapped[int] = mapped_column(Integer)


class ProjectionOffset(_Base):
    __tablename__ = "projection_offsets"

    topic: Mapped[str] = mapped_column(String(249), primary_key=True)
    partition: Mapped[int] = mapped_column(Integer, primary_key=True)
    next_offset: Mapped[int] = mapped_column(Integer)


@dataclass(frozen=True, slots=True)
class AppliedRecord:
    """One consumed record: where it was, and the event (None if undecodable)."""

    partition: int
    offset: int
    event: Event | None


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            from pathlib import Path

            Path(path).parent.mkdir(parents=True, exist_ok=True)
        return create_engine(url, connect_args={"check_same_thread": False})
    return create_engine(url, pool_pre_ping=True)


@overload
def as_utc(value: datetime) -> datetime: ...
@overload
def as_utc(value: None) -> None: ...
def as_utc(value: datetime | None) -> datetime | None:
    """Times are stored in UTC; SQLite hands them back without a zone."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


class TaskStore:
    """Reads and writes of the projection."""

    def __init__(self, engine: Engine, topic: str) -> None:
        self.engine = engine
        self.topic = topic

    def create_schema(self) -> None:
        _Base.metadata.create_all(self.engine)

    def offsets(self) -> dict[int, int]:
        """Next offset to consume, per partition of the topic."""
        with Session(self.engine) as session:
            rows = session.scalars(
                select(ProjectionOffset).where(ProjectionOffset.topic == self.topic)
            )
            return {row.partition: row.next_offset for row in rows}

    def apply(self, records: Sequence[AppliedRecord]) -> None:
        """Apply a batch of records and advance the offsets, in one transaction."""
        if not records:
            return
        with Session(self.engine) as session, session.begin():
            stored = {
                row.partition: row
                for row in session.scalars(
                    select(ProjectionOffset)
                    .where(ProjectionOffset.topic == self.topic)
                    .with_for_update()
                )
            }
            for record in records:
                position = stored.get(record.partition)
                if position is not None and record.offset < position.next_offset:
                    continue  # already applied: replays are no-ops
                if record.event is not None:
                    _apply_event(session, record.partition, record.event)
                if position is None:
                    position = ProjectionOffset(
                        topic=self.topic, partition=record.partition, next_offset=record.offset + 1
                    )
                    session.add(position)
                    stored[record.partition] = position
                else:
                    position.next_offset = record.offset + 1
                session.flush()

    def get(self, task_id: str) -> TaskRow | None:
        with Session(self.engine) as session:
            row = session.get(TaskRow, task_id)
            if row is not None:
                session.expunge(row)
            return row

    def list_tasks(self, *, page: int, size: int) -> tuple[list[TaskRow], int]:
        with Session(self.engine) as session:
            total = session.scalar(select(func.count()).select_from(TaskRow)) or 0
            rows = list(
                session.scalars(
                    select(TaskRow)
                    .order_by(TaskRow.created_at, TaskRow.id)
                    .offset(page * size)
                    .limit(size)
                )
            )
            for row in rows:
                session.expunge(row)
            return rows, total

    def snapshot(self, partitions: Iterable[int]) -> tuple[dict[int, int], list[TaskRow]]:
        """The offsets, then the tasks, of ``partitions``.

        Offsets are read first: rows may then be newer than the offsets, never older, so
        a reader that re-applies events from those offsets idempotently misses nothing.
        """
        wanted = list(partitions)
        offsets = {p: o for p, o in self.offsets().items() if p in wanted}
        with Session(self.engine) as session:
            rows = list(session.scalars(select(TaskRow).where(TaskRow.partition.in_(wanted))))
            for row in rows:
                session.expunge(row)
        return offsets, rows


def task_as_dict(row: TaskRow) -> dict[str, Any]:
    return {
        "id": row.id,
        **row.spec,
        "status": row.status,
        "version": row.version,
        "created_at": as_utc(row.created_at),
        "updated_at": as_utc(row.updated_at),
        "last_scheduled_for": as_utc(row.last_scheduled_for),
        "last_execution_id": row.last_execution_id,
        "last_status": row.last_status,
        "executions": {
            "scheduled": row.executions_scheduled,
            "succeeded": row.executions_succeeded,
            "failed": row.executions_failed,
        },
    }


def _apply_event(session: Session, partition: int, event: Event) -> None:
    data = event.data
    if isinstance(data, TaskCreated):
        if session.get(TaskRow, event.task_id) is not None:
            return
        spec = data.task
        session.add(
            TaskRow(
                id=event.task_id,
                name=spec.name,
                handler=spec.handler,
                queue=spec.queue,
                priority=spec.priority.value,
                status="active",
                version=1,
                spec=spec.model_dump(mode="json"),
                created_at=event.occurred_at.astimezone(UTC),
                updated_at=event.occurred_at.astimezone(UTC),
                executions_scheduled=0,
                executions_succeeded=0,
                executions_failed=0,
                partition=partition,
            )
        )
        return
    row = session.get(TaskRow, event.task_id)
    if row is None:
        return  # an execution of a task this store never saw created (e.g. a trimmed log)
    if isinstance(data, ExecutionScheduled):
        row.executions_scheduled += 1
        row.last_execution_id = data.execution_id
        row.last_status = "scheduled"
        last = as_utc(row.last_scheduled_for)
        if last is None or data.scheduled_for > last:
            row.last_scheduled_for = data.scheduled_for.astimezone(UTC)
        if row.spec["schedule"].get("at") is not None:
            row.status = "completed"
    elif isinstance(data, ExecutionStarted):
        row.last_status = "running"
    elif isinstance(data, ExecutionSucceeded):
        row.executions_succeeded += 1
        row.last_status = "succeeded"
    elif isinstance(data, ExecutionFailed):
        row.executions_failed += 1
        row.last_status = "failed"
