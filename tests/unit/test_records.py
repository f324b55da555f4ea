from __future__ import annotations

from datetime import UTC, datetime

from taskstream.monitor.records import apply_event, public_record, push_history
from taskstream.schemas import (
    Event,
    ExecutionScheduled,
    ExecutionStarted,
    ExecutionSucceeded,
    Priority,
)

SLOT = datetime(2030, 1, 1, tzinfo=UTC)


def _events() -> list[Event]:
    common = {"execution_id": "e1", "attempt": 1, "scheduled_for": SLOT}
    return [
        Event.create(
            "t1", ExecutionScheduled(**common, topic="x", queue="default", priority=Priority.MEDIUM)
        ),
        Event.create("t1", ExecutionStarted(**common, worker_id="w", handler="echo")),
        Event.create(
            "t1",
            ExecutionSucceeded(**common, worker_id="w", duration_seconds=0.005, output={"a": 1}),
        ),
    ]


def test_events_fold_into_one_record() -> None:
    record = None
    for event in _events():
        record = apply_event(record, event)
    assert record is not None
    shown = public_record(record)
    assert shown["status"] == "succeeded"
    assert shown["output"] == {"a": 1}
    assert shown["duration_seconds"] == 0.005
    assert "event_ids" not in shown


def test_duplicates_and_late_events_change_nothing() -> None:
    scheduled, started, succeeded = _events()
    record = apply_event(apply_event(None, scheduled), succeeded)
    assert apply_event(record, succeeded) is None  # redelivered
    late = apply_event(record, started)
    assert late is not None and late["status"] == "succeeded"


def test_history_is_newest_first_bounded_and_idempotent() -> None:
    history = None
    for n in range(5):
        history = push_history(history, f"e{n}", size=3) or history
    assert history == ["e4", "e3", "e2"]
    assert push_history(history, "e4", size=3) is None
