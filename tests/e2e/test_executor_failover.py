"""kill -9 an executor process in the middle of 100 running executions: none is lost."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from taskstream.cli.dev import ServiceProcess, service_env, start_service, wait_healthy
from taskstream.infra.kafka import ensure_topics, standard_topics
from taskstream.infra.processes import free_port
from taskstream.schemas import Priority
from tests.integration.executor_support import (
    EventLog,
    Writer,
    executor_settings,
    read_raw,
    work_order,
)
from tests.support import eventually

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]

ORDERS = 100
SLEEP = 4


@pytest.fixture
def executors(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> Iterator[dict[str, ServiceProcess]]:
    settings = executor_settings(kafka_bootstrap, topic_prefix, execution_partitions=4)
    ensure_topics(settings, standard_topics(settings, settings.executor_queues))
    services: dict[str, ServiceProcess] = {}
    try:
        for name in ("exec-a", "exec-b"):
            port = free_port()
            env = service_env(
                KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap,
                TASKSTREAM_KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap,
                TASKSTREAM_TOPIC_PREFIX=topic_prefix,
                TASKSTREAM_TASK_EVENTS_PARTITIONS="3",
                TASKSTREAM_EXECUTION_PARTITIONS="4",
                TASKSTREAM_EXECUTOR_ID=name,
                TASKSTREAM_EXECUTOR_PORT=str(port),
                TASKSTREAM_EXECUTOR_CONCURRENCY=str(ORDERS),
                TASKSTREAM_EXECUTOR_SESSION_TIMEOUT="6s",
                TASKSTREAM_EXECUTOR_HEARTBEAT_INTERVAL="1s",
                TASKSTREAM_LOG_FORMAT="json",
            )
            service = start_service(
                "executor", env, f"http://127.0.0.1:{port}/health", tmp_path / f"{name}.log"
            )
            services[name] = service
            wait_healthy(service)
        yield services
    finally:
        for service in services.values():
            service.stop()


def _assigned(service: ServiceProcess) -> int:
    health = httpx.get(service.health_url, timeout=5).json()
    return int(sum(c.get("assigned_partitions", 0) for c in health["consumers"]))


def test_every_execution_completes_on_the_survivor(
    executors: dict[str, ServiceProcess], kafka_bootstrap: str, topic_prefix: str
) -> None:
    settings = executor_settings(kafka_bootstrap, topic_prefix, execution_partitions=4)
    a, b = executors["exec-a"], executors["exec-b"]
    eventually(
        lambda: _assigned(a) > 0 and _assigned(b) > 0 and _assigned(a) + _assigned(b) == 12,
        what="both executors to share the 12 partitions",
    )
    lanes = (Priority.HIGH, Priority.MEDIUM, Priority.LOW)
    orders = [
        work_order(
            "sleep",
            {"seconds": SLEEP},
            priority=lanes[n % 3],
            task_id=f"t{n}-{uuid.uuid4().hex[:6]}",
        )
        for n in range(ORDERS)
    ]
    ids = {order.execution_id for order in orders}
    log = EventLog(kafka_bootstrap, settings.topics.task_events)
    try:
        Writer(settings).orders(*orders)

        def all_running() -> list[Any] | None:
            started = log.of("ExecutionStarted")
            return started if {s.execution_id for s in started} == ids else None

        started = eventually(all_running, what="all 100 executions running")
        assert not log.of("ExecutionSucceeded"), "killed in the middle: nothing finished yet"
        on_a = {s.execution_id for s in started if s.worker_id == "exec-a"}
        assert on_a and len(on_a) < ORDERS, "both executors are running some"

        a.process.kill()  # kill -9
        a.process.wait(10)

        def all_succeeded() -> bool:
            return ids <= {s.execution_id for s in log.of("ExecutionSucceeded")}

        eventually(all_succeeded, timeout=90, what="every execution to succeed")
        succeeded = log.of("ExecutionSucceeded")
        assert {s.execution_id for s in succeeded} == ids, "none lost, none invented"
        for execution in on_a:
            runs = log.of("ExecutionStarted", execution, poll=False)
            assert [r.worker_id for r in runs] == ["exec-a", "exec-b"], execution
            assert {s.worker_id for s in succeeded if s.execution_id == execution} == {"exec-b"}
        duplicates = len(log.of("ExecutionStarted", poll=False)) - ORDERS
        print(
            f"\n{len(on_a)} executions were running on the killed executor; "
            f"{duplicates} reruns on the survivor, all with their original execution ids"
        )
        assert duplicates == len(on_a)
    finally:
        log.close()
    beats = {key: value for key, value, _ in read_raw(kafka_bootstrap, settings.topics.workers)}
    assert beats[b"exec-a"] is not None, "a killed executor leaves no tombstone: it is lost"
