"""``taskstream tasks``: SCHEDULE parsing and the mapping of arguments onto API requests."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from taskstream.cli.tasks import (
    DEFAULT_API_URL,
    ScheduleArgumentError,
    add_tasks_command,
    api_error,
    create_body,
    describe_task,
    format_schedule,
    format_table,
    list_params,
    parse_schedule,
    resolve_api,
)


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="taskstream")
    add_tasks_command(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["tasks", *argv])


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
    with pytest.raises(SystemExit) as exit_info:
        _parse("add", "job", "whenever", "--handler", "echo")
    assert exit_info.value.code == 2
    assert "argument SCHEDULE: cannot read schedule 'whenever'" in capsys.readouterr().err


def test_minimal_add_sends_only_what_was_given() -> None:
    args = _parse("add", "heartbeat", "30s", "--handler", "noop")
    assert create_body(args) == {
        "name": "heartbeat",
        "schedule": {"every": "30s"},
        "handler": "noop",
    }


def test_every_add_option_maps_onto_the_body() -> None:
    args = _parse(
        "add",
        "nightly-report",
        "30 2 * * *",
        "--handler",
        "echo",
        "--params",
        '{"report": "sales", "rows": [1, 2]}',
        "--priority",
        "high",
        "--queue",
        "reports",
        "--timeout",
        "10m",
        "--max-attempts",
        "4",
        "--timezone",
        "Europe/Berlin",
        "--misfire",
        "fire_all",
        "--overlap",
        "forbid",
    )
    assert create_body(args) == {
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
    args = _parse("add", "t", "1m", "--handler", "echo", "--params", "{}")
    assert create_body(args)["params"] == {}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--params", "[1, 2]"], "--params must be a JSON object"),
        (["--params", "{oops"], "--params is not valid JSON"),
        (["--timeout", "soon"], "invalid duration 'soon'"),
        (["--max-attempts", "0"], "below the minimum of 1"),
        (["--max-attempts", "two"], "'two' is not a whole number"),
        (["--priority", "urgent"], "invalid choice: 'urgent'"),
        (["--misfire", "later"], "invalid choice: 'later'"),
    ],
)
def test_bad_add_options_are_usage_errors(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        _parse("add", "t", "30s", "--handler", "echo", *argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_add_needs_a_handler(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        _parse("add", "t", "30s")
    assert "--handler" in capsys.readouterr().err


def test_list_query_leaves_out_what_was_not_given() -> None:
    assert list_params(_parse("list")) == {}
    args = _parse(
        "list",
        "--status",
        "paused",
        "--handler",
        "echo",
        "--queue",
        "q",
        "--page",
        "2",
        "--size",
        "5",
    )
    assert list_params(args) == {
        "page": 2,
        "size": 5,
        "status": "paused",
        "handler": "echo",
        "queue": "q",
    }


@pytest.mark.parametrize(
    "argv",
    [
        ["add", "t", "30s", "--handler", "echo"],
        ["list"],
        ["get", "id-1"],
        ["pause", "id-1"],
        ["resume", "id-1"],
        ["delete", "id-1", "--yes"],
        ["run", "id-1"],
        ["cancel", "id-1"],
    ],
)
def test_every_subcommand_dispatches_through_run(argv: list[str]) -> None:
    args = _parse(*argv)
    assert callable(args.run)
    assert args.api is None and args.token is None and args.verbose is False


def test_api_and_token_come_from_options_then_environment() -> None:
    environ = {"TASKSTREAM_API_URL": "http://core:9000/", "TASKSTREAM_API_TOKEN": "s3cret"}
    assert resolve_api(_parse("list"), {}) == (DEFAULT_API_URL, None)
    assert resolve_api(_parse("list"), environ) == ("http://core:9000", "s3cret")
    args = _parse("--api", "http://other:1", "--token", "t0k", "list")
    assert resolve_api(args, environ) == ("http://other:1", "t0k")


def test_connection_options_may_follow_the_subcommand() -> None:
    args = _parse("--api", "http://group:1", "get", "x", "--api", "localhost:2", "-v")
    assert resolve_api(args, {}) == ("http://localhost:2", None)
    assert args.verbose is True
    assert _parse("--api", "http://group:1", "get", "x").api == "http://group:1"


def test_validation_errors_print_the_message_and_each_field() -> None:
    document = {
        "error": "validation_failed",
        "message": "schedule.cron: invalid cron expression '61 * * * *'",
        "errors": [
            {"field": "schedule.cron", "message": "invalid cron expression", "type": "value_error"},
            {"field": "queue", "message": "unknown queue 'x'", "type": "unknown_queue"},
        ],
    }
    error = api_error(422, document)
    assert error.message == "schedule.cron: invalid cron expression '61 * * * *'"
    assert error.details == [
        "  schedule.cron: invalid cron expression",
        "  queue: unknown queue 'x'",
    ]


def test_not_found_uses_the_api_message() -> None:
    error = api_error(404, {"error": "not_found", "message": "no task with id 'x'"})
    assert (error.message, error.details) == ("no task with id 'x'", [])


def test_unauthorized_names_the_token_variable() -> None:
    assert "TASKSTREAM_API_TOKEN" in api_error(401, None, has_token=False).message
    refused = api_error(401, {"error": "unauthorized", "message": "bad"}, has_token=True)
    assert "refused the token" in refused.message and "TASKSTREAM_API_TOKEN" in refused.message


def test_a_missing_endpoint_says_so() -> None:
    error = api_error(
        405,
        {"detail": "Method Not Allowed"},
        reason="Method Not Allowed",
        request="PUT /api/tasks/x/status",
    )
    assert error.message.startswith("the core API answered 405 Method Not Allowed")
    assert "does not serve PUT /api/tasks/x/status" in error.message


def test_an_answer_without_json_still_gives_the_status() -> None:
    error = api_error(502, None, reason="Bad Gateway")
    assert error.message == "the core API answered 502 Bad Gateway"


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
