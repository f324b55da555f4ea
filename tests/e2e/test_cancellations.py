"""Cancellation through the whole stack: the API's and the scheduler's requests reach
running executions by the ``cancellations`` topic, which the core's scheduler fills in
its fire transactions (executors no longer read all of ``task-events``)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.e2e.stack import Stack
from tests.kafka_read import read_topic
from tests.support import eventually

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]


def _of(stack: Stack, topic: str, task_id: str, kind: str) -> list[dict[str, Any]]:
    records = read_topic(stack.env["KAFKA_BOOTSTRAP_SERVERS"], f"{stack.prefix}{topic}")
    return [
        r.value  # type: ignore[misc]
        for r in records
        if r.key == task_id.encode() and r.value["type"] == kind  # type: ignore[index]
    ]


def _sleeper(client: httpx.Client, **body: Any) -> str:
    """Create a task whose runs sleep a minute; its id."""
    created = client.post(
        "/api/tasks", json={"handler": "sleep", "params": {"seconds": 60}, **body}
    )
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def test_an_api_cancel_stops_a_running_execution(stack: Stack) -> None:
    with httpx.Client(base_url=stack.core, timeout=30) as client:
        task_id = _sleeper(client, name="long", schedule={"cron": "0 0 1 1 *"})
        execution = client.post(f"/api/tasks/{task_id}/run").json()["execution_id"]
        eventually(
            lambda: _of(stack, "task-events", task_id, "ExecutionStarted"),
            timeout=30,
            what="the run to be going (its ExecutionStarted after 1 s)",
        )
        assert client.post(f"/api/tasks/{task_id}/cancel").status_code == 202
        [cancelled] = eventually(
            lambda: _of(stack, "task-events", task_id, "ExecutionCancelled"),
            timeout=15,
            what="ExecutionCancelled within seconds of the request",
        )
    assert cancelled["data"]["execution_id"] == execution
    assert cancelled["data"]["duration_seconds"] < 30
    [copy] = _of(stack, "cancellations", task_id, "CancelRequested")
    [original] = _of(stack, "task-events", task_id, "CancelRequested")
    assert copy == original, "the executors read a copy of the log's request"


def test_overlap_replace_cancels_the_run_still_going(stack: Stack) -> None:
    """A scheduler-written CancelRequested (overlap ``replace``) is copied in its fire
    transaction and stops the previous run."""
    with httpx.Client(base_url=stack.core, timeout=30) as client:
        task_id = _sleeper(client, name="replaced", schedule={"every": "3s"}, overlap="replace")
        try:
            eventually(
                lambda: _of(stack, "task-events", task_id, "ExecutionCancelled"),
                timeout=30,
                what="the first run cancelled by the next slot",
            )
        finally:
            client.delete(f"/api/tasks/{task_id}")
    assert _of(stack, "cancellations", task_id, "CancelRequested")
