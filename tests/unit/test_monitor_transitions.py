"""Counting from transitions: once per execution, whatever arrives twice or out of order."""

from __future__ import annotations

import itertools
import random
from datetime import timedelta
from typing import Any

import pytest

from taskstream.monitor.records import apply_event
from taskstream.monitor.stats import (
    merge_totals,
    public_task_stats,
    stats_after,
    stats_after_skip,
    totals_after,
    totals_after_skip,
)
from taskstream.monitor.transitions import phase, transition
from taskstream.schemas import Event
from tests.unit.monitor_events import T0, Run, skipped


class Fold:
    """Records, one task's statistics and one partition's totals, as the projection keeps them."""

    def __init__(self) -> None:
        self.records: dict[str, dict[str, Any]] = {}
        self.stats: dict[str, Any] | None = None
        self.totals: dict[str, Any] | None = None

    def apply(self, event: Event) -> None:
        execution_id = event.data.execution_id  # type: ignore[attr-defined]
        before = self.records.get(execution_id)
        after = apply_event(before, event)
        if after is None:
            return
        self.records[execution_id] = after
        change = transition(before, after, event)
        self.stats = stats_after(self.stats, change) or self.stats
        self.totals = totals_after(self.totals, change) or self.totals
        assert all(n >= 0 for n in (self.totals or {"live": {}})["live"].values())


def test_each_outcome_counts_once_with_its_duration() -> None:
    fold = Fold()
    for n, outcome in enumerate(["succeeded", "failed", "timed_out", "cancelled", "succeeded"]):
        for event in Run("t", T0 + timedelta(minutes=n)).events(outcome, duration=n + 1.0):
            fold.apply(event)
    assert fold.stats is not None and fold.totals is not None
    shown = public_task_stats(fold.stats)
    expected = {"succeeded": 2, "failed": 1, "timed_out": 1, "cancelled": 1}
    assert shown["counts"] == {**expected, "dead_lettered": 0, "skipped": 0}
    assert fold.totals["counts"] == shown["counts"]
    assert fold.totals["live"] == {"scheduled": 0, "running": 0}
    assert shown["duration_seconds"]["count"] == 5
    assert shown["duration_seconds"]["max"] == 5.0
    assert shown["last_status"] == "succeeded"
    assert shown["last_finished_at"] == (T0 + timedelta(minutes=4, seconds=5.1)).isoformat()
    assert fold.totals["duration_sum"] == pytest.approx(15.0)
    assert sum(fold.totals["duration_buckets"]) == 5


def test_duplicates_change_no_count() -> None:
    fold = Fold()
    run = Run("t", T0)
    events = [*run.events("failed", 2.0), run.dead_lettered(2.5)]
    for event in events + events + list(reversed(events)):
        fold.apply(event)
    assert fold.stats is not None
    assert fold.stats["counts"]["failed"] == 1
    assert fold.stats["counts"]["dead_lettered"] == 1
    assert fold.stats["last_status"] == "dead_lettered"
    assert public_task_stats(fold.stats)["duration_seconds"]["count"] == 1


def test_a_rerun_of_the_same_execution_is_not_counted_again() -> None:
    """An executor died after the first run's outcome: the rerun has new event ids."""
    fold = Fold()
    run = Run("t", T0)
    for event in [*run.events("failed", 1.0), run.started(5), run.ended("succeeded", 1.0, 6)]:
        fold.apply(event)
    assert fold.stats is not None and fold.totals is not None
    assert fold.stats["counts"]["failed"] == 1
    assert fold.stats["counts"]["succeeded"] == 0
    assert fold.totals["live"] == {"scheduled": 0, "running": 0}


def test_a_retry_is_a_new_execution() -> None:
    fold = Fold()
    for event in [*Run("t", T0).events("failed", 1.0), *Run("t", T0, 2).events("succeeded", 1.0)]:
        fold.apply(event)
    assert fold.stats is not None
    assert (fold.stats["counts"]["failed"], fold.stats["counts"]["succeeded"]) == (1, 1)


@pytest.mark.parametrize("order", list(itertools.permutations(range(4))))
def test_any_order_counts_the_same(order: tuple[int, ...]) -> None:
    run = Run("t", T0)
    events = [*run.events("timed_out", 3.0), run.dead_lettered(3.5)]
    fold = Fold()
    for i in order:
        fold.apply(events[i])
    assert fold.stats is not None and fold.totals is not None
    assert fold.stats["counts"]["timed_out"] == 1
    assert fold.stats["counts"]["dead_lettered"] == 1
    assert fold.totals["live"] == {"scheduled": 0, "running": 0}
    assert fold.records[run.id]["status"] == "dead_lettered"


def test_unfinished_executions_are_counted_as_scheduled_or_running_now() -> None:
    fold = Fold()
    waiting, going, done = Run("t", T0), Run("t", T0 + timedelta(minutes=1)), Run("t", T0, 2)
    for event in [waiting.scheduled(), going.scheduled(), going.started(), done.scheduled()]:
        fold.apply(event)
    assert fold.totals is not None
    assert fold.totals["live"] == {"scheduled": 2, "running": 1}
    fold.apply(done.ended("succeeded", 1.0))
    fold.apply(done.started())  # late: the execution stays done
    assert fold.totals["live"] == {"scheduled": 1, "running": 1}
    assert phase(fold.records[done.id]) == "done"


def test_random_streams_with_duplicates_count_each_execution_once() -> None:
    rng = random.Random(11)
    runs = [Run("t", T0 + timedelta(seconds=n)) for n in range(200)]
    outcomes = {
        run.id: rng.choice(["succeeded", "failed", "timed_out", "cancelled"]) for run in runs
    }
    events = [event for run in runs for event in run.events(outcomes[run.id], rng.random())]
    stream = events + rng.sample(events, 150)
    rng.shuffle(stream)
    fold = Fold()
    for event in stream:
        fold.apply(event)
    assert fold.stats is not None and fold.totals is not None
    for outcome in ("succeeded", "failed", "timed_out", "cancelled"):
        assert fold.stats["counts"][outcome] == list(outcomes.values()).count(outcome)
    assert fold.totals["counts"] == fold.stats["counts"]
    assert fold.totals["live"] == {"scheduled": 0, "running": 0}


def test_skips_count_their_slots_once_per_event() -> None:
    event = skipped("t", T0, count=3)
    stats = stats_after_skip(None, "t", event.id, 3)
    assert stats is not None and stats["counts"]["skipped"] == 3
    assert stats_after_skip(stats, "t", event.id, 3) is None
    assert totals_after_skip(None, 3)["counts"]["skipped"] == 3


def test_totals_of_partitions_merge() -> None:
    first, second = Fold(), Fold()
    for event in Run("a", T0).events("succeeded", 0.2):
        first.apply(event)
    for event in [Run("b", T0).scheduled(), *Run("b", T0, 2).events("failed", 20.0)]:
        second.apply(event)
    assert first.totals is not None and second.totals is not None
    merged = merge_totals([first.totals, second.totals])
    assert merged["counts"]["succeeded"] == 1 and merged["counts"]["failed"] == 1
    assert merged["live"] == {"scheduled": 1, "running": 0}
    assert merged["duration_sum"] == pytest.approx(20.2)
