"""One work order from start to finish: started event, run, outcome records, delivery.

For each order a pool slot takes, :class:`Executions` runs the handler
(:mod:`taskstream.executor.runner`; an ``ExecutionStarted`` goes out only if the run outlasts a
threshold: :mod:`taskstream.executor.started`) with what it logs and prints captured
(:mod:`taskstream.executor.capture`, shipped by :mod:`taskstream.executor.log_shipping`), turns the
ending into records with :func:`taskstream.executor.outcomes.records_for` (outcome event,
``RetryScheduled`` or ``ExecutionDeadLettered`` plus the dead-letter record) and
produces them. Once the broker has every one (its log's last chunk too) it tells the
order's consumer that the offset is done. An order whose cancellation arrived before it
did ends ``ExecutionCancelled`` without running.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from taskstream.executor.cancellations import CancelRegistry
from taskstream.executor.log_shipping import LogShipper, ShippedRun
from taskstream.executor.metrics import (
    DEAD_LETTERS,
    DISPATCH_LATENCY,
    DURATION,
    EXECUTIONS,
    IN_FLIGHT,
    RETRIES_SCHEDULED,
)
from taskstream.executor.outcomes import Ending, Outcome, records_for
from taskstream.executor.publisher import Publisher
from taskstream.executor.runner import HandlerRunner, RunControl
from taskstream.executor.started import StartedAnnouncer
from taskstream.infra.logs import fields
from taskstream.infra.settings import Topics
from taskstream.schemas import (
    Event,
    ExecutionDeadLettered,
    Priority,
    RetryScheduled,
    WorkOrder,
    encode_event,
    event_headers,
)

if TYPE_CHECKING:
    from taskstream.executor.pool import Slot

__all__ = ["Executions", "Received"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Received:
    """A work order read from a partition: waiting in a lane, or running."""

    queue: str
    topic: str
    partition: int
    offset: int
    generation: int
    """The consumer's assignment generation of the partition, to ignore stale completions."""
    priority: Priority
    order: WorkOrder
    done: Callable[[Received], None] = field(repr=False, compare=False)
    """Tells the consumer the record is finished (its records are on the broker)."""


class Executions:
    """Runs received work orders and publishes their outcomes."""

    def __init__(
        self,
        topics: Topics,
        worker_id: str,
        runner: HandlerRunner,
        publisher: Publisher,
        cancellations: CancelRegistry,
        logs: LogShipper | None = None,
        *,
        started_after: float = 0.0,
        stall_after: float = 30.0,
    ) -> None:
        """``started_after``: the seconds a run goes on before its ``ExecutionStarted``
        is written (0: at its start); the :attr:`announcer` thread is started by the
        caller."""
        self.topics = topics
        self.logs = logs
        self.worker_id = worker_id
        self.runner = runner
        self.publisher = publisher
        self.cancellations = cancellations
        self.announcer = StartedAnnouncer(
            started_after, worker_id, self._send_event, stall_after=stall_after
        )

    def process(self, item: Received, slot: Slot) -> None:
        """Run one order and publish its outcome; mark it done once delivered.

        A sync handler runs on this thread; if it overruns (deadline, cancellation),
        ``slot`` is handed over to a thread that publishes the ending, and this returns
        when the handler does.
        """
        order = item.order
        log = fields(task_id=order.task_id, execution_id=order.execution_id, attempt=order.attempt)
        control = RunControl()
        self.cancellations.register(order.execution_id, order.task_id, control)
        reason = self.cancellations.pending_reason(order)
        if reason is not None:
            self.cancellations.unregister(order.execution_id)
            logger.info("cancelled before it started: %s", reason, extra=log)
            cancelled = Outcome.cancelled(0.0, reason)
            self._publish(item, cancelled, None, [], log)
            return
        started_at = datetime.now(UTC)
        run = self._begin(item, started_at, log)

        def ended(outcome: Outcome) -> None:
            self.cancellations.unregister(order.execution_id)
            self._publish(item, outcome, started_at, self._end(item, run), log)

        try:
            outcome = self.runner.run_here(
                order,
                control,
                run.log if run is not None else None,
                overrun=lambda ending: slot.hand_over(lambda: ended(ending)),
            )
        except BaseException:
            self.cancellations.unregister(order.execution_id)
            self._end(item, run)
            raise
        if outcome is not None:
            ended(outcome)

    def _begin(
        self, item: Received, started_at: datetime, log: dict[str, object]
    ) -> ShippedRun | None:
        order = item.order
        run = self.logs.open(order) if self.logs is not None else None
        if order.attempt == 1:  # a retry's order carries its slot, not when the retry was due
            DISPATCH_LATENCY.labels(item.queue, item.priority.value).observe(
                max((started_at - order.scheduled_for).total_seconds(), 0.0)
            )
        self.announcer.begin(id(item), order, started_at)  # id: unique while the item runs
        logger.info("running %s", order.handler, extra=log)
        IN_FLIGHT.inc()
        return run

    def _end(self, item: Received, run: ShippedRun | None) -> list[Future[None]]:
        """The run ended: what must be on the broker before its outcome counts as sent."""
        IN_FLIGHT.dec()
        sent: list[Future[None]] = []
        announced = self.announcer.end(id(item))  # before the outcome is produced
        if announced is not None:
            sent.append(announced)
        if run is not None and self.logs is not None:
            sent.append(self.logs.close(run))
        return sent

    def _publish(
        self,
        item: Received,
        outcome: Outcome,
        started_at: datetime | None,
        sent: list[Future[None]],
        log: dict[str, object],
    ) -> None:
        """Produce the outcome's records; the order is done once all of ``sent`` and they
        are on the broker."""
        order = item.order
        records = records_for(
            order, outcome, self.worker_id, datetime.now(UTC), started_at=started_at
        )
        delivery = _Delivery(item, log)
        for future in sent:
            delivery.expect()
            future.add_done_callback(delivery.future_done)
        task_events = self.topics.task_events
        for event in records.events:
            delivery.expect()
            self.publisher.send_then(
                task_events,
                event.task_id.encode(),
                encode_event(event),
                event_headers(event),
                delivery.one,
            )
        if records.dead_letter is not None:
            value, headers = records.dead_letter
            headers = [
                *headers,
                ("source-topic", item.topic.encode()),
                ("source-partition", str(item.partition).encode()),
                ("source-offset", str(item.offset).encode()),
            ]
            delivery.expect()
            self.publisher.send_then(
                self.topics.dead_letter, order.task_id.encode(), value, headers, delivery.one
            )
        self._account(item, outcome, records.events, log)
        delivery.one(None)  # everything is sent: the last delivery marks the order done

    def _send_event(self, event: Event) -> Future[None]:
        return self.publisher.send(
            self.topics.task_events,
            event.task_id.encode(),
            encode_event(event),
            event_headers(event),
        )

    def _account(
        self, item: Received, outcome: Outcome, events: list[Event], log: dict[str, object]
    ) -> None:
        order = item.order
        EXECUTIONS.labels(outcome.ending.value, order.handler, item.queue).inc()
        DURATION.labels(order.handler, item.queue).observe(outcome.duration)
        for event in events:
            if isinstance(event.data, RetryScheduled):
                RETRIES_SCHEDULED.labels(item.queue).inc()
                logger.info(
                    "attempt %d failed; attempt %d due at %s",
                    order.attempt,
                    event.data.attempt,
                    event.data.due_at.isoformat(),
                    extra=log,
                )
            elif isinstance(event.data, ExecutionDeadLettered):
                DEAD_LETTERS.labels(event.data.reason).inc()
                logger.error("dead-lettered (%s)", event.data.reason, extra=log)
        if outcome.ending is Ending.SUCCEEDED:
            logger.info("succeeded in %.3fs", outcome.duration, extra=log)
        else:
            logger.warning(
                "%s after %.3fs: %s: %s",
                outcome.ending.value,
                outcome.duration,
                outcome.error_type,
                outcome.error_message,
                extra=log,
            )


class _Delivery:
    """The records one ending needs on the broker: the order is done once all are there,
    and never if one is not (it runs again). No future: one lock and a count."""

    __slots__ = ("_failed", "_item", "_left", "_lock", "_log")

    def __init__(self, item: Received, log: dict[str, object]) -> None:
        self._item = item
        self._log = log
        self._lock = threading.Lock()
        self._left = 1
        """The records sent and not yet delivered, plus one until all are sent."""
        self._failed = False

    def expect(self) -> None:
        with self._lock:
            self._left += 1

    def one(self, error: Exception | None) -> None:
        """A record was delivered (``error`` None) or will not be."""
        if error is not None:
            with self._lock:
                first, self._failed = not self._failed, True
            if first:
                logger.error(
                    "outcome record not delivered (%s); the order will run again",
                    error,
                    extra=self._log,
                )
            return
        with self._lock:
            self._left -= 1
            last = self._left == 0 and not self._failed
        if last:
            self._item.done(self._item)

    def future_done(self, future: Future[None]) -> None:
        error = future.exception()
        self.one(error if isinstance(error, Exception) or error is None else RuntimeError(error))
