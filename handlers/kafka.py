"""The ``kafka`` handler: publish one message to a topic, on the task's schedule.

Params::

    {"topic": "reports.requested",            required; used as given (no prefix)
     "value": {"report": "sales"},            any JSON (sent encoded as JSON) or a string
                                              (sent as UTF-8); absent: a message without value
     "key": "sales",                          optional
     "headers": {"source": "nightly"},        strings only
     "bootstrap_servers": "kafka:9092"}       default: the executor's broker

Every message also carries the headers ``taskstream-task-id`` and
``taskstream-execution-id``. An execution can publish twice (a retry after a lost
acknowledgement, a re-delivered work order: the execution id stays the same), so
consumers that must see each message once deduplicate on ``taskstream-execution-id``.

One idempotent producer per bootstrap string is created on first use and shared by all
runs (:func:`close_producers` flushes and drops them). A run waits for the broker's
acknowledgement until the task's deadline and returns ``{"topic", "partition",
"offset"}``; with no acknowledgement by then it raises ``TimeoutError``.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Mapping
from typing import Any, ClassVar

import orjson
from confluent_kafka import KafkaError, KafkaException, Message, Producer
from pydantic import Field, field_validator

from taskstream.handlers.base import (
    PermanentError,
    RetryableError,
    TaskContext,
    TaskHandler,
    TaskResult,
)
from taskstream.handlers.params import HandlerParams, Invalid, time_left

__all__ = [
    "EXECUTION_ID_HEADER",
    "TASK_ID_HEADER",
    "KafkaHandler",
    "KafkaParams",
    "close_producers",
]

TASK_ID_HEADER = "taskstream-task-id"
EXECUTION_ID_HEADER = "taskstream-execution-id"

_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")

_producers: dict[str, Any] = {}
_producers_lock = threading.Lock()


class KafkaParams(HandlerParams):
    """The ``kafka`` handler's params."""

    topic: str = Field(min_length=1, examples=["reports.requested"])
    """The topic, used as given (no prefix)."""
    value: Any = Field(None, examples=[{"report": "sales"}])
    """Any JSON (sent encoded as JSON) or a string (sent as UTF-8); absent: no value."""
    key: str | None = None
    headers: dict[str, str] = Field(default_factory=dict, examples=[{"source": "nightly"}])
    """Strings only; taskstream adds its own two."""
    bootstrap_servers: str | None = None
    """Default: the executor's broker."""

    @field_validator("topic")
    @classmethod
    def _topic_name(cls, topic: str) -> str:
        if not _TOPIC.match(topic) or topic in (".", ".."):
            raise Invalid(
                f"{topic!r} is not a Kafka topic name: use letters, digits, '.', '_', '-'"
            )
        return topic

    @field_validator("value")
    @classmethod
    def _json_value(cls, value: Any) -> Any:
        if not isinstance(value, str):
            try:
                orjson.dumps(value)
            except TypeError as exc:
                raise Invalid(f"cannot be encoded as JSON: {exc}") from None
        return value

    @field_validator("headers")
    @classmethod
    def _own_headers_kept(cls, headers: dict[str, str]) -> dict[str, str]:
        for reserved in (TASK_ID_HEADER, EXECUTION_ID_HEADER):
            if reserved in headers:
                raise Invalid(
                    "is set by taskstream itself: remove it from params", at=f".{reserved}"
                )
        return headers

    def encoded_value(self) -> bytes | None:
        """The message's value: absent, a string as UTF-8, anything else as JSON."""
        if "value" not in self.model_fields_set:
            return None
        if isinstance(self.value, str):
            return self.value.encode()
        return orjson.dumps(self.value)


class KafkaHandler(TaskHandler[KafkaParams]):
    """Publishes ``params.value`` to ``params.topic`` and returns where it landed."""

    name: ClassVar[str] = "kafka"

    def run(self, ctx: TaskContext[KafkaParams]) -> TaskResult:
        params = ctx.args
        topic = params.topic
        value = params.encoded_value()
        key = params.key
        headers = params.headers
        bootstrap = params.bootstrap_servers or ctx.environment.kafka_bootstrap_servers
        if not bootstrap:
            raise PermanentError(
                "kafka handler: no Kafka bootstrap servers: set params.bootstrap_servers, or "
                "run the executor with TASKSTREAM_KAFKA_BOOTSTRAP_SERVERS"
            )
        delivery = _Delivery()
        producer = _producer(bootstrap, ctx.environment.kafka_producer_settings)
        try:
            producer.produce(
                topic,
                value=value,
                key=key.encode() if key is not None else None,
                headers=[
                    *((name, text.encode()) for name, text in headers.items()),
                    (TASK_ID_HEADER, ctx.task_id.encode()),
                    (EXECUTION_ID_HEADER, ctx.execution_id.encode()),
                ],
                on_delivery=delivery.report,
            )
        except BufferError as exc:
            raise RetryableError(
                f"kafka handler: the producer's queue for {bootstrap} is full; retry later"
            ) from exc
        except KafkaException as exc:
            raise _error(exc.args[0], topic) from exc
        producer.flush(time_left(ctx))
        # another run's messages can keep flush busy; ours may still be acknowledged
        while not delivery.done.is_set() and time_left(ctx) > 0 and not ctx.cancelled.is_set():
            producer.poll(min(0.1, time_left(ctx)))
        if not delivery.done.is_set():
            raise TimeoutError(
                f"kafka handler: {bootstrap} did not acknowledge the message to {topic!r} "
                "before the task's timeout; it may still be delivered (deduplicate on "
                f"{EXECUTION_ID_HEADER})"
            )
        if delivery.error is not None:
            if delivery.error.fatal():  # the producer is unusable: the next run makes a new one
                _discard(bootstrap, producer)
            raise _error(delivery.error, topic)
        ctx.logger.info(
            "published to %s [%d] at offset %d", topic, delivery.partition, delivery.offset
        )
        return TaskResult.success(
            {"topic": topic, "partition": delivery.partition, "offset": delivery.offset}
        )


def close_producers(timeout: float = 10.0) -> None:
    """Flush and drop every cached producer (at executor shutdown, and in tests)."""
    with _producers_lock:
        producers = list(_producers.values())
        _producers.clear()
    deadline = time.monotonic() + timeout
    for producer in producers:
        producer.flush(max(0.0, deadline - time.monotonic()))


def producer_settings(bootstrap: str, executor_settings: Mapping[str, Any]) -> dict[str, Any]:
    """The kafka handler's producer configuration: the executor's own settings (an
    executor passes them in :class:`HandlerEnvironment`), else an idempotent producer
    acknowledged by all replicas; its own client id and bootstrap servers."""
    settings: dict[str, Any] = {"enable.idempotence": True, "acks": "all", "linger.ms": 5}
    settings.update(executor_settings)
    settings.update({"bootstrap.servers": bootstrap, "client.id": "taskstream-kafka-handler"})
    return settings


def _producer(bootstrap: str, executor_settings: Mapping[str, Any]) -> Any:
    """The shared producer of ``bootstrap``, created on first use."""
    with _producers_lock:
        producer = _producers.get(bootstrap)
        if producer is None:
            producer = Producer(producer_settings(bootstrap, executor_settings))
            _producers[bootstrap] = producer
        return producer


def _discard(bootstrap: str, producer: Any) -> None:
    with _producers_lock:
        if _producers.get(bootstrap) is producer:
            del _producers[bootstrap]


class _Delivery:
    """The broker's answer for one message, filled in by the producer's callback."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.error: KafkaError | None = None
        self.partition = -1
        self.offset = -1

    def report(self, error: KafkaError | None, message: Message) -> None:
        self.error = error
        if error is None:
            partition, offset = message.partition(), message.offset()
            self.partition = -1 if partition is None else partition
            self.offset = -1 if offset is None else offset
        self.done.set()


def _error(error: KafkaError, topic: str) -> Exception:
    message = f"kafka handler: publishing to {topic!r} failed: {error.str()}"
    if error.code() in (KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.MSG_SIZE_TOO_LARGE):
        return PermanentError(message)
    if error.code() in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC):
        return RetryableError(f"{message}: create the topic, or enable auto-creation")
    if error.retriable() or not error.fatal():
        return RetryableError(message)
    return PermanentError(message)
