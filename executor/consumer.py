"""One queue's consumer: its three priority topics in, received work orders to the lanes.

The consumer joins the queue's group (``<prefix>executor-<queue>``, cooperative-sticky,
read_committed, no auto-commit, no automatic offset store) and owns, on its thread:

- **receiving**: each record is tracked (:mod:`taskstream.executor.offsets`), decoded and put in its
  lane; an undecodable record goes to the dead-letter topic (reason ``undecodable``) and
  counts as done once that record is on the broker;
- **completions**: slots report finished orders through a queue; the consumer marks them
  in the tracker (a completion from an earlier assignment of the partition is ignored);
- **back-pressure**: pauses and resumes whole lanes (:mod:`taskstream.executor.backpressure`), so a
  backlog in one lane never stops the others from being fetched;
- **commits**: as soon as orders finish (their records are on the broker), the lowest
  unfinished offset of each partition that moved, in one asynchronous commit; while one
  is in flight, completions pile up for the next, so under load it is one commit per
  round trip, not per record. While orders run, the loop polls every
  ``_BUSY_POLL_TIMEOUT`` so a completion waits at most that long. A failed commit is
  retried after ``COMMIT_RETRY_INTERVAL``. Synchronous on revoke and stop. A kill -9
  thus reruns only the orders that were running (or finished within a few ms);
- **health** (a :class:`~taskstream.infra.health.HealthSource`, ``consumer:<queue>``):
  ``failed`` once its thread died; ``unavailable`` when no record arrived for
  ``TASKSTREAM_LOOP_STALL_AFTER`` seconds while records wait in partitions it has not
  paused (back-pressure pauses are not stalls: the slots are busy), like the consumer
  loops' stall detection;
- **revoke**: waiting orders of the revoked partitions leave the lanes (the next owner runs
  them), running ones get ``TASKSTREAM_EXECUTOR_SHUTDOWN_GRACE`` to finish, then what is
  done is committed. A running order that outlives the grace is dropped: its records are
  still produced when it ends, and the next owner's rerun has the same execution id.
- **lost** (the session expired, e.g. in a broker outage): nothing can be committed, so the
  partition's offsets are *held* (:mod:`taskstream.executor.offsets`) while its running orders
  finish; given the partition back, the consumer goes on past what finished (and commits it)
  unless the group's committed offset went further, instead of running it all again.
"""

from __future__ import annotations

import logging
import queue as queue_module
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from taskstream.executor.backpressure import paused_lanes
from taskstream.executor.execution import Received
from taskstream.executor.lanes import PRIORITY_ORDER, Lanes
from taskstream.executor.metrics import CONSUMER_LAG, DEAD_LETTERS, PAUSED_PARTITIONS
from taskstream.executor.offsets import OffsetTracker, TopicPartitionKey
from taskstream.executor.publisher import Publisher
from taskstream.executor.settings import ExecutorSettings
from taskstream.infra.health import ComponentStatus, State
from taskstream.infra.kafka import consume_available, consumer_config
from taskstream.infra.logs import fields
from taskstream.schemas import EventDecodeError, Priority, decode_work_order

__all__ = ["QueueConsumer"]

logger = logging.getLogger(__name__)

COMMIT_RETRY_INTERVAL = 1.0
LAG_INTERVAL = 5.0
_POLL_TIMEOUT = 0.1
_PAUSED_POLL_TIMEOUT = 0.01
_BUSY_POLL_TIMEOUT = 0.01
_RECEIVE_BATCH = 500
"""Records taken from the client per turn of the loop (at most the buffer limit)."""


class QueueConsumer:
    """Consumes one queue's execution topics into the shared lanes."""

    def __init__(
        self,
        settings: ExecutorSettings,
        queue: str,
        lanes: Lanes[Received],
        publisher: Publisher,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.queue = queue
        self._settings = settings
        self._lanes = lanes
        self._publisher = publisher
        self._clock = clock
        self._limit = settings.max_buffered
        self._grace = settings.executor_shutdown_grace.total_seconds()
        self._lane_of = {settings.topics.execution(queue, p.value): p for p in PRIORITY_ORDER}
        session_ms = int(settings.executor_session_timeout.total_seconds() * 1000)
        self._consumer = Consumer(
            consumer_config(
                settings,
                settings.group_id(queue),
                **{
                    "client.id": f"{settings.executor_id}-{queue}",
                    "enable.auto.offset.store": False,
                    "partition.assignment.strategy": "cooperative-sticky",
                    "session.timeout.ms": session_ms,
                    "heartbeat.interval.ms": max(session_ms // 5, 100),
                    "fetch.wait.max.ms": 20,
                    "queued.max.messages.kbytes": 8192,
                    "on_commit": self._on_commit,
                },
            )
        )
        self._tracker = OffsetTracker()
        self._completions: queue_module.SimpleQueue[tuple[TopicPartitionKey, int, int]] = (
            queue_module.SimpleQueue()
        )
        self._generations: dict[TopicPartitionKey, int] = {}
        self._next_generation = 0
        self._paused: set[Priority] = set()
        self._stop = threading.Event()
        self._closed_out = False
        self._thread = threading.Thread(target=self._run, name=f"consumer-{queue}", daemon=True)
        self._commit_in_flight = False
        self._uncommitted = False  # orders finished since the last commit was sent
        self._next_commit = 0.0  # not before this (after a failed commit)
        self._next_lag = 0.0
        self.error: BaseException | None = None
        self.last_commit: datetime | None = None
        self._status: dict[str, Any] = {}
        self._paused_gauge = PAUSED_PARTITIONS.labels(queue)
        self._unbalanced = True
        self._stall_after = settings.loop_stall_after
        self._progress_at = clock()
        """When a record last arrived, or nothing waited in the partitions not paused."""
        self._waiting = 0
        """Records in the partitions not paused, not received yet (at the last measure)."""
        self._measured_at = self._received_at = clock()

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        self._consumer.subscribe(
            list(self._lane_of),
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        self._thread.start()

    def request_stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float | None = None) -> None:
        if self._thread.is_alive():
            self._thread.join(timeout)
        elif self._thread.ident is None:  # never started
            self._consumer.close()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    # -- HealthSource -------------------------------------------------------------------

    @property
    def name(self) -> str:
        return f"consumer:{self.queue}"

    essential = True

    def health(self) -> ComponentStatus:
        details = {"waiting": self._waiting}
        if self.error is not None:
            return ComponentStatus(State.FAILED, f"stopped: {self.error!r}", details)
        if self._thread.ident is None:
            return ComponentStatus(State.STARTING, "not started", details)
        if not self.alive:
            state = State.UNAVAILABLE if self._stop.is_set() else State.FAILED
            return ComponentStatus(state, "its thread is not running", details)
        idle = self._clock() - self._progress_at
        if self._waiting and idle > self._stall_after:
            return ComponentStatus(
                State.UNAVAILABLE,
                f"consumer of queue {self.queue} has not advanced for {idle:.0f}s while "
                f"{self._waiting} records wait in partitions it has not paused",
                details,
            )
        return ComponentStatus(State.OK, None, details)

    def status(self) -> dict[str, Any]:
        """For ``/health``: assignment, buffer, pauses and the last commit."""
        return {
            **self._status,
            "queue": self.queue,
            "alive": self.alive,
            "last_commit": self.last_commit.isoformat() if self.last_commit else None,
            "error": repr(self.error) if self.error else None,
        }

    # -- the loop ----------------------------------------------------------------------

    def _run(self) -> None:
        try:
            batch = max(1, min(_RECEIVE_BATCH, self._limit))
            while not self._stop.is_set():
                # while paused, poll briefly: completions must resume a lane before it runs dry;
                # while orders run, too: their completions are committed at once
                if self._paused:
                    timeout = _PAUSED_POLL_TIMEOUT
                elif self._tracker.unfinished():
                    timeout = _BUSY_POLL_TIMEOUT
                else:
                    timeout = _POLL_TIMEOUT
                for message in consume_available(self._consumer, batch, timeout):
                    self._receive(message)
                if self._drain():
                    self._uncommitted = True
                if self._unbalanced:  # nothing received, finished or reassigned: no change
                    self._balance()
                now = self._clock()
                if self._uncommitted and not self._commit_in_flight and now >= self._next_commit:
                    self._commit_async()
                if now >= self._next_lag:
                    self._measure_lag()
                    self._next_lag = now + LAG_INTERVAL
            self._shutdown()
        except BaseException as exc:
            self.error = exc
            logger.exception("consumer of queue %s stopped", self.queue)

    def _receive(self, message: Message) -> None:
        error = message.error()
        if error is not None:
            if error.code() != KafkaError._PARTITION_EOF:
                logger.warning("consumer of queue %s: %s", self.queue, error.str())
            return
        self._unbalanced = True
        self._progress_at = self._received_at = self._clock()
        topic, partition, offset = message.topic() or "", message.partition() or 0, message.offset()
        key = (topic, partition)
        generation = self._generations.get(key)
        if offset is None or generation is None or not self._tracker.received(key, offset):
            return
        try:
            order = decode_work_order(message.value())
        except EventDecodeError as exc:
            self._dead_letter(message, key, offset, generation, str(exc))
            return
        self._lanes.put(
            self._lane_of[topic],
            Received(
                queue=self.queue,
                topic=topic,
                partition=partition,
                offset=offset,
                generation=generation,
                priority=self._lane_of[topic],
                order=order,
                done=self._finished,
            ),
        )

    def _finished(self, item: Received) -> None:
        """Called by the slot (any thread) once the order's records are on the broker."""
        self._completions.put(((item.topic, item.partition), item.offset, item.generation))

    def _drain(self) -> int:
        """Mark the reported completions in the tracker; how many were current."""
        count = 0
        while True:
            try:
                key, offset, generation = self._completions.get_nowait()
            except queue_module.Empty:
                return count
            if self._generations.get(key) == generation and self._tracker.finished(key, offset):
                self._unbalanced = True
                count += 1
            else:
                self._tracker.finished_held(key, offset, generation)

    def _dead_letter(
        self, message: Message, key: TopicPartitionKey, offset: int, generation: int, detail: str
    ) -> None:
        DEAD_LETTERS.labels("undecodable").inc()
        logger.error(
            "dead-lettering an undecodable work order: %s",
            detail,
            extra=fields(topic=key[0], partition=key[1], offset=offset, action="dead-letter"),
        )
        future = self._publisher.send(
            self._settings.topics.dead_letter,
            message.key(),
            message.value(),
            [
                ("dead-letter-reason", b"undecodable"),
                ("dead-letter-detail", detail[:4000].encode()),
                ("source-topic", key[0].encode()),
                ("source-partition", str(key[1]).encode()),
                ("source-offset", str(offset).encode()),
            ],
        )
        future.add_done_callback(
            lambda f: None if f.exception() else self._completions.put((key, offset, generation))
        )

    # -- back-pressure -----------------------------------------------------------------

    def _buffered(self) -> dict[Priority, int]:
        counts = dict.fromkeys(PRIORITY_ORDER, 0)
        for key in self._generations:
            counts[self._lane_of[key[0]]] += self._tracker.unfinished([key])
        return counts

    def _partitions_of(self, lanes: Iterable[Priority]) -> list[TopicPartition]:
        wanted = set(lanes)
        return [
            TopicPartition(topic, partition)
            for topic, partition in self._generations
            if self._lane_of[topic] in wanted
        ]

    def _balance(self) -> None:
        self._unbalanced = False
        buffered = self._buffered()
        wanted = paused_lanes(buffered, self._paused, self._limit)
        pause, resume = wanted - self._paused, self._paused - wanted
        if pause:
            self._consumer.pause(self._partitions_of(pause))
        if resume:
            self._consumer.resume(self._partitions_of(resume))
        if pause or resume:
            logger.debug(
                "queue %s: buffered %s; paused lanes %s",
                self.queue,
                {p.value: n for p, n in buffered.items()},
                sorted(p.value for p in wanted),
            )
        self._paused = wanted
        paused_count = sum(1 for topic, _ in self._generations if self._lane_of[topic] in wanted)
        self._paused_gauge.set(paused_count)
        self._status = {
            "assigned_partitions": len(self._generations),
            "paused_partitions": paused_count,
            "paused_lanes": sorted(p.value for p in wanted),
            "buffered": {p.value: n for p, n in buffered.items()},
        }

    # -- offsets -----------------------------------------------------------------------

    def _commit_async(self) -> None:
        """Commit every offset that moved; :meth:`_on_commit` hears the outcome."""
        self._uncommitted = False
        pending = self._tracker.pending_commits()
        if not pending:
            return
        offsets = [TopicPartition(t, p, o) for (t, p), o in pending.items()]
        try:
            self._consumer.commit(offsets=offsets, asynchronous=True)
        except KafkaException as exc:
            self._commit_failed(str(exc))
            return
        self._commit_in_flight = True

    def _on_commit(self, error: KafkaError | None, partitions: list[TopicPartition]) -> None:
        """librdkafka's commit callback (served by ``consume`` on this thread)."""
        self._commit_in_flight = False
        if error is not None:
            self._commit_failed(error.str())
            return
        done = {(tp.topic, tp.partition): tp.offset for tp in partitions if tp.error is None}
        if done:
            self._tracker.committed(done)
            self.last_commit = datetime.now(UTC)
        if len(done) < len(partitions):
            failed = [tp.error.str() for tp in partitions if tp.error is not None]
            self._commit_failed("; ".join(sorted(set(failed))))

    def _commit_failed(self, reason: str) -> None:
        logger.warning(
            "commit of queue %s failed (retried in %.0fs): %s",
            self.queue,
            COMMIT_RETRY_INTERVAL,
            reason,
        )
        self._uncommitted = True
        self._next_commit = self._clock() + COMMIT_RETRY_INTERVAL

    def _commit(self, partitions: Iterable[TopicPartitionKey] | None = None) -> None:
        pending = self._tracker.pending_commits(partitions)
        if not pending:
            return
        offsets = [TopicPartition(t, p, o) for (t, p), o in pending.items()]
        try:
            self._consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            logger.warning("commit of queue %s failed: %s", self.queue, exc)
            return
        self._tracker.committed(pending)
        self.last_commit = datetime.now(UTC)

    def _measure_lag(self) -> None:
        """The lag metric, and how many records wait in the partitions not paused.

        The client's watermarks are those of its last fetch: a partition it does not
        fetch (paused behind our back) would look idle for ever. So the partitions not
        paused that received nothing since the last measure ask the broker (briefly; a
        broker that does not answer ends the asking for this round). A partition whose
        broker answer is missing keeps the count of the last measure: a slow broker must not
        read as "nothing waits" and hide a stall.
        """
        lag = waiting = 0
        keys = list(self._generations)
        positions = self._positions(keys)
        ask = True
        unknown = False  # a partition's watermark should have come from the broker, and did not
        for key in keys:
            topic, partition = key
            tp = TopicPartition(topic, partition)
            fetching = self._lane_of[topic] not in self._paused
            high = None
            if fetching and self._received_at < self._measured_at:
                if ask:
                    try:
                        _, high = self._consumer.get_watermark_offsets(tp, timeout=0.5)
                    except KafkaException:
                        ask = False
                unknown = unknown or high is None
            if high is None:
                try:
                    _, high = self._consumer.get_watermark_offsets(tp, cached=True)
                except KafkaException:
                    continue
            if high is None or high < 0:
                continue
            base = self._tracker.committable(key)
            if base is not None:
                lag += max(high - base, 0)
            position = positions.get(key)
            if position is not None and fetching:
                waiting += max(high - position, 0)
        CONSUMER_LAG.labels(self.queue).set(lag)
        if unknown:  # the cached watermark of an unfetched partition says nothing: keep the last
            waiting = max(waiting, self._waiting)
        self._waiting = waiting
        self._measured_at = self._clock()
        if waiting == 0:
            self._progress_at = self._measured_at  # nothing waits: idle, not stalled

    def _positions(self, keys: list[TopicPartitionKey]) -> dict[TopicPartitionKey, int]:
        """Where the next fetch of each partition starts: the client's position, or (no
        record fetched since the assignment) the group's committed offset."""
        positions: dict[TopicPartitionKey, int] = {}
        unknown: list[TopicPartition] = []
        try:
            for tp in self._consumer.position([TopicPartition(t, p) for t, p in keys]):
                if tp.offset >= 0:
                    positions[(tp.topic, tp.partition)] = tp.offset
                else:
                    unknown.append(TopicPartition(tp.topic, tp.partition))
            if unknown:
                for tp in self._consumer.committed(unknown, timeout=1.0):
                    if tp.offset >= 0:
                        positions[(tp.topic, tp.partition)] = tp.offset
        except KafkaException:
            pass  # not measurable now (the broker is away, a rebalance): unknown
        return positions

    # -- group membership --------------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        keys = [(tp.topic, tp.partition) for tp in partitions]
        for tp in partitions:
            key = (tp.topic, tp.partition)
            generation = self._take_over(consumer, tp)
            if generation is None:
                self._next_generation += 1
                generation = self._next_generation
            self._generations[key] = generation
        self._tracker.assign(keys)
        self._unbalanced = True
        consumer.incremental_assign(partitions)
        # librdkafka keeps a partition paused across an unassign and a new assign (a lost
        # or revoked partition that comes back); our pause state is per lane and forgets
        # partitions it no longer owns. Set the client's state of each one from ours, or
        # a partition paused before a loss stays paused for good.
        paused = [tp for tp in partitions if self._lane_of[tp.topic] in self._paused]
        fetching = [tp for tp in partitions if self._lane_of[tp.topic] not in self._paused]
        if paused:
            consumer.pause(paused)
        if fetching:
            consumer.resume(fetching)
        logger.info("queue %s: assigned %s", self.queue, _names(keys))

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        keys = {(tp.topic, tp.partition) for tp in partitions}
        if not self._closed_out:
            self._let_finish(keys)
            self._commit(keys)
        self._forget(keys)
        logger.info("queue %s: revoked %s", self.queue, _names(keys))

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        keys = {(tp.topic, tp.partition) for tp in partitions}
        dropped = self._drop_waiting(keys)
        self._unbalanced = True
        for key in keys:
            generation = self._generations.pop(key, None)
            if generation is not None:
                self._tracker.hold(key, generation, dropped.get(key, ()))
        logger.warning("queue %s: lost %s (held until assigned again)", self.queue, _names(keys))

    def _take_over(self, consumer: Consumer, tp: TopicPartition) -> int | None:
        """Go on with a partition this consumer lost and gets back (see
        :mod:`taskstream.executor.offsets`): from past what finished since the last commit, unless
        the group committed further meanwhile. Returns the lost assignment's generation
        if it goes on with it, else None."""
        key = (tp.topic, tp.partition)
        take = self._tracker.take_over(key)
        if take is None:
            return None
        try:
            [stored] = consumer.committed([TopicPartition(tp.topic, tp.partition)], timeout=5)
            committed = stored.offset if stored.error is None else None
        except KafkaException:
            committed = None
        if take.start is None or committed is None or committed > take.start:
            self._tracker.forget([key])  # another owner went further, or unknown: from the group's
            return None
        tp.offset = take.start
        self._uncommitted = True  # the offset to commit moved under the new generation
        logger.info(
            "queue %s: took %s[%d] back at offset %d (committed %d; %d still running)",
            self.queue,
            tp.topic,
            tp.partition,
            take.start,
            committed,
            len(take.running),
        )
        return take.generation

    def _drop_waiting(self, keys: set[TopicPartitionKey]) -> dict[TopicPartitionKey, set[int]]:
        dropped: dict[TopicPartitionKey, set[int]] = {}
        for item in self._lanes.remove(
            lambda it: it.queue == self.queue and (it.topic, it.partition) in keys
        ):
            dropped.setdefault((item.topic, item.partition), set()).add(item.offset)
        return dropped

    def _let_finish(self, keys: set[TopicPartitionKey]) -> None:
        """Drop waiting orders of ``keys``; give running ones the grace to finish."""
        dropped = self._drop_waiting(keys)
        deadline = self._clock() + self._grace
        while True:
            self._drain()
            running = sum(
                len(set(self._tracker.unfinished_offsets(k)) - dropped.get(k, set())) for k in keys
            )
            if running == 0:
                break
            if self._clock() >= deadline:
                logger.warning(
                    "queue %s: %d execution(s) still running after %.0fs; left to the next owner",
                    self.queue,
                    running,
                    self._grace,
                )
                break
            try:
                key, offset, generation = self._completions.get(timeout=0.1)
            except queue_module.Empty:
                continue
            if self._generations.get(key) == generation:
                self._tracker.finished(key, offset)

    def _forget(self, keys: Iterable[TopicPartitionKey]) -> None:
        self._unbalanced = True
        for key in keys:
            self._generations.pop(key, None)
        self._tracker.forget(keys)

    def _shutdown(self) -> None:
        keys = set(self._generations)
        self._let_finish(keys)
        self._commit(keys)
        self._closed_out = True
        self._consumer.close()
        logger.info("consumer of queue %s closed", self.queue)


def _names(keys: Iterable[TopicPartitionKey]) -> list[str]:
    return sorted(f"{topic}[{partition}]" for topic, partition in keys)
