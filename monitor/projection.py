"""The monitor's agent: every ``task-events`` record folded into the tables.

One agent with concurrency 1 (higher concurrency can commit past in-flight messages:
faust #606) reads the records as raw bytes, in batches (``monitor_batch_size``, waiting at
most ``monitor_batch_wait``), skips by header the types it folds nothing from
(:data:`UNFOLDED_TYPES`) and decodes each of the others once with our registry, so a
poison record is logged and skipped. For an execution event it folds the record
(:mod:`taskstream.monitor.records`), derives the :class:`~taskstream.monitor.transitions.Transition`
and updates history, statistics, totals, windows and the recent list from it; an event the
fold ignores (a duplicate) changes nothing at all. A batch is folded into working copies
and each table key it changed is written once (one changelog record), per partition; the
alerts' facts are folded from the same decoded events (:class:`TaskEventsFeed`). The
changelog records of a phase go out as one producer batch per changelog partition
(:meth:`~taskstream.monitor.confirmed_table.ConfirmedTable.send_pending`), not one faust message
each. The records are acked only after that, so no offset is committed past unwritten
changes.

faust commits the consumer's offsets on an interval, after the tables' changelog records,
so after a kill -9 the records since the last commit are delivered again to tables that
already hold them. A partition's *marker* (``totals`` key ``through:<partition>``) holds
the offset its tables were folded through; a record at or below it is skipped, so a
redelivery of any length counts nothing twice.

**A kill -9 in the middle of a batch's writes.** The tables' changelogs are separate
topics, so a kill can leave any part of a batch's writes. The agent therefore writes a
batch in three phases, each confirmed by the broker before the next: (1) the keys derived
from transitions (each task's one ``tasks`` record of history, evictions and statistics:
:class:`~taskstream.monitor.batch.TaskPart`; totals, windows, recent), each stored with the
offset it was folded through (:class:`~taskstream.monitor.batch.FoldedCopy`); (2) the execution
records; (3) the marker. When the batch comes again, an event is applied only to the
keys that do not hold it yet; an execution record that holds it implies that every key of
phase 1 does (its transition is needed by none); and the evictions of a key stored by the
cut batch are done again at the end (their record deletes may be what was lost). So the
tables end as a fold of the log whatever was cut (``test_a_kill_in_the_middle...`` cuts
each phase at random). A skip event delivered twice inside the cut batch is the one case
it can count twice in the totals.
The agent reads ``read_committed``
(:mod:`taskstream.monitor.transport`): what a scheduler's aborted transaction wrote is never folded.

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
- ``tasks`` holds one bounded record per task (stats, history, evicted). Records of
  deleted tasks stay (see docs/architecture.md): whether a ``TaskDeleted`` applies
  depends on the task's version, which only the core's aggregate knows.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import faust
from prometheus_client import Counter

from taskstream.monitor.agent_health import AgentHealth
from taskstream.monitor.batch import PartitionBatch
from taskstream.monitor.lag import ConsumerLag
from taskstream.monitor.records import (
    TERMINAL_STATUSES,
    apply_event,
    execution_id_of,
    push_history,
)
from taskstream.monitor.settings import MonitorSettings
from taskstream.monitor.stats import (
    folded_through,
    marker_key,
    stats_after,
    stats_after_skip,
    totals_after,
    totals_after_skip,
)
from taskstream.monitor.tables import MonitorTables, at_event
from taskstream.monitor.task_faults import TaskFaults
from taskstream.monitor.transitions import transition
from taskstream.monitor.windows import (
    WINDOW_SECONDS,
    expired,
    parse_window_key,
    window_after,
    window_key,
    window_update,
)
from taskstream.schemas import (
    CancelRequested,
    DeadLetterReplayed,
    Event,
    EventDecodeError,
    ExecutionSkipped,
    RetryScheduled,
    RunRequested,
    decode_event,
)
from taskstream.schemas.codec import HEADER_EVENT_TYPE

__all__ = ["EventSink", "Projection", "TaskEventsFeed", "install_projection"]

logger = logging.getLogger(__name__)

_LAG_REFRESH_SECONDS = 5.0


class Projection:
    """Applies decoded events to the tables, a batch of one partition's events at a time.

    A batch is folded into working copies (:mod:`taskstream.monitor.batch`) and every key it
    changed is written once at its end, so the result is the same as applying the events
    one by one. On faust tables it must run inside :func:`~taskstream.monitor.tables.at_event` with
    an event of the partition.
    """

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

    def apply(self, event: Event, partition: int, now: datetime | None = None) -> int:
        """Apply one event (a batch of one); return the table keys written."""
        return self.apply_batch([event], partition, now)

    def apply_batch(
        self,
        events: Sequence[Event],
        partition: int,
        now: datetime | None = None,
        offsets: Sequence[int] | None = None,
    ) -> int:
        """Apply ``events`` of ``partition``, in order; return the table keys written.

        With ``offsets`` (each event's offset in ``partition``), an event at or below the
        offset the partition's tables were folded through is a redelivery and changes
        nothing; the partition's totals then remember the last offset folded. Writes the
        three phases at once (the agent confirms each before the next: :meth:`fold_batch`).
        """
        now = now or datetime.now(UTC)
        written = self.fold_batch(events, partition, now, offsets).write()
        self.sweep_windows_if_due(partition, now)
        return written

    def fold_batch(
        self,
        events: Sequence[Event],
        partition: int,
        now: datetime,
        offsets: Sequence[int] | None = None,
    ) -> PartitionBatch:
        """Fold ``events`` into working copies the caller writes (:class:`PartitionBatch`)."""
        batch = PartitionBatch(self.tables, partition)
        partition_key = str(partition)
        marker = marker_key(partition)
        through = folded_through(batch.marker.get(marker), batch.totals.get(partition_key))
        fresh: list[tuple[Event, int | None]]
        if offsets is not None:
            fresh = [(e, o) for e, o in zip(events, offsets, strict=True) if o > through]
            if len(fresh) < len(events):
                logger.info(
                    "partition %d: %d records redelivered (folded through offset %d): skipped",
                    partition,
                    len(events) - len(fresh),
                    through,
                )
        else:
            fresh = [(e, None) for e in events]
        for event, offset in fresh:
            batch.at_offset(offset)
            if isinstance(event.data, ExecutionSkipped):
                self._skipped(batch, event, event.data)
            else:
                execution_id = execution_id_of(event)
                if execution_id is not None:
                    self._execution(batch, event, execution_id, now)
        # at the batch's last offset: what they change was changed by this batch
        batch.at_offset(fresh[-1][1] if fresh else None)
        for ids in batch.replayed.values():
            for execution_id in ids:
                self._maybe_evict(batch, execution_id)
        if offsets and offsets[-1] > through:
            batch.marker[marker] = offsets[-1]
        return batch

    def _execution(self, b: PartitionBatch, event: Event, execution_id: str, now: datetime) -> None:
        task_id = event.task_id
        self._note_ahead(b, task_id)
        before = b.executions.get(execution_id)
        if before is None and execution_id in (b.evicted.get(task_id) or ()):
            return
        after = apply_event(before, event)
        if after is None:
            return  # a duplicate; or its record is ahead, and so is every key of its batch
        b.executions[execution_id] = after
        change = transition(before, after, event)
        # each key below may hold this event already (a kill -9 in a batch's first phase)
        self._push_history(b, task_id, execution_id)
        if not b.stats.ahead(task_id):
            stats = stats_after(b.stats.get(task_id), change)
            if stats is not None:
                b.stats[task_id] = stats
        partition_key = str(b.partition)
        if not b.totals.ahead(partition_key):
            totals = totals_after(b.totals.get(partition_key), change)
            if totals is not None:
                b.totals[partition_key] = totals
        update = window_update(change)
        if update is not None:
            start, what, duration = update
            if not expired(start, now, self.window_retention):
                key = window_key(b.partition, start)
                if not b.windows.ahead(key):
                    b.windows[key] = window_after(b.windows.get(key), what, duration)
        ended_at = change.ended_at
        if ended_at is not None:
            if not b.recent.ahead():
                for dropped in b.recent.push(ended_at.timestamp(), execution_id, self.recent_size):
                    self._maybe_evict(b, dropped)

    def _note_ahead(self, b: PartitionBatch, task_id: str) -> None:
        """Keys stored by this very batch before a kill -9 lost some of its other writes
        (see :class:`~taskstream.monitor.batch.FoldedCopy`): evict again, at the end of the batch,
        what they pushed out, as the record deletes may be among the writes lost."""
        if task_id not in b.replayed:
            replay = b.replayed[task_id] = []
            if b.history.ahead(task_id):
                replay += b.history.remembered(task_id, "dropped")
            if b.evicted.ahead(task_id):
                replay += b.evicted.get(task_id) or ()
        if "" not in b.replayed:
            b.replayed[""] = b.recent.stored_dropped if b.recent.ahead() else []

    def _skipped(self, b: PartitionBatch, event: Event, data: ExecutionSkipped) -> None:
        if not b.stats.ahead(event.task_id):
            stats = stats_after_skip(
                b.stats.get(event.task_id), event.task_id, event.id, data.count
            )
            if stats is None:
                return
            b.stats[event.task_id] = stats
        partition_key = str(b.partition)
        if not b.totals.ahead(partition_key):
            b.totals[partition_key] = totals_after_skip(b.totals.get(partition_key), data.count)

    def _push_history(self, b: PartitionBatch, task_id: str, execution_id: str) -> None:
        if b.history.ahead(task_id):
            return
        before = b.history.get(task_id) or []
        after = push_history(before, execution_id, self.history_size)
        if after is None:
            return
        b.history[task_id] = after
        dropped_ids = sorted(set(before) - set(after))
        b.history.remember(task_id, "dropped", dropped_ids)
        for dropped in dropped_ids:
            self._maybe_evict(b, dropped)

    def _maybe_evict(self, b: PartitionBatch, execution_id: str) -> None:
        """Delete a finished record that is in neither its task's history nor the recent list."""
        record = b.executions.get(execution_id)
        if record is None or record["status"] not in TERMINAL_STATUSES:
            return
        task_id = record["task_id"]
        if execution_id in (b.history.get(task_id) or ()):
            return
        if execution_id in b.recent.ids:
            return
        del b.executions[execution_id]
        evicted = b.evicted.get(task_id) or []
        if execution_id not in evicted and not b.evicted.ahead(task_id):
            b.evicted[task_id] = [execution_id, *evicted][: self.history_size]

    def sweep_windows_if_due(self, partition: int, now: datetime) -> None:
        """Delete the partition's expired windows, at most once a window's length."""
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


UNFOLDED_TYPES = frozenset(
    kind.TYPE for kind in (RunRequested, CancelRequested, RetryScheduled, DeadLetterReplayed)
)
"""Events neither the projection nor the alert facts fold (the outcome or the fire they
lead to is what counts): skipped by their ``event-type`` header, never decoded."""
_UNFOLDED_HEADERS = frozenset((HEADER_EVENT_TYPE, kind.encode()) for kind in UNFOLDED_TYPES)


def _unfolded_type(headers: Any) -> str | None:
    """The type of a record the monitor does not fold, by its headers; None otherwise."""
    for header in headers or ():
        if isinstance(header, tuple) and header in _UNFOLDED_HEADERS:
            return header[1].decode()
    return None


EventSink = Callable[[Sequence[Event], int, datetime], None]
"""Folds a batch of one partition's decoded events, in order, at ``now``.

Called after the projection's own writes, inside :func:`~taskstream.monitor.tables.at_event` with
an event of that partition, so its table reads and writes are that partition's.
"""


class TaskEventsFeed:
    """The one agent's decoded batches, for other folds than the projection (alerts).

    ``health`` is the agent's :class:`~taskstream.monitor.agent_health.AgentHealth` (a HealthSource
    for the monitor's board); ``faults`` counts what was isolated per task.
    """

    def __init__(self, health: AgentHealth | None = None, faults: TaskFaults | None = None) -> None:
        self._sinks: list[EventSink] = []
        self._tables: list[Any] = []
        self.health = health
        self.faults = faults

    def subscribe(self, sink: EventSink, *tables: Any) -> None:
        """Hand ``sink`` every batch; ``tables``: the batched tables
        (:class:`~taskstream.monitor.confirmed_table.ConfirmedTable`) it writes, whose changelog
        records are sent (and waited for) with the batch's first phase."""
        self._sinks.append(sink)
        self._tables.extend(tables)

    async def send_unconfirmed(self) -> list[asyncio.Future[Any]]:
        futures: list[asyncio.Future[Any]] = []
        for table in self._tables:
            futures += await table.send_pending()
        return futures

    def publish(self, events: Sequence[Event], partition: int, now: datetime) -> None:
        for sink in self._sinks:
            sink(events, partition, now)


def install_projection(
    app: faust.App,
    settings: MonitorSettings,
    tables: MonitorTables,
    lag: ConsumerLag,
    events_seen: Counter,
    undecodable: Counter,
    faults: TaskFaults,
) -> TaskEventsFeed:
    """The agent over ``task-events`` and the timer that measures its lag.

    The agent reads up to ``monitor_batch_size`` records at a time (waiting at most
    ``monitor_batch_wait`` for them), decodes each once, folds each partition's events
    into the tables and hands them to the feed's subscribers; only then does it ack the
    records, so no offset is committed past an event whose writes have not been made
    (faust flushes the producer before it commits). A poison record is counted, logged
    and skipped. A partition's batch that raises is folded again event by event, and
    an event that still raises is skipped, logged with its task and counted
    (:class:`~taskstream.monitor.task_faults.TaskFaults`): one task never stops the agent. If the
    agent dies anyway, its :class:`~taskstream.monitor.agent_health.AgentHealth` says so.
    """
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
    health = AgentHealth(lag, settings.loop_stall_after)
    feed = TaskEventsFeed(health, faults)

    def fold_partition(
        events: list[Event], offsets: list[int], partition: int, now: datetime
    ) -> PartitionBatch | None:
        """The partition's batch, folded and not written; None if it was folded (and
        written) event by event because the batch raised."""
        batch: PartitionBatch | None = None
        try:
            batch = projection.fold_batch(events, partition, now, offsets)
        except Exception:
            if len(events) == 1:
                raise
            # the batch wrote nothing: fold it event by event
            for event, offset in zip(events, offsets, strict=True):
                try:
                    projection.apply_batch([event], partition, now, [offset])
                except Exception as exc:
                    faults.record("projection", event.task_id, exc, event.id)
        feed.publish(events, partition, now)
        return batch

    async def write(folded: list[tuple[Any, int, PartitionBatch]], now: datetime) -> None:
        """Write the batches phase by phase, each on the broker before the next: a kill
        -9 then leaves at most the last batch partly written, in a way the next fold
        of its records repairs (see :class:`PartitionBatch`)."""
        for phase in (
            PartitionBatch.write_tasks,
            PartitionBatch.write_executions,
            PartitionBatch.write_marker,
        ):
            for record, partition, batch in folded:
                with at_event(record):
                    phase(batch)
                    if phase is PartitionBatch.write_marker:
                        projection.sweep_windows_if_due(partition, now)
            unconfirmed = await tables.send_unconfirmed()
            if phase is PartitionBatch.write_tasks:
                unconfirmed += await feed.send_unconfirmed()
            if unconfirmed:
                await asyncio.gather(*unconfirmed)

    def fold(
        records: Sequence[Any],
    ) -> tuple[list[tuple[Any, int, PartitionBatch]], dict[int, int]]:
        """The records' batches by partition, folded and not written, and the last offset
        read in each partition."""
        by_partition: dict[int, tuple[Any, list[Event], list[int]]] = {}
        next_offsets: dict[int, int] = {}
        types: dict[str, int] = {}
        for record in records:
            message = record.message
            partition = message.partition
            unfolded = _unfolded_type(message.headers)
            if unfolded is not None:  # counted, never decoded
                types[unfolded] = types.get(unfolded, 0) + 1
                next_offsets[partition] = message.offset
                continue
            try:
                event = decode_event(record.value)
            except EventDecodeError as exc:
                undecodable.inc()
                logger.error("skipping undecodable task-events record: %s", exc)
            else:
                types[event.type] = types.get(event.type, 0) + 1
                _, events, offsets = by_partition.setdefault(partition, (record, [], []))
                events.append(event)
                offsets.append(message.offset)
            next_offsets[partition] = message.offset
        now = datetime.now(UTC)
        folded: list[tuple[Any, int, PartitionBatch]] = []
        for partition, (record, events, offsets) in by_partition.items():
            with at_event(record):
                try:
                    batch = fold_partition(events, offsets, partition, now)
                except Exception as exc:
                    faults.record("projection", events[0].task_id, exc, events[0].id)
                else:
                    if batch is not None:
                        folded.append((record, partition, batch))
        for event_type, count in types.items():
            events_seen.labels(event_type).inc(count)
        return folded, next_offsets

    @app.agent(source, concurrency=1, name="project")
    async def project(stream: Any) -> None:
        batches = stream.noack_take(
            settings.monitor_batch_size, within=settings.monitor_batch_wait.total_seconds()
        )
        health.started()
        try:
            async for records in batches:
                # if either raises, the records stay unacked: nothing is committed
                folded, reached = fold(records)
                await write(folded, datetime.now(UTC))
                for partition, offset in reached.items():  # on the broker now
                    lag.processed(partition, offset)
                for record in records:
                    await stream.ack(record)
                health.advanced()
        except asyncio.CancelledError:
            health.stopped()
            raise
        except BaseException as exc:
            health.died(exc)  # faust would go on serving: the health says it died
            raise
        health.stopped()

    async def measure_lag() -> None:
        await lag.refresh(app.consumer)

    app.timer(_LAG_REFRESH_SECONDS, name="consumer-lag")(measure_lag)
    return feed
