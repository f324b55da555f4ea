"""The monitor's faust tables, and the queries the API and the metrics read them with.

Every table is changelogged in Kafka (``<app id>-<table>-changelog``) and partitioned
like ``task-events``; a key is only ever written by the events of one partition, so its
changelog is that partition's and a restore cannot mix partitions:

=============  =================================  =========================================
table          key                                value
=============  =================================  =========================================
executions     execution id                       the record (:mod:`monitor.records`)
history        task id                            its last N execution ids, newest first
evicted        task id                            its last N evicted execution ids
stats          task id                            counts, last status, durations
totals         partition                          counts, scheduled/running now, buckets
windows        ``partition:minute start``         one minute's counts and durations
recent         partition                          last M finished ``[ended_at, id]``
=============  =================================  =========================================

History, evicted, stats, totals, windows and recent store ``{"folded_through": offset, "value":
...}`` (:class:`monitor.batch.FoldedCopy`); read them through :func:`monitor.batch.unwrap`.
How the projection keeps them bounded is in :mod:`monitor.projection`. It folds a batch
of one partition's events at a time, inside :func:`at_event`.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import faust
import faust.streams
from faust.types import FutureMessage

from monitor.batch import unwrap
from monitor.confirmed_table import ConfirmedTable, confirmed_table
from monitor.records import public_record
from monitor.stats import is_marker, merge_totals
from monitor.windows import parse_window_key, public_windows

__all__ = ["MonitorTables", "at_event"]


@contextmanager
def at_event(event: Any) -> Iterator[None]:
    """Make ``event`` (a faust event) faust's current event inside this block.

    A faust table takes the partition of a write from the current event (the changelog
    partition), and so does a RocksDB store for its reads and writes (one database per
    partition). The agent only has a current event while it iterates its stream one
    event at a time; it folds a batch read with ``take`` afterwards, one partition at a
    time, inside this block with one of that partition's events. faust has no public
    setter, so this sets the context variable behind ``faust.streams.current_event``
    (faust-streaming is pinned); only the calling task sees it.
    """
    token = faust.streams._current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        faust.streams._current_event.reset(token)


@dataclass(frozen=True)
class MonitorTables:
    executions: Any
    history: Any
    evicted: Any
    stats: Any
    totals: Any
    windows: Any
    recent: Any

    @classmethod
    def create(cls, app: faust.App, partitions: int) -> MonitorTables:
        def table(name: str) -> Any:
            return confirmed_table(app, name, track_all=True, partitions=partitions)

        return cls(
            executions=table("executions"),
            history=table("history"),
            evicted=table("evicted"),
            stats=table("stats"),
            totals=table("totals"),
            windows=table("windows"),
            recent=table("recent"),
        )

    def take_unconfirmed(self) -> list[FutureMessage]:
        """The changelog records written since the last call, to wait for (see
        :meth:`ConfirmedTable.take_sent`); none for tables that are not faust's (tests)."""
        futures: list[FutureMessage] = []
        for table in (
            self.executions,
            self.history,
            self.evicted,
            self.stats,
            self.totals,
            self.windows,
            self.recent,
        ):
            if isinstance(table, ConfirmedTable):
                futures += table.take_sent()
        return futures

    def task_executions(self, task_id: str) -> list[str]:
        """The task's history: execution ids, newest first."""
        return list(unwrap(self.history.get(task_id)) or [])

    def public_executions(self, ids: list[str]) -> list[dict[str, Any]]:
        records = (self.executions.get(execution_id) for execution_id in ids)
        return [public_record(record) for record in records if record]

    def merged_totals(self) -> dict[str, Any]:
        """The totals of all partitions (added in partition order: the same float sums)."""
        return merge_totals(
            unwrap(totals) for key, totals in sorted(self.totals.items()) if not is_marker(key)
        )

    def window_series(self, now: datetime, minutes: int) -> list[dict[str, Any]]:
        return public_windows(self._stored_windows(), now, minutes)

    def _stored_windows(self) -> Iterator[tuple[int, dict[str, Any]]]:
        for key, window in self.windows.items():
            yield parse_window_key(key)[1], unwrap(window)

    def recent_executions(self, status: str | None, limit: int) -> list[dict[str, Any]]:
        """Finished executions of all partitions, newest first, optionally of one status."""
        entries = sorted(
            (entry for recent in self.recent.values() for entry in unwrap(recent)),
            key=lambda entry: entry[0],
            reverse=True,
        )
        items = []
        for _, execution_id in entries:
            record = self.executions.get(execution_id)
            if record is None or (status is not None and record["status"] != status):
                continue
            items.append(public_record(record))
            if len(items) == limit:
                break
        return items
