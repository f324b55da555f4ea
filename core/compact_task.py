"""The compact form of a task the scheduler's shard keeps in memory. No I/O.

Memory: one instance holds a million schedules in well under 1 GB (``docs/benchmarks.md``).
A task is not kept as a :class:`TaskState` holding its pydantic ``TaskSpec`` (3 to 5 KB
resident a task, and about ten objects for the garbage collector to walk) but as a
:class:`CompactTask` (about 0.65 KB, one such object):

- what many tasks share is stored once per shard (:class:`TaskCompactor`): equal
  ``Schedule`` models are interned (without their ``start``, often one per task, kept on
  the task as a time), and so is the rest of the spec apart from ``name`` and ``params``
  (handler, queue, priority, timeout, retry, misfire and overlap policies), as a
  ``TaskSpec`` *template*; a one-shot (``at``) schedule, unique to its task, is kept as
  compact JSON instead;
- ``name``, ``params`` and the id of the last change's event are one compact JSON
  ``bytes``, decoded only when a slot fires or the whole state is needed (values JSON
  cannot carry exactly are kept as they are);
- times are float epochs where that gives back the same datetime (until about 2242).

:meth:`TaskCompactor.state` rebuilds the :class:`TaskState` on demand, so the aggregate
stays the one place that decides transitions.
"""

from __future__ import annotations

import operator
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
from pydantic import BaseModel
from pydantic_core import TzInfo

from taskstream.core.aggregate import TaskState, TaskStatus
from taskstream.schemas import Schedule, TaskSpec, recorded

__all__ = [
    "CompactTask",
    "Stamp",
    "TaskCompactor",
    "is_one_shot",
    "jitter_of",
    "schedule_of",
    "stamp",
    "time_of",
    "time_or_none",
    "unpack",
]

_OWN_FIELDS = ("name", "params", "schedule")
"""The spec fields a task keeps for itself; the others are shared through a template."""
_POLICY_FIELDS = tuple(name for name in TaskSpec.model_fields if name not in _OWN_FIELDS)
_policy_values = operator.itemgetter(*_POLICY_FIELDS)
_TEMPLATE_SCHEDULE = Schedule(every=timedelta(seconds=1))
"""A template's schedule is a placeholder: each task has its own (interned) one."""
_MIN_SWEEP = 1024
"""Interning tables are not swept for unused values before they hold this many."""

Stamp = float | datetime
"""A time: a float epoch if that gives back the same UTC datetime, else the datetime."""
Details = bytes | tuple[str, dict[str, Any], str]
"""``name``, ``params`` and the last change's event id: compact JSON, or as they are if
JSON cannot carry them exactly."""


@dataclass(slots=True, eq=False)
class CompactTask:
    """One task, compact: a :class:`TaskState` split into what scheduling reads and the rest."""

    task_id: str
    partition: int
    status: TaskStatus
    version: int
    created_at: Stamp
    updated_at: Stamp
    anchor: Stamp
    last_slot: Stamp | None
    schedule: Schedule | bytes
    """Interned, without its ``start`` (see ``start``): tasks with equal schedules share
    one object. A one-shot (``at``) schedule is as unique as its task, so it is kept as
    its compact JSON instead."""
    start: Stamp | None
    """The schedule's ``start``: often one per task (tasks spread over an interval), and
    a pydantic ``Schedule`` of its own would cost a task about 1.2 KB more."""
    policy: TaskSpec
    """The spec without name, params and schedule (placeholders), shared like ``schedule``."""
    details: Details
    active: dict[str, datetime] | None = None
    """Unfinished executions: id -> scheduled for (None rather than empty)."""
    next: Stamp | None = None
    """The next slot, computed when the timer is armed (None while the partition is not
    ready, once the slot is planned, or when there is no further slot)."""
    dst: bool = False
    """The next slot is a ``SKIP_DST`` one."""
    due: float | None = None
    """When the armed timer fires (slot plus jitter); heap entries at another time, or
    while this is None, are stale."""


def stamp(at: datetime) -> Stamp:
    epoch = at.timestamp()
    if at.tzinfo is UTC and datetime.fromtimestamp(epoch, UTC) == at:
        return epoch
    return at


def _fixed_utc(at: datetime) -> datetime:
    """``at`` in ``UTC`` if its zone is a fixed offset of zero (pydantic parses ``...Z`` to
    its own ``TzInfo(0)``): the same instant, and the same on the wire, as a float epoch."""
    if at.tzinfo is not UTC and isinstance(at.tzinfo, timezone | TzInfo) and not at.utcoffset():
        return at.replace(tzinfo=UTC)
    return at


def time_of(value: Stamp) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromtimestamp(value, UTC)


def time_or_none(value: Stamp | None) -> datetime | None:
    return None if value is None else time_of(value)


def _pack(name: str, params: dict[str, Any], event_id: str) -> Details:
    value = [name, params, event_id]
    try:
        packed = orjson.dumps(value)
    except TypeError:  # not JSON (a set, a big int...): keep the objects
        return (name, params, event_id)
    if orjson.loads(packed) != value:  # a tuple, a non-string key, NaN...
        return (name, params, event_id)
    return bytes(memoryview(packed))  # orjson's bytes keep a 4 KiB buffer: copy to size


def unpack(details: Details) -> tuple[str, dict[str, Any], str]:
    if isinstance(details, bytes):
        name, params, event_id = orjson.loads(details)
        return name, params, event_id
    return details


def _frozen(value: Any) -> Any:
    """A hashable value that is equal only for values that are the same on the wire.

    Models become tuples of their fields (hashed and compared in C, unlike the models),
    and datetimes keep their UTC offset (equal instants in other zones are not the same).
    """
    if isinstance(value, BaseModel):
        return (type(value), *map(_frozen, value.__dict__.values()))
    if isinstance(value, datetime):
        return (value, value.utcoffset())
    return value


def schedule_of(task: CompactTask) -> Schedule:
    """The task's schedule (a one-shot's is decoded, a start put back: a few microseconds)."""
    schedule = task.schedule
    if isinstance(schedule, bytes):
        with recorded():
            return Schedule.model_validate_json(schedule)
    if task.start is not None:
        return schedule.model_copy(update={"start": time_of(task.start)})
    return schedule


def is_one_shot(task: CompactTask) -> bool:
    """An ``at`` schedule (kept as its JSON)."""
    return isinstance(task.schedule, bytes)


def jitter_of(task: CompactTask) -> timedelta | None:
    """The schedule's jitter; a one-shot's JSON is decoded only if it has one (the JSON
    leaves defaults out, so a one-shot without ``jitter`` has no such key)."""
    schedule = task.schedule
    if isinstance(schedule, bytes):
        return schedule_of(task).jitter if b'"jitter"' in schedule else None
    return schedule.jitter


def _same(these: tuple[Any, ...], those: tuple[Any, ...]) -> bool:
    """The very same objects (the memo keeps ``those`` alive, so no id is reused)."""
    return len(these) == len(those) and all(a is b for a, b in zip(these, those, strict=True))


def _policy_key(spec: TaskSpec) -> tuple[Any, ...]:
    return tuple(map(_frozen, _policy_values(spec.__dict__)))


class TaskCompactor:
    """Turns task states into compact tasks and back, interning what tasks share."""

    def __init__(self) -> None:
        self._schedules: dict[tuple[Any, ...], Schedule] = {}
        self._policies: dict[tuple[Any, ...], TaskSpec] = {}
        self._sweep_at = _MIN_SWEEP
        self._last_schedule: tuple[tuple[Any, ...], Schedule] | None = None
        self._last_policy: tuple[tuple[Any, ...], TaskSpec] | None = None
        """The last value interned, and what it was made of: specs read from the store share
        these very objects (:class:`taskstream.core.spec_reader.SpecReader`), so an identity check
        spares computing a key (a third of a restore's time)."""

    def state(self, task: CompactTask) -> TaskState:
        name, params, event_id = unpack(task.details)
        spec = task.policy.model_copy(
            update={"name": name, "params": params, "schedule": schedule_of(task)}
        )
        return TaskState(
            task_id=task.task_id,
            partition=task.partition,
            spec=spec,
            status=task.status,
            version=task.version,
            created_at=time_of(task.created_at),
            updated_at=time_of(task.updated_at),
            anchor=time_of(task.anchor),
            last_slot=time_or_none(task.last_slot),
            last_change_event_id=event_id,
        )

    def compact(self, state: TaskState) -> CompactTask:
        spec = state.spec
        created, updated, anchor = self._times(state)
        schedule, start = self._intern_schedule(spec.schedule)
        return CompactTask(
            task_id=state.task_id,
            partition=state.partition,
            status=state.status,
            version=state.version,
            created_at=created,
            updated_at=updated,
            anchor=anchor,
            last_slot=None if state.last_slot is None else stamp(state.last_slot),
            schedule=schedule,
            start=start,
            policy=self._intern_policy(spec),
            details=_pack(spec.name, spec.params, state.last_change_event_id),
        )

    def refresh(self, task: CompactTask, before: TaskState, after: TaskState) -> None:
        """Write the changes from ``before`` (built from ``task``) to ``after`` into it."""
        task.status, task.version = after.status, after.version
        if (after.created_at, after.updated_at, after.anchor) != (
            before.created_at,
            before.updated_at,
            before.anchor,
        ):
            task.created_at, task.updated_at, task.anchor = self._times(after)
        if after.last_slot != before.last_slot:
            task.last_slot = None if after.last_slot is None else stamp(after.last_slot)
        spec = after.spec
        if spec is not before.spec:
            task.schedule, task.start = self._intern_schedule(spec.schedule)
            task.policy = self._intern_policy(spec)
        if spec is not before.spec or after.last_change_event_id != before.last_change_event_id:
            task.details = _pack(spec.name, spec.params, after.last_change_event_id)

    @staticmethod
    def _times(state: TaskState) -> tuple[Stamp, Stamp, Stamp]:
        """created, updated and anchor, sharing one object where they are the same time."""
        created = stamp(state.created_at)
        updated = created if state.updated_at == state.created_at else stamp(state.updated_at)
        if state.anchor == state.created_at:
            anchor = created
        elif state.anchor == state.updated_at:
            anchor = updated
        else:
            anchor = stamp(state.anchor)
        return created, updated, anchor

    def _intern_schedule(self, schedule: Schedule) -> tuple[Schedule | bytes, Stamp | None]:
        """The shared schedule without its start, and the start (see ``CompactTask.start``)."""
        if schedule.at is not None:
            packed = schedule.model_dump_json(exclude_defaults=True).encode()
            with recorded():
                unpacked = Schedule.model_validate_json(packed)
            if unpacked == schedule:
                return packed, None
        start = None if schedule.start is None else stamp(_fixed_utc(schedule.start))
        parts = tuple(value for name, value in schedule.__dict__.items() if name != "start")
        if self._last_schedule is not None and _same(parts, self._last_schedule[0]):
            return self._last_schedule[1], start
        if start is not None:
            schedule = schedule.model_copy(update={"start": None})
        key = _frozen(schedule)
        shared = self._schedules.get(key)
        if shared is None:
            shared = self._schedules[key] = schedule
        self._last_schedule = (parts, shared)
        return shared, start

    def _intern_policy(self, spec: TaskSpec) -> TaskSpec:
        parts = _policy_values(spec.__dict__)
        if self._last_policy is not None and _same(parts, self._last_policy[0]):
            return self._last_policy[1]
        try:
            key = _policy_key(spec)
            shared = self._policies.get(key)
        except TypeError:  # an unhashable value: this task keeps its own template
            shared = self._template(spec)
        else:
            if shared is None:
                shared = self._policies[key] = self._template(spec)
        self._last_policy = (parts, shared)
        return shared

    @staticmethod
    def _template(spec: TaskSpec) -> TaskSpec:
        return spec.model_copy(update={"name": "", "params": {}, "schedule": _TEMPLATE_SCHEDULE})

    def maybe_sweep(self, tasks: Collection[CompactTask]) -> None:
        """Forget interned values no task uses any more (after updates), now and then.

        Called once the task being folded is stored; a sweep walks every task, and the
        next one waits until the tables have doubled, so the cost stays O(1) a change.
        """
        if len(self._schedules) + len(self._policies) <= self._sweep_at:
            return
        schedules = {id(task.schedule) for task in tasks}
        policies = {id(task.policy) for task in tasks}
        self._schedules = {k: v for k, v in self._schedules.items() if id(v) in schedules}
        self._policies = {k: v for k, v in self._policies.items() if id(v) in policies}
        self._sweep_at = max(_MIN_SWEEP, 2 * (len(self._schedules) + len(self._policies)))
