"""An execution id is counted once, however often its outcome is on the log.

An executor killed after it reported an execution but before it committed the work order
leaves the order to the next owner, whose rerun writes ``ExecutionStarted`` and
``ExecutionSucceeded`` again: the same execution id, new event ids. The core's task
counters and the monitor's statistics must still count one run, so that no counter shows
more finished than scheduled, and a rebuilt store must count the same.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import Producer

from taskstream.core.store import TaskStore, make_engine, task_as_dict
from taskstream.schemas import (
    Event,
    ExecutionStarted,
    ExecutionSucceeded,
    encode_event,
    event_headers,
)
from tests.e2e.stack import Stack
from tests.kafka_read import read_topic
from tests.support import eventually

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]


def _task(stack: Stack, task_id: str) -> dict[str, Any]:
    response = httpx.get(f"{stack.core}/api/tasks/{task_id}", timeout=10)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _monitor_counts(stack: Stack, task_id: str) -> dict[str, int] | None:
    response = httpx.get(f"{stack.monitor}/api/monitor/tasks/{task_id}/stats", timeout=10)
    if response.status_code != 200:
        return None
    counts: dict[str, int] = response.json()["counts"]
    return counts


def _run_now(stack: Stack, task_id: str) -> str:
    response = httpx.post(f"{stack.core}/api/tasks/{task_id}/run", timeout=30)
    assert response.status_code == 202, response.text
    execution: str = response.json()["execution_id"]
    return execution


def _rerun_on_the_log(stack: Stack, task_id: str, execution_id: str) -> None:
    """What a second executor writes when it runs an order whose outcome is on the log."""
    records = read_topic(stack.env["KAFKA_BOOTSTRAP_SERVERS"], f"{stack.prefix}task-events")
    [ended] = [
        r.value["data"]
        for r in records
        if r.value["type"] == "ExecutionSucceeded"  # type: ignore[index]
        and r.value["data"]["execution_id"] == execution_id  # type: ignore[index]
    ]
    slot = datetime.fromisoformat(ended["scheduled_for"])  # type: ignore[index]
    producer = Producer({"bootstrap.servers": stack.env["KAFKA_BOOTSTRAP_SERVERS"]})
    now = datetime.now(UTC)
    for data in (  # a long rerun: its ExecutionStarted, then its outcome (v2)
        ExecutionStarted(
            execution_id=execution_id,
            attempt=1,
            scheduled_for=slot,
            worker_id="the-rerun",
            handler="noop",
        ),
        ExecutionSucceeded(
            execution_id=execution_id,
            attempt=1,
            scheduled_for=slot,
            worker_id="the-rerun",
            duration_seconds=0.01,
            started_at=now,
            handler="noop",
        ),
    ):
        event = Event.create(task_id, data, occurred_at=now + timedelta(milliseconds=1))
        producer.produce(
            f"{stack.prefix}task-events",
            key=task_id.encode(),
            value=encode_event(event),
            headers=event_headers(event),
        )
    assert producer.flush(30) == 0


def test_a_rerun_outcome_is_not_counted_again(stack: Stack, tmp_path: Path) -> None:
    created = httpx.post(
        f"{stack.core}/api/tasks",
        json={"name": "counted-once", "schedule": {"cron": "0 0 1 1 *"}, "handler": "noop"},
        timeout=30,
    )
    assert created.status_code == 201, created.text
    task_id = created.json()["id"]

    first = _run_now(stack, task_id)
    eventually(
        lambda: _task(stack, task_id)["executions"]["succeeded"] == 1,
        timeout=60,
        what="the first run to succeed",
    )
    _rerun_on_the_log(stack, task_id, first)
    second = _run_now(stack, task_id)  # after the duplicates on the task's partition

    def core_done() -> dict[str, Any] | None:
        task = _task(stack, task_id)
        done = task["last_execution_id"] == second and task["last_status"] == "succeeded"
        return task if done else None

    core = eventually(core_done, timeout=60, what="the second run to succeed in the core")
    counters = core["executions"]
    assert counters["scheduled"] == 2 and counters["succeeded"] == 2, (
        f"one run counted twice: {counters}"
    )

    def monitor_done() -> dict[str, int] | None:
        history = httpx.get(
            f"{stack.monitor}/api/monitor/tasks/{task_id}/executions", timeout=10
        ).json()["items"]
        statuses = {item["execution_id"]: item["status"] for item in history}
        if statuses.get(second) != "succeeded":
            return None
        return _monitor_counts(stack, task_id)

    monitor = eventually(monitor_done, timeout=60, what="the monitor to see the second run")
    assert monitor["succeeded"] == 2, f"one run counted twice by the monitor: {monitor}"

    # a store rebuilt from the log counts the same
    database = tmp_path / "rebuilt.db"
    env = {**stack.env, "TASKSTREAM_DATABASE_URL": f"sqlite:///{database}"}
    result = subprocess.run(
        [sys.executable, "-m", "taskstream", "rebuild", "--yes"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    rebuilt = TaskStore(make_engine(f"sqlite:///{database}"), f"{stack.prefix}task-events")
    try:
        row = rebuilt.get(task_id)
        assert row is not None
        assert task_as_dict(row)["executions"] == counters
    finally:
        rebuilt.engine.dispose()
