"""``taskstream workers`` and ``taskstream alerts``: reads of the core's and the monitor's APIs.

  taskstream workers [--live] [--json]   the executors the core knows from heartbeats
  taskstream alerts [--json]             the alerts firing now and the recent notices
  taskstream alerts rules [--json]       every alert rule, from the file and the API

The monitor is TASKSTREAM_MONITOR_API_URL (default http://127.0.0.1:6066), with
TASKSTREAM_MONITOR_API_TOKEN.
"""

from __future__ import annotations

from typing import Annotated

import typer

from taskstream.cli.api_options import (
    ApiOption,
    JsonOption,
    TokenOption,
    VerboseOption,
    calls_api,
    connect,
)
from taskstream.cli.output import as_help, note, print_json, table

__all__ = ["alerts_app", "workers"]


@calls_api
def workers(
    ctx: typer.Context,
    live: Annotated[bool, typer.Option("--live", help="only live executors")] = False,
    as_json: JsonOption = False,
    api: ApiOption = None,
    token: TokenOption = None,
    verbose: VerboseOption = False,
) -> None:
    """The executors the core knows from their heartbeats."""
    with connect(ctx, api, token, verbose) as (client, _):
        answer = client.workers(live=True if live else None)
    if as_json:
        print_json(answer)
        return
    if not answer.items:
        note("no executor has sent a heartbeat" + ("" if answer.ready else " yet"))
        return
    rows = [["EXECUTOR", "LIVE", "QUEUES", "HANDLERS", "IN FLIGHT", "LAST SEEN"]]
    for worker in answer.items:
        rows.append(
            [
                worker.executor_id,
                "yes" if worker.live else "no",
                ",".join(worker.queues),
                ",".join(worker.handlers),
                f"{worker.in_flight}/{worker.capacity}",
                f"{worker.last_seen_seconds:.0f}s ago",
            ]
        )
    print(table(rows))


@calls_api
def handlers(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(help="one handler: its params' schema")] = None,
    as_json: JsonOption = False,
    api: ApiOption = None,
    token: TokenOption = None,
    verbose: VerboseOption = False,
) -> None:
    """The handlers a task may name, what params they take and where they are served."""
    if name is not None:
        with connect(ctx, api, token, verbose) as (client, _):
            one = client.handler(name)
        if as_json or one.params_schema is None:
            print_json(one)
        else:
            print_json(one.params_schema)
        return
    with connect(ctx, api, token, verbose) as (client, _):
        answer = client.handlers()
    if as_json:
        print_json(answer)
        return
    rows = [["HANDLER", "PARAMS", "SERVED ON", "DESCRIPTION"]]
    for item in answer.items:
        schema = item.params_schema or {}
        taken = ",".join(schema.get("properties", {})) if item.params_schema else "any"
        served = ",".join(item.queues) or ("none" if answer.workers_ready else "?")
        rows.append([item.name, taken, served, item.description])
    print(table(rows))


alerts_app = typer.Typer(
    name="alerts",
    help=as_help(__doc__),
    rich_markup_mode=None,
    add_completion=False,
    invoke_without_command=True,
)


@alerts_app.callback()
@calls_api
def alerts(
    ctx: typer.Context,
    as_json: JsonOption = False,
    verbose: VerboseOption = False,
) -> None:
    """The alerts firing now and the recent notices."""
    if ctx.invoked_subcommand is not None:
        return
    with connect(ctx, None, None, verbose) as (client, _):
        answer = client.alerts()
    if as_json:
        print_json(answer)
        return
    if not answer.active:
        note("no alert is firing")
    for alert in answer.active:
        print(
            f"FIRING  {alert.severity.value:8}  {alert.rule_id}  {alert.subject}  {alert.summary}"
        )
    for notice in answer.recent[:10]:
        when = notice.sent_at.isoformat(timespec="seconds")
        note(f"{when} {notice.status.value} {notice.rule_id} {notice.subject}: {notice.summary}")


@alerts_app.command("rules")
@calls_api
def rules(
    ctx: typer.Context,
    as_json: JsonOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Every alert rule, from the rules file and the API."""
    with connect(ctx, None, None, verbose) as (client, _):
        listed = client.alert_rules()
    if as_json:
        print_json({"items": [rule.flat() for rule in listed]})
        return
    rows = [["ID", "KIND", "SEVERITY", "SOURCE", "ENABLED"]]
    for item in listed:
        rule = item.rule
        rows.append(
            [rule.id, rule.kind, rule.severity.value, item.source, "yes" if rule.enabled else "no"]
        )
    print(table(rows))
