"""Tumbling one-minute windows by event time: pure, no I/O.

An execution counts in the minute of the ``occurred_at`` of the event that ended its run
(its outcome and duration), and its dead letter in the minute of the
``ExecutionDeadLettered`` event; when the monitor reads them does not matter. A window is
a JSON object per ``(partition, minute)``: a table key is written only by its own
partition's events, so the changelog of every key is that partition's, and a restored
table cannot mix two partitions' versions of one minute. Reads merge the partitions.

Windows older than the retention are not created, and are deleted as the partition's
events go by (see :mod:`taskstream.monitor.projection`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from taskstream.monitor.histogram import Histogram
from taskstream.monitor.transitions import OUTCOMES, Transition

__all__ = [
    "WINDOW_COUNTS",
    "WINDOW_QUANTILES",
    "WINDOW_SECONDS",
    "expired",
    "parse_window_key",
    "public_windows",
    "window_after",
    "window_key",
    "window_start",
    "window_update",
]

WINDOW_SECONDS = 60
WINDOW_COUNTS = (*OUTCOMES, "dead_lettered")
WINDOW_QUANTILES = {"p50": 0.5, "p95": 0.95}


def window_start(at: datetime) -> int:
    """The start (epoch seconds) of the minute that holds ``at``."""
    seconds = int(at.timestamp() // WINDOW_SECONDS)
    return seconds * WINDOW_SECONDS


def window_key(partition: int, start: int) -> str:
    return f"{partition}:{start}"


def parse_window_key(key: str) -> tuple[int, int]:
    partition, start = key.split(":")
    return int(partition), int(start)


def window_update(change: Transition) -> tuple[int, str, float | None] | None:
    """``(window start, what to count, duration)`` for ``change``, if it counts in one.

    One event either ends a run or dead-letters an execution, never both.
    """
    if change.outcome is not None:
        assert change.finished_at is not None
        return window_start(change.finished_at), change.outcome, change.duration_seconds
    if change.dead_lettered_at is not None:
        return window_start(change.dead_lettered_at), "dead_lettered", None
    return None


def window_after(
    window: dict[str, Any] | None, what: str, duration: float | None
) -> dict[str, Any]:
    """The window with one more ``what`` (and its duration, for an outcome)."""
    result: dict[str, Any] = (
        dict(window) if window else {**dict.fromkeys(WINDOW_COUNTS, 0), "durations": None}
    )
    result[what] += 1
    if duration is not None:
        result["durations"] = Histogram.added_json(result["durations"], duration)
    return result


def expired(start: int, now: datetime, retention: timedelta) -> bool:
    """Whether the window starting at ``start`` is past the retention at ``now``."""
    return start + WINDOW_SECONDS <= (now - retention).timestamp()


def public_windows(
    stored: Iterable[tuple[int, dict[str, Any]]], now: datetime, minutes: int
) -> list[dict[str, Any]]:
    """The last ``minutes`` minutes up to ``now`` (its minute included), oldest first.

    ``stored`` is ``(start, window)`` pairs, several per minute (one per partition).
    Minutes without executions are there, with zero counts and null durations.
    """
    last = window_start(now)
    first = last - (minutes - 1) * WINDOW_SECONDS
    merged: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for start, window in stored:
        if first <= start <= last:
            merged[start].append(window)
    series = []
    for start in range(first, last + 1, WINDOW_SECONDS):
        windows = merged.get(start, [])
        counts = {name: sum(w[name] for w in windows) for name in WINDOW_COUNTS}
        durations = Histogram.merged(Histogram.from_json(w["durations"]) for w in windows)
        series.append(
            {
                "start": datetime.fromtimestamp(start, UTC).isoformat(),
                "finished": sum(counts[name] for name in OUTCOMES),
                **counts,
                "duration_seconds": (
                    durations.summary(WINDOW_QUANTILES) if durations.count else None
                ),
            }
        )
    return series
