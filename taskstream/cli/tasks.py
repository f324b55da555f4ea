"""taskstream tasks: create and manage tasks through the core's REST API.

  id=$(taskstream tasks add heartbeat 30s --handler noop)
  taskstream tasks add cleanup 1h --handler echo --params '{"table": "sessions"}'
  taskstream tasks add report "30 2 * * *" --handler echo --timezone Europe/Berlin
  taskstream tasks add tick "*/5 * * * * *" --handler echo --priority high
  taskstream tasks add once "at 2030-01-01T09:00:00+01:00" --handler echo
  taskstream tasks list --status active
  taskstream tasks get "$id" --json
  taskstream tasks pause "$id"; taskstream tasks resume "$id"
  taskstream tasks run "$id"        run now; prints the execution id
  taskstream tasks cancel "$id"     cancel its unfinished executions
  taskstream tasks logs EXECUTION_ID   what the run logged and printed (--json: the API's)
  taskstream tasks history "$id"    its last executions, as the monitor saw them
  taskstream tasks next "$id" --count 5     its next slots, as the scheduler will fire them
  taskstream tasks preview "30 2 * * *" --timezone Europe/Berlin   before creating it
  taskstream tasks backfill "$id" --start 2030-01-01T00:00:00Z --end 2030-01-01T23:00:00Z
  taskstream tasks backfill "$id" --cancel
  taskstream tasks delete "$id" --yes

SCHEDULE: 30s, "every 1h30m", "*/5 * * * *" (or 6 fields, seconds first), @daily, or
"at 2030-01-01T09:00:00+01:00".

The API is --api URL, else TASKSTREAM_API_URL, else http://127.0.0.1:8080; a token from
TASKSTREAM_API_TOKEN (or --token) is sent as "Authorization: Bearer <token>". The monitor
(for history) is TASKSTREAM_MONITOR_API_URL, with TASKSTREAM_MONITOR_API_TOKEN. Results go
to stdout (add prints only the new task's id); errors go to stderr and exit 1. Every read
takes --json.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any

import typer

from taskstream.cli.api_options import (
    ApiOption,
    JsonOption,
    TokenOption,
    VerboseOption,
    calls_api,
    connect,
    group_options,
)
from taskstream.cli.output import (
    as_help,
    describe_task,
    format_schedule,
    format_table,
    note,
    print_json,
    table,
)
from taskstream.cli.schedule_syntax import ScheduleArgumentError, parse_schedule
from taskstream.client import Client
from taskstream.schemas import DurationError, MisfirePolicy, OverlapPolicy, Priority, parse_duration
from taskstream.schemas.api import Accepted, SchedulePreview, Task

__all__ = ["app", "create_body"]

app = typer.Typer(
    name="tasks",
    help=as_help(__doc__),
    no_args_is_help=True,
    rich_markup_mode=None,
    add_completion=False,
)
app.callback()(group_options)


def _schedule(text: str) -> dict[str, str]:
    try:
        return parse_schedule(text)
    except ScheduleArgumentError as exc:
        raise typer.BadParameter(str(exc)) from None


def _params(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"--params is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise typer.BadParameter("--params must be a JSON object, like '{\"key\": 1}'")
    return value


def _duration(text: str) -> str:
    try:
        parse_duration(text)
    except DurationError as exc:
        raise typer.BadParameter(str(exc)) from None
    return text.strip()


def create_body(
    name: str,
    schedule: dict[str, str],
    handler: str,
    *,
    timezone: str | None = None,
    max_attempts: int | None = None,
    **optional: Any,
) -> dict[str, Any]:
    """The ``POST /api/tasks`` body for ``tasks add``; options not given are left out."""
    when: dict[str, Any] = dict(schedule)
    if timezone is not None:
        when["timezone"] = timezone
    body: dict[str, Any] = {"name": name, "schedule": when, "handler": handler}
    body.update({key: value for key, value in optional.items() if value is not None})
    if max_attempts is not None:
        body["retry"] = {"max_attempts": max_attempts}
    return body


def _shown(answer: Task | Accepted) -> dict[str, Any]:
    return answer.model_dump(mode="json")


IdArgument = Annotated[str, typer.Argument(metavar="ID", help="the task's id")]


@app.command("add")
@calls_api
def add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="a label for the task")],
    schedule: Annotated[
        dict[str, str],
        typer.Argument(
            metavar="SCHEDULE",
            parser=_schedule,
            help="'30s', 'every 1h30m', '*/5 * * * *', '@daily' or 'at 2030-01-01T09:00:00Z'",
        ),
    ],
    handler: Annotated[str, typer.Option(help="a registered handler, e.g. echo")],
    params: Annotated[
        dict[str, Any] | None, typer.Option(parser=_params, metavar="JSON", help="a JSON object")
    ] = None,
    priority: Annotated[Priority | None, typer.Option()] = None,
    queue: Annotated[
        str | None, typer.Option(metavar="Q", help="which executors run it (default: default)")
    ] = None,
    timeout: Annotated[
        str | None, typer.Option(parser=_duration, metavar="DURATION", help="e.g. 30s")
    ] = None,
    max_attempts: Annotated[
        int | None, typer.Option(min=1, metavar="N", help="1 = no retries")
    ] = None,
    timezone: Annotated[
        str | None, typer.Option(metavar="TZ", help="IANA zone of cron fields (default: UTC)")
    ] = None,
    misfire: Annotated[MisfirePolicy | None, typer.Option()] = None,
    overlap: Annotated[OverlapPolicy | None, typer.Option()] = None,
    api: ApiOption = None,
    token: TokenOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Create a task; prints its id."""
    body = create_body(
        name,
        schedule,
        handler,
        timezone=timezone,
        max_attempts=max_attempts,
        params=params,
        priority=priority.value if priority else None,
        queue=queue,
        timeout=timeout,
        misfire=misfire.value if misfire else None,
        overlap=overlap.value if overlap else None,
    )
    with connect(ctx, api, token, verbose) as (client, target):
        answer = client.create_task(body)
    print(answer.id)
    for warning in answer.warnings:
        note(f"warning: {warning}")
    if target.verbose:
        if isinstance(answer, Accepted):
            note("accepted: the task is on the log but not yet in the store")
        for line in describe_task(_shown(answer)):
            print(f"  {line}", file=sys.stderr)


@app.command("list")
@calls_api
def list_tasks(
    ctx: typer.Context,
    status: Annotated[
        str | None, typer.Option(help="only tasks in this status (active, paused, ...)")
    ] = None,
    handler: Annotated[str | None, typer.Option(help="only tasks of this handler")] = None,
    queue: Annotated[str | None, typer.Option(help="only tasks of this queue")] = None,
    page: Annotated[int, typer.Option(min=0, metavar="N", help="page number, from 0")] = 0,
    size: Annotated[int, typer.Option(min=1, metavar="N", help="tasks per page")] = 20,
    as_json: JsonOption = False,
    api: ApiOption = None,
    token: TokenOption = None,
    verbose: VerboseOption = False,
) -> None:
    """List tasks, a page at a time."""
    with connect(ctx, api, token, verbose) as (client, _):
        answer = client.list_tasks(
            page=page, size=size, status=status, handler=handler, queue=queue
        )
    if as_json:
        print_json(answer)
        return
    if not answer.items:
        note("no tasks" + (" on this page" if answer.total else ""))
        return
    print(format_table([task.model_dump(mode="json") for task in answer.items]))
    first = page * size
    if first + len(answer.items) < answer.total:
        shown = f"{first + 1}-{first + len(answer.items)}"
        note(f"tasks {shown} of {answer.total}; next: --page {page + 1}")


@app.command("get")
@calls_api
def get(
    ctx: typer.Context,
    task_id: IdArgument,
    as_json: JsonOption = False,
    api: ApiOption = None,
    token: TokenOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Show one task."""
    with connect(ctx, api, token, verbose) as (client, _):
        task = client.get_task(task_id)
    if as_json:
        print_json(task)
    else:
        print("\n".join(describe_task(task.model_dump(mode="json"))))


@app.command("pause")
@calls_api
def pause(
    ctx: typer.Context,
    task_id: IdArgument,
    api: ApiOption = None,
    token: TokenOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Stop firing."""
    with connect(ctx, api, token, verbose) as (client, _):
        client.pause_task(task_id)
    print(f"paused {task_id}")


@app.command("resume")
@calls_api
def resume(
    ctx: typer.Context,
    task_id: IdArgument,
    api: ApiOption = None,
    token: TokenOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Fire again (also lifts a quarantine)."""
    with connect(ctx, api, token, verbose) as (client, _):
        client.resume_task(task_id)
    print(f"resumed {task_id}")


@app.command("delete")
@calls_api
def delete(
    ctx: typer.Context,
    task_id: IdArgument,
    yes: Annotated[bool, typer.Option("-y", "--yes", help="do not ask")] = False,
    api: ApiOption = None,
    token: TokenOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Delete a task (asks first on a terminal)."""
    with connect(ctx, api, token, verbose) as (client, _):
        if not yes and sys.stdin.isatty() and not _confirm_delete(client, task_id):
            note("not deleted")
            raise typer.Exit(1)
        client.delete_task(task_id)
    print(f"deleted {task_id}")


def _confirm_delete(client: Client, task_id: str) -> bool:
    task = client.get_task(task_id)
    schedule = format_schedule(task.schedule.model_dump(mode="json"))
    print(f"delete task {task_id} ({task.name}, {schedule})? [y/N] ", end="", file=sys.stderr)
    sys.stderr.flush()
    return sys.stdin.readline().strip().lower() in ("y", "yes")


CountOption = Annotated[int, typer.Option("--count", min=1, max=1000, help="how many slots")]


def _print_preview(preview: SchedulePreview, as_json: bool) -> None:
    if as_json:
        print_json(preview)
        return
    rows = [[f"LOCAL ({preview.timezone})", "UTC", "FIRES AT", ""]]
    for slot in preview.slots:
        due = slot.due_at.isoformat() if slot.due_at is not None else "(+ jitter)"
        mark = "skipped: the hour repeats (dst)" if slot.skipped else ""
        rows.append([slot.local, slot.scheduled_for.isoformat(), due, mark])
    print(table(rows))
    if preview.note:
        note(preview.note)


@app.command("next")
@calls_api
def next_slots(
    ctx: typer.Context,
    task_id: IdArgument,
    count: CountOption = 10,
    as_json: JsonOption = False,
    api: ApiOption = None,
    token: TokenOption = None,
    verbose: VerboseOption = False,
) -> None:
    """The task's next slots, as its scheduler will fire them (DST changes included)."""
    with connect(ctx, api, token, verbose) as (client, _):
        preview = client.next_slots(task_id, count=count)
    _print_preview(preview, as_json)


@app.command("preview")
@calls_api
def preview(
    ctx: typer.Context,
    schedule: Annotated[
        dict[str, str],
        typer.Argument(parser=_schedule, metavar="SCHEDULE", help="as `tasks add` takes it"),
    ],
    timezone: Annotated[str | None, typer.Option(help="an IANA zone, e.g. Europe/Berlin")] = None,
    count: CountOption = 10,
    as_json: JsonOption = False,
    api: ApiOption = None,
    token: TokenOption = None,
    verbose: VerboseOption = False,
) -> None:
    """The first slots of a schedule before a task has it (what a create checks too)."""
    when: dict[str, Any] = dict(schedule)
    if timezone is not None:
        when["timezone"] = timezone
    with connect(ctx, api, token, verbose) as (client, _):
        answer = client.preview_schedule(when, count=count)
    _print_preview(answer, as_json)


def _instant(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is not a time: write it like 2030-01-01T00:00:00Z"
        ) from None
    if value.tzinfo is None:
        raise typer.BadParameter(f"{text!r} has no offset: add Z or +01:00")
    return value


InstantOption = Annotated[
    datetime | None, typer.Option(parser=_instant, metavar="TIME", help="ISO 8601, with offset")
]


@app.command("backfill")
@calls_api
def backfill(
    ctx: typer.Context,
    task_id: IdArgument,
    start: InstantOption = None,
    end: InstantOption = None,
    rate: Annotated[float, typer.Option(min=0.001, max=1000, help="slots a second")] = 1.0,
    forbid_overlap: Annotated[
        bool, typer.Option("--forbid-overlap", help="a slot starts once nothing of it runs")
    ] = False,
    cancel_it: Annotated[bool, typer.Option("--cancel", help="cancel the running one")] = False,
    as_json: JsonOption = False,
    api: ApiOption = None,
    token: TokenOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Run the task's schedule over a past range, paced; prints the backfill's id."""
    if not cancel_it and (start is None or end is None):
        raise typer.BadParameter("give --start and --end (or --cancel)")
    with connect(ctx, api, token, verbose) as (client, _):
        if cancel_it:
            answer = client.cancel_backfill(task_id)
        else:
            assert start is not None and end is not None
            overlap = "forbid" if forbid_overlap else "allow"
            answer = client.backfill(task_id, start=start, end=end, overlap=overlap, rate=rate)
    if as_json:
        print_json(answer)
        return
    print(answer.backfill_id)
    note(f"{answer.state}: {answer.total} slot(s) from {answer.first_slot.isoformat()}")


@app.command("run")
@calls_api
def run(
    ctx: typer.Context,
    task_id: IdArgument,
    api: ApiOption = None,
    token: TokenOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Run now; prints the execution id."""
    with connect(ctx, api, token, verbose) as (client, _):
        print(client.run_task(task_id).execution_id)


@app.command("cancel")
@calls_api
def cancel(
    ctx: typer.Context,
    task_id: IdArgument,
    execution: Annotated[
        str | None, typer.Option(metavar="EXECUTION_ID", help="cancel only this one")
    ] = None,
    api: ApiOption = None,
    token: TokenOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Cancel the task's unfinished executions (or one of them)."""
    with connect(ctx, api, token, verbose) as (client, _):
        answer = client.cancel(task_id, execution_id=execution)
    if answer.execution_id:
        print(answer.execution_id)
    else:
        note(f"cancel of task {task_id}'s unfinished executions requested")


@app.command("logs")
@calls_api
def logs(
    ctx: typer.Context,
    execution_id: Annotated[str, typer.Argument()],
    as_json: JsonOption = False,
    api: ApiOption = None,
    token: TokenOption = None,
    verbose: VerboseOption = False,
) -> None:
    """What an execution's handler logged and printed."""
    with connect(ctx, api, token, verbose) as (client, _):
        if as_json:
            print_json(client.execution_logs(execution_id))
        else:
            print(client.execution_log_text(execution_id), end="")


_HISTORY_COLUMNS = ("EXECUTION", "ATTEMPT", "STATUS", "SCHEDULED FOR", "DURATION", "ERROR")


@app.command("history")
@calls_api
def history(
    ctx: typer.Context,
    task_id: IdArgument,
    page: Annotated[int, typer.Option(min=0, metavar="N", help="page number, from 0")] = 0,
    size: Annotated[int, typer.Option(min=1, metavar="N", help="executions per page")] = 20,
    as_json: JsonOption = False,
    api: ApiOption = None,
    token: TokenOption = None,
    verbose: VerboseOption = False,
) -> None:
    """The task's last executions, newest first, as the monitor folded them."""
    with connect(ctx, api, token, verbose) as (client, _):
        answer = client.task_history(task_id, page=page, size=size)
    if as_json:
        print_json(answer)
        return
    if not answer.items:
        note(f"the monitor has seen no execution of task {task_id}")
        return
    rows: list[Sequence[Any]] = [_HISTORY_COLUMNS]
    for record in answer.items:
        duration = record.duration_seconds
        rows.append(
            [
                record.execution_id,
                record.attempt,
                record.status,
                record.scheduled_for.isoformat() if record.scheduled_for else None,
                f"{duration:.3f}s" if duration is not None else None,
                record.error_type or record.dead_letter_reason,
            ]
        )
    print(table(rows))
