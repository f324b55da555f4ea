"""The local 3-node KRaft cluster: replicated topics, and nodes killed with SIGKILL and
brought back on the same ports and data, without losing an acknowledged write."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

from taskstream.dev_broker.local_kafka_cluster import LocalKafkaCluster
from taskstream.infra.kafka import TopicSpec, ensure_topics, standard_topics
from taskstream.infra.settings import CommonSettings
from tests.support import eventually

pytestmark = pytest.mark.kafka


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalKafkaCluster]:
    cluster = LocalKafkaCluster(3)
    started = time.monotonic()
    cluster.start(timeout=180)
    print(f"3-node cluster started in {time.monotonic() - started:.1f}s")
    try:
        yield cluster
    finally:
        cluster.stop()
        assert cluster.running() == []


def _produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True})
    errors: list[KafkaError] = []
    for value in values:
        producer.produce(topic, value, on_delivery=lambda err, msg: err and errors.append(err))
    assert producer.flush(60) == 0, "writes still undelivered after 60 s"
    assert not errors, errors


def _read_all(bootstrap: str, topic: str, partitions: int) -> list[bytes]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"read-{uuid.uuid4().hex}",
            "enable.partition.eof": True,
            "isolation.level": "read_committed",
        }
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    values: list[bytes] = []
    at_end: set[int] = set()
    deadline = time.monotonic() + 60
    try:
        while len(at_end) < partitions:
            assert time.monotonic() < deadline, f"not at the end of {topic} in 60 s"
            message = consumer.poll(0.5)
            if message is None:
                continue
            if message.error() is not None:
                assert message.error().code() == KafkaError._PARTITION_EOF, message.error()
                at_end.add(message.partition() or 0)
                continue
            values.append(message.value() or b"")
    finally:
        consumer.close()
    return values


def test_the_services_topics_are_replicated_three_times_with_two_in_sync(
    cluster: LocalKafkaCluster,
) -> None:
    settings = CommonSettings(
        kafka_bootstrap_servers=cluster.bootstrap_servers,
        topic_prefix=f"rf-{uuid.uuid4().hex[:8]}.",
        replication_factor=3,
        min_insync_replicas=2,
    )
    specs = standard_topics(settings, ["default"])
    ensure_topics(settings, specs)
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap_servers})

    def replicas() -> dict[str, set[int]]:
        topics = admin.list_topics(timeout=30).topics
        return {
            spec.name: {len(p.replicas) for p in topics[spec.name].partitions.values()}
            for spec in specs
            if spec.name in topics
        }

    seen = eventually(lambda: len(r := replicas()) == len(specs) and r, what="topic metadata")
    assert seen == {spec.name: {3} for spec in specs}
    resources = [ConfigResource(ResourceType.TOPIC, spec.name) for spec in specs]

    def min_insync() -> dict[str, str] | None:
        """Each topic's min.insync.replicas; None while a broker does not know a topic
        yet (metadata reaches the three nodes one after another)."""
        try:
            return {
                resource.name: future.result(30)["min.insync.replicas"].value
                for resource, future in admin.describe_configs(resources).items()
            }
        except KafkaException:
            return None

    configured = eventually(min_insync, what="every topic's configuration on its broker")
    assert configured == {spec.name: "2" for spec in specs}


def test_a_killed_node_and_a_killed_cluster_come_back_with_every_write(
    cluster: LocalKafkaCluster,
) -> None:
    topic = f"faults-{uuid.uuid4().hex[:8]}"
    settings = CommonSettings(
        kafka_bootstrap_servers=cluster.bootstrap_servers,
        topic_prefix="unused.",
        replication_factor=3,
        min_insync_replicas=2,
    )
    ensure_topics(settings, [TopicSpec(topic, 3, {"min.insync.replicas": "2"})])
    _produce(cluster.bootstrap_servers, topic, [b"before-%d" % n for n in range(100)])

    victim = cluster.node_ids[0]
    port = cluster.node(victim).port
    cluster.kill(victim)
    assert victim not in cluster.running()
    _produce(cluster.bootstrap_servers, topic, [b"one-down-%d" % n for n in range(100)])
    took = cluster.restart(victim)
    print(f"node {victim} restarted in {took:.1f}s")
    assert cluster.node(victim).port == port, "a node comes back on its own port"

    cluster.kill()
    assert cluster.running() == []
    took = cluster.restart()
    print(f"whole cluster restarted in {took:.1f}s")
    _produce(cluster.bootstrap_servers, topic, [b"after-%d" % n for n in range(100)])

    values = _read_all(cluster.bootstrap_servers, topic, 3)
    assert len(values) == 300 and len(set(values)) == 300, f"{len(values)} records read back"
