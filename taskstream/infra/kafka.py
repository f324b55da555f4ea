"""Kafka client configuration and topic administration shared by the services.

Producers are idempotent with ``acks=all``; consumers never auto-commit and read
``read_committed``, so a transaction the scheduler aborted is never seen.
"""

from __future__ import annotations

import logging
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message
from confluent_kafka.admin import (  # type: ignore[attr-defined]  # re-exported, no __all__
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ResourceType,
)
from confluent_kafka.cimpl import NewTopic
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_exponential

from taskstream.infra.settings import CommonSettings

__all__ = [
    "TopicSpec",
    "admin_client",
    "align_topic_configs",
    "client_config",
    "consume_available",
    "consumer_config",
    "ensure_topics",
    "producer_config",
    "standard_topics",
    "topic_config",
]

logger = logging.getLogger(__name__)
_client_logger = logging.getLogger("librdkafka")
_UNLIMITED = "-1"
_DAYS_7 = str(7 * 24 * 3600 * 1000)
_QUEUED_MIN_MESSAGES = 10_000
"""Records a consumer tries to keep fetched ahead (librdkafka's default: 100,000)."""
_FETCH_QUEUE_BACKOFF_MS = 10
"""How long librdkafka waits before it looks again at a partition whose fetched queue was
full (``queued.min.messages`` or ``queued.max.messages.kbytes`` reached). Its default,
1,000 ms, is a stall for a consumer that empties the queue in milliseconds: the burst
drain ran at 124 executions/s with one-second gaps (``tests/e2e/test_burst_drain.py``).
The look is a comparison on the client's own thread; 10 ms costs nothing measurable."""


def client_config(settings: CommonSettings, logger: logging.Logger | None = None) -> dict[str, Any]:
    """What every Kafka client of taskstream connects with (producers, consumers, admin
    clients, the broker's health probe): the one place for connection settings."""
    return {
        "bootstrap.servers": settings.kafka_bootstrap_servers,
        "logger": logger or _client_logger,
    }


def producer_config(settings: CommonSettings, **overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        **client_config(settings),
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": settings.kafka_linger_ms,
        "compression.type": settings.kafka_compression,
    }
    config.update(overrides)
    return config


def consumer_config(settings: CommonSettings, group_id: str, **overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        **client_config(settings),
        "group.id": group_id,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
        # Bound what the client prefetches: by default it keeps up to 64 MiB (and 100,000
        # records) fetched ahead per consumer, several hundred MiB of resident memory in a
        # core catching up with a long task-events log. A few MiB keep a consumer busy.
        "queued.max.messages.kbytes": settings.kafka_consumer_queue_kbytes,
        "queued.min.messages": _QUEUED_MIN_MESSAGES,
        "fetch.queue.backoff.ms": _FETCH_QUEUE_BACKOFF_MS,
    }
    config.update(overrides)
    return config


def consume_available(consumer: Consumer, limit: int, timeout: float) -> list[Message]:
    """Wait up to ``timeout`` seconds for a message, then take what the client already has.

    ``Consumer.consume(n, timeout)`` returns only once ``n`` messages arrived or the whole
    ``timeout`` passed, so a loop over it holds a lone message for up to ``timeout``. This
    returns as soon as one is there, with up to ``limit`` that are already fetched.
    """
    messages: list[Message] = consumer.consume(num_messages=1, timeout=timeout)
    if messages and limit > 1:
        messages.extend(consumer.consume(num_messages=limit - 1, timeout=0))
    return messages


def retrying_kafka(what: str, seconds: float) -> Retrying:
    """Retry a client call that fails while a new topic's leader is elected ("not leader
    for partition", unknown partition) for up to ``seconds``, then raise its error."""
    return Retrying(
        retry=retry_if_exception_type(KafkaException),
        wait=wait_exponential(multiplier=0.1, max=2),
        stop=stop_after_delay(seconds),
        before_sleep=lambda state: logger.info(
            "%s failed (%s); retrying", what, state.outcome.exception() if state.outcome else "?"
        ),
        reraise=True,
    )


def admin_client(settings: CommonSettings) -> AdminClient:
    return AdminClient(client_config(settings))


def topic_config(
    settings: CommonSettings, topic: str, name: str, timeout: float = 30.0
) -> str | None:
    """The broker's value of topic config ``name`` (e.g. ``max.message.bytes``), or None.

    A topic just created may be unknown for a moment to the broker that answers (on a
    cluster, the others learn it from the metadata log): that answer is retried for up to
    ``timeout`` seconds, like every call on a new topic (:func:`retrying_kafka`).
    """
    resource = ConfigResource(ResourceType.TOPIC, topic)
    admin = admin_client(settings)  # kept referenced until the answer: it is the handle
    for attempt in retrying_kafka(f"reading the config of topic {topic}", timeout):
        with attempt:
            futures = admin.describe_configs([resource], request_timeout=timeout)
            entries = futures[resource].result(timeout)
    entry = entries.get(name)
    return None if entry is None else str(entry.value)


class TopicSpec:
    def __init__(self, name: str, partitions: int, config: dict[str, str]) -> None:
        self.name = name
        self.partitions = partitions
        self.config = config


def standard_topics(settings: CommonSettings, queues: list[str]) -> list[TopicSpec]:
    """Every topic the pipeline uses for ``queues``, with its partitions, retention and
    ``min.insync.replicas`` (``settings.min_insync_replicas``)."""
    topics = settings.topics
    specs = [
        TopicSpec(
            topics.task_events, settings.task_events_partitions, {"retention.ms": _UNLIMITED}
        ),
        TopicSpec(topics.dead_letter, 3, {"retention.ms": str(30 * 24 * 3600 * 1000)}),
        TopicSpec(topics.workers, 1, {"cleanup.policy": "compact"}),
        TopicSpec(topics.alerts, 1, {"retention.ms": _DAYS_7}),
        TopicSpec(topics.cancellations, 1, {"retention.ms": _DAYS_7}),
        TopicSpec(
            topics.execution_logs,
            settings.execution_partitions,
            {"retention.ms": str(int(settings.execution_log_retention.total_seconds() * 1000))},
        ),
    ]
    for queue in queues:
        for priority in ("high", "medium", "low"):
            specs.append(
                TopicSpec(
                    topics.execution(queue, priority),
                    settings.execution_partitions,
                    {"retention.ms": _DAYS_7},
                )
            )
    min_isr = str(settings.min_insync_replicas)
    for spec in specs:
        spec.config["min.insync.replicas"] = min_isr
    return specs


def ensure_topics(settings: CommonSettings, specs: list[TopicSpec], timeout: float = 30.0) -> None:
    """Create the topics that do not exist yet; existing ones are left as they are."""
    admin = admin_client(settings)
    existing = set(admin.list_topics(timeout=timeout).topics)
    missing = [spec for spec in specs if spec.name not in existing]
    if not missing:
        return
    futures = admin.create_topics(
        [
            NewTopic(
                spec.name,
                num_partitions=spec.partitions,
                replication_factor=settings.replication_factor,
                config=spec.config,
            )
            for spec in missing
        ],
        operation_timeout=timeout,
    )
    for name, future in futures.items():
        try:
            future.result(timeout=timeout)
            logger.info("created topic %s", name)
        except KafkaException as exc:
            if exc.args and exc.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS:
                continue
            raise


def align_topic_configs(
    settings: CommonSettings, specs: list[TopicSpec], timeout: float = 30.0
) -> None:
    """Set each spec's config on its topic if it exists (what :func:`ensure_topics` gives
    a topic it creates), leaving the topic's other settings as they are."""
    admin = admin_client(settings)
    existing = set(admin.list_topics(timeout=timeout).topics)
    resources = [
        ConfigResource(
            ResourceType.TOPIC,
            spec.name,
            incremental_configs=[
                ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET)
                for name, value in spec.config.items()
            ],
        )
        for spec in specs
        if spec.name in existing and spec.config
    ]
    if not resources:
        return
    futures = admin.incremental_alter_configs(resources, request_timeout=timeout)
    for resource, future in futures.items():
        future.result(timeout=timeout)
        logger.debug("aligned the config of topic %s", resource.name)
