"""An independent ledger of a taskstream run: what should have fired, what did, what ended.

This module shares no code with the services on purpose (only confluent-kafka, json and the
standard library): it reads the documented JSON wire format (README "Events",
``schemas/json/events/*.json``, ``schemas/json/work-order.v1.json``) and the documented
REST answers, and derives what *should* have happened from each task's definition with its
own arithmetic. A bug shared by the services and a checker built from their code would
prove nothing.

It proves, for the interval tasks it is given (``schedule.every``, optionally bounded by
``schedule.end``):

* every slot (creation + k * interval, k >= 1, up to the end or the horizon) fired
  (``ExecutionScheduled``, trigger ``schedule``) or was skipped (``ExecutionSkipped``,
  runs of ``count`` slots) exactly once: no slot lost, no slot fired twice (two execution
  ids for one task and slot, or one execution id scheduled twice), none fired and skipped;
* every fired execution has exactly one work order on an execution topic, and no work
  order exists without its ``ExecutionScheduled``;
* every fired execution reached a terminal outcome: succeeded, cancelled, dead-lettered,
  or failed / timed out and then either retried (``RetryScheduled`` naming it, whose new
  execution is fired and in turn terminal) or not retried;
* no execution ran again after it had finished (a run started after its end: an
  ``ExecutionStarted``, or an outcome v2 that carries ``started_at`` and follows no
  ``ExecutionStarted`` of its own, as a run that ended quickly writes),
  but one whose offset was not committed yet when its executor was killed, within
  ``COMMIT_WINDOW`` of its end: the executors' commits are read from the broker's
  ``__consumer_offsets`` (Kafka's documented record format), which also gives the time
  from each outcome to its commit (``commit_latency_ms``);
* the core's task store (``GET /api/tasks/{id}``: ``executions`` counters) and the monitor
  (``GET /api/monitor/tasks/{id}/stats`` and ``/api/monitor/metrics``) count each
  execution once, as the log does.

Everything is read ``read_committed`` (the scheduler fires in transactions).
"""

from __future__ import annotations

import bisect
import json
import re
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from confluent_kafka import Consumer, KafkaError, Message, TopicPartition

__all__ = ["Ledger", "TaskLedger", "build_ledger", "parse_duration", "read_committed"]

_T = TypeVar("_T")

_END_EVENTS = {
    "ExecutionSucceeded": "succeeded",
    "ExecutionFailed": "failed",
    "ExecutionTimedOut": "timed_out",
    "ExecutionCancelled": "cancelled",
}
DELETE_MARGIN = timedelta(seconds=2)
"""Slots due this shortly before their task's ``TaskDeleted`` may be dropped by it, and
slots due this shortly after it may still fire: the scheduler stops a task when it reads
the delete, and a slot that came due before that fires (once), as the README says."""
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> timedelta:
    """``"1s"``, ``"1h30m"``, ``"250ms"`` or plain seconds (``"2.5"``), as documented."""
    text = text.strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return timedelta(seconds=float(text))
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a duration: {text!r}")
    return timedelta(seconds=sum(float(n) * _UNITS[u] for n, u in parts))


def _when(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise ValueError(f"a time without a zone on the wire: {text!r}")
    return value


# --------------------------------------------------------------------------- #
# Reading topics
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    value: dict[str, Any]


def read_committed(bootstrap: str, topics: Iterable[str], timeout: float = 120.0) -> list[Record]:
    """Every committed record of ``topics`` up to their end now, values parsed as JSON.

    Reads each partition from offset 0 to the last stable offset taken when it starts (a
    transaction still open then is waited for by the broker's read_committed fetch)."""
    return _read(
        bootstrap,
        topics,
        lambda m: Record(
            m.topic() or "", m.partition() or 0, m.offset() or 0, json.loads(m.value() or b"null")
        ),
        timeout,
    )


def _read(
    bootstrap: str, topics: Iterable[str], convert: Callable[[Message], _T], timeout: float
) -> list[_T]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"ledger-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
        }
    )
    deadline = time.monotonic() + timeout
    records: list[_T] = []
    try:
        assignment = []
        for topic in topics:
            metadata = consumer.list_topics(topic, timeout=30).topics[topic]
            if metadata.error is not None:
                raise AssertionError(f"{topic}: {metadata.error}")
            assignment += [TopicPartition(topic, p, 0) for p in metadata.partitions]
        ends: dict[tuple[str, int], int] = {}
        for tp in assignment:
            _, high = consumer.get_watermark_offsets(tp, timeout=30)
            ends[(tp.topic, tp.partition)] = high
        pending = {key for key, high in ends.items() if high > 0}
        consumer.assign([tp for tp in assignment if (tp.topic, tp.partition) in pending])
        while pending:
            if time.monotonic() > deadline:
                raise AssertionError(f"read_committed: no end reached in {timeout}s: {pending}")
            message = consumer.poll(0.5)
            if message is None:
                continue
            key = (message.topic() or "", message.partition() or 0)
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    pending.discard(key)
                    continue
                raise AssertionError(f"reading {key}: {error.str()}")
            offset = message.offset() or 0
            records.append(convert(message))
            if offset + 1 >= ends[key]:
                pending.discard(key)
    finally:
        consumer.close()
    return records


def execution_topics(bootstrap: str, prefix: str) -> list[str]:
    """The work-order topics under ``prefix`` (``<prefix>executions.<queue>.<priority>``)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "ledger-list"})
    try:
        names = consumer.list_topics(timeout=30).topics
    finally:
        consumer.close()
    return sorted(n for n in names if n.startswith(f"{prefix}executions."))


def _get_json(url: str, token: str | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        body = exc.read()
        try:
            return exc.code, json.loads(body or b"null")
        except ValueError:
            return exc.code, body.decode("utf-8", "replace")


Commits = dict[tuple[str, int], list[tuple[datetime, int]]]
"""Per execution-topic partition, the executors' offset commits: (commit time, offset), in
the order the broker wrote them."""


def read_commits(bootstrap: str, group_prefix: str, timeout: float = 120.0) -> Commits:
    """The offset commits of the consumer groups named ``group_prefix...``, read from the
    broker's ``__consumer_offsets`` topic (Kafka's documented ``OffsetCommitKey`` /
    ``OffsetCommitValue`` records, versions 0-4)."""
    commits: Commits = defaultdict(list)
    for key, value in _read(
        bootstrap, ["__consumer_offsets"], lambda m: (m.key(), m.value()), timeout
    ):
        parsed = _offset_commit(key, value)
        if parsed is not None and parsed[0].startswith(group_prefix):
            _, topic, partition, offset, at = parsed
            commits[(topic, partition)].append((at, offset))
    return commits


def _offset_commit(
    key: bytes | None, value: bytes | None
) -> tuple[str, str, int, int, datetime] | None:
    """(group, topic, partition, offset, commit time) of an offset commit record, or None."""
    if key is None or value is None or len(key) < 2:
        return None
    if int.from_bytes(key[:2], "big") > 1:  # 2: group metadata, 3+: other coordinators
        return None
    at = 2
    strings = []
    for _ in range(2):
        length = int.from_bytes(key[at : at + 2], "big")
        strings.append(key[at + 2 : at + 2 + length].decode())
        at += 2 + length
    group, topic = strings
    partition = int.from_bytes(key[at : at + 4], "big", signed=True)
    version = int.from_bytes(value[:2], "big")
    offset = int.from_bytes(value[2:10], "big", signed=True)
    at = 10 + (4 if version >= 3 else 0)  # leaderEpoch
    if version >= 4:  # flexible: the metadata is a compact string (unsigned varint length + 1)
        length, shift = 0, 0
        while True:
            byte = value[at]
            at += 1
            length |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        at += max(length - 1, 0)
    else:
        at += 2 + int.from_bytes(value[at : at + 2], "big")
    millis = int.from_bytes(value[at : at + 8], "big", signed=True)
    return group, topic, partition, offset, datetime.fromtimestamp(millis / 1000, UTC)


class CommitTimes:
    """When each record of an execution topic was first covered by a commit."""

    def __init__(self, commits: Commits) -> None:
        self._times: dict[tuple[str, int], list[datetime]] = {}
        self._highest: dict[tuple[str, int], list[int]] = {}  # running maximum: sorted
        for key, entries in commits.items():
            highest, times = [], []
            top = -1
            for at, offset in entries:
                top = max(top, offset)
                highest.append(top)
                times.append(at)
            self._times[key], self._highest[key] = times, highest

    def covered(self, topic: str, partition: int, offset: int) -> datetime | None:
        """When a committed offset first went past ``offset``, or None (never)."""
        highest = self._highest.get((topic, partition))
        if not highest:
            return None
        index = bisect.bisect_right(highest, offset)
        return self._times[(topic, partition)][index] if index < len(highest) else None


# --------------------------------------------------------------------------- #
# The ledger
# --------------------------------------------------------------------------- #


@dataclass
class Execution:
    execution_id: str
    task_id: str
    attempt: int
    trigger: str
    scheduled_for: datetime
    scheduled: int = 0  # ExecutionScheduled records
    work_orders: int = 0
    order_at: tuple[str, int, int] | None = None  # its work order: topic, partition, offset
    starts: list[int] = field(default_factory=list)  # offsets of ExecutionStarted
    start_times: list[str] = field(default_factory=list)  # their occurred_at
    running: bool = False  # an ExecutionStarted not followed by an outcome yet
    first_end_time: datetime | None = None  # occurred_at of the first outcome
    ends: list[tuple[int, str]] = field(default_factory=list)  # (offset, outcome)
    dead_lettered: int = 0
    retried_by: str | None = None  # execution id of the RetryScheduled attempt

    @property
    def outcome(self) -> str | None:
        if self.dead_lettered:
            return "dead_lettered"
        return self.ends[0][1] if self.ends else None


@dataclass
class TaskLedger:
    task_id: str
    created: datetime | None = None
    every: timedelta | None = None
    end: datetime | None = None
    deleted: datetime | None = None
    fired: dict[datetime, list[str]] = field(default_factory=lambda: defaultdict(list))
    skipped: Counter[datetime] = field(default_factory=Counter)
    skip_reasons: Counter[str] = field(default_factory=Counter)
    skipped_total: int = 0
    problems: list[str] = field(default_factory=list)

    def expected_slots(self, horizon: datetime) -> tuple[list[datetime], set[datetime]]:
        """The slots that must be accounted for, and those that may or may not be: a slot
        at exactly ``end`` (the bound's inclusiveness is not the ledger's to assume), and
        those due within ``DELETE_MARGIN`` of the task's deletion, before it (a delete can
        overtake a slot that is due but not fired yet) or after it (the scheduler had not
        read the delete yet)."""
        if self.created is None or self.every is None:
            return [], set()
        stop = min(t for t in (self.end, self.deleted, horizon) if t is not None)
        deleted = stop == self.deleted
        settled = stop - DELETE_MARGIN if deleted else stop
        last = stop + DELETE_MARGIN if deleted else stop
        slots: list[datetime] = []
        optional: set[datetime] = set()
        k = 1
        while (slot := self.created + k * self.every) <= last:
            if slot < settled:
                slots.append(slot)
            elif slot < stop or slot == self.end or deleted:
                if self.end is None or slot <= self.end:
                    optional.add(slot)
            k += 1
        return slots, optional


@dataclass
class Ledger:
    tasks: dict[str, TaskLedger]
    executions: dict[str, Execution]
    slots_expected: int = 0
    slots_fired: int = 0
    slots_skipped: int = 0
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    terminal: int = 0
    missing_outcomes: list[str] = field(default_factory=list)
    lost_retries: list[str] = field(default_factory=list)
    work_order_problems: list[str] = field(default_factory=list)
    reran_after_finish: list[str] = field(default_factory=list)
    event_copies: int = 0
    """Copies of events already read (same id), skipped: see ``_Folded.event_copies``."""
    reran_in_flight: int = 0
    reran_at_kill: int = 0
    """Finished less than ``COMMIT_WINDOW`` before an executor's kill -9 and run again, its
    offset not committed yet (``__consumer_offsets`` says so): the commit was under way
    (the documented at-least-once window)."""
    executor_kills: list[datetime] = field(default_factory=list)
    commit_latencies: list[float] = field(default_factory=list)
    """Seconds from an execution's first outcome to the commit of its work order's offset."""
    disagreements: list[str] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)

    @property
    def fired(self) -> int:
        return len(self.executions)

    def ok(self) -> bool:
        return not (
            self.lost
            or self.duplicated
            or self.missing_outcomes
            or self.lost_retries
            or self.work_order_problems
            or self.reran_after_finish
            or self.disagreements
        )

    def summary(self) -> dict[str, Any]:
        return {
            "tasks": len(self.tasks),
            "slots_expected": self.slots_expected,
            "slots_fired": self.slots_fired,
            "slots_skipped": self.slots_skipped,
            "lost": len(self.lost),
            "duplicated": len(self.duplicated),
            "executions_fired": self.fired,
            "terminal": self.terminal,
            "missing_outcomes": len(self.missing_outcomes),
            "lost_retries": len(self.lost_retries),
            "work_order_problems": len(self.work_order_problems),
            "reran_after_finish": len(self.reran_after_finish),
            "event_copies": self.event_copies,
            "reran_in_flight": self.reran_in_flight,
            "reran_at_kill": self.reran_at_kill,
            "commit_latency_ms": _latency_ms(self.commit_latencies),
            "outcomes": dict(self.outcomes),
            "disagreements": len(self.disagreements),
        }

    def report(self, examples: int = 5) -> str:
        lines = [json.dumps(self.summary(), sort_keys=True)]
        for name in (
            "lost",
            "duplicated",
            "missing_outcomes",
            "lost_retries",
            "work_order_problems",
            "reran_after_finish",
            "disagreements",
        ):
            items: list[str] = getattr(self, name)
            if items:
                lines.append(f"{name} ({len(items)}): " + "; ".join(items[:examples]))
        return "\n".join(lines)


@dataclass
class _Folded:
    tasks: dict[str, TaskLedger] = field(default_factory=dict)
    executions: dict[str, Execution] = field(default_factory=dict)
    rescheduled: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    lost_retries: list[str] = field(default_factory=list)
    event_copies: int = 0
    """Records of an event already read (same ``id``): the log is at-least-once, a
    producer sends a record again when it cannot confirm its delivery (a broker killed
    mid-write), and every consumer reads events idempotently by id."""


def _fold_task_events(records: list[Record], wanted: set[str] | None) -> _Folded:
    folded = _Folded()
    tasks, executions = folded.tasks, folded.executions
    pending_retries: dict[str, tuple[str, str, datetime]] = {}  # new -> (failed, task, due)
    seen: set[str] = set()
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        event = record.value
        event_id = event.get("id")
        if isinstance(event_id, str):
            if event_id in seen:
                folded.event_copies += 1
                continue
            seen.add(event_id)
        task_id = event.get("task_id")
        if not isinstance(task_id, str) or (wanted is not None and task_id not in wanted):
            continue
        kind, data = event.get("type"), event.get("data") or {}
        task = tasks.setdefault(task_id, TaskLedger(task_id))
        where = f"task-events[{record.partition}]@{record.offset}"
        if kind == "TaskCreated":
            task.created = _when(event["occurred_at"])
            schedule = data["task"]["schedule"]
            if schedule.get("every"):
                task.every = parse_duration(schedule["every"])
            if schedule.get("end"):
                task.end = _when(schedule["end"])
        elif kind == "TaskDeleted":
            task.deleted = task.deleted or _when(event["occurred_at"])
        elif kind == "ExecutionScheduled":
            ident = data["execution_id"]
            execution = executions.get(ident)
            if execution is None:
                execution = executions[ident] = Execution(
                    ident,
                    task_id,
                    int(data["attempt"]),
                    data.get("trigger", "schedule"),
                    _when(data["scheduled_for"]),
                )
                if execution.trigger == "schedule":
                    task.fired[execution.scheduled_for].append(ident)
            execution.scheduled += 1
            if execution.scheduled > 1:
                folded.rescheduled.append(f"execution {ident} scheduled again at {where}")
            pending_retries.pop(ident, None)
        elif kind == "ExecutionSkipped":
            first, count = _when(data["scheduled_for"]), int(data.get("count", 1))
            task.skipped_total += count
            task.skip_reasons[data["reason"]] += count
            if task.every is None:
                task.skipped[first] += count
                continue
            for n in range(count):
                task.skipped[first + n * task.every] += 1
            last = data.get("last_scheduled_for")
            if last is not None and _when(last) != first + (count - 1) * task.every:
                task.problems.append(
                    f"skip run at {where}: {count} slots from {first} should end at "
                    f"{first + (count - 1) * task.every}, says {last}"
                )
        elif kind == "ExecutionStarted" and data["execution_id"] in executions:
            started = executions[data["execution_id"]]
            started.starts.append(record.offset)
            started.start_times.append(str(record.value["occurred_at"]))
            started.running = True
        elif kind in _END_EVENTS and data["execution_id"] in executions:
            ended = executions[data["execution_id"]]
            if data.get("started_at") is not None and not ended.running:
                # v2: a run that ended quickly is its outcome alone, which says it started
                ended.starts.append(record.offset)
                ended.start_times.append(str(data["started_at"]))
            ended.running = False
            ended.ends.append((record.offset, _END_EVENTS[kind]))
            if ended.first_end_time is None:
                ended.first_end_time = _when(record.value["occurred_at"])
        elif kind == "ExecutionDeadLettered" and data["execution_id"] in executions:
            executions[data["execution_id"]].dead_lettered += 1
        elif kind in ("RetryScheduled", "DeadLetterReplayed"):
            failed = data.get("failed_execution_id") or data["dead_lettered_execution_id"]
            if failed in executions:
                executions[failed].retried_by = data["execution_id"]
            if data["execution_id"] not in executions:  # not fired yet
                # (a rerun of the failed attempt after an executor's kill -9 reports the
                # same retry again, possibly after the scheduler fired it: not owed twice)
                pending_retries[data["execution_id"]] = (failed, task_id, _when(data["due_at"]))
        elif kind in ("ExecutionStarted", "ExecutionDeadLettered", *_END_EVENTS):
            folded.orphans.append(f"{kind} at {where} for unscheduled {data.get('execution_id')}")
    for new, (failed, task_id, due) in pending_retries.items():
        deleted = tasks[task_id].deleted
        if deleted is not None and due >= deleted - DELETE_MARGIN:
            continue  # due after (or just before) its task was deleted: not owed
        folded.lost_retries.append(f"retry {new} of {failed} (task {task_id}) was never fired")
    return folded


def build_ledger(
    bootstrap: str,
    prefix: str,
    task_ids: Iterable[str] | None = None,
    *,
    horizon: datetime | None = None,
    core_url: str | None = None,
    monitor_url: str | None = None,
    token: str | None = None,
    executor_kills: Iterable[datetime] = (),
) -> Ledger:
    """Read the log of ``prefix`` and account for ``task_ids`` (default: every task).

    ``horizon`` bounds the expected slots of tasks without an end (a slot after it may
    or may not have fired yet). With ``core_url`` / ``monitor_url`` the store's and the
    monitor's counters are compared with the log."""
    wanted = set(task_ids) if task_ids is not None else None
    events = read_committed(bootstrap, [f"{prefix}task-events"])
    folded = _fold_task_events(events, wanted)
    ledger = Ledger(folded.tasks, folded.executions)
    ledger.lost_retries = folded.lost_retries
    ledger.event_copies = folded.event_copies
    ledger.duplicated = folded.rescheduled
    ledger.disagreements = [f"log: {orphan}" for orphan in folded.orphans]
    ledger.executor_kills = list(executor_kills)
    _account_slots(ledger, horizon or datetime.now(UTC))
    _account_work_orders(ledger, read_committed(bootstrap, execution_topics(bootstrap, prefix)))
    _account_outcomes(ledger, CommitTimes(read_commits(bootstrap, f"{prefix}executor-")))
    if core_url is not None:
        _compare_store(ledger, core_url, token)
    if monitor_url is not None:
        _compare_monitor(ledger, monitor_url, token, totals=wanted is None)
    return ledger


def _account_slots(ledger: Ledger, horizon: datetime) -> None:
    for task in ledger.tasks.values():
        if task.created is None:
            ledger.disagreements.append(f"task {task.task_id}: events but no TaskCreated")
            continue
        ledger.disagreements += [f"task {task.task_id}: {p}" for p in task.problems]
        expected, optional = task.expected_slots(horizon)
        ledger.slots_expected += len(expected)
        known = set(expected) | optional
        bound = task.end or task.deleted
        for slot, idents in task.fired.items():
            if len(idents) > 1:
                ledger.duplicated.append(f"task {task.task_id} slot {slot} fired as {idents}")
            if task.every is None or slot in known:
                continue
            if bound is not None and slot > bound:
                ledger.disagreements.append(f"task {task.task_id}: fired {slot}, after {bound}")
            elif slot < horizon:
                ledger.disagreements.append(f"task {task.task_id}: fired off-grid slot {slot}")
        for slot, times in task.skipped.items():
            if times > 1:
                ledger.duplicated.append(f"task {task.task_id} slot {slot} skipped {times}x")
            if slot in task.fired:
                ledger.duplicated.append(f"task {task.task_id} slot {slot} fired and skipped")
        for slot in expected:
            if slot in task.fired:
                ledger.slots_fired += 1
            elif slot in task.skipped:
                ledger.slots_skipped += 1
            else:
                ledger.lost.append(f"task {task.task_id} slot {slot.isoformat()}")


def _account_work_orders(ledger: Ledger, orders: list[Record]) -> None:
    seen: Counter[str] = Counter()
    for record in orders:
        ident = str(record.value.get("execution_id"))
        task_id = record.value.get("task_id")
        if task_id not in ledger.tasks:
            continue
        seen[ident] += 1
        if ident in ledger.executions:
            ledger.executions[ident].order_at = (record.topic, record.partition, record.offset)
        else:
            ledger.work_order_problems.append(
                f"work order {ident} on {record.topic}[{record.partition}]@{record.offset} "
                "has no ExecutionScheduled"
            )
    for ident, execution in ledger.executions.items():
        execution.work_orders = seen.get(ident, 0)
        if execution.work_orders != 1:
            ledger.work_order_problems.append(
                f"execution {ident} has {execution.work_orders} work orders"
            )


COMMIT_WINDOW = timedelta(seconds=1)
"""An executor commits an order's offset within this of its outcome (the ledger measures
it: ``commit_latency_ms``; a few ms on an idle machine, up to about 0.5 s on a loaded one
right after a cluster restart): an order that finished this shortly before its executor's
kill -9, and whose offset was not committed yet, may run again."""


def _latency_ms(seconds: list[float]) -> dict[str, float] | None:
    if not seconds:
        return None
    ordered = sorted(seconds)

    def at(q: float) -> float:
        return round(1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)

    return {"p50": at(0.5), "p99": at(0.99), "max": round(1000 * ordered[-1], 1)}


def _just_before_a_kill(ended: datetime | None, kills: Iterable[datetime]) -> bool:
    return ended is not None and any(
        timedelta(0) <= kill - ended <= COMMIT_WINDOW for kill in kills
    )


def _account_outcomes(ledger: Ledger, commits: CommitTimes) -> None:
    for ident, execution in ledger.executions.items():
        outcome = execution.outcome
        if outcome is None:
            ledger.missing_outcomes.append(
                f"execution {ident} (task {execution.task_id}, attempt {execution.attempt}, "
                f"slot {execution.scheduled_for.isoformat()}) has no outcome"
            )
            continue
        ledger.terminal += 1
        ledger.outcomes[outcome] += 1
        if execution.retried_by is not None:
            ledger.outcomes["retried"] += 1
        first_end = execution.ends[0][0] if execution.ends else None
        covered = commits.covered(*execution.order_at) if execution.order_at else None
        if covered is not None and execution.first_end_time is not None:
            ledger.commit_latencies.append((covered - execution.first_end_time).total_seconds())
        if first_end is not None and any(start > first_end for start in execution.starts):
            again = min(
                _when(at)
                for offset, at in zip(execution.starts, execution.start_times, strict=True)
                if offset > first_end
            )
            uncommitted = covered is None or covered > again
            if uncommitted and _just_before_a_kill(execution.first_end_time, ledger.executor_kills):
                ledger.reran_at_kill += 1
                continue
            committed = "never committed" if covered is None else f"committed {covered}"
            ledger.reran_after_finish.append(
                f"execution {ident} (task {execution.task_id}) started again after it ended "
                f"({len(execution.starts)} starts at {execution.start_times}, "
                f"ends {[o for _, o in execution.ends]}, its order {committed})"
            )
        elif len(execution.starts) > 1:
            ledger.reran_in_flight += 1


def _log_counts(ledger: Ledger, task_id: str) -> dict[str, int]:
    counts: Counter[str] = Counter()
    for execution in ledger.executions.values():
        if execution.task_id != task_id:
            continue
        counts["scheduled"] += 1
        if execution.ends:
            counts[execution.ends[0][1]] += 1
        if execution.dead_lettered:
            counts["dead_lettered"] += 1
    counts["skipped"] = ledger.tasks[task_id].skipped_total
    return counts


def _compare_store(ledger: Ledger, core_url: str, token: str | None) -> None:
    """The store counts each execution once: ``scheduled`` the executions fired,
    ``succeeded`` / ``failed`` those whose run ended so, ``skipped`` the skipped slots."""
    deleted: dict[str, Any] | None = None
    for task_id in ledger.tasks:
        status, body = _get_json(f"{core_url}/api/tasks/{task_id}", token)
        if status == 404 and ledger.tasks[task_id].deleted is not None:
            if deleted is None:  # a deleted task is listed with status=deleted only
                deleted = _deleted_tasks(core_url, token)
            status, body = (200, deleted[task_id]) if task_id in deleted else (status, body)
        if status != 200:
            ledger.disagreements.append(f"store: GET task {task_id} answered {status}: {body}")
            continue
        log = _log_counts(ledger, task_id)
        want = {
            "scheduled": log["scheduled"],
            "succeeded": log["succeeded"],
            "failed": log["failed"] + log["timed_out"] + log["cancelled"],
            "skipped": log["skipped"],
        }
        have = {k: body.get("executions", {}).get(k) for k in want}
        if have != want:
            ledger.disagreements.append(f"store: task {task_id} counters {have}, log {want}")


def _deleted_tasks(core_url: str, token: str | None) -> dict[str, Any]:
    """Every deleted task of the store, by id (``GET /api/tasks?status=deleted``)."""
    found: dict[str, Any] = {}
    page = 0
    while True:
        status, body = _get_json(
            f"{core_url}/api/tasks?status=deleted&page={page}&size=1000", token
        )
        if status != 200 or not body.get("items"):
            return found
        found.update((item["id"], item) for item in body["items"])
        page += 1


def _compare_monitor(ledger: Ledger, monitor_url: str, token: str | None, *, totals: bool) -> None:
    """Per task, the monitor's counts are the log's; with ``totals`` (the ledger covers
    every task of the prefix) so are its totals, and nothing is left unfinished."""
    summed: Counter[str] = Counter()
    for task_id in ledger.tasks:
        log = _log_counts(ledger, task_id)
        want = {
            k: log[k]
            for k in ("succeeded", "failed", "timed_out", "cancelled", "dead_lettered", "skipped")
        }
        summed.update(want)
        status, body = _get_json(f"{monitor_url}/api/monitor/tasks/{task_id}/stats", token)
        if status == 404 and not any(want.values()):
            continue
        if status != 200:
            ledger.disagreements.append(f"monitor: stats of {task_id} answered {status}: {body}")
            continue
        have = {k: body.get("counts", {}).get(k) for k in want}
        if have != want:
            ledger.disagreements.append(f"monitor: task {task_id} counts {have}, log {want}")
    if not totals:
        return
    status, body = _get_json(f"{monitor_url}/api/monitor/metrics?minutes=1", token)
    if status != 200:
        ledger.disagreements.append(f"monitor: metrics answered {status}: {body}")
        return
    have_totals = body.get("totals", {})
    for key, value in summed.items():
        if have_totals.get(key) != value:
            ledger.disagreements.append(
                f"monitor: totals.{key} is {have_totals.get(key)}, the log says {value}"
            )
    unfinished = {k: have_totals.get(k) for k in ("scheduled", "running")}
    if any(unfinished.values()):
        ledger.disagreements.append(f"monitor: unfinished executions after the drain {unfinished}")
