"""``taskstream tasks``: SCHEDULE parsing, the mapping of arguments onto API requests, and
how a failed call is told. No service runs here: a call that would reach one is checked
against an address where nothing listens (tests/e2e/test_tasks_cli.py runs the stack)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from taskstream.cli import main
from taskstream.cli.api_options import Target, explain
from taskstream.cli.output import describe_task, format_schedule, format_table
from taskstream.cli.schedule_syntax import ScheduleArgumentError, parse_schedule
from taskstream.cli.tasks import create_body
from taskstream.client import Connection, Unauthorized, ValidationFailed
from taskstream.client.errors import refusal
from taskstream.infra.processes import free_port


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["tasks", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def _answer(status: int, body: Any = None, method: str = "POST", path: str = "/api/tasks") -> Any:
    request = httpx.Request(method, f"http://core.test{path}")
    if body is None:
        return refusal(httpx.Response(status, request=request), "core")
    return refusal(httpx.Response(status, json=body, request=request), "core")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", {"every": "30s"}),
        ("15m", {"every": "15m"}),
        (" 1h30m ", {"every": "1h30m"}),
        ("250ms", {"every": "250ms"}),
        ("every 30s", {"every": "30s"}),
        ("@every 1h30m", {"every": "1h30m"}),
        ("EVERY 2d", {"every": "2d"}),
        ("*/5 * * * *", {"cron": "*/5 * * * *"}),
        ("*/5 * * * * *", {"cron": "*/5 * * * * *"}),
        ("  30   2 * * 1-5 ", {"cron": "30 2 * * 1-5"}),
        ("0 0 1 1 *", {"cron": "0 0 1 1 *"}),  # digits only: still cron, not a duration
        ("61 * * * *", {"cron": "61 * * * *"}),  # the API validates the fields
        ("@daily", {"cron": "0 0 * * *"}),
        ("@hourly", {"cron": "0 * * * *"}),
        ("at 2030-01-01T09:00:00+01:00", {"at": "2030-01-01T09:00:00+01:00"}),
        ("at 2030-01-01T08:00:00Z", {"at": "2030-01-01T08:00:00+00:00"}),
        ("2030-01-01T09:00:00+01:00", {"at": "2030-01-01T09:00:00+01:00"}),
        ("2030-01-01 09:00:00-05:00", {"at": "2030-01-01T09:00:00-05:00"}),
    ],
)
def test_schedule_forms(text: str, expected: dict[str, str]) -> None:
    assert parse_schedule(text) == expected


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ("", "empty schedule"),
        ("   ", "empty schedule"),
        ("every", "lacks its interval"),
        ("@every", "lacks its interval"),
        ("every soon", "invalid interval 'soon'"),
        ("every 5 minutes", "invalid interval"),
        ("at tomorrow", "invalid time 'tomorrow'"),
        ("at 2030-01-01T09:00:00", "has no offset"),
        ("2030-01-01T09:00:00", "has no offset"),
        ("* * * *", "cannot read schedule"),
        ("soon", "cannot read schedule"),
    ],
)
def test_unreadable_schedules_say_what_to_write(text: str, hint: str) -> None:
    with pytest.raises(ScheduleArgumentError, match=hint):
        parse_schedule(text)


def test_an_unreadable_schedule_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "add", "job", "whenever", "--handler", "echo")
    assert code == 2
    assert "Invalid value for 'SCHEDULE': cannot read schedule 'whenever'" in err


def test_minimal_add_sends_only_what_was_given() -> None:
    assert create_body("heartbeat", {"every": "30s"}, "noop") == {
        "name": "heartbeat",
        "schedule": {"every": "30s"},
        "handler": "noop",
    }


def test_every_add_option_maps_onto_the_body() -> None:
    body = create_body(
        "nightly-report",
        {"cron": "30 2 * * *"},
        "echo",
        timezone="Europe/Berlin",
        max_attempts=4,
        params={"report": "sales", "rows": [1, 2]},
        priority="high",
        queue="reports",
        timeout="10m",
        misfire="fire_all",
        overlap="forbid",
    )
    assert body == {
        "name": "nightly-report",
        "schedule": {"cron": "30 2 * * *", "timezone": "Europe/Berlin"},
        "handler": "echo",
        "params": {"report": "sales", "rows": [1, 2]},
        "priority": "high",
        "queue": "reports",
        "timeout": "10m",
        "retry": {"max_attempts": 4},
        "misfire": "fire_all",
        "overlap": "forbid",
    }


def test_empty_params_object_is_sent() -> None:
    assert create_body("t", {"every": "1m"}, "echo", params={})["params"] == {}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--params", "[1, 2]"], "--params must be a JSON object"),
        (["--params", "{oops"], "--params is not valid JSON"),
        (["--timeout", "soon"], "invalid duration 'soon'"),
        (["--max-attempts", "0"], "'--max-attempts': Input should be greater than or equal to 1"),
        (["--max-attempts", "two"], "'--max-attempts': Input should be a valid integer"),
        (["--priority", "urgent"], "'urgent' is not one of 'high', 'medium', 'low'"),
        (["--misfire", "later"], "'later' is not one of"),
    ],
)
def test_bad_add_options_are_usage_errors(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(capsys, "add", "t", "30s", "--handler", "echo", *argv)
    assert code == 2 and out == ""
    assert message in " ".join(err.split()), err


def test_add_needs_a_handler(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "add", "t", "30s")
    assert code == 2 and "--handler" in err


@pytest.mark.parametrize(
    "argv",
    [
        ["add", "t", "30s", "--handler", "echo"],
        ["list"],
        ["list", "--json"],
        ["get", "id-1", "--json"],
        ["pause", "id-1"],
        ["resume", "id-1"],
        ["delete", "id-1", "--yes"],
        ["run", "id-1"],
        ["cancel", "id-1"],
        ["logs", "e-1", "--json"],
        ["history", "id-1", "--json"],
    ],
)
def test_every_subcommand_calls_the_api_and_says_when_it_is_not_there(
    argv: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("TASKSTREAM_MONITOR_API_URL", nowhere)
    code, out, err = _run(capsys, "--api", nowhere, *argv)
    assert code == 1 and out == ""
    assert err.startswith("taskstream: cannot reach the ") and nowhere in err


def test_connection_options_may_follow_the_subcommand_and_win(
    capsys: pytest.CaptureFixture[str],
) -> None:
    group, own = f"http://127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    code, _, err = _run(capsys, "--api", group, "get", "x", "--api", own, "-v")
    assert code == 1 and f"http://{own}" in err and group not in err


def test_the_api_comes_from_the_environment(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("TASKSTREAM_API_URL", nowhere + "/")
    code, _, err = _run(capsys, "list")
    assert code == 1 and f"cannot reach the core API at {nowhere}:" in err


def test_validation_errors_print_the_message_and_each_field() -> None:
    document = {
        "error": "validation_failed",
        "message": "schedule.cron: invalid cron expression '61 * * * *'",
        "errors": [
            {"field": "schedule.cron", "message": "invalid cron expression", "type": "value_error"},
            {"field": "queue", "message": "unknown queue 'x'", "type": "unknown_queue"},
        ],
    }
    error = _answer(422, document)
    assert isinstance(error, ValidationFailed)
    assert explain(error, None) == (
        "schedule.cron: invalid cron expression '61 * * * *'",
        ["  schedule.cron: invalid cron expression", "  queue: unknown queue 'x'"],
    )


def test_not_found_uses_the_api_message() -> None:
    error = _answer(404, {"error": "not_found", "message": "no task with id 'x'"}, "GET")
    assert explain(error, None) == ("no task with id 'x'", [])


def test_unauthorized_names_the_token_variable() -> None:
    without = Target(Connection(), verbose=False)
    with_token = Target(Connection(api_token="t0k"), verbose=False)
    error = _answer(401, None, "GET")
    assert isinstance(error, Unauthorized)
    assert "TASKSTREAM_API_TOKEN" in explain(error, without)[0]
    refused = explain(_answer(401, {"error": "unauthorized", "message": "bad"}), with_token)[0]
    assert "refused the token" in refused and "TASKSTREAM_API_TOKEN" in refused


def test_a_missing_endpoint_says_so() -> None:
    error = _answer(405, {"detail": "Method Not Allowed"}, "PUT", "/api/tasks/x/status")
    message, _ = explain(error, None)
    assert message.startswith("the core API answered 405 Method Not Allowed")
    assert "does not serve PUT /api/tasks/x/status" in message


def test_an_answer_without_json_still_gives_the_status() -> None:
    assert explain(_answer(502, None), None)[0] == "the core API answered 502 Bad Gateway"


def test_version_and_completion(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("taskstream 0.")
    assert main(["--show-completion", "bash"]) == 0
    assert "complete" in capsys.readouterr().out


TASK: dict[str, Any] = {
    "id": "be8615e9-0000-4000-8000-000000000001",
    "name": "nightly report",
    "schedule": {"cron": "30 2 * * *", "every": None, "at": None, "timezone": "Europe/Berlin"},
    "handler": "echo",
    "params": {"report": "sales"},
    "priority": "high",
    "queue": "default",
    "timeout": None,
    "retry": {"max_attempts": 4},
    "status": "active",
    "version": 3,
    "last_status": "succeeded",
    "last_execution_id": "44ef3b62",
    "executions": {"scheduled": 2, "succeeded": 2, "failed": 0, "skipped": 0},
}


@pytest.mark.parametrize(
    ("schedule", "text"),
    [
        (TASK["schedule"], "30 2 * * * (Europe/Berlin)"),
        ({"cron": "* * * * *", "timezone": "UTC"}, "* * * * *"),
        ({"every": "30s", "cron": None, "at": None}, "every 30s"),
        ({"at": "2030-01-01T08:00:00Z"}, "at 2030-01-01T08:00:00Z"),
        (None, "-"),
    ],
)
def test_schedules_read_as_written(schedule: Any, text: str) -> None:
    assert format_schedule(schedule) == text


def test_table_lines_up_columns() -> None:
    other = {**TASK, "id": "x", "name": "t", "schedule": {"every": "1s"}, "last_status": None}
    lines = format_table([TASK, other]).splitlines()
    assert lines[0].startswith("ID") and lines[0].endswith("LAST STATUS")
    assert lines[1].startswith(f"{TASK['id']}  nightly report  30 2 * * * (Europe/Berlin)  echo")
    assert lines[2].split() == ["x", "t", "every", "1s", "echo", "active", "3", "-"]
    column = lines[0].index("SCHEDULE")
    assert lines[1][column:].startswith("30 2") and lines[2][column:].startswith("every 1s")


def test_describe_shows_what_the_api_sent() -> None:
    lines = describe_task(TASK)
    assert f"id          {TASK['id']}" in lines
    assert "schedule    30 2 * * * (Europe/Berlin)" in lines
    assert 'params      {"report": "sales"}' in lines
    assert "attempts    4" in lines
    assert "last run    succeeded (44ef3b62)" in lines
    assert "executions  scheduled 2, succeeded 2, failed 0, skipped 0" in lines
    assert not any(line.startswith("timeout") for line in lines)  # null is left out
