"""A backfill goes on across a kill -9 of the core that owns its task: each slot once.

Two cores share the task-events partitions. A backfill of 24 hourly slots runs at one
slot a second; a few seconds in, the instance that owns the task is killed (no goodbye to
the group, its open transaction left to time out). The survivor takes the partition over
from its store and the log, and finishes the range. ``task-events`` is read back with
``read_committed``: every slot of the range fired once, counted by execution id.
"""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from taskstream.cli.dev import ServiceProcess, service_env, start_service, wait_healthy
from taskstream.infra.processes import free_port
from tests.kafka_read import read_topic
from tests.support import eventually

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]

PARTITIONS = 6
DAY = (datetime.now(UTC) - timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)


def _core(env: dict[str, str], workdir: Path, name: str) -> ServiceProcess:
    port = free_port()
    core_env = service_env(
        env,
        TASKSTREAM_API_PORT=str(port),
        TASKSTREAM_INSTANCE_ID=name,
        TASKSTREAM_DATABASE_URL=f"sqlite:///{workdir / name}.db",
    )
    service = start_service(
        "core", core_env, f"http://127.0.0.1:{port}/health", workdir / f"{name}.log"
    )
    wait_healthy(service)
    return service


def _api(core: ServiceProcess) -> str:
    return core.health_url.removesuffix("/health")


def _fired(bootstrap: str, topic: str, task_id: str) -> Counter[str]:
    """How often each backfill execution of the task was fired, on the committed log."""
    records = read_topic(bootstrap, topic)
    return Counter(
        record.value["data"]["execution_id"]
        for record in records
        if record.value["type"] == "ExecutionScheduled"
        and record.value["task_id"] == task_id
        and record.value["data"]["trigger"] == "backfill"
    )


def test_a_backfill_fires_each_slot_once_across_a_kill_of_its_owner(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    prefix = f"backfill-{uuid.uuid4().hex[:8]}."
    topic = f"{prefix}task-events"
    env = service_env(
        KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap,
        TASKSTREAM_KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap,
        TASKSTREAM_TOPIC_PREFIX=prefix,
        TASKSTREAM_TASK_EVENTS_PARTITIONS=str(PARTITIONS),
        TASKSTREAM_SCHEDULER_SESSION_TIMEOUT_MS="6000",
        TASKSTREAM_SCHEDULER_TRANSACTION_TIMEOUT_MS="6000",
        TASKSTREAM_LOG_FORMAT="json",
    )
    cores = [_core(env, tmp_path, f"core-{n}") for n in range(2)]
    try:
        eventually(
            lambda: all(httpx.get(c.health_url).json()["owned_partitions"] for c in cores),
            timeout=60,
            what="both instances to own partitions",
        )
        body = {"name": "hourly", "schedule": {"cron": "0 * * * *"}, "handler": "noop"}
        created = httpx.post(f"{_api(cores[0])}/api/tasks", json=body, timeout=30)
        assert created.status_code == 201, created.text
        task_id = created.json()["id"]
        [partition] = [
            record.partition
            for record in read_topic(kafka_bootstrap, topic)
            if record.value["task_id"] == task_id
        ]

        def owner_of_the_task() -> list[ServiceProcess]:
            owned = [
                c for c in cores if partition in httpx.get(c.health_url).json()["owned_partitions"]
            ]
            return owned if len(owned) == 1 else []

        [owner] = eventually(owner_of_the_task, timeout=30, what="one owner of the task")
        [survivor] = [c for c in cores if c is not owner]
        backfill: dict[str, Any] = {
            "start": DAY.isoformat(),
            "end": (DAY + timedelta(hours=23)).isoformat(),
            "rate": 1,
        }
        accepted = httpx.post(
            f"{_api(survivor)}/api/tasks/{task_id}/backfill", json=backfill, timeout=30
        )
        assert accepted.status_code == 202, accepted.text
        eventually(
            lambda: len(_fired(kafka_bootstrap, topic, task_id)) >= 5,
            timeout=60,
            interval=0.5,
            what="the owner to fire part of the range",
        )
        owner.process.kill()  # kill -9: no goodbye to the group, open transaction left
        owner.process.wait(10)

        def completed() -> dict[str, Any] | None:
            task = httpx.get(f"{_api(survivor)}/api/tasks/{task_id}", timeout=10).json()
            progress: dict[str, Any] | None = task.get("backfill")
            return progress if progress and progress["state"] == "completed" else None

        progress = eventually(
            completed,
            timeout=120,
            interval=0.5,
            what=lambda: f"the survivor to finish\n{survivor.log_tail(40)}",
        )
        assert (progress["fired"], progress["total"]) == (24, 24)
        assert partition in httpx.get(survivor.health_url).json()["owned_partitions"]
    finally:
        for core in cores:
            core.stop()
    fired = _fired(kafka_bootstrap, topic, task_id)
    assert len(fired) == 24, f"{len(fired)} distinct slots fired, not 24"
    twice = {execution: n for execution, n in fired.items() if n > 1}
    assert not twice, f"fired more than once: {twice}"
