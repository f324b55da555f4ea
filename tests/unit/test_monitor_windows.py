"""Per-minute windows by event time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from taskstream.monitor.histogram import Histogram
from taskstream.monitor.records import apply_event
from taskstream.monitor.transitions import transition
from taskstream.monitor.windows import (
    expired,
    parse_window_key,
    public_windows,
    window_after,
    window_key,
    window_start,
    window_update,
)
from tests.unit.monitor_events import T0, Run


def test_an_instant_falls_in_the_minute_that_holds_it_in_any_zone() -> None:
    assert window_start(T0) == int(T0.timestamp())
    assert window_start(T0 + timedelta(seconds=59.999)) == int(T0.timestamp())
    assert window_start(T0 + timedelta(seconds=60)) == int(T0.timestamp()) + 60
    berlin = (T0 + timedelta(seconds=30)).astimezone(timezone(timedelta(hours=1)))
    assert window_start(berlin) == int(T0.timestamp())
    assert parse_window_key(window_key(7, 1_800_000_000)) == (7, 1_800_000_000)


def test_an_execution_counts_in_the_minute_of_its_ending_event_not_of_its_start() -> None:
    run = Run("t", T0 + timedelta(seconds=50))  # starts in one minute, ends in the next
    record = None
    updates = []
    for event in [*run.events("failed", 30.0), run.dead_lettered(200)]:
        before, record = record, apply_event(record, event)
        assert record is not None
        updates.append(window_update(transition(before, record, event)))
    minute = int(T0.timestamp())
    assert updates == [
        None,
        None,
        (minute + 60, "failed", 30.0),
        (minute + 240, "dead_lettered", None),
    ]


def test_the_series_merges_partitions_and_fills_empty_minutes_oldest_first() -> None:
    minute = int(T0.timestamp())
    first = window_after(window_after(None, "succeeded", 1.0), "failed", 3.0)
    second = window_after(None, "succeeded", 2.0)
    late = window_after(None, "dead_lettered", None)
    stored = [(minute, first), (minute, second), (minute + 120, late), (minute - 600, second)]
    now = T0 + timedelta(minutes=2, seconds=10)
    series = public_windows(stored, now, minutes=4)
    assert [w["start"] for w in series] == [
        datetime.fromtimestamp(minute + 60 * n, UTC).isoformat() for n in (-1, 0, 1, 2)
    ]
    empty, full, nothing, dead = series
    assert empty == {
        "start": empty["start"],
        "finished": 0,
        "succeeded": 0,
        "failed": 0,
        "timed_out": 0,
        "cancelled": 0,
        "dead_lettered": 0,
        "duration_seconds": None,
    }
    assert (full["finished"], full["succeeded"], full["failed"]) == (3, 2, 1)
    assert full["duration_seconds"]["max"] == 3.0
    assert full["duration_seconds"]["p50"] == Histogram.merged(
        Histogram.from_json(w["durations"]) for w in (first, second)
    ).quantile(0.5)
    assert nothing["finished"] == 0
    assert dead["dead_lettered"] == 1 and dead["finished"] == 0
    assert dead["duration_seconds"] is None


def test_windows_expire_after_the_retention() -> None:
    minute = int(T0.timestamp())
    day = timedelta(hours=24)
    assert not expired(minute, T0 + day, day)
    assert expired(minute, T0 + day + timedelta(seconds=60), day)
