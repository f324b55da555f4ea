"""When a schedule's slots fall: pure functions over :class:`taskstream.schemas.Schedule`.

A *slot* is the due time of one run, in UTC. The scheduler fires each slot at most
once; a slot can also be a :attr:`SlotKind.SKIP_DST`, a time that exists only to be
recorded as skipped.

Cron is read in the schedule's time zone, the way Debian's cron does it (``cronsim``
implements that), and this is the documented DST policy:

- **Spring forward** (a local hour does not exist): a fixed-time job (minute and hour
  fields without ``*``) due in the missing hour runs once, right after the clock jumps
  (02:30 in Europe/Berlin on the last Sunday of March runs at 03:00 CEST). Jobs with a
  ``*`` hour or minute run on the times that exist.
- **Fall back** (a local hour happens twice): a fixed-time job runs once, in the first
  pass (02:30 CEST); its second occurrence (02:30 CET) is a ``SKIP_DST`` slot, recorded
  as ``ExecutionSkipped(reason="dst")``. Jobs with a ``*`` hour or minute run in both
  passes, since real time passes in both.

A 6-field expression has seconds first (``*/5 * * * * *``); seconds are expanded inside
each matching minute, and minutes never straddle a DST transition.
"""

from __future__ import annotations

import hashlib
import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from zoneinfo import ZoneInfo

from cronsim import CronSim

from taskstream.schemas.cron import CronExpression, parse_cron
from taskstream.schemas.durations import format_duration
from taskstream.schemas.errors import ScheduleError
from taskstream.schemas.task import Schedule, ScheduleKind

__all__ = [
    "Slot",
    "SlotKind",
    "UpcomingSlot",
    "backfill_slot",
    "check_schedule",
    "iter_slots",
    "jitter_offset",
    "latest_fire_slot",
    "next_slot",
    "upcoming_slots",
]

_TICK = timedelta(microseconds=1)


class SlotKind(Enum):
    FIRE = "fire"
    SKIP_DST = "skip_dst"


@dataclass(frozen=True, slots=True)
class Slot:
    at: datetime
    kind: SlotKind = SlotKind.FIRE


def _minute_iter(cron: CronExpression, zone: ZoneInfo, after: datetime) -> Iterator[datetime]:
    """Matching minutes (aware, local) strictly after ``after``."""
    return CronSim(cron.minutes, after.astimezone(zone))


def _first(minutes: Iterator[datetime], expression: str) -> datetime:
    """The next matching minute; :class:`ScheduleError` if there is none for 50 years."""
    for minute in minutes:
        return minute
    raise ScheduleError(
        f"cron expression {expression!r} never fires: no matching time within 50 years",
        "schedule.cron",
    )


def _cron_next(expression: str, zone: ZoneInfo, after: datetime) -> datetime:
    cron = parse_cron(expression)
    local = after.astimezone(zone)
    if len(cron.seconds) > 1 or cron.seconds[0] != 0:
        minute = local.replace(second=0, microsecond=0)
        matches_now = _first(_minute_iter(cron, zone, minute - _TICK), expression) == minute
        if matches_now:
            base = minute.astimezone(UTC)
            for second in cron.seconds:
                candidate = base + timedelta(seconds=second)
                if candidate > after:
                    return candidate
        following = _first(_minute_iter(cron, zone, minute), expression)
        return following.astimezone(UTC) + timedelta(seconds=cron.seconds[0])
    return _first(_minute_iter(cron, zone, local), expression).astimezone(UTC)


def _dst_twin(expression: str, zone: ZoneInfo, slot: datetime) -> datetime | None:
    """The second occurrence of a fixed-time slot that fell in a repeated hour."""
    if not parse_cron(expression).fixed_time:
        return None
    local = slot.astimezone(zone)
    if local.fold != 0:
        return None
    twin = local.replace(fold=1)
    if twin.utcoffset() == local.utcoffset():
        return None
    return twin.astimezone(UTC)


def next_slot(schedule: Schedule, *, anchor: datetime, after: datetime | None) -> Slot | None:
    """The first slot strictly after ``after`` (or the first slot of all, if None).

    ``anchor`` is when the schedule took effect (creation or the last change of the
    schedule): ``every`` slots are ``base + k*every`` where ``base`` is ``start`` (k >= 0)
    or ``anchor`` (k >= 1); cron slots come after ``anchor`` (or from ``start``).
    None means the schedule has no further slot (one-shot done, or past ``end``).
    """
    slot = _next_unbounded(schedule, anchor=anchor, after=after)
    if slot is None or (schedule.end is not None and slot.at > schedule.end):
        return None
    return slot


def _next_unbounded(schedule: Schedule, *, anchor: datetime, after: datetime | None) -> Slot | None:
    start = schedule.start
    if schedule.kind is ScheduleKind.AT:
        assert schedule.at is not None
        at = schedule.at.astimezone(UTC)
        if (after is not None and at <= after) or (start is not None and at < start):
            return None
        return Slot(at)
    if schedule.kind is ScheduleKind.EVERY:
        assert schedule.every is not None
        step = schedule.every.total_seconds()
        base, first = (start.astimezone(UTC), 0) if start is not None else (anchor, 1)
        if after is None or after < base:
            return Slot(base + first * schedule.every)
        periods = max(math.floor((after - base).total_seconds() / step) + 1, first)
        slot = base + periods * schedule.every
        while slot <= after:  # float rounding on very long runs
            slot += schedule.every
        return Slot(slot)
    assert schedule.cron is not None
    zone = schedule.zone
    if after is not None:
        twin = _dst_twin(schedule.cron, zone, after)
        if twin is not None and twin > after:
            return Slot(twin, SlotKind.SKIP_DST)
    floor = after if after is not None else anchor
    if start is not None and floor < start:
        floor = start.astimezone(UTC) - _TICK
    return Slot(_cron_next(schedule.cron, zone, floor))


def iter_slots(
    schedule: Schedule, *, anchor: datetime, after: datetime | None, until: datetime
) -> Iterator[Slot]:
    """Every slot in ``(after, until]``, in order."""
    slot = next_slot(schedule, anchor=anchor, after=after)
    while slot is not None and slot.at <= until:
        yield slot
        slot = next_slot(schedule, anchor=anchor, after=slot.at)


def backfill_slot(schedule: Schedule, *, anchor: datetime, after: datetime) -> datetime | None:
    """The schedule's first firing slot strictly after ``after``, in the past too.

    A backfill runs the schedule over a range that may precede the task: cron slots are
    the expression's; an ``every`` without ``start`` extends its grid (``anchor + k *
    every``) backwards; ``start`` and ``end`` still bound it. A repeated local time
    (``SKIP_DST``) is no slot of a backfill. None: no further slot (or a one-shot).
    """
    if schedule.kind is ScheduleKind.AT:
        return None
    if schedule.kind is ScheduleKind.EVERY and schedule.start is None:
        assert schedule.every is not None
        steps = math.floor((after - anchor) / schedule.every) + 1
        slot = anchor + steps * schedule.every
        while slot <= after:  # float rounding on very long grids
            slot += schedule.every
        return None if schedule.end is not None and slot > schedule.end else slot
    found = next_slot(schedule, anchor=anchor, after=after)
    while found is not None and found.kind is SlotKind.SKIP_DST:
        found = next_slot(schedule, anchor=anchor, after=found.at)
    return None if found is None else found.at


@dataclass(frozen=True, slots=True)
class UpcomingSlot:
    """A slot a schedule will come to, as the scheduler will treat it."""

    at: datetime
    """The slot, in UTC: the execution's ``scheduled_for``."""
    due_at: datetime | None
    """When it fires: ``at`` plus the task's jitter for that slot (None: the schedule has a
    jitter and no task id is known yet, so the offset is not)."""
    skipped: bool = False
    """A local time repeated when the clock went back: recorded as skipped (``dst``), not run."""


def upcoming_slots(
    schedule: Schedule,
    *,
    anchor: datetime,
    after: datetime | None,
    count: int,
    task_id: str | None = None,
) -> list[UpcomingSlot]:
    """The next ``count`` firing slots after ``after``, with the DST repeats between them.

    Computed by :func:`next_slot` and :func:`jitter_offset`, the scheduler's own functions,
    so it is what the scheduler fires when no misfire, pause or overlap intervenes.
    Fewer than ``count`` when the schedule ends (or its dates leave datetime's range).
    """
    slots: list[UpcomingSlot] = []
    fires = 0
    try:
        slot = next_slot(schedule, anchor=anchor, after=after)
        while slot is not None and fires < count:
            due_at: datetime | None = slot.at
            if schedule.jitter:
                due_at = (
                    None
                    if task_id is None
                    else slot.at + jitter_offset(task_id, slot.at, schedule.jitter)
                )
            skipped = slot.kind is SlotKind.SKIP_DST
            slots.append(UpcomingSlot(slot.at, due_at, skipped))
            fires += not skipped
            slot = next_slot(schedule, anchor=anchor, after=slot.at)
    except (OverflowError, ValueError):  # a date past datetime's range: no further slot
        pass
    return slots


def latest_fire_slot(
    schedule: Schedule, *, anchor: datetime, after: datetime | None, until: datetime
) -> datetime | None:
    """The last firing slot in ``(after, until]``, found without walking every slot."""
    first = next_slot(schedule, anchor=anchor, after=after)
    if first is None or first.at > until:
        return None
    if schedule.end is not None and until > schedule.end:
        until = schedule.end.astimezone(UTC)
    if schedule.kind is ScheduleKind.EVERY:
        assert schedule.every is not None
        base, _ = (schedule.start.astimezone(UTC), 0) if schedule.start else (anchor, 1)
        periods = math.floor((until - base).total_seconds() / schedule.every.total_seconds())
        return max(base + periods * schedule.every, first.at)
    if schedule.kind is ScheduleKind.CRON:
        assert schedule.cron is not None
        cron = parse_cron(schedule.cron)
        reverse = CronSim(
            cron.minutes, (until + timedelta(minutes=1)).astimezone(schedule.zone), reverse=True
        )
        for minute in reverse:
            base = minute.astimezone(UTC)
            if base + timedelta(seconds=cron.seconds[-1]) < first.at:
                break
            for second in reversed(cron.seconds):
                candidate = base + timedelta(seconds=second)
                if candidate > until or candidate < first.at:
                    continue
                if next_slot(schedule, anchor=anchor, after=candidate - _TICK) == Slot(candidate):
                    return candidate
    return first.at


def check_schedule(
    schedule: Schedule, *, now: datetime, min_interval: timedelta, count: int = 5
) -> list[datetime]:
    """The next ``count`` firing slots of a schedule taking effect at ``now``.

    They are computed by :func:`next_slot`, the function the scheduler fires with, so a
    schedule that passes is one the scheduler can evaluate. Raise :class:`ScheduleError`
    naming the field at fault if it never fires after ``now`` (a past ``at`` or ``end``, a
    cron that never matches before ``end``), if a slot cannot be computed, or if two
    slots fall closer than ``min_interval`` (an ``every`` below it, or a cron whose next
    ``count`` slots do).
    """
    field = f"schedule.{schedule.kind.value}"
    if schedule.every is not None and schedule.every < min_interval:
        raise ScheduleError(
            f"every {format_duration(schedule.every)} is below the minimum interval of "
            f"{format_duration(min_interval)} (TASKSTREAM_MIN_INTERVAL): fire less often",
            field,
        )
    slots: list[datetime] = []
    after = now
    try:
        while len(slots) < count:
            slot = next_slot(schedule, anchor=now, after=after)
            if slot is None:
                break
            if slot.kind is SlotKind.FIRE:
                slots.append(slot.at)
            after = slot.at
    except ScheduleError:
        raise
    except (OverflowError, ValueError) as exc:  # a date past datetime's range
        raise ScheduleError(
            f"the schedule's slots after {after.isoformat()} cannot be computed ({exc}): "
            "choose earlier dates",
            field,
        ) from None
    if not slots:
        raise ScheduleError(_never(schedule, now), field)
    for earlier, later in itertools.pairwise(slots):
        if later - earlier < min_interval:
            raise ScheduleError(
                f"cron expression {schedule.cron!r} fires {format_duration(later - earlier)} "
                f"apart (at {earlier.isoformat()} and {later.isoformat()}), below the minimum "
                f"interval of {format_duration(min_interval)} (TASKSTREAM_MIN_INTERVAL)",
                field,
            )
    return slots


def _never(schedule: Schedule, now: datetime) -> str:
    if schedule.at is not None and schedule.at <= now:
        return (
            f"the schedule never fires: at {schedule.at.isoformat()} is in the past; give a "
            "later time, or run the task now with POST /api/tasks/{id}/run"
        )
    if schedule.end is not None and schedule.end <= now:
        return f"the schedule never fires: end {schedule.end.isoformat()} is in the past"
    if schedule.start is not None and schedule.at is not None and schedule.at < schedule.start:
        return "the schedule never fires: at is before start"
    return "the schedule never fires: it has no slot before its end"


def jitter_offset(task_id: str, slot: datetime, jitter: timedelta | None) -> timedelta:
    """A fixed pseudo-random delay in ``[0, jitter)`` for one slot of one task.

    It depends only on the task and the slot, so a new owner after failover fires the
    slot at the same instant the old owner would have.
    """
    if not jitter:
        return timedelta(0)
    digest = hashlib.blake2b(f"{task_id}|{slot.isoformat()}".encode(), digest_size=8).digest()
    fraction = int.from_bytes(digest, "big") / 2**64
    return timedelta(seconds=jitter.total_seconds() * fraction)
