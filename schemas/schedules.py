"""When a schedule's slots fall: pure functions over :class:`schemas.Schedule`.

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
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from functools import lru_cache
from zoneinfo import ZoneInfo

from croniter import croniter
from cronsim import CronSim

from schemas.task import Schedule, ScheduleKind

__all__ = ["Slot", "SlotKind", "iter_slots", "jitter_offset", "latest_fire_slot", "next_slot"]

_TICK = timedelta(microseconds=1)


class SlotKind(Enum):
    FIRE = "fire"
    SKIP_DST = "skip_dst"


@dataclass(frozen=True, slots=True)
class Slot:
    at: datetime
    kind: SlotKind = SlotKind.FIRE


@dataclass(frozen=True, slots=True)
class _Cron:
    minutes: str
    """The five minute-level fields, for cronsim."""
    seconds: tuple[int, ...]
    fixed_time: bool
    """Minute and hour fields without ``*``: runs once in a repeated hour."""


@lru_cache(maxsize=4096)
def _parse(expression: str) -> _Cron:
    fields = expression.split()
    if len(fields) == 6:
        expanded = croniter.expand(expression, second_at_beginning=True)[0][-1]
        seconds = tuple(range(60)) if expanded == ["*"] else tuple(sorted(int(s) for s in expanded))
        fields = fields[1:]
    else:
        seconds = (0,)
    fixed = not (fields[0].startswith("*") or fields[1].startswith("*"))
    return _Cron(" ".join(fields), seconds, fixed)


def _minute_iter(cron: _Cron, zone: ZoneInfo, after: datetime) -> Iterator[datetime]:
    """Matching minutes (aware, local) strictly after ``after``."""
    return CronSim(cron.minutes, after.astimezone(zone))


def _cron_next(expression: str, zone: ZoneInfo, after: datetime) -> datetime:
    cron = _parse(expression)
    local = after.astimezone(zone)
    if len(cron.seconds) > 1 or cron.seconds[0] != 0:
        minute = local.replace(second=0, microsecond=0)
        matches_now = next(_minute_iter(cron, zone, minute - _TICK)) == minute
        if matches_now:
            base = minute.astimezone(UTC)
            for second in cron.seconds:
                candidate = base + timedelta(seconds=second)
                if candidate > after:
                    return candidate
        following = next(_minute_iter(cron, zone, minute))
        return following.astimezone(UTC) + timedelta(seconds=cron.seconds[0])
    return next(_minute_iter(cron, zone, local)).astimezone(UTC)


def _dst_twin(expression: str, zone: ZoneInfo, slot: datetime) -> datetime | None:
    """The second occurrence of a fixed-time slot that fell in a repeated hour."""
    if not _parse(expression).fixed_time:
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
        cron = _parse(schedule.cron)
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
