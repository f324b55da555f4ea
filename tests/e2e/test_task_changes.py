"""Changing tasks through the API, as events: versions, pause, delete, run, cancel, security."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from taskstream.cli.dev import service_env
from taskstream.infra.processes import free_port
from tests.e2e.stack import Stack, running_stack
from tests.kafka_read import RawRecord, read_topic
from tests.support import eventually

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]

TOKEN = "s3cret-token-for-tests"


@pytest.fixture(scope="module")
def secured(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """core + executor with a bearer token required, and a 4 KiB body limit."""
    prefix = f"changes-{uuid.uuid4().hex[:8]}."
    with running_stack(
        kafka_bootstrap,
        prefix,
        tmp_path_factory.mktemp("secured"),
        names=("core", "executor"),
        TASKSTREAM_API_TOKENS=TOKEN,
        TASKSTREAM_API_MAX_BODY_BYTES="4096",
    ) as stack:
        yield stack


def _client(stack: Stack, token: str | None = TOKEN) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=stack.core, headers=headers, timeout=30)


def _create(stack: Stack, **body: Any) -> dict[str, Any]:
    body = {"name": "t", "schedule": {"every": "1s"}, "handler": "noop", **body}
    with _client(stack) as client:
        response = client.post("/api/tasks", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def _events(stack: Stack, task_id: str) -> list[RawRecord]:
    records = read_topic(stack.env["KAFKA_BOOTSTRAP_SERVERS"], f"{stack.prefix}task-events")
    return [r for r in records if r.key == task_id.encode()]


def _types(stack: Stack, task_id: str) -> list[str]:
    return [str(r.value["type"]) for r in _events(stack, task_id)]


def test_without_a_valid_token_nothing_is_written(secured: Stack) -> None:
    body = {"name": "intruder", "schedule": {"every": "1s"}, "handler": "noop"}
    for token in (None, "wrong"):
        with _client(secured, token) as client:
            response = client.post("/api/tasks", json=body)
            assert response.status_code == 401
            assert response.json()["error"] == "unauthorized"
            assert response.headers["www-authenticate"].startswith("Bearer")
            assert client.get("/api/tasks").status_code == 401
    with _client(secured, None) as client:
        assert client.get("/health").status_code == 200, "probes stay open"
    marker = _create(secured, name="after-intruder")
    names = {
        r.value["data"]["task"]["name"]  # type: ignore[index]
        for r in read_topic(secured.env["KAFKA_BOOTSTRAP_SERVERS"], f"{secured.prefix}task-events")
        if r.value["type"] == "TaskCreated"
    }
    assert "after-intruder" in names and "intruder" not in names, marker["id"]


def test_an_oversized_body_gets_413(secured: Stack) -> None:
    with _client(secured) as client:
        response = client.post(
            "/api/tasks",
            json={
                "name": "big",
                "schedule": {"every": "1s"},
                "handler": "noop",
                "params": {"blob": "x" * 10_000},
            },
        )
    assert response.status_code == 413
    assert "TASKSTREAM_API_MAX_BODY_BYTES" in response.json()["message"]


def test_updates_are_versioned_and_a_stale_one_gets_409(secured: Stack) -> None:
    task = _create(secured, schedule={"cron": "0 0 1 1 *"})
    assert task["version"] == 1
    with _client(secured) as client:
        updated = client.patch(
            f"/api/tasks/{task['id']}", json={"params": {"v": 2}, "expectedVersion": 1}
        )
        assert updated.status_code == 200, updated.text
        assert updated.json()["version"] == 2 and updated.json()["params"] == {"v": 2}
        assert updated.headers["etag"] == '"2"'
        assert client.get(f"/api/tasks/{task['id']}").json()["params"] == {"v": 2}

        stale = client.patch(
            f"/api/tasks/{task['id']}", json={"params": {"v": 3}}, headers={"If-Match": '"1"'}
        )
        assert stale.status_code == 409
        assert stale.json()["current_version"] == 2
        replaced = client.put(
            f"/api/tasks/{task['id']}",
            json={
                "name": "renamed",
                "schedule": {"every": "1h"},
                "handler": "echo",
                "expected_version": 2,
            },
        )
        assert replaced.status_code == 200, replaced.text
        assert replaced.json()["name"] == "renamed" and replaced.json()["version"] == 3
    assert _types(secured, task["id"]).count("TaskUpdated") == 2, "the stale one wrote nothing"


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"schedule": {"cron": "* * * * *", "timezone": "Mars/Olympus"}}, "schedule.timezone"),
        ({"schedule": {"cron": "99 * * * *"}}, "schedule.cron"),
        ({"handler": "com.example.Nope"}, "handler"),
        ({"retry": {"max_attempts": 0}}, "retry.max_attempts"),
    ],
)
def test_an_invalid_update_gets_422_and_writes_nothing(
    secured: Stack, patch: dict[str, Any], field: str
) -> None:
    task = _create(secured, schedule={"cron": "0 0 1 1 *"})
    with _client(secured) as client:
        response = client.patch(f"/api/tasks/{task['id']}", json=patch)
    assert response.status_code == 422, response.text
    assert field in {error["field"] for error in response.json()["errors"]}
    assert "TaskUpdated" not in _types(secured, task["id"])


def test_pause_skips_slots_and_resume_fires_again(secured: Stack) -> None:
    task = _create(secured)
    with _client(secured) as client:
        paused = client.put(f"/api/tasks/{task['id']}/status", json={"status": "paused"})
        assert paused.status_code == 200 and paused.json()["status"] == "paused"
        again = client.put(f"/api/tasks/{task['id']}/status", json={"status": "paused"})
        assert again.status_code == 200, "pausing a paused task changes nothing"
        eventually(
            lambda: client.get(f"/api/tasks/{task['id']}").json()["executions"]["skipped"] >= 2,
            timeout=20,
            what="paused slots to be skipped",
        )
        skipped = [
            r.value["data"]
            for r in _events(secured, task["id"])
            if r.value["type"] == "ExecutionSkipped"
        ]
        assert {s["reason"] for s in skipped} == {"paused"}  # type: ignore[index]
        fired_before = client.get(f"/api/tasks/{task['id']}").json()["executions"]["scheduled"]
        resumed = client.put(f"/api/tasks/{task['id']}/status", json={"status": "active"})
        assert resumed.status_code == 200 and resumed.json()["status"] == "active"
        eventually(
            lambda: (
                client.get(f"/api/tasks/{task['id']}").json()["executions"]["scheduled"]
                > fired_before
            ),
            timeout=20,
            what="fires after resume",
        )


def test_delete_stops_the_task(secured: Stack) -> None:
    task = _create(secured)
    with _client(secured) as client:
        assert client.delete(f"/api/tasks/{task['id']}").status_code == 204
        gone = client.get(f"/api/tasks/{task['id']}")
        assert gone.status_code == 404 and "deleted" in gone.json()["message"]
        listed = client.get("/api/tasks", params={"status": "deleted", "size": 1000}).json()
        assert task["id"] in {t["id"] for t in listed["items"]}
        assert task["id"] not in {
            t["id"] for t in client.get("/api/tasks", params={"size": 1000}).json()["items"]
        }
    witness = _create(secured, name="witness")  # fires every second while we watch
    with _client(secured) as client:
        eventually(
            lambda: (
                client.get(f"/api/tasks/{witness['id']}").json()["executions"]["scheduled"] >= 3
            ),
            timeout=20,
            what="three seconds of scheduling",
        )
    events = _events(secured, task["id"])
    deleted = next(r.offset for r in events if r.value["type"] == "TaskDeleted")
    after = [r for r in events if r.offset > deleted and r.value["type"] == "ExecutionScheduled"]
    assert len(after) <= 1, "no fires after the delete (one may have been in flight)"


def test_run_now_and_cancel_are_events(secured: Stack) -> None:
    task = _create(secured, schedule={"cron": "0 0 1 1 *"}, handler="echo", params={"a": 1})
    with _client(secured) as client:
        run = client.post(f"/api/tasks/{task['id']}/run")
        assert run.status_code == 202
        execution = run.json()["execution_id"]
        eventually(
            lambda: client.get(f"/api/tasks/{task['id']}").json()["executions"]["succeeded"] == 1,
            timeout=30,
            what="the manual run to succeed",
        )
        cancel = client.post(f"/api/tasks/{task['id']}/cancel")
        assert cancel.status_code == 202
    events = _events(secured, task["id"])
    scheduled = [r.value["data"] for r in events if r.value["type"] == "ExecutionScheduled"]
    assert [(s["execution_id"], s["trigger"]) for s in scheduled] == [  # type: ignore[index]
        (execution, "manual")
    ]
    assert "CancelRequested" in [r.value["type"] for r in events]


def test_filters_on_the_task_list(secured: Stack) -> None:
    task = _create(secured, name="filtered", handler="echo", schedule={"cron": "0 0 1 1 *"})
    with _client(secured) as client:
        by_handler = client.get("/api/tasks", params={"handler": "echo", "size": 1000}).json()
        assert task["id"] in {t["id"] for t in by_handler["items"]}
        assert {t["handler"] for t in by_handler["items"]} == {"echo"}
        paused = client.get("/api/tasks", params={"status": "paused"}).json()
        assert task["id"] not in {t["id"] for t in paused["items"]}
        bad = client.get("/api/tasks", params={"status": "sleeping"})
        assert bad.status_code == 422


def test_a_public_api_without_tokens_refuses_to_start(tmp_path: Path) -> None:
    env = service_env(
        TASKSTREAM_API_HOST="0.0.0.0",
        TASKSTREAM_API_PORT=str(free_port()),
        TASKSTREAM_DATABASE_URL=f"sqlite:///{tmp_path / 'x.db'}",
    )
    env.pop("TASKSTREAM_API_TOKENS", None)
    result = subprocess.run(
        [sys.executable, "-m", "taskstream", "core"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "TASKSTREAM_API_TOKENS" in result.stderr and "0.0.0.0" in result.stderr
