"""Per-execution logs: ``execution-logs`` -> the ``execution_log_chunks`` table -> the API.

Executors ship what a handler logs and prints as :class:`~taskstream.schemas.ExecutionLogChunk`
records (see :mod:`taskstream.schemas.execution_log`). Every core instance keeps them in its store,
like the task projection: it assigns every partition, resumes at the offsets the store
holds (``projection_offsets``, under this topic's name) and writes chunks and offsets in
one transaction; replays are no-ops (the key is execution, run and chunk number).
An undecodable record is logged with its position and skipped.

Retention: the topic deletes records after ``execution_log_retention`` and
:meth:`ExecutionLogStore.prune` deletes rows older than that (the loop calls it every
few minutes).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, TopicPartition
from prometheus_client import Counter
from pydantic import ValidationError
from sqlalchemy import JSON, BigInteger, Boolean, DateTime, Integer, String, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Mapped, Session, mapped_column

from taskstream.core.store import Base, ProjectionOffset, as_utc, lock_offsets, retrying_transient
from taskstream.infra.consumer_loop import ConsumerLoop, OnLoop
from taskstream.infra.kafka import consumer_config
from taskstream.infra.logs import fields
from taskstream.infra.settings import CommonSettings
from taskstream.schemas import ExecutionLogChunk

__all__ = [
    "ExecutionLog",
    "ExecutionLogRow",
    "ExecutionLogStore",
    "LogProjection",
    "LogRun",
]

logger = logging.getLogger(__name__)

CHUNKS_STORED = Counter(
    "taskstream_execution_log_chunks_total", "execution-logs records kept in the task store"
)
UNDECODABLE_CHUNKS = Counter(
    "taskstream_execution_log_undecodable_total", "execution-logs records that were not chunks"
)
PRUNE_INTERVAL = 300.0
"""Seconds between deletions of rows past their retention."""


class ExecutionLogRow(Base):
    __tablename__ = "execution_log_chunks"

    execution_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    task_id: Mapped[str] = mapped_column(String(64), index=True)
    attempt: Mapped[int] = mapped_column(Integer)
    worker_id: Mapped[str] = mapped_column(String(200))
    final: Mapped[bool] = mapped_column(Boolean)
    dropped_lines: Mapped[int] = mapped_column(Integer)
    dropped_bytes: Mapped[int] = mapped_column(BigInteger)
    lines: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    sent_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


@dataclass(frozen=True)
class LogRun:
    """One run of an execution on one executor, its chunks joined."""

    run_id: str
    worker_id: str
    attempt: int
    first_sent_at: datetime
    complete: bool
    """The final chunk arrived: the run ended and nothing is missing."""
    dropped_lines: int
    dropped_bytes: int
    lines: list[dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "worker_id": self.worker_id,
            "attempt": self.attempt,
            "first_sent_at": self.first_sent_at.isoformat(),
            "complete": self.complete,
            "dropped_lines": self.dropped_lines,
            "dropped_bytes": self.dropped_bytes,
            "lines": self.lines,
        }


@dataclass(frozen=True)
class ExecutionLog:
    """Every run of one execution id kept in the store, oldest first."""

    execution_id: str
    task_id: str
    runs: list[LogRun]

    def as_dict(self) -> dict[str, Any]:
        return {
            "execution_id": self.execution_id,
            "task_id": self.task_id,
            "runs": [run.as_dict() for run in self.runs],
        }

    def as_text(self) -> str:
        """The lines as ``time stream [level logger] message``, runs separated."""
        out: list[str] = []
        for run in self.runs:
            state = "complete" if run.complete else "running or incomplete"
            out.append(f"== attempt {run.attempt} on {run.worker_id} ({state})")
            for line in run.lines:
                origin = line["stream"]
                if line.get("level"):
                    origin = f"{line['level']} {line.get('logger') or ''}".rstrip()
                out.append(f"{line['at']} {origin}: {line['message']}")
            if run.dropped_lines:
                out.append(
                    f"[{run.dropped_lines} lines ({run.dropped_bytes} bytes) over the size cap "
                    "were dropped from the middle]"
                )
        return "\n".join(out) + "\n"


@dataclass(frozen=True)
class StoredChunk:
    partition: int
    offset: int
    chunk: ExecutionLogChunk | None
    """None: the record was not a chunk; only its offset advances."""


class ExecutionLogStore:
    """Reads and writes of ``execution_log_chunks``."""

    def __init__(self, engine: Engine, topic: str) -> None:
        self.engine = engine
        self.topic = topic

    def offsets(self) -> dict[int, int]:
        with Session(self.engine) as session:
            rows = session.scalars(
                select(ProjectionOffset).where(ProjectionOffset.topic == self.topic)
            )
            return {row.partition: row.next_offset for row in rows}

    def apply(self, records: Sequence[StoredChunk]) -> int:
        """Keep the chunks and advance the offsets, in one transaction; the count kept."""
        if not records:
            return 0
        with Session(self.engine) as session, session.begin():
            stored = lock_offsets(session, self.topic, {r.partition for r in records})
            rows = []
            for record in records:
                position = stored[record.partition]
                if record.offset < position.next_offset:
                    continue  # a replay
                position.next_offset = record.offset + 1
                if record.chunk is not None:
                    rows.append(_row(record.chunk))
            _insert_new(session, rows)
        return len(rows)

    def get(self, execution_id: str) -> ExecutionLog | None:
        with Session(self.engine) as session:
            rows = list(
                session.scalars(
                    select(ExecutionLogRow)
                    .where(ExecutionLogRow.execution_id == execution_id)
                    .order_by(ExecutionLogRow.sent_at, ExecutionLogRow.run_id, ExecutionLogRow.seq)
                )
            )
        if not rows:
            return None
        by_run: dict[str, list[ExecutionLogRow]] = {}
        for row in rows:
            by_run.setdefault(row.run_id, []).append(row)
        runs = [
            _joined(run_id, sorted(chunks, key=lambda r: r.seq))
            for run_id, chunks in by_run.items()
        ]
        runs.sort(key=lambda run: run.first_sent_at)
        return ExecutionLog(execution_id, rows[0].task_id, runs)

    def prune(self, older_than: datetime) -> int:
        """Delete chunks sent before ``older_than``; the count deleted."""
        with Session(self.engine) as session, session.begin():
            result = session.execute(
                delete(ExecutionLogRow).where(ExecutionLogRow.sent_at < older_than)
            )
        return int(getattr(result, "rowcount", 0) or 0)


def _row(chunk: ExecutionLogChunk) -> dict[str, Any]:
    return {
        "execution_id": chunk.execution_id,
        "run_id": chunk.run_id,
        "seq": chunk.seq,
        "task_id": chunk.task_id,
        "attempt": chunk.attempt,
        "worker_id": chunk.worker_id,
        "final": chunk.final,
        "dropped_lines": chunk.dropped_lines,
        "dropped_bytes": chunk.dropped_bytes,
        "lines": [line.model_dump(mode="json") for line in chunk.lines],
        "sent_at": chunk.sent_at,
    }


def _insert_new(session: Session, rows: list[dict[str, Any]]) -> None:
    """Insert ``rows``; one whose key is there already (a re-sent chunk) is skipped."""
    if not rows:
        return
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    for start in range(0, len(rows), 200):
        session.execute(
            insert(ExecutionLogRow).values(rows[start : start + 200]).on_conflict_do_nothing()
        )


def _joined(run_id: str, chunks: list[ExecutionLogRow]) -> LogRun:
    last = chunks[-1]
    contiguous = [chunk.seq for chunk in chunks] == list(range(len(chunks)))
    return LogRun(
        run_id=run_id,
        worker_id=last.worker_id,
        attempt=last.attempt,
        first_sent_at=as_utc(chunks[0].sent_at),
        complete=last.final and contiguous,
        dropped_lines=last.dropped_lines,
        dropped_bytes=last.dropped_bytes,
        lines=[line for chunk in chunks for line in chunk.lines],
    )


class LogProjection(OnLoop):
    """A thread that keeps ``execution_log_chunks`` up with ``execution-logs``."""

    def __init__(
        self, settings: CommonSettings, store: ExecutionLogStore, instance_id: str
    ) -> None:
        self.store = store
        self.topic = settings.topics.execution_logs
        self.retention: timedelta = settings.execution_log_retention
        self._consumer = Consumer(
            consumer_config(settings, f"{settings.topic_prefix}core-logs-{instance_id}")
        )
        self._next_prune = 0.0
        self._loop = ConsumerLoop(
            "execution-logs",
            consumer=self._consumer,
            handle_batch=self._apply,
            handle_record=lambda message: self._apply([message]),
            record_failed=self._step_over,
            tick=self._maybe_prune,
            poll_timeout=0.2,
            batch_size=500,
            essential=False,
            stall_after=settings.loop_stall_after,
        )

    name = "execution_logs"
    essential = False
    """Without it the API serves no new logs; scheduling and the task store go on."""

    def start(self) -> None:
        metadata = self._consumer.list_topics(self.topic, timeout=30)
        partitions = sorted(metadata.topics[self.topic].partitions)
        stored = self.store.offsets()
        self._consumer.assign(
            [TopicPartition(self.topic, p, stored.get(p, OFFSET_BEGINNING)) for p in partitions]
        )
        self._loop.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._loop.stop(timeout)
        self._consumer.close()

    def _maybe_prune(self) -> None:
        if time.monotonic() >= self._next_prune:
            self._prune()

    def _step_over(self, message: Message, exc: Exception) -> None:
        """A record the store cannot keep on its own: store its offset, log it, read on."""
        partition, offset = message.partition() or 0, message.offset() or 0
        logger.error(
            "stepping over an execution-logs record the store cannot keep: %s: %s",
            type(exc).__name__,
            exc,
            exc_info=exc,
            extra=fields(topic=self.topic, partition=partition, offset=offset),
        )
        keeping = retrying_transient("keeping execution log chunks")
        keeping(self.store.apply, [StoredChunk(partition, offset, None)])

    def _apply(self, messages: list[Message]) -> None:
        records = []
        for message in messages:
            error = message.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    logger.warning("execution-logs consumer: %s", error.str())
                continue
            partition, offset = message.partition() or 0, message.offset() or 0
            records.append(
                StoredChunk(partition, offset, self._decode(partition, offset, message.value()))
            )
        if records:
            keeping = retrying_transient("keeping execution log chunks")
            CHUNKS_STORED.inc(keeping(self.store.apply, records))

    def _decode(self, partition: int, offset: int, value: bytes | None) -> ExecutionLogChunk | None:
        try:
            return ExecutionLogChunk.decode(value or b"")
        except ValidationError as exc:
            UNDECODABLE_CHUNKS.inc()
            logger.error(
                "skipping an execution-logs record that is not a chunk: %s",
                str(exc).splitlines()[0],
                extra=fields(topic=self.topic, partition=partition, offset=offset),
            )
            return None

    def _prune(self) -> None:
        self._next_prune = time.monotonic() + PRUNE_INTERVAL
        try:
            deleted = self.store.prune(datetime.now(UTC) - self.retention)
        except OperationalError as exc:  # a busy database: the next interval tries again
            logger.warning("pruning execution logs failed (%s); retrying later", exc)
            return
        if deleted:
            logger.info("deleted %d execution log chunks past their retention", deleted)
