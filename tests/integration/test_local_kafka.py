"""Integration tests of taskstream.dev_broker.local_kafka against a real Kafka broker.

They start the genuine Apache Kafka broker (KRaft, single node) on free
loopback ports; the first run fetches its jars with Maven (see
``fetch_kafka_jars``). No conftest fixtures are used.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from confluent_kafka import Consumer, KafkaError, Message, Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic  # confluent_kafka.admin does not re-export it

from taskstream.dev_broker.local_kafka import KAFKA_VERSION, LocalKafkaBroker

pytestmark = pytest.mark.kafka

_TIMEOUT = 30.0


@pytest.fixture(scope="module")
def kafka() -> Iterator[LocalKafkaBroker]:
    broker = LocalKafkaBroker(port=0)
    broker.start(timeout=120)
    try:
        yield broker
    finally:
        broker.stop()
        assert not broker.is_running()


def _create_topic(bootstrap: str, partitions: int = 3) -> str:
    topic = f"test-local-kafka-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics(
        [NewTopic(topic, num_partitions=partitions, replication_factor=1)],
        operation_timeout=_TIMEOUT,
    )
    futures[topic].result(timeout=_TIMEOUT)
    deadline = time.monotonic() + _TIMEOUT
    while True:  # wait until every partition has a leader
        metadata = admin.list_topics(topic, timeout=_TIMEOUT)
        parts = metadata.topics[topic].partitions
        if len(parts) == partitions and all(p.leader >= 0 for p in parts.values()):
            return topic
        assert time.monotonic() < deadline, f"topic {topic} not ready: {parts}"


def _consume_until(
    conf: dict[str, str | int | float | bool],
    topic: str,
    done: Callable[[list[Message]], bool],
    timeout: float = _TIMEOUT,
) -> list[Message]:
    """Poll ``topic`` until ``done(messages)`` is true or the deadline passes."""
    consumer = Consumer({"auto.offset.reset": "earliest", **conf})
    consumer.subscribe([topic])
    messages: list[Message] = []
    errors: list[KafkaError] = []
    deadline = time.monotonic() + timeout
    try:
        while not done(messages):
            remaining = deadline - time.monotonic()
            assert remaining > 0, (
                f"gave up after {timeout}s; got {[m.value() for m in messages]}, errors {errors}"
            )
            msg = consumer.poll(min(1.0, remaining))
            if msg is None:
                continue
            error = msg.error()
            if error is not None:
                assert not error.fatal(), error
                errors.append(error)  # transient (e.g. coordinator still loading)
                continue
            messages.append(msg)
    finally:
        consumer.close()
    return messages


def test_produce_consume_round_trip(kafka: LocalKafkaBroker) -> None:
    bootstrap = kafka.bootstrap_servers
    assert bootstrap.startswith("127.0.0.1:") and kafka.port not in (None, 0, 9092)
    topic = _create_topic(bootstrap, partitions=3)

    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    reports: list[tuple[KafkaError | None, int | None]] = []
    sent = {f"key-{i}".encode(): f"value-{i}".encode() for i in range(6)}
    for key, value in sent.items():
        producer.produce(
            topic, key=key, value=value, on_delivery=lambda e, m: reports.append((e, m.partition()))
        )
    assert producer.flush(_TIMEOUT) == 0
    assert [error for error, _ in reports] == [None] * len(sent)
    assert {partition for _, partition in reports} <= {0, 1, 2}

    received = _consume_until(
        {"bootstrap.servers": bootstrap, "group.id": f"g-{topic}"},
        topic,
        lambda msgs: len(msgs) >= len(sent),
    )
    assert {m.key(): m.value() for m in received} == sent


def test_committed_transaction_is_visible_read_committed(kafka: LocalKafkaBroker) -> None:
    bootstrap = kafka.bootstrap_servers
    topic = _create_topic(bootstrap, partitions=3)

    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"tx-{topic}"})
    producer.init_transactions(_TIMEOUT)
    producer.begin_transaction()
    producer.produce(topic, value=b"aborted", partition=0)
    assert producer.flush(_TIMEOUT) == 0
    producer.abort_transaction(_TIMEOUT)
    producer.begin_transaction()
    producer.produce(topic, value=b"committed", partition=0)
    producer.commit_transaction(_TIMEOUT)

    received = _consume_until(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"g-{topic}",
            "isolation.level": "read_committed",
        },
        topic,
        lambda msgs: any(m.value() == b"committed" for m in msgs),
    )
    # Same partition, so the aborted record would have come first had it been visible.
    assert [m.value() for m in received] == [b"committed"]


def test_aiokafka_group_consumer_reads(kafka: LocalKafkaBroker) -> None:
    """aiokafka (what faust uses) joins a consumer group on Kafka 4.x and reads."""
    bootstrap = kafka.bootstrap_servers
    topic = _create_topic(bootstrap, partitions=3)
    producer = Producer({"bootstrap.servers": bootstrap})
    producer.produce(topic, key=b"k", value=b"for-aiokafka")
    assert producer.flush(_TIMEOUT) == 0

    async def consume() -> tuple[bytes | None, int | None]:
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            group_id=f"aio-{topic}",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await consumer.start()
        try:
            record = await asyncio.wait_for(consumer.getone(), _TIMEOUT)
            await consumer.commit()
            committed = await consumer.committed(TopicPartition(record.topic, record.partition))
            return record.value, committed
        finally:
            await consumer.stop()

    value, committed = asyncio.run(consume())
    assert value == b"for-aiokafka"
    assert committed == 1


def test_stop_terminates_the_broker_process(tmp_path: Path) -> None:
    broker = LocalKafkaBroker(port=0, log_file=tmp_path / "broker.log")
    assert broker.version == KAFKA_VERSION
    broker.start(timeout=120)
    pid = broker.pid
    data_dir = broker.data_dir
    assert pid is not None and data_dir is not None
    try:
        assert broker.is_running()
        os.kill(pid, 0)  # alive
        assert (data_dir / "server.properties").is_file()
    finally:
        broker.stop()
    assert not broker.is_running()
    assert broker.pid is None
    with pytest.raises(ProcessLookupError):  # exited and reaped
        os.kill(pid, 0)
    assert not data_dir.exists()  # temporary data dir removed
    assert "Kafka Server started" in (tmp_path / "broker.log").read_text(errors="replace")
    broker.stop()  # idempotent


def test_a_killed_broker_restarts_on_the_same_port_with_its_data(tmp_path: Path) -> None:
    """kill -9 then start(): same address (clients reconnect by themselves), same records."""
    broker = LocalKafkaBroker(port=0, data_dir=tmp_path / "kafka")
    bootstrap = broker.start(timeout=120)
    try:
        topic = f"restart-{uuid.uuid4().hex[:8]}"
        admin = AdminClient({"bootstrap.servers": bootstrap})
        admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[
            topic
        ].result(30)
        producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
        producer.produce(topic, b"before the kill")
        assert producer.flush(30) == 0

        broker.kill()
        assert not broker.is_running()
        assert broker.start(timeout=120) == bootstrap

        producer.produce(topic, b"after the restart")  # the same client, reconnected
        assert producer.flush(60) == 0
        consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"g-{uuid.uuid4().hex[:8]}",
                "auto.offset.reset": "earliest",
            }
        )
        consumer.subscribe([topic])
        values: list[bytes] = []
        deadline = time.monotonic() + 60
        while len(values) < 2 and time.monotonic() < deadline:
            message = consumer.poll(1.0)
            if message is not None and message.error() is None:
                values.append(message.value() or b"")
        consumer.close()
        assert values == [b"before the kill", b"after the restart"]
    finally:
        broker.stop()
