"""The projection over plain dicts standing in for faust tables: eviction and bounds."""

from __future__ import annotations

from datetime import timedelta

from monitor.projection import Projection
from monitor.records import public_record
from monitor.tables import MonitorTables
from monitor.windows import parse_window_key
from schemas import Event
from tests.unit.monitor_events import T0, Run, skipped


def tables() -> MonitorTables:
    return MonitorTables(*({} for _ in range(7)))


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
    assert t.history["t"] == [run.id for run in reversed(runs[-3:])]
    assert [entry[1] for entry in t.recent["0"]] == [run.id for run in reversed(runs[-4:])]
    assert set(t.executions) == {run.id for run in runs[-4:]}
    assert t.evicted["t"] == [run.id for run in reversed(runs[:6])][:3]
    counts = dict(t.stats["t"]["counts"])
    apply_all(p, [event for run in runs[-3:] for event in run.events("succeeded", 1.0)])
    apply_all(p, runs[-5].events("failed", 1.0))  # evicted and remembered: ignored
    assert t.stats["t"]["counts"] == counts
    assert t.totals["0"]["counts"]["succeeded"] == 10


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
    assert slow.id not in p.tables.history["t"]
    apply_all(p, [slow.ended("succeeded", 600.0)])
    assert p.tables.history["t"][0] == slow.id  # back in its history when it finishes
    assert p.tables.totals["0"]["live"] == {"scheduled": 0, "running": 0}
    assert public_record(p.tables.executions[slow.id])["status"] == "succeeded"


def test_windows_are_kept_per_partition_and_old_ones_are_not_created() -> None:
    p = projection()
    apply_all(p, Run("a", T0 + timedelta(minutes=25)).events("succeeded", 1.0), partition=0)
    apply_all(p, Run("b", T0 + timedelta(minutes=25)).events("failed", 1.0), partition=1)
    apply_all(p, Run("c", T0 - timedelta(hours=2)).events("failed", 1.0), partition=1)
    keys = sorted(parse_window_key(key) for key in p.tables.windows)
    minute = int((T0 + timedelta(minutes=25)).timestamp())
    assert keys == [(0, minute), (1, minute)]
    assert p.tables.totals["1"]["counts"]["failed"] == 2  # counted, only not windowed


def test_expired_windows_are_swept_as_the_partition_goes_on() -> None:
    p = projection()
    apply_all(p, Run("a", T0 + timedelta(minutes=25)).events("succeeded", 1.0))
    p._last_sweep.clear()
    p.apply(skipped("a", T0), 0, now=T0 + timedelta(hours=3))
    assert p.tables.windows == {}
    assert p.tables.stats["a"]["counts"]["skipped"] == 1
