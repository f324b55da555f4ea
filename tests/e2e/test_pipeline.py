"""The thin path through a real broker: POST /api/tasks -> scheduler -> executor -> monitor."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.e2e.stack import Stack
from tests.kafka_read import read_topic
from tests.support import eventually

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]

SEED_BODY = {
    "name": "sample-task",
    "cronExpression": "*/1 * * * * *",
    "handlerClass": "handlers.builtin.EchoHandler",
    "parameters": '{"key":"value"}',
    "maxRetries": 3,
}


def _create(stack: Stack, body: dict[str, Any]) -> dict[str, Any]:
    response = httpx.post(f"{stack.core}/api/tasks", json=body, timeout=30)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def _executions(stack: Stack, task_id: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{stack.monitor}/api/monitor/tasks/{task_id}/executions", timeout=10)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def _finished(stack: Stack, task_id: str, status: str, count: int = 1) -> list[dict[str, Any]]:
    def probe() -> list[dict[str, Any]] | None:
        done = [e for e in _executions(stack, task_id) if e["status"] == status]
        return done if len(done) >= count else None

    return eventually(probe, timeout=60, what=f"{count} {status} execution(s) of {task_id}")


def test_seed_body_runs_through_to_the_monitor_history(stack: Stack) -> None:
    created = _create(stack, SEED_BODY)
    task_id = created["id"]
    assert created["handler"] == "echo"
    assert created["schedule"]["cron"] == "*/1 * * * * *"
    assert created["retry"]["max_attempts"] == 4

    executions = _finished(stack, task_id, "succeeded", count=2)
    latest = executions[0]
    assert latest["output"] == {"key": "value"}
    assert latest["task_id"] == task_id
    assert latest["started_at"] >= latest["fired_at"] >= latest["scheduled_for"]
    assert datetime.fromisoformat(latest["scheduled_for"]).microsecond == 0  # a cron slot

    # read-your-writes and the projection's counters
    task = httpx.get(f"{stack.core}/api/tasks/{task_id}", timeout=10).json()
    assert task["status"] == "active"
    eventually(  # the store projects execution events too, a moment behind
        lambda: (
            httpx.get(f"{stack.core}/api/tasks/{task_id}").json()["executions"]["succeeded"] >= 2
        ),
        timeout=10,
        what="the store's execution counters",
    )

    # any consumer reads the same story from task-events as plain JSON with type headers
    records = [
        r
        for r in read_topic(stack.env["KAFKA_BOOTSTRAP_SERVERS"], f"{stack.prefix}task-events")
        if r.key == task_id.encode()
    ]
    types = [r.value["type"] for r in records]
    assert types[0] == "TaskCreated"
    assert {"ExecutionScheduled", "ExecutionSucceeded"} <= set(types)
    assert "ExecutionStarted" not in types, "runs that end within 1 s are one outcome event"
    outcomes = [r.value for r in records if r.value["type"] == "ExecutionSucceeded"]
    assert all(o["version"] == 2 and o["data"]["started_at"] for o in outcomes)
    for record in records:
        assert record.headers["event-type"] == str(record.value["type"]).encode()
        assert record.value["task_id"] == task_id
    assert len({r.partition for r in records}) == 1, "one task's events share a partition"
    scheduled = [
        r.value["data"]["execution_id"] for r in records if r.value["type"] == "ExecutionScheduled"
    ]
    assert len(scheduled) == len(set(scheduled)), "each slot fired once"


def test_interval_one_shot_and_five_field_cron(stack: Stack) -> None:
    every = _create(stack, {"name": "tick", "schedule": {"every": "1s"}, "handler": "noop"})
    at = datetime.now(UTC) + timedelta(seconds=2)
    once = _create(
        stack,
        {"name": "once", "schedule": {"at": at.isoformat()}, "handler": "noop", "priority": "high"},
    )
    cron5 = _create(
        stack,
        {
            "name": "minutely",
            "schedule": {"cron": "* * * * *", "timeZone": "Europe/Berlin"},
            "handler": "noop",
            "priority": "low",
            "timeout": "30s",
        },
    )
    assert {k: v for k, v in cron5["schedule"].items() if v is not None} == {
        "cron": "* * * * *",
        "timezone": "Europe/Berlin",
    }
    assert cron5["timeout"] == "30s"

    _finished(stack, every["id"], "succeeded", count=2)
    [run] = _finished(stack, once["id"], "succeeded")
    assert run["priority"] == "high"
    assert datetime.fromisoformat(run["scheduled_for"]) == at
    eventually(
        lambda: httpx.get(f"{stack.core}/api/tasks/{once['id']}").json()["status"] == "completed",
        what="one-shot task completed",
    )
    assert len(_executions(stack, once["id"])) == 1


def test_failures_are_recorded_with_the_error(stack: Stack) -> None:
    task = _create(
        stack,
        {
            "name": "broken",
            "schedule": {"every": "1s"},
            "handler": "fail",
            "params": {"message": "disk full", "permanent": True},
        },
    )
    [failed, *_] = _finished(stack, task["id"], "dead_lettered")  # permanent: no retry
    assert failed["error_type"] == "PermanentError"
    assert failed["error_message"] == "disk full"
    assert failed["retryable"] is False


def test_task_listing_pages(stack: Stack) -> None:
    for n in range(3):
        _create(stack, {"name": f"page-{n}", "schedule": {"cron": "0 0 1 1 *"}, "handler": "noop"})
    first = httpx.get(f"{stack.core}/api/tasks", params={"page": 0, "size": 2}).json()
    second = httpx.get(f"{stack.core}/api/tasks", params={"page": 1, "size": 2}).json()
    assert len(first["items"]) == 2 and first["total"] >= 3
    assert {t["id"] for t in first["items"]}.isdisjoint({t["id"] for t in second["items"]})
    missing = httpx.get(f"{stack.core}/api/tasks/no-such-task")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"


BAD_REQUESTS = [
    (
        {"name": "bad-cron", "schedule": {"cron": "61 * * * *"}, "handler": "noop"},
        422,
        "schedule.cron",
    ),
    (
        {"name": "bad-seed-cron", "cronExpression": "not a cron", "handlerClass": "echo"},
        422,
        "schedule.cron",
    ),
    (
        {"name": "bad-handler", "schedule": {"every": "1s"}, "handler": "com.example.Nope"},
        422,
        "handler",
    ),
    (
        {
            "name": "bad-zone",
            "schedule": {"cron": "* * * * *", "timezone": "Mars/Base"},
            "handler": "noop",
        },
        422,
        "schedule.timezone",
    ),
    (
        {"name": "bad-queue", "schedule": {"every": "1s"}, "handler": "noop", "queue": "nowhere"},
        422,
        "queue",
    ),
    ({"name": "bad-missing"}, 422, "schedule"),
    (
        {
            "name": "bad-params",
            "cronExpression": "* * * * *",
            "handlerClass": "echo",
            "parameters": "{oops",
        },
        422,
        "body",
    ),
]


@pytest.mark.parametrize(("body", "status", "field"), BAD_REQUESTS)
def test_invalid_input_is_rejected_naming_the_field(
    stack: Stack, body: dict[str, Any], status: int, field: str
) -> None:
    response = httpx.post(f"{stack.core}/api/tasks", json=body, timeout=10)
    assert response.status_code == status, response.text
    document = response.json()
    assert document["error"] == "validation_failed"
    assert field in {error["field"] for error in document["errors"]}, document
    assert document["message"]


def test_malformed_json_is_a_400(stack: Stack) -> None:
    response = httpx.post(
        f"{stack.core}/api/tasks",
        content=b'{"name": "x",',
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 400
    assert response.json()["error"] == "malformed_json"


def test_rejected_requests_wrote_nothing_to_kafka(stack: Stack) -> None:
    for body, _, _ in BAD_REQUESTS:
        httpx.post(f"{stack.core}/api/tasks", json=body, timeout=10)
    marker = _create(
        stack, {"name": "after-the-bad-ones", "schedule": {"cron": "0 0 1 1 *"}, "handler": "noop"}
    )
    records = read_topic(stack.env["KAFKA_BOOTSTRAP_SERVERS"], f"{stack.prefix}task-events")
    names = {
        r.value["data"]["task"]["name"]
        for r in records  # type: ignore[index]
        if r.value["type"] == "TaskCreated"
    }
    assert "after-the-bad-ones" in names, f"marker {marker['id']} missing from the log"
    assert not {body["name"] for body, _, _ in BAD_REQUESTS} & names


def test_every_service_has_health_and_metrics(stack: Stack) -> None:
    expected = {
        "core": "taskstream_task_submissions_total",
        "executor": "taskstream_executions_total",
        "monitor": "taskstream_monitor_events_total",
    }
    for name, metric in expected.items():
        health = httpx.get(f"{stack.urls[name]}/health", timeout=10)
        assert health.status_code == 200 and health.json()["status"] == "ok", name
        metrics = httpx.get(f"{stack.urls[name]}/metrics", timeout=10)
        assert metrics.status_code == 200
        assert metric in metrics.text, f"{name} /metrics lacks {metric}"


def test_kcat_reads_task_events_as_json(stack: Stack) -> None:
    """A non-Python consumer (Debian's kcat) reads the log: JSON values, type headers."""
    kcat = shutil.which("kcat")
    assert kcat, "kcat is missing: run `bash scripts/system-packages.sh`"
    task = _create(stack, {"name": "for-kcat", "schedule": {"every": "1s"}, "handler": "noop"})
    _finished(stack, task["id"], "succeeded")
    # No `-e`: with interval tasks firing, the log never goes quiet, so "exit at the end"
    # races new writes. Read until this task's events are there, then stop kcat.
    reader = subprocess.Popen(
        [
            kcat,
            "-b",
            stack.env["KAFKA_BOOTSTRAP_SERVERS"],
            "-C",
            "-t",
            f"{stack.prefix}task-events",
            "-o",
            "beginning",
            "-q",
            "-u",
            "-X",
            "isolation.level=read_committed",
            "-f",
            "%k\t%h\t%s\n",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    received: list[str] = []
    pump = threading.Thread(target=lambda: received.extend(reader.stdout or ()), daemon=True)
    pump.start()
    wanted = {"TaskCreated", "ExecutionScheduled", "ExecutionSucceeded"}

    def seen_all() -> bool:
        types = {
            json.loads(line.split("\t", 2)[2])["type"]
            for line in list(received)
            if line.startswith(task["id"] + "\t")
        }
        return wanted <= types

    try:
        eventually(seen_all, timeout=60, what="kcat to print the task's events")
    finally:
        reader.terminate()
        reader.wait(timeout=10)
        pump.join(timeout=10)
        if reader.stdout:
            reader.stdout.close()
    stdout = "".join(received)
    lines = [line.split("\t", 2) for line in stdout.splitlines() if line]
    mine = [(headers, json.loads(value)) for key, headers, value in lines if key == task["id"]]
    assert mine, stdout[-2000:]
    for headers, event in mine:
        assert f"event-type={event['type']}" in headers
        assert set(event) == {"id", "type", "version", "task_id", "occurred_at", "data"}
    assert {"TaskCreated", "ExecutionScheduled", "ExecutionSucceeded"} <= {
        e["type"] for _, e in mine
    }
