"""The consume loop: work orders in, outcome events out, offsets committed after.

An offset is committed only after the outcome events of its work order are on the
broker, so a crash re-runs work rather than losing it (the execution id is the same,
so consumers deduplicate). An undecodable record goes to the dead-letter topic with
the reason in its headers and the loop carries on.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime

from confluent_kafka import Consumer, KafkaError, Message, Producer
from prometheus_client import Counter, Gauge, Histogram

from executor.runner import HandlerRunner, Outcome
from executor.settings import ExecutorSettings
from schemas import (
    Event,
    EventData,
    EventDecodeError,
    ExecutionFailed,
    ExecutionStarted,
    ExecutionSucceeded,
    WorkOrder,
    decode_work_order,
    encode_event,
    event_headers,
)
from taskstream.infra.kafka import consumer_config, producer_config
from taskstream.infra.logs import fields

__all__ = ["Worker"]

logger = logging.getLogger(__name__)

EXECUTIONS = Counter(
    "taskstream_executions_total", "executions finished", ["outcome", "handler", "queue"]
)
DURATION = Histogram(
    "taskstream_execution_duration_seconds", "handler run time", ["handler", "queue"]
)
DISPATCH_LATENCY = Histogram(
    "taskstream_dispatch_latency_seconds",
    "handler start minus due time",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
IN_FLIGHT = Gauge("taskstream_executions_in_flight", "executions running now")
DEAD_LETTERS = Counter(
    "taskstream_dead_letters_total", "records sent to the dead-letter topic", ["reason"]
)


class Worker:
    def __init__(self, settings: ExecutorSettings, runner: HandlerRunner) -> None:
        self.settings = settings
        self.runner = runner
        topics = settings.topics
        self._topics = [
            topics.execution(queue, priority)
            for queue in settings.executor_queues
            for priority in ("high", "medium", "low")
        ]
        # one group per queue; an executor serving several queues joins the first queue's
        self._consumer = Consumer(
            consumer_config(settings, settings.group_id(settings.executor_queues[0]))
        )
        self._producer = Producer(producer_config(settings, partitioner="murmur2_random"))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="executor", daemon=True)
        self.error: BaseException | None = None

    def start(self) -> None:
        self._consumer.subscribe(self._topics)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout)
        self._consumer.close()
        self._producer.flush(timeout)
        self.runner.close()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                message = self._consumer.poll(0.2)
                if message is None:
                    continue
                error = message.error()
                if error is not None:
                    if error.code() != KafkaError._PARTITION_EOF:
                        logger.warning("executor consumer: %s", error.str())
                    continue
                self._process(message)
                self._consumer.commit(message=message, asynchronous=False)
        except BaseException as exc:
            self.error = exc
            logger.exception("executor loop stopped")

    def _process(self, message: Message) -> None:
        try:
            order = decode_work_order(message.value())
        except EventDecodeError as exc:
            self._dead_letter(message, "undecodable", str(exc))
            return
        log = fields(task_id=order.task_id, execution_id=order.execution_id, attempt=order.attempt)
        started_at = datetime.now(UTC)
        DISPATCH_LATENCY.observe(max((started_at - order.scheduled_for).total_seconds(), 0.0))
        self._emit(
            order,
            ExecutionStarted(
                execution_id=order.execution_id,
                attempt=order.attempt,
                scheduled_for=order.scheduled_for,
                worker_id=self.settings.executor_id,
                handler=order.handler,
            ),
        )
        logger.info("running %s", order.handler, extra=log)
        IN_FLIGHT.inc()
        try:
            outcome = self.runner.run(order)
        finally:
            IN_FLIGHT.dec()
        self._emit(order, self._outcome_event(order, outcome))
        label = "succeeded" if outcome.succeeded else "failed"
        EXECUTIONS.labels(label, order.handler, order.queue).inc()
        DURATION.labels(order.handler, order.queue).observe(outcome.duration)
        if outcome.succeeded:
            logger.info("succeeded in %.3fs", outcome.duration, extra=log)
        else:
            logger.warning("failed: %s: %s", outcome.error_type, outcome.error_message, extra=log)
        self._producer.flush(30)

    def _outcome_event(self, order: WorkOrder, outcome: Outcome) -> EventData:
        duration = round(outcome.duration, 6)
        worker_id = self.settings.executor_id
        if outcome.succeeded:
            return ExecutionSucceeded(
                execution_id=order.execution_id,
                attempt=order.attempt,
                scheduled_for=order.scheduled_for,
                worker_id=worker_id,
                duration_seconds=duration,
                output=outcome.output,
            )
        return ExecutionFailed(
            execution_id=order.execution_id,
            attempt=order.attempt,
            scheduled_for=order.scheduled_for,
            worker_id=worker_id,
            duration_seconds=duration,
            error_type=outcome.error_type or "Error",
            error_message=outcome.error_message,
            retryable=outcome.retryable,
        )

    def _emit(self, order: WorkOrder, data: EventData) -> None:
        event = Event.create(order.task_id, data)
        self._producer.produce(
            self.settings.topics.task_events,
            key=order.task_id.encode(),
            value=encode_event(event),
            headers=event_headers(event),
        )
        self._producer.poll(0)

    def _dead_letter(self, message: Message, reason: str, detail: str) -> None:
        DEAD_LETTERS.labels(reason).inc()
        logger.error(
            "dead-lettering record: %s",
            detail,
            extra=fields(
                topic=message.topic(), partition=message.partition(), offset=message.offset()
            ),
        )
        self._producer.produce(
            self.settings.topics.dead_letter,
            key=message.key(),
            value=message.value(),
            headers=[
                ("dead-letter-reason", reason.encode()),
                ("dead-letter-detail", detail[:4000].encode()),
                ("source-topic", (message.topic() or "").encode()),
                ("source-partition", str(message.partition()).encode()),
                ("source-offset", str(message.offset()).encode()),
            ],
        )
        self._producer.flush(30)
