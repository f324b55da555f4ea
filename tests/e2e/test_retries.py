"""Durable retries end to end: the executor asks, the core fires; and dead letters."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.e2e.stack import Stack
from tests.kafka_read import read_topic
from tests.support import eventually

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]


def _create(stack: Stack, **body: Any) -> str:
    body = {"name": "flaky", "schedule": {"cron": "0 0 1 1 *"}, **body}
    response = httpx.post(f"{stack.core}/api/tasks", json=body, timeout=30)
    assert response.status_code == 201, response.text
    task_id: str = response.json()["id"]
    assert httpx.post(f"{stack.core}/api/tasks/{task_id}/run", timeout=30).status_code == 202
    return task_id


def _events(stack: Stack, task_id: str) -> list[dict[str, Any]]:
    records = read_topic(stack.env["KAFKA_BOOTSTRAP_SERVERS"], f"{stack.prefix}task-events")
    return [r.value for r in records if r.key == task_id.encode()]


def _at(value: object) -> datetime:
    return datetime.fromisoformat(str(value))


def test_a_handler_that_fails_twice_then_succeeds(stack: Stack) -> None:
    task_id = _create(
        stack,
        handler="fail",
        params={"until_attempt": 3},
        retry={
            "max_attempts": 3,
            "initial_delay": "1s",
            "multiplier": 2,
            "max_delay": "10s",
            "jitter": "200ms",
        },
    )
    eventually(
        lambda: "ExecutionSucceeded" in [e["type"] for e in _events(stack, task_id)],
        timeout=60,
        what="the third attempt to succeed",
    )
    events = _events(stack, task_id)
    failed = [e for e in events if e["type"] == "ExecutionFailed"]
    retries = [e for e in events if e["type"] == "RetryScheduled"]
    scheduled = [e for e in events if e["type"] == "ExecutionScheduled"]
    assert [e["data"]["attempt"] for e in failed] == [1, 2]
    assert [e["data"]["attempt"] for e in retries] == [2, 3]
    assert [(e["data"]["attempt"], e["data"]["trigger"]) for e in scheduled] == [
        (1, "manual"),
        (2, "retry"),
        (3, "retry"),
    ]
    for attempt, (fail, retry) in enumerate(zip(failed, retries, strict=True), start=1):
        wait = (_at(retry["data"]["due_at"]) - _at(fail["occurred_at"])).total_seconds()
        expected = 1.0 * 2 ** (attempt - 1)
        assert expected - 0.1 <= wait <= expected + 0.3, (attempt, wait)
        fired = next(e for e in scheduled if e["data"]["attempt"] == attempt + 1)
        assert _at(fired["occurred_at"]) >= _at(retry["data"]["due_at"]), "fired when due"
    ids = {e["data"]["execution_id"] for e in scheduled}
    assert len(ids) == 3, "each attempt has its own deterministic id"
    assert "ExecutionDeadLettered" not in [e["type"] for e in events]


def _dlq(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "taskstream", "dlq", *args],
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_always_failing_ends_in_the_dead_letter_topic_and_can_be_replayed(stack: Stack) -> None:
    task_id = _create(
        stack,
        handler="fail",
        params={"message": "nope"},
        retry={"max_attempts": 2, "initial_delay": "500ms", "jitter": "0s"},
    )
    eventually(
        lambda: "ExecutionDeadLettered" in [e["type"] for e in _events(stack, task_id)],
        timeout=60,
        what="the last attempt to be dead-lettered",
    )
    dead = next(e for e in _events(stack, task_id) if e["type"] == "ExecutionDeadLettered")
    assert dead["data"]["reason"] == "max_attempts" and dead["data"]["attempt"] == 2
    listing = _dlq(stack, "list")
    assert listing.returncode == 0, listing.stderr
    assert dead["data"]["execution_id"] in listing.stdout and "max_attempts" in listing.stdout
    replay = _dlq(stack, "replay", dead["data"]["execution_id"])
    assert replay.returncode == 0, replay.stderr
    eventually(
        lambda: (
            [
                e["data"]["attempt"]
                for e in _events(stack, task_id)
                if e["type"] == "ExecutionFailed"
            ]
            == [1, 2, 3]
        ),
        timeout=60,
        what="the replayed third attempt to run",
    )
    again = _dlq(stack, "replay", dead["data"]["execution_id"])
    assert again.returncode == 1 and "already replayed" in again.stderr


def test_a_permanent_error_is_dead_lettered_at_once(stack: Stack) -> None:
    task_id = _create(stack, handler="fail", params={"permanent": True}, retry={"max_attempts": 5})
    eventually(
        lambda: "ExecutionDeadLettered" in [e["type"] for e in _events(stack, task_id)],
        timeout=60,
        what="the dead letter",
    )
    types = [e["type"] for e in _events(stack, task_id)]
    assert "RetryScheduled" not in types
    dead = next(e for e in _events(stack, task_id) if e["type"] == "ExecutionDeadLettered")
    assert dead["data"]["reason"] == "permanent"
    assert timedelta(0) <= _at(dead["occurred_at"]) - _at(
        next(e for e in _events(stack, task_id) if e["type"] == "ExecutionFailed")["occurred_at"]
    )
