"""``consume_available`` on a real broker: a lone message is not held until the timeout."""

from __future__ import annotations

import time
import uuid

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from taskstream.infra.kafka import TopicSpec, consume_available, ensure_topics
from taskstream.infra.settings import CommonSettings

pytestmark = pytest.mark.kafka


def _consumer(bootstrap: str, topic: str) -> Consumer:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 20,
        }
    )
    consumer.assign([TopicPartition(topic, 0, 0)])
    return consumer


def test_one_message_comes_back_at_once_and_a_backlog_in_bounded_batches(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    settings = CommonSettings(kafka_bootstrap_servers=kafka_bootstrap, topic_prefix=topic_prefix)
    topic = f"{topic_prefix}consume"
    ensure_topics(settings, [TopicSpec(topic, 1, {})])
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    consumer = _consumer(kafka_bootstrap, topic)
    try:
        assert consume_available(consumer, 100, 1.0) == []  # nothing there: the timeout

        producer.produce(topic, value=b"lone")
        assert producer.flush(30) == 0
        started = time.monotonic()
        [lone] = consume_available(consumer, 100, 60.0)
        waited = time.monotonic() - started
        assert lone.value() == b"lone"
        # Consumer.consume(100, 60) would have held it for the whole minute
        assert waited < 30, f"held for {waited:.1f}s"

        for n in range(50):
            producer.produce(topic, value=str(n).encode())
        assert producer.flush(30) == 0
        seen: list[bytes] = []
        deadline = time.monotonic() + 60
        while len(seen) < 50 and time.monotonic() < deadline:
            batch = consume_available(consumer, 20, 5.0)
            assert len(batch) <= 20
            seen.extend(message.value() or b"" for message in batch)
        assert seen == [str(n).encode() for n in range(50)], "in order, none lost or repeated"
    finally:
        consumer.close()
