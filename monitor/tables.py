"""The monitor's faust tables, and the queries the API and the metrics read them with.

Every table is changelogged in Kafka (``<app id>-<table>-changelog``) and partitioned
like ``task-events``; a key is only ever written by the events of one partition, so its
changelog is that partition's and a restore cannot mix partitions:

=============  =================================  =========================================
table          key                                value
=============  =================================  =========================================
executions     execution id                       the record (:mod:`taskstream.monitor.records`)
tasks          task id                            ``history``: its last N execution ids,
                                                  newest first; ``evicted``: its last N
                                                  evicted ids; ``stats``: counts, last
                                                  status, durations (one record, so a
                                                  batch writes a task once)
totals         partition                          counts, scheduled/running now, buckets
windows        ``partition:minute start``         one minute's counts and durations
recent         partition                          last M finished ``[ended_at, id]``
=============  =================================  =========================================

Tasks, totals, windows and recent store ``{"folded_through": offset, "value": ...}``
(:class:`taskstream.monitor.batch.FoldedCopy`); read them through
:func:`taskstream.monitor.batch.unwrap`. How the projection keeps them bounded is in
:mod:`taskstream.monitor.projection`. It folds a batch of one partition's events at a time, inside
:func:`at_event`.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any

import faust
import faust.streams

from taskstream.monitor.batch import FOLDED_THROUGH, TASK_PARTS, unwrap
from taskstream.monitor.confirmed_table import ConfirmedTable, confirmed_table
from taskstream.monitor.records import public_record
from taskstream.monitor.stats import is_marker, merge_totals
from taskstream.monitor.windows import parse_window_key, public_windows

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
    tasks: Any
    totals: Any
    windows: Any
    recent: Any
    legacy: tuple[Any, Any, Any] | None = None
    """The tables ``history``, ``evicted`` and ``stats`` that held a task's parts before
    they were one ``tasks`` record: read, never written, for a task the ``tasks`` table
    does not hold yet (a monitor upgraded in place goes on counting where it was; the
    task's next change writes its ``tasks`` record)."""

    @classmethod
    def create(cls, app: faust.App, partitions: int) -> MonitorTables:
        def table(name: str) -> Any:
            return confirmed_table(app, name, batched=True, partitions=partitions)

        return cls(
            executions=table("executions"),
            tasks=table("tasks"),
            totals=table("totals"),
            windows=table("windows"),
            recent=table("recent"),
            legacy=(table("history"), table("evicted"), table("stats")),
        )

    @cached_property
    def _legacy_held(self) -> bool:
        """Whether the legacy tables hold anything (asked once: nothing writes them, and
        the tables are recovered before the agent or the API reads them)."""
        return self.legacy is not None and any(len(table) for table in self.legacy)

    def stored_task(self, task_id: str) -> Any:
        """The task's stored ``tasks`` record; composed from the legacy tables if it has
        none yet and they hold the task (their largest offset folded through: the parts
        were written in one phase, so they differ only if a kill -9 cut that phase)."""
        stored = self.tasks.get(task_id)
        if stored is not None or not self._legacy_held:
            return stored
        assert self.legacy is not None
        parts = [table.get(task_id) for table in self.legacy]
        if all(part is None for part in parts):
            return None
        throughs = [
            int(part[FOLDED_THROUGH])
            for part in parts
            if isinstance(part, dict) and FOLDED_THROUGH in part
        ]
        value = {name: unwrap(part) for name, part in zip(TASK_PARTS, parts, strict=True)}
        return {FOLDED_THROUGH: max(throughs, default=-1), "value": value}

    async def send_unconfirmed(self) -> list[asyncio.Future[Any]]:
        """Send the changelog records written since the last call, in batches, and
        return their futures to wait for (:meth:`ConfirmedTable.send_pending`); none for
        tables that are not faust's (tests)."""
        futures: list[asyncio.Future[Any]] = []
        for table in (self.executions, self.tasks, self.totals, self.windows, self.recent):
            if isinstance(table, ConfirmedTable):
                futures += await table.send_pending()
        return futures

    def task_part(self, task_id: str, part: str) -> Any:
        """One part of the task's record (:data:`taskstream.monitor.batch.TASK_PARTS`), or None."""
        record = unwrap(self.stored_task(task_id))
        return None if record is None else record.get(part)

    def task_executions(self, task_id: str) -> list[str]:
        """The task's history: execution ids, newest first."""
        return list(self.task_part(task_id, "history") or [])

    def task_stats(self, task_id: str) -> dict[str, Any] | None:
        """The task's statistics (:mod:`taskstream.monitor.stats`), or None if it has none."""
        stats: dict[str, Any] | None = self.task_part(task_id, "stats")
        return stats

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
