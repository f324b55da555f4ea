"""After kill -9 of an executor, only what was in flight runs again.

An executor commits a work order's offset as soon as the order's outcome is on the broker
(not on a timer), so the next owner of the partition starts right after the finished
orders. Orders that finish one after another on one partition show it: each offset is
committed within a fraction of a second of its outcome, and a kill -9 right after the
last outcome leaves nothing finished to run again.
"""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from confluent_kafka import Consumer, TopicPartition

from taskstream.cli.dev import ServiceProcess, service_env, start_service, wait_healthy
from taskstream.infra.kafka import ensure_topics, standard_topics
from taskstream.infra.processes import free_port
from taskstream.schemas import Priority
from tests.integration.executor_support import EventLog, Writer, executor_settings, work_order
from tests.support import eventually

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]

ORDERS = 30
STEP = 0.05
"""Order ``i`` sleeps ``i * STEP``: they finish in offset order, over 1.5 s."""
COMMIT_LATENESS = 0.3
"""An order that finished this close to the kill may run again (its commit was under way)."""
MEDIAN_LATENESS = 0.15
"""The median delay from an outcome to its offset's commit (a 1 s timer gives ~0.5 s)."""


@pytest.fixture
def launch(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> Iterator[Callable[[str], ServiceProcess]]:
    settings = executor_settings(kafka_bootstrap, topic_prefix, execution_partitions=1)
    ensure_topics(settings, standard_topics(settings, settings.executor_queues))
    services: dict[str, ServiceProcess] = {}

    def start(name: str) -> ServiceProcess:
        port = free_port()
        env = service_env(
            KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap,
            TASKSTREAM_KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap,
            TASKSTREAM_TOPIC_PREFIX=topic_prefix,
            TASKSTREAM_TASK_EVENTS_PARTITIONS="3",
            TASKSTREAM_EXECUTION_PARTITIONS="1",
            TASKSTREAM_EXECUTOR_ID=name,
            TASKSTREAM_EXECUTOR_PORT=str(port),
            TASKSTREAM_EXECUTOR_CONCURRENCY=str(ORDERS),
            TASKSTREAM_EXECUTOR_SESSION_TIMEOUT="6s",
            TASKSTREAM_LOG_FORMAT="json",
        )
        service = start_service(
            "executor", env, f"http://127.0.0.1:{port}/health", tmp_path / f"{name}.log"
        )
        services[name] = service
        wait_healthy(service)
        return service

    try:
        yield start
    finally:
        for service in services.values():
            service.stop()


def test_a_kill_reruns_only_what_was_in_flight(
    launch: Callable[[str], ServiceProcess], kafka_bootstrap: str, topic_prefix: str
) -> None:
    settings = executor_settings(kafka_bootstrap, topic_prefix, execution_partitions=1)
    topic = settings.topics.execution("default", Priority.MEDIUM.value)
    partition = TopicPartition(topic, 0)
    group = Consumer(
        {"bootstrap.servers": kafka_bootstrap, "group.id": settings.group_id("default")}
    )
    log = EventLog(kafka_bootstrap, settings.topics.task_events)
    first = launch("exec-first")
    try:

        def committed() -> int:
            [tp] = group.committed([partition], timeout=10)
            return max(tp.offset, 0)

        _, base = group.get_watermark_offsets(partition, timeout=10)
        eventually(lambda: _assigned(first), what="the executor to own its 3 partitions")
        orders = [
            work_order(
                "sleep",
                {"seconds": n * STEP},
                priority=Priority.MEDIUM,
                task_id=f"t{n}-{uuid.uuid4().hex[:6]}",
            )
            for n in range(ORDERS)
        ]
        ids = [order.execution_id for order in orders]
        Writer(settings).orders(*orders)  # one partition: order n has offset base + n

        # watch the committed offset while they finish; kill -9 right after the last outcome
        commits: list[tuple[float, int]] = []
        deadline = time.monotonic() + 60
        while True:
            commits.append((time.time(), committed()))
            log.poll(most=0.01, wait=0.01)  # sample the commit every ~20 ms
            done = {s.execution_id for s in log.of("ExecutionSucceeded", poll=False)}
            if done >= set(ids):
                first.process.kill()
                killed_at = time.time()
                first.process.wait(10)
                break
            assert time.monotonic() < deadline, f"only {len(done)} of {ORDERS} finished"
        commits.append((time.time(), committed()))

        finished_at = {
            e.data.execution_id: e.occurred_at.timestamp()
            for e in log.envelopes("ExecutionSucceeded", poll=False)
        }
        # how long after its outcome each order's offset was seen committed (killed: None)
        lateness = []
        for n, execution in enumerate(ids):
            outcome = finished_at[execution]
            committed_at = next((t for t, offset in commits if offset > base + n), None)
            if outcome < killed_at - COMMIT_LATENESS:
                lateness.append(None if committed_at is None else committed_at - outcome)

        launch("exec-second")
        eventually(lambda: committed() == base + ORDERS, timeout=60, what="the rest to be run")
        runs = log.run_counts()
        reran = [
            (n, round(killed_at - finished_at[e], 3)) for n, e in enumerate(ids) if runs[e] > 1
        ]
        in_flight = [(n, ago) for n, ago in reran if ago <= COMMIT_LATENESS]
        assert reran == in_flight, f"finished executions ran again (n, s before the kill): {reran}"
        # a 1 s timer makes it ~0.5 s; a stall of this busy machine can delay a few commits
        seen = sorted(late for late in lateness if late is not None)
        assert len(seen) == len(lateness), (
            f"finished long before the kill, never committed: {lateness}"
        )
        assert statistics.median(seen) < MEDIAN_LATENESS, f"commit lateness (s): {seen}"
        print(
            f"\n{len(reran)} rerun(s) after the kill, all finished < {COMMIT_LATENESS}s before it"
        )
    finally:
        log.close()
        group.close()


def _assigned(service: ServiceProcess) -> bool:
    health = httpx.get(service.health_url, timeout=5).json()
    return sum(c.get("assigned_partitions", 0) for c in health["consumers"]) == 3
