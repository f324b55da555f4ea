"""What every command that calls the APIs shares: ``--api``, ``--token``, ``-v``, ``--json``,
the client they make, and how a failed call is told (stderr, exit status 1).

``--api``, ``--token`` and ``-v`` are taken on the group (``taskstream tasks --api URL
list``) and again on each command, where they win.
"""

from __future__ import annotations

import functools
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated, Any, ParamSpec, TypeVar

import httpx
import typer

from taskstream.cli.output import note
from taskstream.client import (
    Client,
    ClientError,
    Connection,
    RequestRefused,
    Unauthorized,
)
from taskstream.client.connection import DEFAULT_API_URL, ENV_API_TOKEN, ENV_API_URL

__all__ = [
    "ApiOption",
    "JsonOption",
    "Target",
    "TokenOption",
    "VerboseOption",
    "calls_api",
    "connect",
    "explain",
    "group_options",
]

P = ParamSpec("P")
R = TypeVar("R")
CLI_RETRIES = 1
"""A command sends a call once more after a 503 or a refused connection, then says why."""

ApiOption = Annotated[
    str | None,
    typer.Option(
        "--api",
        metavar="URL",
        help=f"the core API (default: ${ENV_API_URL}, else {DEFAULT_API_URL})",
    ),
]
TokenOption = Annotated[
    str | None,
    typer.Option(
        "--token",
        help=f"bearer token (default: ${ENV_API_TOKEN}; prefer the variable: options show in ps)",
    ),
]
VerboseOption = Annotated[
    bool, typer.Option("-v", "--verbose", help="show requests and details on stderr")
]
JsonOption = Annotated[bool, typer.Option("--json", help="print the answer as JSON")]

_TARGET = "taskstream.target"


@dataclass(frozen=True)
class Target:
    """The API a command talks to, from its options, the group's, then the environment."""

    connection: Connection
    verbose: bool


def group_options(
    ctx: typer.Context,
    api: ApiOption = None,
    token: TokenOption = None,
    verbose: VerboseOption = False,
) -> None:
    """The group's ``--api``, ``--token`` and ``-v``, kept for its commands."""
    ctx.obj = {"api": api, "token": token, "verbose": verbose}


def _target(ctx: typer.Context, api: str | None, token: str | None, verbose: bool) -> Target:
    group: dict[str, Any] = {}
    if ctx.parent is not None and isinstance(ctx.parent.obj, dict):
        group = ctx.parent.obj
    env = Connection.from_env(os.environ)
    connection = Connection(
        api_url=api or group.get("api") or env.api_url,
        api_token=token or group.get("token") or env.api_token,
        monitor_url=env.monitor_url,
        monitor_token=env.monitor_token,
        retries=CLI_RETRIES,
    )
    return Target(connection, verbose or bool(group.get("verbose")))


def _show_request(response: httpx.Response) -> None:
    request = response.request
    started = request.extensions.get("taskstream_started")
    took = f" ({(time.monotonic() - started) * 1000:.0f} ms)" if started else ""
    note(f"{request.method} {request.url} -> {response.status_code}{took}")


def _stamp(request: httpx.Request) -> None:
    request.extensions["taskstream_started"] = time.monotonic()


@contextmanager
def connect(
    ctx: typer.Context, api: str | None, token: str | None, verbose: bool
) -> Iterator[tuple[Client, Target]]:
    """A client of the command's target (and the target), closed when the block ends."""
    target = _target(ctx, api, token, verbose)
    ctx.meta[_TARGET] = target
    c = target.connection
    hooks: dict[str, list[Callable[..., Any]]] | None = None
    if target.verbose:
        hooks = {"request": [_stamp], "response": [_show_request]}
    with Client(
        c.api_url,
        token=c.api_token,
        monitor_url=c.monitor_url,
        monitor_token=c.monitor_token,
        retries=c.retries,
        event_hooks=hooks,
    ) as client:
        yield client, target


def explain(error: ClientError, target: Target | None) -> tuple[str, list[str]]:
    """What to print for a failed call: the message, and lines such as one per bad field."""
    if not isinstance(error, RequestRefused):
        return str(error), []
    service = error.service
    if isinstance(error, Unauthorized):
        variable = ENV_API_TOKEN if service == "core" else "TASKSTREAM_MONITOR_API_TOKEN"
        sent = target is not None and (
            target.connection.api_token if service == "core" else target.connection.monitor_token
        )
        if sent:
            return f"the {service} API refused the token (401): check {variable} or --token", []
        return f"the {service} API needs a token (401): set {variable} or pass --token", []
    details = [f"  {e.field or 'body'}: {e.message or e.type}" for e in error.errors]
    if not error.code.startswith("http_"):
        return error.message_text, details
    text = (
        f"the {service} API answered {error.status} {httpx.codes.get_reason_phrase(error.status)}"
    )
    if error.status in (404, 405):
        text += f" (this {service} API does not serve {error.request}: is it older than this CLI?)"
    return text, details


def calls_api(command: Callable[P, R]) -> Callable[P, R]:
    """Run a command; a :class:`ClientError` is told on stderr and exits with status 1."""

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except ClientError as error:
            ctx = kwargs.get("ctx")
            target = ctx.meta.get(_TARGET) if isinstance(ctx, typer.Context) else None
            message, details = explain(error, target)
            note(message)
            for line in details:
                print(line, file=sys.stderr)
            raise typer.Exit(1) from None

    return run
