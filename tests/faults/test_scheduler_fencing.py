"""The scheduler survives a broker outage longer than its transaction timeout.

Found by the fault round: after kill -9 of a broker, the fire transaction open at that
moment outlives ``transaction.timeout.ms``; the broker aborts it by bumping the producer
epoch, and librdkafka reports the transactional producer *fenced* (a fatal error), though
no other instance exists (confluentinc/librdkafka#3928). The scheduler took that for a
newer instance, stopped for good, and no task fired again until the core was restarted.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from confluent_kafka import KafkaException

from taskstream.cli.dev import service_env, start_service, wait_healthy
from taskstream.dev_broker.local_kafka import LocalKafkaBroker
from taskstream.infra.processes import free_port
from tests.faults.harness import FlowWatch
from tests.faults.ledger import read_committed
from tests.support import eventually

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]


def test_fires_resume_after_an_outage_longer_than_the_transaction_timeout(
    tmp_path: Path,
) -> None:
    broker = LocalKafkaBroker(port=free_port(), data_dir=tmp_path / "kafka")
    bootstrap = broker.start(timeout=120)
    port = free_port()
    prefix = f"fencing-{uuid.uuid4().hex[:8]}."
    env = service_env(
        KAFKA_BOOTSTRAP_SERVERS=bootstrap,
        TASKSTREAM_KAFKA_BOOTSTRAP_SERVERS=bootstrap,
        TASKSTREAM_TOPIC_PREFIX=prefix,
        TASKSTREAM_TASK_EVENTS_PARTITIONS="3",
        TASKSTREAM_EXECUTION_PARTITIONS="2",
        TASKSTREAM_API_PORT=str(port),
        TASKSTREAM_DATABASE_URL=f"sqlite:///{tmp_path / 'store.db'}",
        TASKSTREAM_SCHEDULER_TRANSACTION_TIMEOUT_MS="3000",
        TASKSTREAM_SCHEDULER_SESSION_TIMEOUT_MS="6000",
        TASKSTREAM_LOG_FORMAT="json",
    )
    api = f"http://127.0.0.1:{port}"
    core = start_service("core", env, f"{api}/health", tmp_path / "core.log")
    watch = None
    try:
        wait_healthy(core)
        body = [
            {"name": f"tick-{n}", "schedule": {"every": "1s"}, "handler": "noop"} for n in range(20)
        ]
        response = httpx.post(f"{api}/api/tasks/batch", json=body, timeout=30)
        assert response.status_code == 201, response.text
        watch = FlowWatch(bootstrap, f"{prefix}task-events").start()
        eventually(
            lambda: watch.flowing_since(time.monotonic() - 3, 10, outcomes=False), what="fires"
        )

        # Down for twice the transaction timeout: the open fire transaction times out.
        broker.kill()
        killed = time.monotonic()
        eventually(lambda: time.monotonic() - killed >= 6, timeout=10, what="the outage")
        broker.start(timeout=120)
        restarted, restarted_at = time.monotonic(), datetime.now(UTC)

        def fired_since_restart() -> int:
            try:
                records = read_committed(bootstrap, [f"{prefix}task-events"], timeout=30)
            except KafkaException as exc:  # the restarted broker is still electing leaders
                raise AssertionError(f"reading the log: {exc}") from exc
            return sum(
                1
                for r in records
                if r.value["type"] == "ExecutionScheduled"
                and datetime.fromisoformat(r.value["occurred_at"]) > restarted_at
            )

        try:
            eventually(
                lambda: fired_since_restart() >= 100,
                timeout=60,
                interval=1.0,
                what="100 fires after the broker came back",
            )
        except AssertionError as exc:
            raise AssertionError(f"{exc}; core log:\n{core.log_tail(60)}") from None
        print(f"fires resumed within {time.monotonic() - restarted:.1f}s of the restart")
        health = httpx.get(f"{api}/health", timeout=5).json()
        assert "failed" not in str(health.get("scheduler", health)), health
    finally:
        if watch is not None:
            watch.stop()
        core.stop()
        broker.stop()
