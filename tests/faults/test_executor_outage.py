"""After a broker outage longer than its session, an executor reruns nothing that finished.

Found by the fault round (81 to 137 finished executions ran again after a whole-cluster
restart): the orders running when the brokers died finished during the outage, and their
outcomes reached the broker when it came back; but the group session had expired, the
executor's assignment was *lost* (no commit possible), and when the same partition came
back it was read again from the last committed offset, so every one of them ran twice.
The executor now holds a lost partition's offsets and, given the partition back, goes on
past what finished.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from taskstream.cli.dev import service_env, start_service, wait_healthy
from taskstream.dev_broker.local_kafka import LocalKafkaBroker
from taskstream.infra.kafka import ensure_topics, standard_topics
from taskstream.infra.processes import free_port
from taskstream.schemas import Priority
from tests.integration.executor_support import EventLog, Writer, executor_settings, work_order
from tests.support import eventually

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]

ORDERS = 12
SESSION = 4.0
"""The executor's group session (seconds); the outage lasts longer."""

COORDINATOR_NOT_READY = {
    KafkaError.NOT_COORDINATOR,
    KafkaError.COORDINATOR_NOT_AVAILABLE,
    KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
}


def test_orders_that_finished_during_an_outage_are_not_run_again(tmp_path: Path) -> None:
    broker = LocalKafkaBroker(port=free_port(), data_dir=tmp_path / "kafka")
    bootstrap = broker.start(timeout=120)
    prefix = f"outage-{uuid.uuid4().hex[:8]}."
    settings = executor_settings(bootstrap, prefix, execution_partitions=1)
    ensure_topics(settings, standard_topics(settings, settings.executor_queues))
    port = free_port()
    env = service_env(
        KAFKA_BOOTSTRAP_SERVERS=bootstrap,
        TASKSTREAM_KAFKA_BOOTSTRAP_SERVERS=bootstrap,
        TASKSTREAM_TOPIC_PREFIX=prefix,
        TASKSTREAM_TASK_EVENTS_PARTITIONS="3",
        TASKSTREAM_EXECUTION_PARTITIONS="1",
        TASKSTREAM_EXECUTOR_ID="outage",
        TASKSTREAM_EXECUTOR_PORT=str(port),
        TASKSTREAM_EXECUTOR_CONCURRENCY=str(ORDERS),
        TASKSTREAM_EXECUTOR_SESSION_TIMEOUT=f"{SESSION:g}s",
        TASKSTREAM_LOG_FORMAT="json",
    )
    executor = start_service(
        "executor", env, f"http://127.0.0.1:{port}/health", tmp_path / "executor.log"
    )
    log = None
    group = None
    try:
        wait_healthy(executor)
        topic = settings.topics.execution("default", Priority.MEDIUM.value)
        partition = TopicPartition(topic, 0)
        orders = [
            work_order("sleep", {"seconds": 2}, task_id=f"t{n}-{uuid.uuid4().hex[:6]}")
            for n in range(ORDERS)
        ]
        ids = {order.execution_id for order in orders}
        Writer(settings).orders(*orders)
        log = EventLog(bootstrap, settings.topics.task_events)
        eventually(
            lambda: {s.execution_id for s in log.of("ExecutionStarted")} >= ids,
            timeout=60,
            what="every order to start",
        )

        # Down while they finish and longer than the session: the assignment is lost.
        broker.kill()
        killed = time.monotonic()
        eventually(lambda: time.monotonic() - killed >= SESSION + 4, timeout=20, what="outage")
        broker.start(timeout=120)

        group = Consumer({"bootstrap.servers": bootstrap, "group.id": settings.group_id("default")})

        def all_committed() -> bool:
            try:
                [tp] = group.committed([partition], timeout=10)
                _, high = group.get_watermark_offsets(partition, timeout=10)
            except KafkaException as exc:  # the broker back, its coordinator not yet
                if exc.args[0].retriable() or exc.args[0].code() in COORDINATOR_NOT_READY:
                    return False
                raise
            return tp.offset >= high > 0

        eventually(all_committed, timeout=90, interval=0.5, what="every order committed")
        eventually(
            lambda: {s.execution_id for s in log.of("ExecutionSucceeded")} >= ids,
            timeout=30,
            what="every outcome",
        )
        twice = {execution: n for execution, n in log.run_counts().items() if n > 1}
        assert not twice, (
            f"ran again after the outage: {twice}\nexecutor log:\n{executor.log_tail(80)}"
        )
        tail = executor.log_tail(400)
        assert "took" in tail, f"the partition was not taken back:\n{tail}"
    finally:
        if log is not None:
            log.close()
        if group is not None:
            group.close()
        executor.stop()
        broker.stop()
