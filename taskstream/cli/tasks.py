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
  taskstream tasks delete "$id" --yes

SCHEDULE is one of:
  30s, 15m, 1h30m, "every 30s", "@every 30s"   an interval, first run one interval from now
  "*/5 * * * *", "0 */5 * * * *"                cron: 5 fields, or 6 with seconds first
  @hourly, @daily, @weekly, @monthly, @yearly   cron shorthands
  "at 2030-01-01T09:00:00+01:00"               one shot (the time needs an offset or Z)

The API is --api URL, else TASKSTREAM_API_URL, else http://127.0.0.1:8080. A token from
TASKSTREAM_API_TOKEN (or --token) is sent as "Authorization: Bearer <token>".
Results go to stdout (add prints only the new task's id); errors go to stderr and exit 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx

from taskstream.schemas import DurationError, MisfirePolicy, OverlapPolicy, Priority, parse_duration
from taskstream.schemas.errors import TaskstreamError

__all__ = [
    "DEFAULT_API_URL",
    "ENV_API_TOKEN",
    "ENV_API_URL",
    "ENV_VARIABLES",
    "ApiError",
    "ScheduleArgumentError",
    "add_tasks_command",
    "api_error",
    "create_body",
    "describe_task",
    "format_schedule",
    "format_table",
    "list_params",
    "parse_schedule",
    "resolve_api",
]

ENV_API_URL = "TASKSTREAM_API_URL"
ENV_API_TOKEN = "TASKSTREAM_API_TOKEN"
ENV_VARIABLES = frozenset({ENV_API_URL, ENV_API_TOKEN})
"""The variables this command reads (``taskstream``'s unknown-setting check must allow them)."""
DEFAULT_API_URL = "http://127.0.0.1:8080"
TIMEOUT_SECONDS = 30.0

Runner = Callable[[argparse.Namespace], int]
Command = Callable[["Api", argparse.Namespace], int]

# ---------------------------------------------------------------------------- schedules

_CRON_SHORTHANDS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

_SCHEDULE_FORMS = (
    "write a duration ('30s', '15m', '1h30m', 'every 30s'), a cron expression of 5 fields "
    "('*/5 * * * *') or 6 with seconds first ('*/5 * * * * *'), or 'at' and an ISO-8601 "
    "time with an offset ('at 2030-01-01T09:00:00+01:00')"
)


class ScheduleArgumentError(TaskstreamError, ValueError):
    """SCHEDULE is none of the forms ``taskstream tasks add`` understands."""


def parse_schedule(text: str) -> dict[str, str]:
    """Turn a SCHEDULE argument into the API's ``schedule`` object (without timezone).

    Durations are sent as written (the API parses them); cron fields are only counted
    here, the API validates them and names ``schedule.cron`` when they are wrong.
    """
    words = text.split()
    if not words:
        raise ScheduleArgumentError(f"empty schedule: {_SCHEDULE_FORMS}")
    head, rest = words[0].lower(), " ".join(words[1:])
    if head in ("every", "@every"):
        return {"every": _interval(rest, text)}
    if head == "at":
        return {"at": _instant(rest)}
    if head in _CRON_SHORTHANDS and len(words) == 1:
        return {"cron": _CRON_SHORTHANDS[head]}
    if len(words) in (5, 6):
        return {"cron": " ".join(words)}
    if _is_duration(text):
        return {"every": text.strip()}
    if _is_datetime(text):
        return {"at": _instant(text)}
    raise ScheduleArgumentError(f"cannot read schedule {text!r}: {_SCHEDULE_FORMS}")


def _is_duration(text: str) -> bool:
    try:
        parse_duration(text)
    except DurationError:
        return False
    return True


def _interval(duration: str, schedule: str) -> str:
    if not duration:
        raise ScheduleArgumentError(f"{schedule!r} lacks its interval: write it like 'every 30s'")
    if not _is_duration(duration):
        raise ScheduleArgumentError(
            f"invalid interval {duration!r} in {schedule!r}: write it like '30s', '15m', "
            "'1h30m' or '250ms' (units ms, s, m, h, d)"
        )
    return duration


def _is_datetime(text: str) -> bool:
    try:
        datetime.fromisoformat(text.strip())
    except ValueError:
        return False
    return True


def _instant(text: str) -> str:
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ScheduleArgumentError(
            f"invalid time {text!r}: write an ISO-8601 time with an offset, "
            "like 'at 2030-01-01T09:00:00+01:00' or 'at 2030-01-01T08:00:00Z'"
        ) from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ScheduleArgumentError(
            f"the time {text!r} has no offset: add one, like '{moment.isoformat()}+00:00' "
            "or a trailing 'Z' for UTC"
        )
    return moment.isoformat()


# ---------------------------------------------------------------------------- requests


def create_body(args: argparse.Namespace) -> dict[str, Any]:
    """The ``POST /api/tasks`` body for ``tasks add``; options not given are left out."""
    schedule: dict[str, Any] = dict(args.schedule)
    if args.timezone is not None:
        schedule["timezone"] = args.timezone
    body: dict[str, Any] = {"name": args.name, "schedule": schedule, "handler": args.handler}
    optional = {
        "params": args.params,
        "priority": args.priority,
        "queue": args.queue,
        "timeout": args.timeout,
        "misfire": args.misfire,
        "overlap": args.overlap,
    }
    body.update({key: value for key, value in optional.items() if value is not None})
    if args.max_attempts is not None:
        body["retry"] = {"max_attempts": args.max_attempts}
    return body


def list_params(args: argparse.Namespace) -> dict[str, str | int]:
    """The query of ``GET /api/tasks`` for ``tasks list``; options not given are left out."""
    given = {
        "page": args.page,
        "size": args.size,
        "status": args.status,
        "handler": args.handler,
        "queue": args.queue,
    }
    return {key: value for key, value in given.items() if value is not None}


def resolve_api(args: argparse.Namespace, environ: Mapping[str, str]) -> tuple[str, str | None]:
    """The API's base URL and the token: options first, then the environment."""
    url = getattr(args, "api", None) or environ.get(ENV_API_URL) or DEFAULT_API_URL
    if "://" not in url:
        url = f"http://{url}"
    token = getattr(args, "token", None) or environ.get(ENV_API_TOKEN) or None
    return url.rstrip("/"), token


def _task_path(task_id: str, action: str = "") -> str:
    path = f"/api/tasks/{quote(task_id, safe='')}"
    return f"{path}/{action}" if action else path


# ---------------------------------------------------------------------------- errors


class ApiError(TaskstreamError):
    """A request failed; ``details`` are extra lines such as one per bad field."""

    def __init__(self, message: str, details: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.details = list(details)


def api_error(
    status: int, document: Any, *, reason: str = "", request: str = "", has_token: bool = False
) -> ApiError:
    """Explain an error answer: the API's ``{"error", "message", "errors"}`` body if any."""
    if status == 401:
        return ApiError(_unauthorized(has_token))
    body = document if isinstance(document, dict) else {}
    details = [_field_line(error) for error in body.get("errors") or () if isinstance(error, dict)]
    if isinstance(body.get("message"), str) and body["message"]:
        return ApiError(body["message"], details)
    text = f"the core API answered {status} {reason}".rstrip()
    if "detail" in body:
        text += f": {_detail(body['detail'])}"
    if status in (404, 405) and "error" not in body and request:
        text += f" (this core API does not serve {request}: is it older than this CLI?)"
    return ApiError(text, details)


def _unauthorized(has_token: bool) -> str:
    if has_token:
        return f"the core API refused the token (401): check {ENV_API_TOKEN} or --token"
    return f"the core API needs a token (401): set {ENV_API_TOKEN} or pass --token"


def _field_line(error: Mapping[str, Any]) -> str:
    return f"  {error.get('field') or 'body'}: {error.get('message') or error.get('type')}"


def _detail(detail: Any) -> str:
    return detail if isinstance(detail, str) else json.dumps(detail)


def _unreachable(url: str) -> ApiError:
    return ApiError(
        f"cannot reach the core API at {url}: is it running? (taskstream dev starts it)"
    )


# ---------------------------------------------------------------------------- HTTP


class Api:
    """A small client of the core's REST API; every failure becomes an :class:`ApiError`."""

    def __init__(self, url: str, token: str | None, *, verbose: bool = False) -> None:
        headers = {"Accept": "application/json", "User-Agent": "taskstream-cli"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.url = url
        self._has_token = bool(token)
        self._verbose = verbose
        self._client = httpx.Client(base_url=url, headers=headers, timeout=TIMEOUT_SECONDS)

    def __enter__(self) -> Api:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._client.close()

    def call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, str | int] | None = None,
    ) -> Any:
        """Send one request; return its JSON answer (None when it has no body)."""
        return _json_or_none(self._checked(method, path, body, params))

    def text(self, path: str, params: Mapping[str, str | int] | None = None) -> str:
        """GET a plain-text resource."""
        return self._checked("GET", path, None, params).text

    def _checked(
        self, method: str, path: str, body: Any, params: Mapping[str, str | int] | None
    ) -> httpx.Response:
        started = time.monotonic()
        response = self._send(method, path, body, params)
        if self._verbose:
            elapsed = (time.monotonic() - started) * 1000
            _note(f"{method} {self.url}{path} -> {response.status_code} ({elapsed:.0f} ms)")
        if response.is_error:
            raise api_error(
                response.status_code,
                _json_or_none(response),
                reason=response.reason_phrase,
                request=f"{method} {path}",
                has_token=self._has_token,
            )
        return response

    def _send(
        self, method: str, path: str, body: Any, params: Mapping[str, str | int] | None
    ) -> httpx.Response:
        try:
            return self._client.request(method, path, json=body, params=params)
        except httpx.ConnectError:
            raise _unreachable(self.url) from None
        except httpx.TimeoutException:
            raise ApiError(
                f"the core API at {self.url} did not answer within {TIMEOUT_SECONDS:.0f}s"
            ) from None
        except httpx.HTTPError as exc:
            raise ApiError(f"cannot talk to the core API at {self.url}: {exc}") from None


def _json_or_none(response: httpx.Response) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return None


def _runner(command: Command) -> Runner:
    """Wrap a command: open the API client, print an :class:`ApiError`, return 1."""

    def run(args: argparse.Namespace) -> int:
        url, token = resolve_api(args, os.environ)
        try:
            with Api(url, token, verbose=getattr(args, "verbose", False)) as api:
                return command(api, args)
        except ApiError as exc:
            _note(exc.message)
            for line in exc.details:
                print(line, file=sys.stderr)
            return 1

    return run


# ---------------------------------------------------------------------------- output


def format_schedule(schedule: Any) -> str:
    """``every 30s``, ``at 2030-...``, or the cron expression (with a non-UTC zone)."""
    if not isinstance(schedule, Mapping):
        return "-" if schedule is None else str(schedule)
    if schedule.get("cron"):
        zone = schedule.get("timezone")
        return f"{schedule['cron']} ({zone})" if zone and zone != "UTC" else str(schedule["cron"])
    if schedule.get("every"):
        return f"every {schedule['every']}"
    if schedule.get("at"):
        return f"at {schedule['at']}"
    return "-"


_COLUMNS = ("ID", "NAME", "SCHEDULE", "HANDLER", "STATUS", "VERSION", "LAST STATUS")


def _row(task: Mapping[str, Any]) -> list[str]:
    cells = [
        task.get("id"),
        task.get("name"),
        format_schedule(task.get("schedule")),
        task.get("handler"),
        task.get("status"),
        task.get("version"),
        task.get("last_status"),
    ]
    return ["-" if cell is None else " ".join(str(cell).split()) for cell in cells]


def format_table(tasks: Sequence[Mapping[str, Any]]) -> str:
    """A plain table of tasks, one per line, columns padded to their widest cell."""
    rows = [list(_COLUMNS), *(_row(task) for task in tasks)]
    widths = [max(len(row[column]) for row in rows) for column in range(len(_COLUMNS))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def describe_task(task: Mapping[str, Any]) -> list[str]:
    """A task as ``label  value`` lines for people (fields the API did not send are left out)."""
    retry, counts = _mapping(task.get("retry")), _mapping(task.get("executions"))
    fields = [
        ("id", task.get("id")),
        ("name", task.get("name")),
        ("status", task.get("status")),
        ("version", task.get("version")),
        ("schedule", format_schedule(task.get("schedule")) if task.get("schedule") else None),
        ("handler", task.get("handler")),
        ("params", json.dumps(task["params"]) if "params" in task else None),
        ("priority", task.get("priority")),
        ("queue", task.get("queue")),
        ("timeout", task.get("timeout")),
        ("attempts", retry.get("max_attempts")),
        ("misfire", task.get("misfire")),
        ("overlap", task.get("overlap")),
        ("created", task.get("created_at")),
        ("updated", task.get("updated_at")),
        ("last slot", task.get("last_scheduled_for")),
        ("last run", _last_run(task)),
        ("executions", ", ".join(f"{key} {value}" for key, value in counts.items()) or None),
    ]
    return [f"{label:<11} {value}" for label, value in fields if value is not None]


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _last_run(task: Mapping[str, Any]) -> str | None:
    status, execution = task.get("last_status"), task.get("last_execution_id")
    if status is None and execution is None:
        return None
    return f"{status or '-'} ({execution})" if execution else str(status)


def _note(message: str) -> None:
    print(f"taskstream: {message}", file=sys.stderr)


def _print_json(document: Any) -> None:
    print(json.dumps(document, indent=2, ensure_ascii=False))


def _object(document: Any, what: str) -> dict[str, Any]:
    if not isinstance(document, dict):
        raise ApiError(f"the core API answered {what} without a JSON object")
    return document


# ---------------------------------------------------------------------------- commands


def _add(api: Api, args: argparse.Namespace) -> int:
    task = _object(api.call("POST", "/api/tasks", body=create_body(args)), "the new task")
    if not task.get("id"):
        raise ApiError("the core API created the task but did not say its id")
    print(task["id"])
    for warning in task.get("warnings") or ():
        _note(f"warning: {warning}")
    if args.verbose:
        if task.get("status") == "accepted":
            _note("accepted: the task is on the log but not yet in the store")
        for line in describe_task(task):
            print(f"  {line}", file=sys.stderr)
    return 0


def _list(api: Api, args: argparse.Namespace) -> int:
    page = _object(api.call("GET", "/api/tasks", params=list_params(args)), "the task list")
    if args.json:
        _print_json(page)
        return 0
    items = [item for item in page.get("items") or () if isinstance(item, Mapping)]
    if not items:
        _note("no tasks" + (" on this page" if page.get("total") else ""))
        return 0
    print(format_table(items))
    _page_note(page, len(items))
    return 0


def _page_note(page: Mapping[str, Any], shown: int) -> None:
    number, size, total = page.get("page"), page.get("size"), page.get("total")
    if isinstance(number, int) and isinstance(size, int) and isinstance(total, int):
        first = number * size
        if first + shown < total:
            _note(f"tasks {first + 1}-{first + shown} of {total}; next: --page {number + 1}")


def _get(api: Api, args: argparse.Namespace) -> int:
    task = _object(api.call("GET", _task_path(args.id)), "the task")
    if args.json:
        _print_json(task)
    else:
        print("\n".join(describe_task(task)))
    return 0


def _set_status(status: str, done: str) -> Command:
    def command(api: Api, args: argparse.Namespace) -> int:
        api.call("PUT", _task_path(args.id, "status"), body={"status": status})
        print(f"{done} {args.id}")
        return 0

    return command


def _delete(api: Api, args: argparse.Namespace) -> int:
    if not args.yes and sys.stdin.isatty() and not _confirm_delete(api, args.id):
        _note("not deleted")
        return 1
    api.call("DELETE", _task_path(args.id))
    print(f"deleted {args.id}")
    return 0


def _confirm_delete(api: Api, task_id: str) -> bool:
    task = _object(api.call("GET", _task_path(task_id)), "the task")
    print(
        f"delete task {task_id} ({task.get('name', '?')}, {format_schedule(task.get('schedule'))})?"
        " [y/N] ",
        end="",
        file=sys.stderr,
        flush=True,
    )
    return sys.stdin.readline().strip().lower() in ("y", "yes")


def _run_now(api: Api, args: argparse.Namespace) -> int:
    answer = api.call("POST", _task_path(args.id, "run"))
    return _print_execution(answer, f"run of task {args.id} requested")


def _cancel(api: Api, args: argparse.Namespace) -> int:
    params = {"execution_id": args.execution} if args.execution else None
    answer = api.call("POST", _task_path(args.id, "cancel"), params=params)
    return _print_execution(answer, f"cancel of task {args.id}'s unfinished executions requested")


def _logs(api: Api, args: argparse.Namespace) -> int:
    path = f"/api/executions/{quote(args.execution_id, safe='')}/logs"
    if args.json:
        _print_json(api.call("GET", path))
    else:
        print(api.text(path, {"format": "text"}), end="")
    return 0


def _print_execution(answer: Any, otherwise: str) -> int:
    execution = answer.get("execution_id") if isinstance(answer, dict) else None
    if execution:
        print(execution)
    else:
        _note(otherwise)
    return 0


# ---------------------------------------------------------------------------- arguments


def _schedule_arg(text: str) -> dict[str, str]:
    try:
        return parse_schedule(text)
    except ScheduleArgumentError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _params_arg(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"--params is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("--params must be a JSON object, like '{\"key\": 1}'")
    return value


def _duration_arg(text: str) -> str:
    try:
        parse_duration(text)
    except DurationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text.strip()


def _int_arg(minimum: int) -> Callable[[str], int]:
    def convert(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is below the minimum of {minimum}")
        return value

    return convert


def _connection_options(parser: argparse.ArgumentParser, *, on_group: bool) -> None:
    """``--api``, ``--token`` and ``-v``: on the group, and again on each subcommand."""
    unset = None if on_group else argparse.SUPPRESS
    parser.add_argument(
        "--api",
        metavar="URL",
        default=unset,
        help=f"the core API (default: ${ENV_API_URL}, else {DEFAULT_API_URL})",
    )
    parser.add_argument(
        "--token",
        default=unset,
        help=f"bearer token (default: ${ENV_API_TOKEN}; prefer the variable: options show in ps)",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=False if on_group else argparse.SUPPRESS,
        help="show requests and details on stderr",
    )


def _subcommand(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    help_text: str,
    command: Command,
) -> argparse.ArgumentParser:
    parser = commands.add_parser(name, help=help_text, description=help_text)
    _connection_options(parser, on_group=False)
    parser.set_defaults(run=_runner(command))
    return parser


def _add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    add = _subcommand(commands, "add", "create a task; prints its id", _add)
    add.add_argument("name", metavar="NAME", help="a label for the task")
    add.add_argument(
        "schedule",
        metavar="SCHEDULE",
        type=_schedule_arg,
        help="'30s', 'every 1h30m', '*/5 * * * *', '@daily' or 'at 2030-01-01T09:00:00Z'",
    )
    add.add_argument("--handler", required=True, help="a registered handler, e.g. echo")
    add.add_argument("--params", type=_params_arg, metavar="JSON", help="a JSON object")
    add.add_argument("--priority", choices=[p.value for p in Priority])
    add.add_argument("--queue", metavar="Q", help="which executors run it (default: default)")
    add.add_argument("--timeout", type=_duration_arg, metavar="DURATION", help="e.g. 30s")
    add.add_argument("--max-attempts", type=_int_arg(1), metavar="N", help="1 = no retries")
    add.add_argument("--timezone", metavar="TZ", help="IANA zone of cron fields (default: UTC)")
    add.add_argument("--misfire", choices=[p.value for p in MisfirePolicy])
    add.add_argument("--overlap", choices=[p.value for p in OverlapPolicy])


def _list_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    listing = _subcommand(commands, "list", "list tasks, a page at a time", _list)
    listing.add_argument("--status", help="only tasks in this status (active, paused, ...)")
    listing.add_argument("--handler", help="only tasks of this handler")
    listing.add_argument("--queue", help="only tasks of this queue")
    listing.add_argument("--page", type=_int_arg(0), metavar="N", help="page number, from 0")
    listing.add_argument("--size", type=_int_arg(1), metavar="N", help="tasks per page")
    listing.add_argument("--json", action="store_true", help="print the API's JSON")


def _task_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    get = _subcommand(commands, "get", "show one task", _get)
    get.add_argument("id", metavar="ID")
    get.add_argument("--json", action="store_true", help="print the API's JSON")
    pause = _subcommand(commands, "pause", "stop firing", _set_status("paused", "paused"))
    pause.add_argument("id", metavar="ID")
    resume = _subcommand(commands, "resume", "fire again", _set_status("active", "resumed"))
    resume.add_argument("id", metavar="ID")
    delete = _subcommand(commands, "delete", "delete a task (asks first on a terminal)", _delete)
    delete.add_argument("id", metavar="ID")
    delete.add_argument("-y", "--yes", action="store_true", help="do not ask")
    run = _subcommand(commands, "run", "run now; prints the execution id", _run_now)
    run.add_argument("id", metavar="ID")
    cancel = _subcommand(commands, "cancel", "cancel the task's unfinished executions", _cancel)
    cancel.add_argument("id", metavar="ID")
    cancel.add_argument("--execution", metavar="EXECUTION_ID", help="cancel only this one")
    logs = _subcommand(commands, "logs", "what an execution's handler logged and printed", _logs)
    logs.add_argument("execution_id", metavar="EXECUTION_ID")
    logs.add_argument("--json", action="store_true", help="print the API's JSON")


def add_tasks_command(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``tasks`` and its subcommands; each sets ``run`` to ``(Namespace) -> int``."""
    tasks = subparsers.add_parser(
        "tasks",
        help="create and manage tasks through the core's REST API",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _connection_options(tasks, on_group=True)
    commands = tasks.add_subparsers(dest="tasks_command", required=True, metavar="SUBCOMMAND")
    _add_parser(commands)
    _list_parser(commands)
    _task_parsers(commands)
