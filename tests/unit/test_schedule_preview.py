"""A schedule's preview is what the scheduler fires: the shard, driven through DST changes.

The shard (the scheduler's decisions, without I/O) is stepped from one timer to the next
over a simulated clock; every slot it fires or skips, and when, is compared with
:func:`taskstream.schemas.schedules.upcoming_slots` from the moment the task was created.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from taskstream.core.shard import Shard
from taskstream.infra.settings import Topics
from taskstream.schemas import (
    Event,
    ExecutionScheduled,
    ExecutionSkipped,
    Schedule,
    SkipReason,
    TaskCreated,
    TaskSpec,
)
from taskstream.schemas.schedules import UpcomingSlot, upcoming_slots

TASK = "7b4f3c2e-0000-4000-8000-000000000001"
Seen = tuple[datetime, datetime, bool]
"""A slot, when it fired (or was skipped), and whether it was a DST repeat."""


def _fired_by_the_shard(schedule: Schedule, created: datetime, count: int) -> list[Seen]:
    shard = Shard(Topics("t."))
    shard.mark_ready(0)
    spec = TaskSpec(name="preview", handler="noop", schedule=schedule)
    shard.apply(Event.create(TASK, TaskCreated(task=spec), occurred_at=created), 0)
    seen: list[Seen] = []
    while sum(not skipped for _, _, skipped in seen) < count:
        due = shard.next_due()
        assert due is not None, "the schedule ended before the slots to compare"
        now = datetime.fromtimestamp(due, UTC)
        plan = shard.due(now, limit=100)
        for event in plan.events:
            shard.apply(event, plan.partitions[event.task_id])
            data = event.data
            if isinstance(data, ExecutionScheduled):
                seen.append((data.scheduled_for, now, False))
            elif isinstance(data, ExecutionSkipped):
                assert data.reason is SkipReason.DST, data
                seen.append((data.scheduled_for, now, True))
    return seen


def _previewed(slots: list[UpcomingSlot]) -> list[Seen]:
    return [(slot.at, slot.due_at or slot.at, slot.skipped) for slot in slots]


def _close(fired: list[Seen], previewed: list[Seen]) -> bool:
    """Equal, due times within a microsecond (the shard keeps them as float epochs)."""
    return len(fired) == len(previewed) and all(
        a == x and skipped == z and abs(b - y) <= timedelta(microseconds=2)
        for (a, b, skipped), (x, y, z) in zip(fired, previewed, strict=True)
    )


@pytest.mark.parametrize(
    ("schedule", "created"),
    [
        # a fixed time in the hour that does not exist (spring forward, 2030-03-31)
        (Schedule(cron="30 2 * * *", timezone="Europe/Berlin"), datetime(2030, 3, 28, tzinfo=UTC)),
        # a fixed time in the hour that happens twice (fall back, 2030-10-27): a DST skip
        (Schedule(cron="30 2 * * *", timezone="Europe/Berlin"), datetime(2030, 10, 25, tzinfo=UTC)),
        # every half hour through the repeated hour: both passes run
        (
            Schedule(cron="*/30 * * * *", timezone="Europe/Berlin"),
            datetime(2030, 10, 26, 22, tzinfo=UTC),
        ),
        (
            Schedule(cron="0 1 * * *", timezone="America/New_York"),
            datetime(2030, 11, 1, tzinfo=UTC),
        ),
        # seconds, and a jitter that moves each fire by a fixed offset per slot
        (
            Schedule(cron="*/20 * * * * *", jitter=timedelta(seconds=7)),
            datetime(2030, 1, 1, tzinfo=UTC),
        ),
        (
            Schedule(
                every=timedelta(minutes=7),
                start=datetime(2030, 1, 1, 0, 3, tzinfo=UTC),
                jitter=timedelta(minutes=3),
            ),
            datetime(2030, 1, 1, tzinfo=UTC),
        ),
        (Schedule(every=timedelta(hours=5)), datetime(2030, 3, 30, 23, 17, tzinfo=UTC)),
    ],
)
def test_the_preview_is_what_the_scheduler_fires(schedule: Schedule, created: datetime) -> None:
    previewed = upcoming_slots(schedule, anchor=created, after=created, count=6, task_id=TASK)
    assert sum(not slot.skipped for slot in previewed) == 6
    fired = _fired_by_the_shard(schedule, created, 6)
    assert _close(fired, _previewed(previewed)), (fired, previewed)


def test_the_fall_back_repeat_is_previewed_as_skipped() -> None:
    schedule = Schedule(cron="30 2 * * *", timezone="Europe/Berlin")
    created = datetime(2030, 10, 26, tzinfo=UTC)
    slots = upcoming_slots(schedule, anchor=created, after=created, count=3)
    assert [(slot.at.isoformat(), slot.skipped) for slot in slots] == [
        ("2030-10-26T00:30:00+00:00", False),  # 02:30 CEST
        ("2030-10-27T00:30:00+00:00", False),  # 02:30 CEST, the first pass
        ("2030-10-27T01:30:00+00:00", True),  # 02:30 CET, the repeat
        ("2030-10-28T01:30:00+00:00", False),
    ]


def test_a_jitter_without_a_task_id_has_no_due_time_and_an_end_stops_the_preview() -> None:
    start = datetime(2030, 1, 1, tzinfo=UTC)
    jittered = Schedule(every=timedelta(minutes=1), start=start, jitter=timedelta(seconds=30))
    [slot] = upcoming_slots(jittered, anchor=start, after=None, count=1)
    assert slot == UpcomingSlot(start, None)
    ending = Schedule(every=timedelta(hours=1), start=start, end=start + timedelta(hours=2))
    slots = upcoming_slots(ending, anchor=start, after=None, count=10)
    assert [slot.at for slot in slots] == [start + timedelta(hours=n) for n in range(3)]
