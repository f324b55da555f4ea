"""Exactly-once firing across kill -9 failovers, and misfire policies after downtime.

Both tests read ``task-events`` back with ``read_committed`` and account for every slot
of every task: fired once (``ExecutionScheduled``) or skipped once (``ExecutionSkipped``).
"""

from __future__ import annotations

import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
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

SECOND = timedelta(seconds=1)


@dataclass
class Slots:
    fired: Counter[datetime] = field(default_factory=Counter)
    skipped: Counter[datetime] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    created: datetime | None = None


def _account(bootstrap: str, prefix: str) -> dict[str, Slots]:
    """Per task: how often each slot fired and was skipped."""
    tasks: dict[str, Slots] = defaultdict(Slots)
    for record in read_topic(bootstrap, f"{prefix}task-events"):
        event: dict[str, Any] = record.value
        data = event["data"]
        slots = tasks[event["task_id"]]
        if event["type"] == "TaskCreated":
            slots.created = datetime.fromisoformat(event["occurred_at"])
        elif event["type"] == "ExecutionScheduled" and data["trigger"] == "schedule":
            slots.fired[datetime.fromisoformat(data["scheduled_for"])] += 1
        elif event["type"] == "ExecutionSkipped":
            first = datetime.fromisoformat(data["scheduled_for"])
            for n in range(data["count"]):
                slots.skipped[first + n * SECOND] += 1
            slots.reasons[data["reason"]] += data["count"]
    return tasks


def _assert_each_slot_once(slots: Slots, until: datetime) -> None:
    assert slots.created is not None
    duplicates = {s: n for s, n in slots.fired.items() if n > 1}
    assert not duplicates, f"slots fired more than once: {duplicates}"
    both = set(slots.fired) & set(slots.skipped)
    assert not both, f"slots both fired and skipped: {sorted(both)}"
    expected = []
    slot = slots.created + SECOND
    while slot <= until:
        expected.append(slot)
        slot += SECOND
    missing = [s for s in expected if s not in slots.fired and s not in slots.skipped]
    assert not missing, f"{len(missing)} slots neither fired nor skipped, first {missing[:3]}"


def _core(env: dict[str, str], workdir: Path, name: str, **settings: str) -> ServiceProcess:
    port = free_port()
    core_env = service_env(
        env,
        TASKSTREAM_API_PORT=str(port),
        TASKSTREAM_INSTANCE_ID=name,
        TASKSTREAM_DATABASE_URL=f"sqlite:///{workdir / name}.db",
        **settings,
    )
    service = start_service(
        "core", core_env, f"http://127.0.0.1:{port}/health", workdir / f"{name}.log"
    )
    wait_healthy(service)
    return service


def _base_env(bootstrap: str, prefix: str) -> dict[str, str]:
    return service_env(
        KAFKA_BOOTSTRAP_SERVERS=bootstrap,
        TASKSTREAM_KAFKA_BOOTSTRAP_SERVERS=bootstrap,
        TASKSTREAM_TOPIC_PREFIX=prefix,
        TASKSTREAM_TASK_EVENTS_PARTITIONS="6",
        TASKSTREAM_SCHEDULER_SESSION_TIMEOUT_MS="6000",
        TASKSTREAM_SCHEDULER_TRANSACTION_TIMEOUT_MS="6000",
        TASKSTREAM_LOG_FORMAT="json",
    )


def _api(service: ServiceProcess) -> str:
    return service.health_url.removesuffix("/health")


def _create_every_second(api: str, count: int, **extra: Any) -> list[str]:
    ids = []
    for n in range(count):
        body = {"name": f"tick-{n}", "schedule": {"every": "1s"}, "handler": "noop", **extra}
        response = httpx.post(f"{api}/api/tasks", json=body, timeout=30)
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    return ids


def _wait_until(deadline: float) -> None:
    eventually(
        lambda: time.monotonic() >= deadline,
        timeout=deadline - time.monotonic() + 5,
        interval=0.2,
        what="the next phase",
    )


def test_every_slot_fires_exactly_once_while_instances_are_killed(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    prefix = f"failover-{uuid.uuid4().hex[:8]}."
    env = _base_env(kafka_bootstrap, prefix)
    cores = [_core(env, tmp_path, f"core-{n}") for n in range(3)]
    try:
        eventually(
            lambda: all(httpx.get(c.health_url).json()["owned_partitions"] for c in cores),
            timeout=60,
            what="every instance to own partitions",
        )
        api = _api(cores[0])
        ids = _create_every_second(api, 25)  # default misfire: fire_once after a 5 s grace
        ids += _create_every_second(api, 25, misfireGrace="60s")  # late slots still fire
        start = time.monotonic()
        victims = [cores[1], cores[2]]
        for victim, at in zip(victims, (20, 40), strict=True):
            _wait_until(start + at)
            victim.process.kill()  # kill -9: no goodbye to the group, open transaction left
            victim.process.wait(10)
        _wait_until(start + 60)
        survivor_view = httpx.get(cores[0].health_url).json()
        assert survivor_view["owned_partitions"] == list(range(6)), survivor_view
        until = datetime.now(UTC) - timedelta(seconds=15)  # let the last slots settle
    finally:
        for core in cores:
            core.stop()
    tasks = _account(kafka_bootstrap, prefix)
    assert set(ids) <= set(tasks)
    late_fired = 0
    for task_id in ids:
        _assert_each_slot_once(tasks[task_id], until)
        late_fired += sum(tasks[task_id].fired.values())
    assert late_fired > 50 * 45, "most slots fired"
    for task_id in ids[25:]:  # a 60 s grace covers the failover: nothing skipped
        assert not tasks[task_id].skipped, tasks[task_id].reasons


def test_misfire_policies_after_30_seconds_of_downtime(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    prefix = f"misfire-{uuid.uuid4().hex[:8]}."
    env = _base_env(kafka_bootstrap, prefix)
    core = _core(env, tmp_path, "only")
    policies = ("fire_once", "fire_all", "skip")
    try:
        by_policy = {p: _create_every_second(_api(core), 1, misfire=p)[0] for p in policies}
        eventually(
            lambda: all(
                httpx.get(f"{_api(core)}/api/tasks/{t}").json()["executions"]["scheduled"] >= 3
                for t in by_policy.values()
            ),
            timeout=30,
            what="a few fires before the downtime",
        )
    finally:
        core.process.kill()
        core.process.wait(10)
        core.stop()
    stopped = datetime.now(UTC)
    _wait_until(time.monotonic() + 30)
    core = _core(env, tmp_path, "only")  # same store, same instance name
    restarted = datetime.now(UTC)
    try:
        eventually(
            lambda: all(
                httpx.get(f"{_api(core)}/api/tasks/{t}").json()["last_scheduled_for"]
                > restarted.isoformat()
                for t in by_policy.values()
            ),
            timeout=40,
            what="fires after the restart",
        )
        until = datetime.now(UTC) - timedelta(seconds=3)
    finally:
        core.stop()
    tasks = _account(kafka_bootstrap, prefix)
    downtime_slots = (restarted - stopped).total_seconds()
    for policy, task_id in by_policy.items():
        slots = tasks[task_id]
        _assert_each_slot_once(slots, until)
        gap = [s for s in slots.fired if stopped < s < restarted - 6 * SECOND]
        missed = slots.reasons["misfire"]
        if policy == "fire_all":
            assert missed == 0 and len(gap) >= downtime_slots - 10, (policy, len(gap))
        elif policy == "fire_once":
            assert missed >= downtime_slots - 10, (policy, missed)
            assert len(gap) <= 1, (policy, sorted(gap))
        else:
            assert missed >= downtime_slots - 10, (policy, missed)
            assert gap == [], (policy, sorted(gap))


def test_a_stopped_instance_hands_its_partitions_over_at_once(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """SIGTERM makes an instance leave the group (uvicorn re-raises the signal after it
    stops serving: the shutdown must run before that), so the survivor takes over without
    waiting for the session timeout, set here far beyond the wait."""
    prefix = f"e2e-stop-{uuid.uuid4().hex[:8]}."
    env = service_env(
        _base_env(kafka_bootstrap, prefix),
        TASKSTREAM_SCHEDULER_SESSION_TIMEOUT_MS="120000",
        TASKSTREAM_SCHEDULER_TRANSACTION_TIMEOUT_MS="120000",
    )
    first, second = (_core(env, tmp_path, name) for name in ("stop-a", "stop-b"))
    try:

        def owned(service: ServiceProcess) -> set[int]:
            return set(httpx.get(service.health_url, timeout=10).json()["owned_partitions"])

        eventually(lambda: owned(first) and owned(second), timeout=60, what="a shared group")
        first.stop()
        assert "scheduler stopped: left the group" in first.log_tail()
        eventually(
            lambda: owned(second) == set(range(6)),
            timeout=60,  # half the session timeout: only a clean leave gets here in time
            what="the survivor owning every partition",
        )
    finally:
        first.stop()
        second.stop()
