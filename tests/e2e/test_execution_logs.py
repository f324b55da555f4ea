"""Per-execution logs end to end: a handler prints and logs -> execution-logs -> the API.

The services run as processes (as in production), with the ``shell`` handler enabled, a
small size cap and a fast flush.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.stack import Stack, running_stack
from tests.kafka_read import read_topic
from tests.support import eventually

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]

LOG_MAX_BYTES = 4096


@pytest.fixture(scope="module")
def stack(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    prefix = f"e2e-logs-{uuid.uuid4().hex[:8]}."
    with running_stack(
        kafka_bootstrap,
        prefix,
        tmp_path_factory.mktemp("logs-stack"),
        names=("core", "executor"),
        TASKSTREAM_EXECUTOR_SHELL_ENABLED="true",
        TASKSTREAM_EXECUTOR_LOG_MAX_BYTES=str(LOG_MAX_BYTES),
        TASKSTREAM_EXECUTOR_LOG_FLUSH_INTERVAL="300ms",
    ) as running:
        yield running


def _run_now(stack: Stack, handler: str, params: dict[str, Any]) -> tuple[str, str]:
    """Create a task that would fire in an hour, run it now: (task id, execution id)."""
    body = {"name": f"{handler}-logs", "schedule": {"every": "1h"}, "handler": handler}
    created = httpx.post(f"{stack.core}/api/tasks", json={**body, "params": params}, timeout=30)
    assert created.status_code == 201, created.text
    task_id = created.json()["id"]
    run = httpx.post(f"{stack.core}/api/tasks/{task_id}/run", timeout=30)
    assert run.status_code == 202, run.text
    return task_id, run.json()["execution_id"]


def _logs(stack: Stack, execution_id: str, *, complete: bool = True) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        response = httpx.get(f"{stack.core}/api/executions/{execution_id}/logs", timeout=10)
        if response.status_code == 404:
            return None
        assert response.status_code == 200, response.text
        document: dict[str, Any] = response.json()
        runs = document["runs"]
        return document if runs and runs[-1]["complete"] is complete else None

    return eventually(probe, timeout=60, what=f"logs of {execution_id} (complete={complete})")


def test_prints_and_log_records_are_kept_by_execution_id(stack: Stack) -> None:
    script = "echo out one; echo out two; echo 'err line' >&2"
    task_id, execution_id = _run_now(stack, "shell", {"command": script, "shell": True})
    document = _logs(stack, execution_id)

    assert document["execution_id"] == execution_id and document["task_id"] == task_id
    [run] = document["runs"]
    assert run["attempt"] == 1 and run["dropped_lines"] == 0
    lines = [(line["stream"], line["message"]) for line in run["lines"]]
    assert ("stdout", "out one") in lines and ("stdout", "out two") in lines
    assert ("stderr", "err line") in lines
    assert lines.index(("stdout", "out one")) < lines.index(("stdout", "out two"))
    records = [line for line in run["lines"] if line["stream"] == "log"]
    assert any(r["message"].startswith("running /bin/sh -c") for r in records), records
    assert all(r["level"] and r["logger"] == "taskstream.handler" for r in records)

    text = subprocess.run(
        [sys.executable, "-m", "taskstream", "tasks", "--api", stack.core, "logs", execution_id],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert text.returncode == 0, text.stderr
    assert "stdout: out one" in text.stdout and "stderr: err line" in text.stdout
    assert f"== attempt 1 on {run['worker_id']} (complete)" in text.stdout


def test_a_failure_keeps_its_traceback(stack: Stack) -> None:
    _, execution_id = _run_now(stack, "fail", {"message": "disk full", "permanent": True})
    [run] = _logs(stack, execution_id)["runs"]
    [record] = [line for line in run["lines"] if line["level"] == "ERROR"]
    assert "Traceback" in record["message"] and "PermanentError: disk full" in record["message"]


def test_lines_arrive_while_the_handler_runs(stack: Stack) -> None:
    task_id, execution_id = _run_now(stack, "sleep", {"seconds": 120})
    running = _logs(stack, execution_id, complete=False)
    [run] = running["runs"]
    assert [line["message"] for line in run["lines"]] == ["sleeping 120s"]

    cancel = httpx.post(f"{stack.core}/api/tasks/{task_id}/cancel", timeout=30)
    assert cancel.status_code == 202, cancel.text
    [ended] = _logs(stack, execution_id, complete=True)["runs"]
    assert ended["run_id"] == run["run_id"]


def test_a_run_over_the_cap_keeps_head_and_tail_and_counts_the_rest(stack: Stack) -> None:
    script = "for i in $(seq 1 3000); do echo line-$i; done"
    _, execution_id = _run_now(
        stack, "shell", {"command": script, "shell": True, "max_output_bytes": 1_000_000}
    )
    [run] = _logs(stack, execution_id)["runs"]
    printed = [line["message"] for line in run["lines"] if line["stream"] == "stdout"]
    assert printed[:3] == ["line-1", "line-2", "line-3"]
    assert printed[-1] == "line-3000"
    assert run["dropped_lines"] > 2000 and run["dropped_bytes"] > 10_000
    kept = sum(len(line["message"].encode()) + 1 for line in run["lines"])
    assert kept <= LOG_MAX_BYTES + LOG_MAX_BYTES // 4


def test_a_run_that_logged_nothing_has_no_log(stack: Stack) -> None:
    task_id, execution_id = _run_now(stack, "noop", {})

    def finished() -> bool:
        task = httpx.get(f"{stack.core}/api/tasks/{task_id}", timeout=10).json()
        return (
            task.get("last_execution_id") == execution_id and task.get("last_status") == "succeeded"
        )

    eventually(finished, timeout=60, what="the noop run to succeed")
    response = httpx.get(f"{stack.core}/api/executions/{execution_id}/logs", timeout=10)
    assert response.status_code == 404 and "logged nothing" in response.json()["message"]
    # the executor produced no record for it (a chunk would precede ExecutionSucceeded)
    records = read_topic(stack.env["KAFKA_BOOTSTRAP_SERVERS"], f"{stack.prefix}execution-logs")
    assert execution_id.encode() not in {record.key for record in records}


def test_an_unknown_execution_is_a_404_that_says_why(stack: Stack) -> None:
    response = httpx.get(f"{stack.core}/api/executions/no-such-execution/logs", timeout=10)
    assert response.status_code == 404
    body = response.json()
    assert body["error"] == "not_found" and "no-such-execution" in body["message"]
    assert "retention" in body["message"]
