"""A known mix of executions' events for the monitor's tests, and what the log says of it.

:func:`generate` builds realistic event sequences (scheduled, started, an outcome, dead
letters after the last attempt, retries as new execution ids, a few unfinished and a few
skipped slots, a few delivered out of order) across tasks. :func:`expected_from_log`
counts, from ``task-events`` as read back from the broker, what the monitor must show:
it is written independently of the monitor's code (no import of ``monitor``).
"""

from __future__ import annotations

import math
import random
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from confluent_kafka import Producer

from taskstream.schemas import (
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
    Priority,
    RetryScheduled,
    SkipReason,
    encode_event,
    event_headers,
    execution_id,
)
from tests.kafka_read import RawRecord

OUTCOME_TYPES = {
    "ExecutionSucceeded": "succeeded",
    "ExecutionFailed": "failed",
    "ExecutionTimedOut": "timed_out",
    "ExecutionCancelled": "cancelled",
}
LIFECYCLE_TYPES = ("ExecutionScheduled", "ExecutionStarted", "ExecutionDeadLettered")
WINDOW_COUNTS = ("succeeded", "failed", "timed_out", "cancelled", "dead_lettered")
COUNTED = ("succeeded", "failed", "timed_out", "cancelled", "dead_lettered", "skipped")


@dataclass
class Workload:
    task_ids: list[str]
    events: list[Event]
    """In the order they are produced (out-of-order deliveries included)."""
    duplicates: list[Event]
    """Events produced a second time right after themselves (same id)."""
    executions: int


def generate(seed: int, now: datetime, *, tasks: int = 20, per_task: int = 50) -> Workload:
    """``tasks`` x ``per_task`` executions, finished between 40 and 3 minutes before ``now``."""
    rng = random.Random(seed)
    task_ids = [str(uuid.UUID(int=rng.getrandbits(128))) for _ in range(tasks)]
    timed: list[tuple[datetime, int, Event]] = []  # (when it is produced, tie-break, event)

    def emit(
        task_id: str, data: EventData, at: datetime, produce_at: datetime | None = None
    ) -> Event:
        event = Event.create(
            task_id, data, occurred_at=at, event_id=str(uuid.UUID(int=rng.getrandbits(128)))
        )
        timed.append((produce_at or at, len(timed), event))
        return event

    start = now - timedelta(minutes=40)
    spacing = timedelta(minutes=35) / per_task
    for task_id in task_ids:
        slot_index, attempt, fire_at = 0, 1, start
        for _ in range(per_task):
            slot = start + spacing * slot_index + timedelta(milliseconds=rng.randrange(1000))
            fired = slot if attempt == 1 else fire_at
            eid = execution_id(task_id, slot, attempt)
            common = {"execution_id": eid, "attempt": attempt, "scheduled_for": slot}
            scheduled = ExecutionScheduled(
                **common, topic="t", queue="default", priority=Priority.MEDIUM
            )
            emit(task_id, scheduled, fired)
            roll = rng.random()
            if roll < 0.02:  # never started
                slot_index, attempt = slot_index + 1, 1
                continue
            started_at = fired + timedelta(milliseconds=rng.randrange(5, 200))
            started = ExecutionStarted(**common, worker_id="w1", handler="echo")
            if roll < 0.04:  # still running
                emit(task_id, started, started_at)
                slot_index, attempt = slot_index + 1, 1
                continue
            duration = min(rng.lognormvariate(-1, 1.5), 25.0)
            run = {**common, "worker_id": "w1", "duration_seconds": duration}
            data: EventData
            if roll < 0.64:
                data, outcome = ExecutionSucceeded(**run, output={"n": 1}), "succeeded"
            elif roll < 0.86:
                data = ExecutionFailed(**run, error_type="E", error_message="x")
                outcome = "failed"
            elif roll < 0.94:
                duration = 10.0
                data = ExecutionTimedOut(**{**run, "duration_seconds": 10.0}, timeout_seconds=10)
                outcome = "timed_out"
            else:
                data, outcome = ExecutionCancelled(**run, reason="asked"), "cancelled"
            ended_at = started_at + timedelta(seconds=duration)
            if rng.random() < 0.03:  # the outcome is delivered before ExecutionStarted
                emit(task_id, data, ended_at, produce_at=started_at - timedelta(microseconds=1))
            else:
                emit(task_id, data, ended_at)
            emit(task_id, started, started_at)
            if outcome in ("failed", "timed_out"):
                if attempt < 3 and rng.random() < 0.6:
                    attempt, fire_at = attempt + 1, ended_at + timedelta(seconds=2)
                    retry = RetryScheduled(
                        execution_id=execution_id(task_id, slot, attempt),
                        failed_execution_id=eid,
                        attempt=attempt,
                        scheduled_for=slot,
                        due_at=fire_at,
                    )
                    emit(task_id, retry, ended_at)
                    continue
                dead = ExecutionDeadLettered(**common, reason="max_attempts")
                emit(task_id, dead, ended_at + timedelta(milliseconds=1))
            slot_index, attempt = slot_index + 1, 1
        for _ in range(rng.randrange(0, 3)):
            skipped_slot = start + spacing * rng.randrange(per_task)
            skip = ExecutionSkipped(
                scheduled_for=skipped_slot, reason=SkipReason.MISFIRE, count=rng.randint(1, 4)
            )
            emit(task_id, skip, skipped_slot)
    timed.sort(key=lambda item: (item[0], item[1]))
    events = [event for _, _, event in timed]
    duplicates = rng.sample(events, len(events) // 30)
    chosen = {event.id for event in duplicates}
    produced: list[Event] = []
    for event in events:
        produced.append(event)
        if event.id in chosen:
            produced.append(event)
    return Workload(task_ids, produced, duplicates, tasks * per_task)


class EventProducer:
    """Produces events as the core and the executor do: key = task id, Java partitioner."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self._producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "partitioner": "murmur2_random",
                "enable.idempotence": True,
                "linger.ms": 5,
            }
        )

    def send(self, events: Iterable[Event]) -> None:
        for event in events:
            while True:
                try:
                    self._producer.produce(
                        self.topic,
                        key=event.task_id.encode(),
                        value=encode_event(event),
                        headers=event_headers(event),
                    )
                    break
                except BufferError:
                    self._producer.poll(0.1)
        assert self._producer.flush(30) == 0, "records not delivered"


def nearest_rank(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


@dataclass
class _Execution:
    task_id: str
    partition: int
    first_seen: int
    started: bool = False
    outcome: str | None = None
    finished_at: datetime | None = None
    duration: float | None = None
    dead_lettered_at: datetime | None = None
    ended_at: datetime | None = None

    @property
    def status(self) -> str:
        if self.dead_lettered_at is not None:
            return "dead_lettered"
        return self.outcome or ("running" if self.started else "scheduled")


@dataclass
class Expected:
    totals: dict[str, int]
    tasks: dict[str, dict[str, Any]]
    windows: dict[datetime, dict[str, Any]]
    executions: dict[str, _Execution] = field(repr=False)
    finished_durations: list[float] = field(repr=False)

    def history(self, task_id: str, size: int) -> list[str]:
        mine = [e for e in self.executions.items() if e[1].task_id == task_id]
        return [eid for eid, _ in sorted(mine, key=lambda e: -e[1].first_seen)][:size]

    def recent(self, status: str, per_partition: int) -> list[str]:
        kept: list[tuple[datetime, str]] = []
        for partition in {e.partition for e in self.executions.values()}:
            ended = [
                (e.ended_at, eid)
                for eid, e in self.executions.items()
                if e.partition == partition and e.ended_at is not None
            ]
            kept += sorted(ended, reverse=True)[:per_partition]  # type: ignore[arg-type]
        kept.sort(reverse=True)
        return [eid for _, eid in kept if self.executions[eid].status == status]


def _at(text: object) -> datetime:
    return datetime.fromisoformat(str(text)).astimezone(UTC)


def expected_from_log(records: list[RawRecord]) -> Expected:
    """What the monitor must show for ``task-events`` as read back (duplicates dropped by id)."""
    seen: set[str] = set()
    executions: dict[str, _Execution] = {}
    skipped: dict[str, int] = defaultdict(int)
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        event = record.value
        event_id = str(event["id"])
        if event_id in seen:
            continue
        seen.add(event_id)
        data: dict[str, Any] = event["data"]  # type: ignore[assignment]
        task_id, kind, at = str(event["task_id"]), str(event["type"]), _at(event["occurred_at"])
        if kind == "ExecutionSkipped":
            skipped[task_id] += int(data.get("count", 1))
            continue
        if kind not in (
            *OUTCOME_TYPES,
            "ExecutionScheduled",
            "ExecutionStarted",
            "ExecutionDeadLettered",
        ):
            continue
        execution = executions.setdefault(
            str(data["execution_id"]), _Execution(task_id, record.partition, len(seen))
        )
        done_before = execution.ended_at is not None
        if kind == "ExecutionStarted":
            execution.started = True
        elif kind in OUTCOME_TYPES and execution.outcome is None:
            execution.outcome = OUTCOME_TYPES[kind]
            execution.finished_at = at
            execution.duration = float(data["duration_seconds"])
        elif kind == "ExecutionDeadLettered" and execution.dead_lettered_at is None:
            execution.dead_lettered_at = at
        if not done_before and (execution.outcome or execution.dead_lettered_at):
            execution.ended_at = at

    totals = dict.fromkeys(("scheduled", "running", *COUNTED), 0)
    tasks: dict[str, dict[str, Any]] = {}
    windows: dict[datetime, dict[str, Any]] = {}
    finished_durations = []

    def task(task_id: str) -> dict[str, Any]:
        return tasks.setdefault(
            task_id,
            {"counts": dict.fromkeys(COUNTED, 0), "durations": [], "last": None},
        )

    def window(at: datetime) -> dict[str, Any]:
        minute = at.replace(second=0, microsecond=0)
        return windows.setdefault(
            minute,
            {
                **dict.fromkeys(
                    ("succeeded", "failed", "timed_out", "cancelled", "dead_lettered"), 0
                ),
                "durations": [],
            },
        )

    for eid, execution in executions.items():
        stats = task(execution.task_id)
        if execution.outcome is None and execution.dead_lettered_at is None:
            totals["running" if execution.started else "scheduled"] += 1
        if execution.outcome is not None:
            assert execution.finished_at is not None and execution.duration is not None
            totals[execution.outcome] += 1
            stats["counts"][execution.outcome] += 1
            stats["durations"].append(execution.duration)
            finished_durations.append(execution.duration)
            if stats["last"] is None or execution.finished_at > stats["last"][0]:
                stats["last"] = (execution.finished_at, eid)
            bucket = window(execution.finished_at)
            bucket[execution.outcome] += 1
            bucket["durations"].append(execution.duration)
        if execution.dead_lettered_at is not None:
            totals["dead_lettered"] += 1
            stats["counts"]["dead_lettered"] += 1
            window(execution.dead_lettered_at)["dead_lettered"] += 1
    for task_id, slots in skipped.items():
        totals["skipped"] += slots
        task(task_id)["counts"]["skipped"] += slots
    return Expected(totals, tasks, windows, executions, finished_durations)
