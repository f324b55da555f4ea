"""The monitor's agent: every ``task-events`` record folded into the tables.

One agent with concurrency 1 (higher concurrency can commit past in-flight messages:
faust #606) reads the records as raw bytes and decodes them with our registry, so a
poison record is logged and skipped. For an execution event it folds the record
(:mod:`monitor.records`), derives the :class:`~monitor.transitions.Transition` and
updates history, statistics, totals, windows and the recent list from it; an event the
fold ignores (a duplicate) changes nothing at all.

Bounds:

- ``executions`` keeps a record while it is in its task's history (the last
  ``monitor_history_size``), in its partition's recent list (the last
  ``monitor_recent_size`` finished) or unfinished; a finished record that has left both
  is deleted, and its id is remembered in ``evicted`` (the task's last
  ``monitor_history_size`` evictions), so a late duplicate or a rerun of it is ignored
  instead of being counted again. So a task holds at most about 2 N ids plus its
  unfinished executions, and a partition about M more.
- ``windows`` does not create a minute older than ``monitor_window_retention`` and deletes
  such minutes of a partition at most once a minute of processing, as its events go by.
- ``stats``, ``history`` and ``evicted`` hold one bounded entry per task. Entries of
  deleted tasks stay (see docs/architecture.md): whether a ``TaskDeleted`` applies
  depends on the task's version, which only the core's aggregate knows.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import faust
from prometheus_client import Counter

from monitor.lag import ConsumerLag
from monitor.records import (
    TERMINAL_STATUSES,
    apply_event,
    execution_id_of,
    push_history,
    push_recent,
)
from monitor.settings import MonitorSettings
from monitor.stats import stats_after, stats_after_skip, totals_after, totals_after_skip
from monitor.tables import MonitorTables
from monitor.transitions import transition
from monitor.windows import (
    WINDOW_SECONDS,
    expired,
    parse_window_key,
    window_after,
    window_key,
    window_update,
)
from schemas import Event, EventDecodeError, ExecutionSkipped, decode_event

__all__ = ["Projection", "install_projection"]

logger = logging.getLogger(__name__)

_LAG_REFRESH_SECONDS = 5.0


class Projection:
    """Applies decoded events to the tables; must run inside the agent's stream."""

    def __init__(
        self,
        tables: MonitorTables,
        *,
        history_size: int,
        recent_size: int,
        window_retention: timedelta,
    ) -> None:
        self.tables = tables
        self.history_size = history_size
        self.recent_size = recent_size
        self.window_retention = window_retention
        self._last_sweep: dict[int, float] = {}

    def apply(self, event: Event, partition: int, now: datetime | None = None) -> None:
        now = now or datetime.now(UTC)
        if isinstance(event.data, ExecutionSkipped):
            self._skipped(event, event.data, partition)
        else:
            execution_id = execution_id_of(event)
            if execution_id is not None:
                self._execution(event, execution_id, partition, now)
        self._maybe_sweep_windows(partition, now)

    def _execution(self, event: Event, execution_id: str, partition: int, now: datetime) -> None:
        t = self.tables
        task_id = event.task_id
        if execution_id in (t.evicted.get(task_id) or ()):
            return
        before = t.executions.get(execution_id)
        after = apply_event(before, event)
        if after is None:
            return
        t.executions[execution_id] = after
        change = transition(before, after, event)
        self._push_history(task_id, execution_id, partition)
        stats = stats_after(t.stats.get(task_id), change)
        if stats is not None:
            t.stats[task_id] = stats
        totals = totals_after(t.totals.get(str(partition)), change)
        if totals is not None:
            t.totals[str(partition)] = totals
        update = window_update(change)
        if update is not None:
            start, what, duration = update
            if not expired(start, now, self.window_retention):
                key = window_key(partition, start)
                t.windows[key] = window_after(t.windows.get(key), what, duration)
        ended_at = change.ended_at
        if ended_at is not None:
            self._push_recent(ended_at.timestamp(), execution_id, partition)

    def _skipped(self, event: Event, data: ExecutionSkipped, partition: int) -> None:
        t = self.tables
        stats = stats_after_skip(t.stats.get(event.task_id), event.task_id, event.id, data.count)
        if stats is None:
            return
        t.stats[event.task_id] = stats
        t.totals[str(partition)] = totals_after_skip(t.totals.get(str(partition)), data.count)

    def _push_history(self, task_id: str, execution_id: str, partition: int) -> None:
        before = self.tables.history.get(task_id) or []
        after = push_history(before, execution_id, self.history_size)
        if after is None:
            return
        self.tables.history[task_id] = after
        for dropped in set(before) - set(after):
            self._maybe_evict(dropped, partition)

    def _push_recent(self, ended_at: float, execution_id: str, partition: int) -> None:
        key = str(partition)
        before = self.tables.recent.get(key) or []
        after = push_recent(before, ended_at, execution_id, self.recent_size)
        if after is None:
            return
        self.tables.recent[key] = after
        for dropped in {entry[1] for entry in before} - {entry[1] for entry in after}:
            self._maybe_evict(dropped, partition)

    def _maybe_evict(self, execution_id: str, partition: int) -> None:
        """Delete a finished record that is in neither its task's history nor the recent list."""
        t = self.tables
        record = t.executions.get(execution_id)
        if record is None or record["status"] not in TERMINAL_STATUSES:
            return
        task_id = record["task_id"]
        if execution_id in (t.history.get(task_id) or ()):
            return
        if any(entry[1] == execution_id for entry in t.recent.get(str(partition)) or ()):
            return
        del t.executions[execution_id]
        evicted = t.evicted.get(task_id) or []
        t.evicted[task_id] = [execution_id, *evicted][: self.history_size]

    def _maybe_sweep_windows(self, partition: int, now: datetime) -> None:
        clock = time.monotonic()
        if clock - self._last_sweep.get(partition, -float(WINDOW_SECONDS)) < WINDOW_SECONDS:
            return
        self._last_sweep[partition] = clock
        windows = self.tables.windows
        stale = [
            key
            for key in list(windows.keys())
            if parse_window_key(key)[0] == partition
            and expired(parse_window_key(key)[1], now, self.window_retention)
        ]
        for key in stale:
            del windows[key]
        if stale:
            logger.debug("deleted %d expired windows of partition %d", len(stale), partition)


def install_projection(
    app: faust.App,
    settings: MonitorSettings,
    tables: MonitorTables,
    lag: ConsumerLag,
    events_seen: Counter,
    undecodable: Counter,
) -> None:
    """The agent over ``task-events`` and the timer that measures its lag."""
    source = app.topic(
        settings.topics.task_events,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=settings.task_events_partitions,
    )
    projection = Projection(
        tables,
        history_size=settings.monitor_history_size,
        recent_size=settings.monitor_recent_size,
        window_retention=settings.monitor_window_retention,
    )

    @app.agent(source, concurrency=1, name="project")
    async def project(stream: Any) -> None:
        async for record in stream.events():
            message = record.message
            try:
                event = decode_event(record.value)
            except EventDecodeError as exc:
                undecodable.inc()
                logger.error("skipping undecodable task-events record: %s", exc)
            else:
                events_seen.labels(event.type).inc()
                projection.apply(event, message.partition)
            lag.processed(message.partition, message.offset)

    async def measure_lag() -> None:
        await lag.refresh(app.consumer)

    app.timer(_LAG_REFRESH_SECONDS, name="consumer-lag")(measure_lag)
