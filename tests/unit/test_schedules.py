from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from taskstream.schemas import Schedule
from taskstream.schemas.errors import ScheduleError
from taskstream.schemas.schedules import (
    Slot,
    SlotKind,
    check_schedule,
    iter_slots,
    jitter_offset,
    latest_fire_slot,
    next_slot,
)

ANCHOR = datetime(2026, 1, 1, 0, 0, 0, 300_000, tzinfo=UTC)
BERLIN = ZoneInfo("Europe/Berlin")


def _at(slot: Slot | None) -> datetime | None:
    return slot.at if slot else None


def test_every_counts_whole_periods_from_creation() -> None:
    schedule = Schedule(every=timedelta(seconds=30))
    assert _at(next_slot(schedule, anchor=ANCHOR, after=None)) == ANCHOR + timedelta(seconds=30)
    after = ANCHOR + timedelta(seconds=30)
    assert _at(next_slot(schedule, anchor=ANCHOR, after=after)) == ANCHOR + timedelta(seconds=60)
    after = ANCHOR + timedelta(seconds=31)
    assert _at(next_slot(schedule, anchor=ANCHOR, after=after)) == ANCHOR + timedelta(seconds=60)


def test_six_field_cron_reads_seconds_first() -> None:
    schedule = Schedule(cron="0 */15 * * * *")
    first = _at(next_slot(schedule, anchor=ANCHOR, after=None))
    assert first == datetime(2026, 1, 1, 0, 15, tzinfo=UTC)
    second = _at(next_slot(schedule, anchor=ANCHOR, after=first))
    assert second == datetime(2026, 1, 1, 0, 30, tzinfo=UTC)
    every_five = Schedule(cron="*/5 * * * * *")
    slots = [
        s.at
        for s in iter_slots(
            every_five, anchor=ANCHOR, after=None, until=ANCHOR + timedelta(seconds=61)
        )
    ]
    assert slots[:3] == [ANCHOR.replace(microsecond=0) + timedelta(seconds=n) for n in (5, 10, 15)]
    assert len(slots) == 12


def test_five_field_cron_in_a_time_zone_returns_utc() -> None:
    schedule = Schedule(cron="0 9 * * *", timezone="America/New_York")
    assert _at(next_slot(schedule, anchor=ANCHOR, after=None)) == datetime(
        2026, 1, 1, 14, tzinfo=UTC
    )


def test_one_shot_has_one_slot() -> None:
    at = datetime(2026, 6, 1, 12, tzinfo=UTC)
    schedule = Schedule(at=at)
    assert _at(next_slot(schedule, anchor=ANCHOR, after=None)) == at
    assert next_slot(schedule, anchor=ANCHOR, after=at) is None


def test_start_and_end_bound_the_slots() -> None:
    start = datetime(2026, 1, 1, 0, 1, tzinfo=UTC)
    end = datetime(2026, 1, 1, 0, 2, tzinfo=UTC)
    every = Schedule(every=timedelta(seconds=30), start=start, end=end)
    assert [
        s.at for s in iter_slots(every, anchor=ANCHOR, after=None, until=end + timedelta(hours=1))
    ] == [start, start + timedelta(seconds=30), end]
    cron = Schedule(cron="* * * * *", start=start, end=end)
    assert [
        s.at for s in iter_slots(cron, anchor=ANCHOR, after=None, until=end + timedelta(hours=1))
    ] == [start, end]


def test_latest_fire_slot_jumps_to_the_last_missed_slot() -> None:
    now = ANCHOR + timedelta(seconds=95)
    every = Schedule(every=timedelta(seconds=30))
    assert latest_fire_slot(every, anchor=ANCHOR, after=None, until=now) == (
        ANCHOR + timedelta(seconds=90)
    )
    cron = Schedule(cron="*/5 * * * * *")
    boundary = datetime(2026, 1, 1, 0, 0, 10, tzinfo=UTC)
    assert latest_fire_slot(cron, anchor=ANCHOR, after=None, until=boundary) == boundary
    assert (
        latest_fire_slot(cron, anchor=ANCHOR, after=None, until=boundary + timedelta(seconds=2))
        == boundary
    )
    assert latest_fire_slot(every, anchor=ANCHOR, after=None, until=ANCHOR) is None


def _local(slots: list[Slot]) -> list[tuple[str, str]]:
    return [(s.at.astimezone(BERLIN).strftime("%m-%d %H:%M%z"), s.kind.value) for s in slots]


def test_spring_forward_runs_a_fixed_time_job_right_after_the_jump() -> None:
    """2026-03-29 Europe/Berlin: 02:00 CET jumps to 03:00 CEST; 02:30 does not exist."""
    schedule = Schedule(cron="30 2 * * *", timezone="Europe/Berlin")
    created = datetime(2026, 3, 27, 12, tzinfo=UTC)
    slots = list(
        iter_slots(
            schedule, anchor=created, after=None, until=datetime(2026, 3, 31, 12, tzinfo=UTC)
        )
    )
    assert _local(slots) == [
        ("03-28 02:30+0100", "fire"),
        ("03-29 03:00+0200", "fire"),  # the missing 02:30 runs once, at the jump
        ("03-30 02:30+0200", "fire"),
        ("03-31 02:30+0200", "fire"),
    ]


def test_fall_back_runs_a_fixed_time_job_once_and_skips_the_repeat() -> None:
    """2026-10-25 Europe/Berlin: 03:00 CEST falls back to 02:00 CET; 02:30 happens twice."""
    schedule = Schedule(cron="30 2 * * *", timezone="Europe/Berlin")
    created = datetime(2026, 10, 23, 12, tzinfo=UTC)
    slots = list(
        iter_slots(
            schedule, anchor=created, after=None, until=datetime(2026, 10, 26, 12, tzinfo=UTC)
        )
    )
    assert _local(slots) == [
        ("10-24 02:30+0200", "fire"),
        ("10-25 02:30+0200", "fire"),
        ("10-25 02:30+0100", "skip_dst"),  # the repeated 02:30 is recorded as skipped
        ("10-26 02:30+0100", "fire"),
    ]


def test_wildcard_hour_jobs_run_in_both_passes_of_the_repeated_hour() -> None:
    schedule = Schedule(cron="0,30 * * * *", timezone="Europe/Berlin")
    start = datetime(2026, 10, 24, 23, 45, tzinfo=UTC)  # 01:45 CEST
    slots = list(iter_slots(schedule, anchor=start, after=None, until=start + timedelta(hours=3)))
    assert _local(slots) == [
        ("10-25 02:00+0200", "fire"),
        ("10-25 02:30+0200", "fire"),
        ("10-25 02:00+0100", "fire"),
        ("10-25 02:30+0100", "fire"),
        ("10-25 03:00+0100", "fire"),
        ("10-25 03:30+0100", "fire"),
    ]
    gaps = [b.at - a.at for a, b in itertools.pairwise(slots)]
    assert set(gaps) == {timedelta(minutes=30)}, "real time between runs stays 30 minutes"


@pytest.mark.parametrize("jitter", [timedelta(seconds=10), timedelta(minutes=5)])
def test_jitter_is_bounded_and_the_same_on_every_instance(jitter: timedelta) -> None:
    offsets = {jitter_offset("task", ANCHOR + timedelta(minutes=n), jitter) for n in range(200)}
    assert all(timedelta(0) <= offset < jitter for offset in offsets)
    assert len(offsets) > 150, "offsets spread over the window"
    assert jitter_offset("task", ANCHOR, jitter) == jitter_offset("task", ANCHOR, jitter)
    assert jitter_offset("task", ANCHOR, None) == timedelta(0)


def test_slot_kinds_are_fire_by_default() -> None:
    assert Slot(ANCHOR).kind is SlotKind.FIRE


# -- one grammar: validation runs the evaluator ---------------------------------------------


@pytest.mark.parametrize("cron", ["0 0 30 2 *", "0 0 31 4 *", "0 0 31 2,4,6,9,11 *"])
def test_a_cron_that_no_month_can_match_is_refused_as_never_firing(cron: str) -> None:
    with pytest.raises(ValueError, match="never fires"):
        Schedule(cron=cron)


@pytest.mark.parametrize("cron", ["0 0 ? * *", "0 0 * * * * *", "*/0 * * * *", "0 0 L-2 * *"])
def test_what_cronsim_cannot_read_is_refused(cron: str) -> None:
    with pytest.raises(ValueError, match="cron expression"):
        Schedule(cron=cron)


def test_every_accepted_cron_yields_slots_from_the_scheduler_function() -> None:
    for cron in ("0 0 29 2 *", "0 0 30 * *", "*/5 * * * * *", "0 0 * 2 1#5", "0 12 L * *"):
        schedule = Schedule(cron=cron)
        slots = check_schedule(schedule, now=ANCHOR, min_interval=timedelta(seconds=1))
        assert len(slots) == 5 and slots == sorted(slots) and slots[0] > ANCHOR
        assert slots[0] == _at(next_slot(schedule, anchor=ANCHOR, after=ANCHOR))


def test_a_schedule_with_no_slot_after_now_never_fires() -> None:
    one_second = timedelta(seconds=1)
    with pytest.raises(ScheduleError, match="in the past") as past:
        check_schedule(Schedule(at=ANCHOR - one_second), now=ANCHOR, min_interval=one_second)
    assert past.value.field == "schedule.at"
    cut = Schedule(cron="0 0 1 1 *", end=ANCHOR + timedelta(days=30))
    with pytest.raises(ScheduleError, match="no slot before its end"):
        check_schedule(cut, now=ANCHOR + one_second, min_interval=one_second)
    assert check_schedule(Schedule(at=ANCHOR + one_second), now=ANCHOR, min_interval=one_second)


def test_the_minimum_interval_bounds_every_and_the_gaps_of_a_cron() -> None:
    ten = timedelta(seconds=10)
    with pytest.raises(ScheduleError, match="below the minimum interval of 10s") as every:
        check_schedule(Schedule(every="5s"), now=ANCHOR, min_interval=ten)
    assert every.value.field == "schedule.every"
    with pytest.raises(ScheduleError, match="fires 5s apart"):
        check_schedule(Schedule(cron="*/5 * * * * *"), now=ANCHOR, min_interval=ten)
    assert check_schedule(Schedule(cron="*/10 * * * * *"), now=ANCHOR, min_interval=ten)


def test_the_latest_date_and_the_longest_durations_still_compute_without_overflow() -> None:
    late = datetime(8999, 12, 31, 23, 59, tzinfo=UTC)
    longest = {"every": "36525d", "start": late, "jitter": "36525d"}
    slots = check_schedule(Schedule.model_validate(longest), now=late, min_interval=ANCHOR - ANCHOR)
    assert slots[0] == late + timedelta(days=36_525) and len(slots) == 5
    assert jitter_offset("task", slots[-1], timedelta(days=36_525)) < timedelta(days=36_525)
    with pytest.raises(ValueError, match="out of range"):
        Schedule(every="1h", start=datetime(9000, 1, 1, tzinfo=UTC))
