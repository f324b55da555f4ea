"""Per-task statistics and per-partition totals, folded from transitions: pure, no I/O.

Both are JSON objects as the tables store them, and every function returns a new object
(a faust table only writes its changelog when a key is assigned). Counts come from
:class:`taskstream.monitor.transitions.Transition`, so an execution counts once; an
``ExecutionSkipped`` event counts its ``count`` slots, once per event id (a task
remembers its last :data:`SKIP_IDS_REMEMBERED` skip events).

*Totals* are kept per partition of ``task-events`` (a table key written only by that
partition's events, so its changelog is always the partition's own) and merged when read.
Besides the counts they hold how many executions are scheduled and running now, the
durations in fixed buckets for Prometheus. Beside them the partition's marker
(:func:`marker_key`) holds the offset of ``task-events`` that the partition's tables were
folded through, so that a record delivered again (the consumer's committed offset lags
the changelogs after a kill -9, or a group is rewound) changes nothing however old it is
(:func:`folded_through`; the totals held it before the marker existed).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from taskstream.monitor.histogram import Histogram
from taskstream.monitor.transitions import OUTCOMES, Transition

__all__ = [
    "COUNTED",
    "DURATION_BUCKETS",
    "LIVE",
    "SKIP_IDS_REMEMBERED",
    "STATS_QUANTILES",
    "folded_through",
    "is_marker",
    "marker_key",
    "merge_totals",
    "public_task_stats",
    "stats_after",
    "stats_after_skip",
    "totals_after",
    "totals_after_skip",
]

COUNTED = (*OUTCOMES, "dead_lettered", "skipped")
LIVE = ("scheduled", "running")
SKIP_IDS_REMEMBERED = 64
STATS_QUANTILES = {"p50": 0.5, "p90": 0.9, "p99": 0.99}
DURATION_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
    10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
)  # fmt: skip
"""Upper bounds (seconds) of the Prometheus histogram's buckets, ``+Inf`` besides."""


def _zero_counts() -> dict[str, int]:
    return dict.fromkeys(COUNTED, 0)


def _new_stats(task_id: str) -> dict[str, Any]:
    return {
        "task_id": task_id,
        "counts": _zero_counts(),
        "last_status": None,
        "last_finished_at": None,
        "last_execution_id": None,
        "durations": Histogram().to_json(),
        "skip_event_ids": [],
    }


def stats_after(stats: dict[str, Any] | None, change: Transition) -> dict[str, Any] | None:
    """The task's statistics after ``change``; None if they stay as they are."""
    if (
        stats is not None
        and not change.counts
        and change.execution_id != stats.get("last_execution_id")
    ):
        return None
    result = dict(stats) if stats else _new_stats(change.task_id)
    counts = dict(result["counts"])
    if change.outcome is not None:
        counts[change.outcome] += 1
        assert change.finished_at is not None and change.duration_seconds is not None
        result["durations"] = Histogram.added_json(result["durations"], change.duration_seconds)
        last = result["last_finished_at"]
        if last is None or change.finished_at >= datetime.fromisoformat(last):
            result["last_finished_at"] = change.finished_at.isoformat()
            result["last_execution_id"] = change.execution_id
    if change.dead_lettered_at is not None:
        counts["dead_lettered"] += 1
    result["counts"] = counts
    if change.execution_id == result["last_execution_id"]:
        result["last_status"] = change.status
    return None if result == stats else result


def stats_after_skip(
    stats: dict[str, Any] | None, task_id: str, event_id: str, slots: int
) -> dict[str, Any] | None:
    """The task's statistics after a skip event of ``slots`` slots; None for a duplicate."""
    result = dict(stats) if stats else _new_stats(task_id)
    if event_id in result["skip_event_ids"]:
        return None
    result["skip_event_ids"] = [*result["skip_event_ids"], event_id][-SKIP_IDS_REMEMBERED:]
    result["counts"] = {**result["counts"], "skipped": result["counts"]["skipped"] + slots}
    return result


def public_task_stats(stats: dict[str, Any]) -> dict[str, Any]:
    """A task's statistics as ``GET /api/monitor/tasks/{id}/stats`` shows them."""
    durations = Histogram.from_json(stats["durations"])
    return {
        "task_id": stats["task_id"],
        "counts": dict(stats["counts"]),
        "last_status": stats["last_status"],
        "last_finished_at": stats["last_finished_at"],
        "duration_seconds": {"count": durations.count, **durations.summary(STATS_QUANTILES)},
    }


def _new_totals() -> dict[str, Any]:
    return {
        "counts": _zero_counts(),
        "live": dict.fromkeys(LIVE, 0),
        "duration_buckets": [0] * (len(DURATION_BUCKETS) + 1),
        "duration_sum": 0.0,
    }


def totals_after(totals: dict[str, Any] | None, change: Transition) -> dict[str, Any] | None:
    """A partition's totals after ``change``; None if they stay as they are."""
    if not change.counts:
        return None
    result = dict(totals) if totals else _new_totals()
    counts = dict(result["counts"])
    live = dict(result["live"])
    if change.phase_before in live:
        live[change.phase_before] -= 1
    if change.phase_after in live:
        live[change.phase_after] += 1
    if change.outcome is not None:
        assert change.duration_seconds is not None
        counts[change.outcome] += 1
        buckets = list(result["duration_buckets"])
        buckets[_bucket(change.duration_seconds)] += 1
        result["duration_buckets"] = buckets
        result["duration_sum"] = result["duration_sum"] + change.duration_seconds
    if change.dead_lettered_at is not None:
        counts["dead_lettered"] += 1
    result["counts"] = counts
    result["live"] = live
    return result


def totals_after_skip(totals: dict[str, Any] | None, slots: int) -> dict[str, Any]:
    result = dict(totals) if totals else _new_totals()
    result["counts"] = {**result["counts"], "skipped": result["counts"]["skipped"] + slots}
    return result


def marker_key(partition: int) -> str:
    """The ``totals`` key holding the offset a partition's tables were folded through
    (written last of a batch, once everything else is on the broker)."""
    return f"through:{partition}"


def is_marker(key: str) -> bool:
    return key.startswith("through:")


def folded_through(marker: int | None, totals: Any = None) -> int:
    """The offset a partition's tables were folded through (-1: none yet); before the
    marker existed, the partition's totals held it."""
    if marker is not None:
        return int(marker)
    if isinstance(totals, dict):
        return int(totals.get("through", -1))
    return -1


def merge_totals(partitions: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The totals of all partitions, in the same form."""
    result = _new_totals()
    for totals in partitions:
        for name in COUNTED:
            result["counts"][name] += totals["counts"][name]
        for name in LIVE:
            result["live"][name] += totals["live"][name]
        for i, n in enumerate(totals["duration_buckets"]):
            result["duration_buckets"][i] += n
        result["duration_sum"] += totals["duration_sum"]
    return result


def _bucket(seconds: float) -> int:
    for i, bound in enumerate(DURATION_BUCKETS):
        if seconds <= bound:
            return i
    return len(DURATION_BUCKETS)
