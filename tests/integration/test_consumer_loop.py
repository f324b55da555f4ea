"""The consumer loop block on a real broker: one bad record never stops it."""

from __future__ import annotations

import threading
import uuid

import pytest
from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition

from taskstream.infra.consumer_loop import ConsumerLoop
from taskstream.infra.health import State
from taskstream.infra.kafka import TopicSpec, ensure_topics
from taskstream.infra.settings import CommonSettings
from tests.support import eventually

pytestmark = pytest.mark.kafka


def _topic_with(bootstrap: str, prefix: str, values: list[bytes]) -> str:
    settings = CommonSettings(kafka_bootstrap_servers=bootstrap, topic_prefix=prefix)
    topic = f"{prefix}loop"
    ensure_topics(settings, [TopicSpec(topic, 1, {})])
    producer = Producer({"bootstrap.servers": bootstrap})
    for value in values:
        producer.produce(topic, value=value)
    assert producer.flush(30) == 0
    return topic


def _consumer(bootstrap: str, topic: str) -> Consumer:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    consumer.assign([TopicPartition(topic, 0, 0)])
    return consumer


def test_a_record_that_raises_is_handed_to_the_component_and_the_loop_goes_on(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    values = [b"1", b"2", b"poison", b"4", b"5"]
    topic = _topic_with(kafka_bootstrap, topic_prefix, values)
    consumer = _consumer(kafka_bootstrap, topic)
    handled: list[bytes] = []
    failed: list[tuple[int, str]] = []
    at_end = threading.Event()

    def handle(message: Message) -> None:
        error = message.error()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                at_end.set()
            return
        if message.value() == b"poison":
            raise ValueError("cannot evaluate this record")
        handled.append(message.value() or b"")

    def record_failed(message: Message, exc: Exception) -> None:
        failed.append((message.offset() or 0, str(exc)))

    loop = ConsumerLoop(
        "test-records",
        consumer=consumer,
        handle_record=handle,
        record_failed=record_failed,
        ready=at_end.is_set,
    )
    loop.start()
    try:
        eventually(lambda: len(handled) == 4 and at_end.is_set(), timeout=30, what="the records")
        assert handled == [b"1", b"2", b"4", b"5"]
        assert failed == [(2, "cannot evaluate this record")]
        status = loop.health()
        assert status.state is State.OK, status
        assert status.details["record_errors"] == 1
        assert "cannot evaluate this record" in status.details["last_record_error"]
        assert loop.alive
    finally:
        loop.stop()
        consumer.close()


def test_a_batch_that_raises_is_handled_again_record_by_record(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    topic = _topic_with(kafka_bootstrap, topic_prefix, [b"a", b"b", b"poison", b"c"])
    consumer = _consumer(kafka_bootstrap, topic)
    applied: list[bytes] = []
    skipped: list[bytes] = []

    def apply_batch(messages: list[Message]) -> None:
        values = [m.value() for m in messages if m.error() is None]
        if b"poison" in values:
            raise ValueError("one record of the batch is bad")
        applied.extend(v or b"" for v in values)

    def apply_one(message: Message) -> None:
        apply_batch([message])

    loop = ConsumerLoop(
        "test-batches",
        consumer=consumer,
        handle_batch=apply_batch,
        handle_record=apply_one,
        record_failed=lambda message, _: skipped.append(message.value() or b""),
    )
    loop.start()
    try:
        eventually(lambda: len(applied) == 3, timeout=30, what="the good records")
        assert applied == [b"a", b"b", b"c"] and skipped == [b"poison"]
        assert loop.alive and loop.health().state is State.OK
    finally:
        loop.stop()
        consumer.close()


def test_a_loop_that_stops_advancing_while_records_wait_turns_unavailable(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    topic = _topic_with(kafka_bootstrap, topic_prefix, [str(n).encode() for n in range(50)])
    consumer = _consumer(kafka_bootstrap, topic)
    release = threading.Event()

    def handle(message: Message) -> None:
        if message.value() == b"10":
            release.wait(60)  # a component stuck on one record (a hung database call)

    loop = ConsumerLoop(
        "test-stall", consumer=consumer, handle_record=handle, batch_size=1, stall_after=1.0
    )
    loop.start()
    try:
        status = eventually(
            lambda: (s := loop.health()).state is State.UNAVAILABLE and s,
            timeout=30,
            what="the stalled loop to be reported",
        )
        assert status.reason is not None and "test-stall" in status.reason
        release.set()
        eventually(lambda: loop.health().state is State.OK, timeout=30, what="recovery")
    finally:
        release.set()
        loop.stop()
        consumer.close()
