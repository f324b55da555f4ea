"""``taskstream tasks`` as a subprocess against the running core's REST API."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from taskstream.infra.processes import free_port
from tests.e2e.stack import Stack
from tests.support import eventually

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]


def _cli(stack: Stack, *argv: str, api: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "taskstream", "tasks", "--api", api or stack.core, *argv],
        env=stack.env,
        stdin=subprocess.DEVNULL,  # not a terminal: delete does not ask
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _ok(stack: Stack, *argv: str) -> str:
    result = _cli(stack, *argv)
    assert result.returncode == 0, f"{argv}: exit {result.returncode}\n{result.stderr}"
    return result.stdout


def _add(stack: Stack, name: str, schedule: str = "1h", *options: str) -> str:
    """Add an echo task (hourly by default: it does not fire by itself during a test)."""
    stdout = _ok(stack, "add", name, schedule, "--handler", "echo", *options)
    assert stdout.count("\n") == 1, f"add printed more than the id: {stdout!r}"
    return stdout.strip()


def _task(stack: Stack, task_id: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(_ok(stack, "get", task_id, "--json"))
    return document


def _status_becomes(stack: Stack, task_id: str, status: str) -> None:
    eventually(
        lambda: _task(stack, task_id)["status"] == status,
        what=f"task {task_id} {status}",
    )


def test_add_prints_only_the_id_and_list_and_get_show_the_task(stack: Stack) -> None:
    result = _cli(stack, "add", "cli-interval", "30s", "--handler", "echo", "--params", '{"k": 1}')
    assert result.returncode == 0, result.stderr
    task_id = result.stdout.strip()
    assert result.stdout == f"{task_id}\n" and result.stderr == ""

    task = _task(stack, task_id)
    assert task["name"] == "cli-interval" and task["handler"] == "echo"
    assert task["schedule"]["every"] == "30s" and task["params"] == {"k": 1}
    readable = _ok(stack, "get", task_id)
    assert f"id          {task_id}" in readable and "every 30s" in readable

    listed = json.loads(_ok(stack, "list", "--size", "1000", "--json"))
    assert task_id in {item["id"] for item in listed["items"]}
    table = _ok(stack, "list", "--size", "1000")
    [row] = [line for line in table.splitlines() if line.startswith(task_id)]
    assert row.split()[1:5] == ["cli-interval", "every", "30s", "echo"]


def test_add_warns_on_stderr_when_no_live_executor_serves_the_handler(stack: Stack) -> None:
    # the stack's executor has the shell handler disabled, so it does not serve it
    params = '{"command": ["true"]}'
    result = _cli(stack, "add", "cli-shell", "1h", "--handler", "shell", "--params", params)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() and "\n" not in result.stdout.strip()  # only the id
    assert "taskstream: warning: no live executor serves handler 'shell'" in result.stderr
    assert "TASKSTREAM_EXECUTOR_SHELL_ENABLED=true" in result.stderr


def test_verbose_add_details_go_to_stderr(stack: Stack) -> None:
    result = _cli(stack, "add", "cli-verbose", "every 1h", "--handler", "echo", "-v")
    assert result.returncode == 0, result.stderr
    task_id = result.stdout.strip()
    assert result.stdout == f"{task_id}\n"
    assert "POST" in result.stderr and task_id in result.stderr


def test_pause_and_resume(stack: Stack) -> None:
    task_id = _add(stack, "cli-pause")
    _ok(stack, "pause", task_id)
    _status_becomes(stack, task_id, "paused")
    _ok(stack, "resume", task_id)
    _status_becomes(stack, task_id, "active")


def test_run_now_executes_the_task(stack: Stack) -> None:
    task_id = _add(stack, "cli-run-now", "1h", "--params", '{"now": true}')
    stdout = _ok(stack, "run", task_id)
    assert len(stdout.split()) <= 1, f"run printed more than an execution id: {stdout!r}"

    def executed() -> list[dict[str, Any]]:
        url = f"{stack.monitor}/api/monitor/tasks/{task_id}/executions"
        items: list[dict[str, Any]] = httpx.get(url, timeout=10).json()["items"]
        return [item for item in items if item["status"] == "succeeded"]

    [execution] = eventually(executed, timeout=60, what=f"the run-now execution of {task_id}")
    assert execution["output"] == {"now": True}
    if stdout.strip():
        assert execution["execution_id"] == stdout.strip()


def test_delete_then_get_is_not_found(stack: Stack) -> None:
    task_id = _add(stack, "cli-delete")
    _ok(stack, "delete", task_id, "--yes")

    def gone() -> subprocess.CompletedProcess[str] | None:
        result = _cli(stack, "get", task_id)
        return result if result.returncode != 0 else None

    result = eventually(gone, what=f"task {task_id} gone")
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith("taskstream: ") and task_id in result.stderr
    wordings = ("was deleted", "does not exist", "no task", "not found")  # the API's 404 message
    assert any(wording in result.stderr.lower() for wording in wordings), result.stderr


def test_invalid_cron_names_the_field(stack: Stack) -> None:
    result = _cli(stack, "add", "cli-bad-cron", "61 * * * *", "--handler", "echo")
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith("taskstream: ")
    assert "\n  schedule.cron: " in result.stderr, result.stderr


def test_unknown_task_id_exits_one(stack: Stack) -> None:
    result = _cli(stack, "pause", "no-such-task")
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith("taskstream: ")


def test_an_api_that_is_not_running_is_named(stack: Stack) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    result = _cli(stack, "list", api=nowhere)
    assert result.returncode == 1
    assert result.stderr == (
        f"taskstream: cannot reach the core API at {nowhere}: is it running? "
        "(taskstream dev starts it)\n"
    )


def test_cancel_without_a_running_execution_exits_zero(stack: Stack) -> None:
    task_id = _add(stack, "cli-cancel")
    result = _cli(stack, "cancel", task_id)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "" and "cancel" in result.stderr


def test_handlers_lists_what_tasks_may_name_and_shows_a_params_schema(stack: Stack) -> None:
    def command(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "taskstream", "handlers", "--api", stack.core, *argv],
            env=stack.env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    listed = command()
    assert listed.returncode == 0, listed.stderr
    header, *rows = listed.stdout.splitlines()
    assert header.split()[:3] == ["HANDLER", "PARAMS", "SERVED"]
    by_name = {row.split()[0]: row.split()[1] for row in rows}
    assert by_name["echo"] == "any" and by_name["fail"] == "message,permanent,until_attempt"
    schema = command("http")
    assert schema.returncode == 0, schema.stderr
    assert json.loads(schema.stdout)["required"] == ["url"]
    unknown = command("nope")
    assert unknown.returncode == 1 and "unknown handler 'nope'" in unknown.stderr


def test_next_and_preview_show_the_slots_before_they_fire(stack: Stack) -> None:
    task_id = _add(stack, "cli-next", "*/5 * * * *")
    header, *rows = _ok(stack, "next", task_id, "--count", "3").splitlines()
    assert header.split()[:2] == ["LOCAL", "(UTC)"] and len(rows) == 3
    assert all(row.split()[0].endswith("+00:00") for row in rows)
    preview = json.loads(
        _ok(stack, "preview", "30 2 * * *", "--timezone", "Europe/Berlin", "--count", "2", "--json")
    )
    assert preview["timezone"] == "Europe/Berlin" and len(preview["slots"]) >= 2
    assert all(
        slot["local"].endswith(("T02:30:00+01:00", "T02:30:00+02:00")) for slot in preview["slots"]
    )
    refused = _cli(stack, "preview", "at 2001-01-01T00:00:00Z")
    assert refused.returncode == 1 and "never fires" in refused.stderr


def test_backfill_runs_a_past_range_and_get_shows_its_progress(stack: Stack) -> None:
    task_id = _add(stack, "cli-backfill", "0 * * * *")
    day = (datetime.now(UTC) - timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    start, end = day.isoformat(), (day + timedelta(hours=3)).isoformat()
    out = _ok(stack, "backfill", task_id, "--start", start, "--end", end, "--rate", "50")
    backfill_id = out.strip()
    assert len(backfill_id) == 36

    def completed() -> dict[str, Any] | None:
        progress: dict[str, Any] | None = _task(stack, task_id).get("backfill")
        return progress if progress and progress["state"] == "completed" else None

    progress = eventually(completed, timeout=60, what="the backfill to complete")
    assert (progress["id"], progress["fired"], progress["total"]) == (backfill_id, 4, 4)
    nothing = _cli(stack, "backfill", task_id, "--cancel")
    assert nothing.returncode == 1 and "no backfill running" in nothing.stderr
    usage = _cli(stack, "backfill", task_id)
    assert usage.returncode == 2 and "--start and --end" in usage.stderr
