from __future__ import annotations

from datetime import UTC, datetime, timedelta

from core.schedules import latest_slot_at_or_before, next_slot
from schemas import Schedule

ANCHOR = datetime(2026, 1, 1, 0, 0, 0, 300_000, tzinfo=UTC)


def test_every_counts_whole_periods_from_creation() -> None:
    schedule = Schedule(every=timedelta(seconds=30))
    assert next_slot(schedule, anchor=ANCHOR, after=None) == ANCHOR + timedelta(seconds=30)
    assert next_slot(schedule, anchor=ANCHOR, after=ANCHOR + timedelta(seconds=30)) == (
        ANCHOR + timedelta(seconds=60)
    )
    assert next_slot(schedule, anchor=ANCHOR, after=ANCHOR + timedelta(seconds=31)) == (
        ANCHOR + timedelta(seconds=60)
    )


def test_six_field_cron_reads_seconds_first() -> None:
    schedule = Schedule(cron="0 */15 * * * *")
    first = next_slot(schedule, anchor=ANCHOR, after=None)
    assert first == datetime(2026, 1, 1, 0, 15, tzinfo=UTC)
    assert next_slot(schedule, anchor=ANCHOR, after=first) == datetime(
        2026, 1, 1, 0, 30, tzinfo=UTC
    )


def test_five_field_cron_in_a_time_zone_returns_utc() -> None:
    schedule = Schedule(cron="0 9 * * *", timezone="America/New_York")
    assert next_slot(schedule, anchor=ANCHOR, after=None) == datetime(2026, 1, 1, 14, 0, tzinfo=UTC)


def test_one_shot_has_one_slot() -> None:
    at = datetime(2026, 6, 1, 12, tzinfo=UTC)
    schedule = Schedule(at=at)
    assert next_slot(schedule, anchor=ANCHOR, after=None) == at
    assert next_slot(schedule, anchor=ANCHOR, after=at) is None


def test_misfire_coalesces_to_the_latest_missed_slot() -> None:
    now = ANCHOR + timedelta(seconds=95)
    every = Schedule(every=timedelta(seconds=30))
    assert latest_slot_at_or_before(every, anchor=ANCHOR, after=None, now=now) == (
        ANCHOR + timedelta(seconds=90)
    )
    cron = Schedule(cron="*/5 * * * * *")
    at_boundary = datetime(2026, 1, 1, 0, 0, 10, tzinfo=UTC)
    assert latest_slot_at_or_before(cron, anchor=ANCHOR, after=None, now=at_boundary) == at_boundary
    assert (
        latest_slot_at_or_before(
            cron, anchor=ANCHOR, after=None, now=at_boundary + timedelta(seconds=2)
        )
        == at_boundary
    )
    assert latest_slot_at_or_before(every, anchor=ANCHOR, after=None, now=ANCHOR) is None
