"""The projection over plain dicts standing in for faust tables: eviction, bounds, batches."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from taskstream.monitor.batch import FOLDED_THROUGH, RecentList, unwrap
from taskstream.monitor.projection import Projection
from taskstream.monitor.records import public_record, push_recent
from taskstream.monitor.tables import MonitorTables
from taskstream.monitor.windows import parse_window_key
from taskstream.schemas import Event
from tests.unit.monitor_events import T0, Run, skipped

TABLES = ("executions", "tasks", "totals", "windows", "recent")
"""The tables the projection writes (``legacy`` is read only)."""


def tables() -> MonitorTables:
    return MonitorTables(*({} for _ in range(5)))


def projection(history: int = 3, recent: int = 4) -> Projection:
    return Projection(
        tables(), history_size=history, recent_size=recent, window_retention=timedelta(hours=1)
    )


def apply_all(p: Projection, events: list[Event], partition: int = 0) -> None:
    for event in events:
        p.apply(event, partition, now=T0 + timedelta(minutes=30))


def test_finished_records_that_left_history_and_recent_are_evicted_and_remembered() -> None:
    p = projection(history=3, recent=4)
    runs = [Run("t", T0 + timedelta(minutes=n)) for n in range(10)]
    apply_all(p, [event for run in runs for event in run.events("succeeded", 1.0)])
    t = p.tables
    assert t.task_part("t", "history") == [run.id for run in reversed(runs[-3:])]
    assert [entry[1] for entry in unwrap(t.recent["0"])] == [run.id for run in reversed(runs[-4:])]
    assert set(t.executions) == {run.id for run in runs[-4:]}
    assert t.task_part("t", "evicted") == [run.id for run in reversed(runs[:6])][:3]
    counts = dict(t.task_part("t", "stats")["counts"])
    apply_all(p, [event for run in runs[-3:] for event in run.events("succeeded", 1.0)])
    apply_all(p, runs[-5].events("failed", 1.0))  # evicted and remembered: ignored
    assert t.task_part("t", "stats")["counts"] == counts
    assert unwrap(t.totals["0"])["counts"]["succeeded"] == 10


def test_unfinished_records_stay_until_they_finish() -> None:
    p = projection(history=2, recent=2)
    slow = Run("t", T0)
    apply_all(p, [slow.scheduled(), slow.started()])
    apply_all(
        p,
        [
            e
            for n in range(1, 5)
            for e in Run("t", T0 + timedelta(minutes=n)).events("succeeded", 1.0)
        ],
    )
    assert slow.id in p.tables.executions
    assert slow.id not in p.tables.task_part("t", "history")
    apply_all(p, [slow.ended("succeeded", 600.0)])
    assert p.tables.task_part("t", "history")[0] == slow.id  # back in its history when it finishes
    assert unwrap(p.tables.totals["0"])["live"] == {"scheduled": 0, "running": 0}
    assert public_record(p.tables.executions[slow.id])["status"] == "succeeded"


def test_windows_are_kept_per_partition_and_old_ones_are_not_created() -> None:
    p = projection()
    apply_all(p, Run("a", T0 + timedelta(minutes=25)).events("succeeded", 1.0), partition=0)
    apply_all(p, Run("b", T0 + timedelta(minutes=25)).events("failed", 1.0), partition=1)
    apply_all(p, Run("c", T0 - timedelta(hours=2)).events("failed", 1.0), partition=1)
    keys = sorted(parse_window_key(key) for key in p.tables.windows)
    minute = int((T0 + timedelta(minutes=25)).timestamp())
    assert keys == [(0, minute), (1, minute)]
    assert unwrap(p.tables.totals["1"])["counts"]["failed"] == 2  # counted, only not windowed


def test_expired_windows_are_swept_as_the_partition_goes_on() -> None:
    p = projection()
    apply_all(p, Run("a", T0 + timedelta(minutes=25)).events("succeeded", 1.0))
    p._last_sweep.clear()
    p.apply(skipped("a", T0), 0, now=T0 + timedelta(hours=3))
    assert p.tables.windows == {}
    assert p.tables.task_part("a", "stats")["counts"]["skipped"] == 1


class CountingTable(dict[str, Any]):
    """A dict that counts the writes (assignments and deletions) of each key."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: Counter[str] = Counter()

    def __setitem__(self, key: str, value: Any) -> None:
        self.writes[key] += 1
        super().__setitem__(key, value)

    def __delitem__(self, key: str) -> None:
        self.writes[key] += 1
        super().__delitem__(key)


def counting_projection(history: int = 3, recent: int = 4) -> Projection:
    return Projection(
        MonitorTables(*(CountingTable() for _ in range(5))),
        history_size=history,
        recent_size=recent,
        window_retention=timedelta(hours=1),
    )


def workload(seed: int) -> list[Event]:
    """Runs of a few tasks, some unfinished, with skips and redelivered events, shuffled
    a little (a partition's order is the producers', not the event times')."""
    rng = random.Random(seed)
    events: list[Event] = []
    for n in range(40):
        run = Run(rng.choice("abc"), T0 + timedelta(minutes=rng.randrange(30)))
        outcome = rng.choice(["succeeded", "failed", "timed_out", "cancelled", None])
        if outcome is None:
            events += [run.scheduled(), run.started()][: rng.randint(1, 2)]
        else:
            events += run.events(outcome, rng.choice([0.5, 1.0, 7.0]))
            if rng.random() < 0.2:
                events.append(run.dead_lettered(30))
        if n % 9 == 0:
            events.append(skipped(rng.choice("abc"), T0 + timedelta(minutes=n), count=2))
    for _ in range(25):
        events.insert(rng.randrange(len(events)), rng.choice(events))  # redeliveries
    for i in range(len(events) - 1):
        if rng.random() < 0.2:
            events[i], events[i + 1] = events[i + 1], events[i]
    return events


def all_tables(p: Projection) -> list[Any]:
    return [getattr(p.tables, name) for name in TABLES]


def contents(p: Projection, tasks: Callable[[Any], Any] = lambda v: v) -> list[dict[str, Any]]:
    """Every table, as dicts; ``tasks`` maps that table's values (a redone eviction
    remembers a later offset than the first: an idempotent list needs no exact one)."""
    tables = [{key: _comparable(value) for key, value in table.items()} for table in all_tables(p)]
    tables[1] = {key: tasks(value) for key, value in tables[1].items()}
    return tables


def _comparable(value: Any) -> Any:
    """A stored value without what its batch remembered (that depends on the batching)."""
    if isinstance(value, dict) and FOLDED_THROUGH in value:
        return {k: v for k, v in value.items() if k != "dropped"}
    return value


@pytest.mark.parametrize("size", [1, 2, 7, 50, 1000])
def test_a_batch_leaves_the_tables_as_the_events_one_by_one_do(size: int) -> None:
    events = workload(seed=size)
    now = T0 + timedelta(minutes=40)
    one_by_one = projection(history=3, recent=4)
    for event in events:
        one_by_one.apply(event, 0, now=now)
    batched = projection(history=3, recent=4)
    for start in range(0, len(events), size):
        batched.apply_batch(events[start : start + size], 0, now=now)
    assert contents(batched) == contents(one_by_one)
    assert any(  # the workload does evict
        one_by_one.tables.task_part(task, "evicted") for task in one_by_one.tables.tasks
    )


def test_each_key_a_batch_changes_is_written_once() -> None:
    events = workload(seed=3)
    p = counting_projection(history=3, recent=4)
    written = p.apply_batch(events, 0, now=T0 + timedelta(minutes=40))
    writes = [table.writes for table in all_tables(p)]
    assert all(n == 1 for counts in writes for n in counts.values())
    assert written == sum(len(counts) for counts in writes)
    t = p.tables
    assert t.totals.writes == {"0": 1} and t.recent.writes == {"0": 1}
    evicted = {e for task in t.tasks for e in t.task_part(task, "evicted") or ()}
    assert evicted and not evicted & set(t.executions.writes)  # came and went in the batch


def test_a_duplicate_in_the_same_batch_changes_nothing() -> None:
    run = Run("t", T0)
    events = run.events("succeeded", 1.0)
    once = counting_projection()
    once.apply_batch(events, 0, now=T0)
    twice = counting_projection()
    twice.apply_batch([*events, *events, events[1]], 0, now=T0)
    assert contents(twice) == contents(once)
    assert unwrap(twice.tables.totals["0"])["counts"]["succeeded"] == 1
    assert twice.tables.task_part("t", "stats")["counts"]["succeeded"] == 1
    assert twice.apply_batch(events, 0, now=T0) == 0  # redelivered: nothing written
    assert all(n == 1 for table in all_tables(twice) for n in table.writes.values())


def test_the_recent_list_of_a_batch_matches_push_recent() -> None:
    rng = random.Random(11)
    entries: list[list[Any]] = []
    recent = RecentList([])
    for n in range(300):
        ended_at = float(rng.randrange(40))  # ties and out-of-order ends
        execution_id = f"e{rng.randrange(150)}"
        expected = push_recent(entries, ended_at, execution_id, 20)
        dropped = recent.push(ended_at, execution_id, 20)
        if expected is None:
            assert dropped == [], n
            continue
        assert dropped == [
            e[1] for e in entries if e[1] not in {x[1] for x in expected} and e[1] != execution_id
        ]
        entries = expected
        assert recent.entries == entries
        assert recent.ids == {e[1] for e in entries}


def test_a_redelivery_of_any_length_changes_nothing() -> None:
    """Records at or below the offset a partition was folded through are skipped, even
    executions long evicted and skips beyond the remembered skip ids."""
    p = projection(history=2, recent=2)
    runs = [Run("t", T0 + timedelta(minutes=n)) for n in range(20)]
    events = [event for run in runs for event in run.events("succeeded", 1.0)]
    events += [skipped("t", T0 - timedelta(minutes=n)) for n in range(100)]
    offsets = list(range(len(events)))
    now = T0 + timedelta(minutes=30)
    for start in range(0, len(events), 7):  # batches as the agent reads them
        p.apply_batch(events[start : start + 7], 0, now, offsets[start : start + 7])
    t = p.tables
    assert t.totals["through:0"] == offsets[-1]
    folded = {name: dict(getattr(t, name)) for name in ("tasks", "totals", "windows")}
    assert t.task_part("t", "stats")["counts"]["succeeded"] == 20
    assert t.task_part("t", "stats")["counts"]["skipped"] == 100
    written = p.apply_batch(events, 0, now, offsets)  # everything again
    assert written == 0
    assert {name: dict(getattr(t, name)) for name in folded} == folded
    new = Run("t", T0 + timedelta(hours=1))
    p.apply_batch(new.events("failed", 2.0), 0, now, [len(events), len(events) + 1, 1000])
    assert t.task_part("t", "stats")["counts"]["failed"] == 1
    assert t.totals["through:0"] == 1000


def _persisted(
    before: list[dict[str, Any]], after: list[dict[str, Any]], rng: random.Random
) -> list[dict[str, Any]]:
    """What a kill -9 leaves of the writes from ``before`` to ``after``: any subset of the
    changed keys (the tables' changelogs are topics with no order between them)."""
    state = [dict(table) for table in before]
    for table, old, new in zip(state, before, after, strict=True):
        for key in set(old) | set(new):
            if old.get(key) != new.get(key) and rng.random() < 0.5:
                if key in new:
                    table[key] = new[key]
                else:
                    del table[key]
    return state


@pytest.mark.parametrize("phase", ["tasks", "executions", "marker"])
@pytest.mark.parametrize("seed", range(40))
def test_a_kill_in_the_middle_of_a_batch_s_writes_loses_and_doubles_nothing(
    phase: str, seed: int
) -> None:
    """The agent writes a batch in three phases, each confirmed by the broker before the
    next: the tasks' records (stats, history, evictions), windows and recent, then the execution
    records, then the totals (which hold the offset folded through). A kill -9 in any
    phase leaves any part of that phase's writes; the records after the last commit come
    again, and the tables must end as if nothing had happened."""
    rng = random.Random(seed)
    events = workload(seed=100 + seed)
    offsets = list(range(len(events)))
    now = T0 + timedelta(minutes=40)
    size = 7
    clean = projection(history=3, recent=4)
    for start in range(0, len(events), size):
        clean.apply_batch(events[start : start + size], 0, now, offsets[start : start + size])

    crashed = projection(history=3, recent=4)
    crash_at = rng.randrange(len(events) // size) * size
    for start in range(0, crash_at, size):
        crashed.apply_batch(events[start : start + size], 0, now, offsets[start : start + size])
    before = [dict(table) for table in all_tables(crashed)]
    batch = crashed.fold_batch(
        events[crash_at : crash_at + size], 0, now, offsets[crash_at : crash_at + size]
    )
    assert batch is not None
    batch.write_tasks()
    after_tasks = [dict(table) for table in all_tables(crashed)]
    batch.write_executions()
    after_executions = [dict(table) for table in all_tables(crashed)]
    batch.write_marker()
    after_totals = [dict(table) for table in all_tables(crashed)]
    left = {
        "tasks": _persisted(before, after_tasks, rng),
        "executions": _persisted(after_tasks, after_executions, rng),
        "marker": _persisted(after_executions, after_totals, rng),
    }[phase]
    for table, state in zip(all_tables(crashed), left, strict=True):
        table.clear()
        table.update(state)
    # redelivered from the last commit (a batch or two before the crash) to the end
    resume = max(0, crash_at - size * rng.randrange(3))
    for start in range(resume, len(events), size):
        crashed.apply_batch(events[start : start + size], 0, now, offsets[start : start + size])
    assert contents(crashed, tasks=unwrap) == contents(clean, tasks=unwrap)


def test_a_monitor_upgraded_from_the_three_task_tables_goes_on_where_it_was() -> None:
    """Before the ``tasks`` record, a task's history, evictions and statistics were three
    tables (kept as ``MonitorTables.legacy``, read only): folding on from them ends as
    folding everything into ``tasks`` does, and the API reads them meanwhile."""
    events = workload(seed=7)
    offsets = list(range(len(events)))
    half = len(events) // 2
    now = T0 + timedelta(minutes=40)
    reference = projection(history=3, recent=4)
    reference.apply_batch(events, 0, now, offsets)

    before = projection(history=3, recent=4)
    before.apply_batch(events[:half], 0, now, offsets[:half])
    old = before.tables
    legacy: tuple[dict[str, Any], dict[str, Any], dict[str, Any]] = ({}, {}, {})
    for task_id, stored in old.tasks.items():
        for table, part in zip(legacy, ("history", "evicted", "stats"), strict=True):
            value = unwrap(stored).get(part)
            if value is not None:
                table[task_id] = {FOLDED_THROUGH: stored[FOLDED_THROUGH], "value": value}
    upgraded = Projection(
        MonitorTables(
            dict(old.executions), {}, dict(old.totals), dict(old.windows), dict(old.recent), legacy
        ),
        history_size=3,
        recent_size=4,
        window_retention=timedelta(hours=1),
    )
    for task_id in old.tasks:
        assert upgraded.tables.task_part(task_id, "stats") == old.task_part(task_id, "stats")
    upgraded.apply_batch(events[half:], 0, now, offsets[half:])
    assert any(legacy), "the legacy tables held tasks"
    for task_id in reference.tables.tasks:
        for part in ("history", "evicted", "stats"):
            assert upgraded.tables.task_part(task_id, part) == reference.tables.task_part(
                task_id, part
            ), (task_id, part)


def test_the_types_the_monitor_folds_nothing_from_are_skipped_by_header() -> None:
    """Skipping them loses nothing: neither the projection nor the alert facts change for
    one. aiokafka hands the headers as a tuple of ``(str, bytes)`` pairs."""
    from taskstream.monitor.alerts.facts import fold as fold_facts
    from taskstream.monitor.projection import UNFOLDED_TYPES, _unfolded_type
    from taskstream.schemas import (
        CancelRequested,
        DeadLetterReplayed,
        RetryScheduled,
        RunRequested,
        event_headers,
    )

    common = {"execution_id": "e2", "attempt": 2, "scheduled_for": T0, "due_at": T0}
    unfolded = [
        Event.create("t", RunRequested()),
        Event.create("t", CancelRequested(execution_id="e1")),
        Event.create("t", RetryScheduled(failed_execution_id="e1", **common)),
        Event.create("t", DeadLetterReplayed(dead_lettered_execution_id="e1", **common)),
    ]
    assert {event.type for event in unfolded} == UNFOLDED_TYPES
    for event in unfolded:
        assert _unfolded_type(tuple(event_headers(event))) == event.type
        assert fold_facts(None, event) is None
        assert projection().apply_batch([event], 0, now=T0) == 0
    for event in [*Run("t", T0).events("failed", 1.0), skipped("t", T0)]:
        assert _unfolded_type(tuple(event_headers(event))) is None
    assert _unfolded_type(None) is None
