"""When a schedule fires next: pure functions over :class:`schemas.Schedule`.

Slots are computed in the schedule's time zone and returned in UTC. A slot is the
*due time* of a run; the scheduler fires each slot at most once.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

from croniter import croniter

from schemas import Schedule, ScheduleKind

__all__ = ["latest_slot_at_or_before", "next_slot"]


def next_slot(schedule: Schedule, *, anchor: datetime, after: datetime | None) -> datetime | None:
    """The first slot strictly after ``after`` (or the first slot at all, if None).

    ``anchor`` is when the task was created: ``every`` slots are ``anchor + k*every``
    for k >= 1, and a cron schedule's first slot is its first match after ``anchor``.
    A one-shot ``at`` has one slot; None means the schedule has no further slot.
    """
    kind = schedule.kind
    if kind is ScheduleKind.AT:
        assert schedule.at is not None
        at = schedule.at.astimezone(UTC)
        return at if after is None or at > after else None
    if kind is ScheduleKind.EVERY:
        assert schedule.every is not None
        step = schedule.every.total_seconds()
        base = anchor if after is None or after < anchor else after
        periods = math.floor((base - anchor).total_seconds() / step) + 1
        return anchor + periods * schedule.every
    assert schedule.cron is not None
    start = (after or anchor).astimezone(schedule.zone)
    seconds_first = len(schedule.cron.split()) == 6
    iterator = croniter(schedule.cron, start, second_at_beginning=seconds_first)
    slot: datetime = iterator.get_next(datetime)
    return slot.astimezone(UTC)


def latest_slot_at_or_before(
    schedule: Schedule, *, anchor: datetime, after: datetime | None, now: datetime
) -> datetime | None:
    """The last slot in ``(after, now]``, or None: what a "fire once" misfire runs."""
    slot = next_slot(schedule, anchor=anchor, after=after)
    if slot is None or slot > now:
        return None
    if schedule.kind is ScheduleKind.EVERY:
        assert schedule.every is not None
        periods = math.floor((now - anchor).total_seconds() / schedule.every.total_seconds())
        return anchor + periods * schedule.every
    if schedule.kind is ScheduleKind.CRON:
        assert schedule.cron is not None
        seconds_first = len(schedule.cron.split()) == 6
        iterator = croniter(
            schedule.cron, now.astimezone(schedule.zone), second_at_beginning=seconds_first
        )
        previous: datetime = iterator.get_prev(datetime)
        if croniter.match(
            schedule.cron, now.astimezone(schedule.zone), second_at_beginning=seconds_first
        ):
            previous = now
        return previous.astimezone(UTC)
    return slot
