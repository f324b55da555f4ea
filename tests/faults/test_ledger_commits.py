"""The ledger reads the executors' offset commits from the broker's ``__consumer_offsets``."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from tests.faults.ledger import CommitTimes, read_commits

pytestmark = pytest.mark.kafka


def test_the_commits_of_a_group_are_read_in_order_with_their_times(kafka_bootstrap: str) -> None:
    prefix = f"lc-{uuid.uuid4().hex[:8]}."
    topic = f"{prefix}orders"
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])[topic].result(30)
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for n in range(6):
        producer.produce(topic, value=str(n).encode(), partition=0)
    assert producer.flush(30) == 0
    before = datetime.now(UTC) - timedelta(seconds=1)
    committers = {}
    for group in (f"{prefix}executor-default", f"{prefix}other"):
        consumer = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": group})
        committers[group] = consumer
    executor = committers[f"{prefix}executor-default"]
    executor.commit(offsets=[TopicPartition(topic, 0, 3)], asynchronous=False)
    executor.commit(offsets=[TopicPartition(topic, 0, 5)], asynchronous=False)
    committers[f"{prefix}other"].commit(offsets=[TopicPartition(topic, 0, 6)], asynchronous=False)
    for consumer in committers.values():
        consumer.close()

    commits = read_commits(kafka_bootstrap, f"{prefix}executor-")
    assert [offset for _, offset in commits[(topic, 0)]] == [3, 5]  # not the other group's
    first, second = (at for at, _ in commits[(topic, 0)])
    assert before <= first <= second <= datetime.now(UTC) + timedelta(seconds=1)
    times = CommitTimes(commits)
    assert times.covered(topic, 0, 2) == first
    assert times.covered(topic, 0, 3) == second
    assert times.covered(topic, 0, 5) is None
    assert times.covered(topic, 1, 0) is None
