"""The ``taskstream`` command: run the services, or the whole system with ``dev``.

taskstream dev         broker + core + executor + monitor on this machine
taskstream core        the REST API, task store and scheduler
taskstream executor    runs handlers for work orders
taskstream monitor     history, metrics and dashboard (faust)
taskstream tasks       create and manage tasks (the core's API)
taskstream workers     the executors, from their heartbeats
taskstream handlers    the handlers a task may name, and their params
taskstream alerts      the alerts firing now and the recent notices (the monitor's API)
taskstream dlq         dead-lettered executions; taskstream rebuild: the store from the log
taskstream kafka       a local Kafka broker in the foreground
taskstream schemas     write the JSON Schema files

Shell completion: taskstream --install-completion (or --show-completion to see it).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from taskstream.cli import dlq, observe, rebuild, tasks
from taskstream.cli.output import as_help
from taskstream.infra.security import InsecureConfigurationError
from taskstream.schemas.errors import TaskstreamError

__all__ = ["app", "main"]

app = typer.Typer(
    name="taskstream",
    help=as_help(__doc__),
    no_args_is_help=True,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(tasks.app, name="tasks")
app.add_typer(dlq.app, name="dlq")
app.add_typer(observe.alerts_app, name="alerts")
app.command("workers")(observe.workers)
app.command("handlers")(observe.handlers)
app.command("rebuild", help=as_help(rebuild.__doc__))(rebuild.rebuild_command)


class _UsageError(TaskstreamError):
    """The command cannot start as configured (exit status 2; the message says why)."""


def _print_version(given: bool) -> None:
    if given:
        print(f"taskstream {version('taskstream')}")
        raise typer.Exit(0)


@app.callback()
def _root(
    show_version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="print the version"),
    ] = False,
) -> None:
    _check_environment()


def _check_environment() -> None:
    """Refuse ``TASKSTREAM_*`` variables that no service knows (a typo is not a default)."""
    from taskstream.core.settings import CoreSettings
    from taskstream.executor.settings import ExecutorSettings
    from taskstream.infra.settings import unknown_variables
    from taskstream.monitor.settings import MonitorSettings

    problems = unknown_variables([CoreSettings, ExecutorSettings, MonitorSettings])
    if problems:
        raise _UsageError("\n".join(problems))


def _refusing(exc: InsecureConfigurationError) -> _UsageError:
    return _UsageError(f"refusing to start: {exc}")


@app.command("core")
def _core() -> None:
    """Run the core service (REST API, task store, scheduler)."""
    from taskstream.core.service import run
    from taskstream.core.settings import CoreSettings

    try:
        run(CoreSettings())
    except InsecureConfigurationError as exc:
        raise _refusing(exc) from None


@app.command("executor")
def _executor() -> None:
    """Run an executor."""
    from taskstream.executor.service import run
    from taskstream.executor.settings import ExecutorSettings

    run(ExecutorSettings())


@app.command("monitor")
def _monitor() -> None:
    """Run the monitor."""
    from taskstream.monitor.service import run
    from taskstream.monitor.settings import MonitorSettings

    try:
        run(MonitorSettings())
    except InsecureConfigurationError as exc:
        raise _refusing(exc) from None


@app.command("dev")
def _dev(
    state_dir: Annotated[
        Path, typer.Option(help="where the broker's data, the SQLite store and logs live")
    ] = Path(".taskstream"),
    fresh: Annotated[bool, typer.Option(help="delete the state directory first")] = False,
) -> None:
    """Run the whole system locally (Ctrl-C stops it)."""
    from taskstream.cli.dev import run_dev

    raise typer.Exit(run_dev(state_dir=state_dir, fresh=fresh))


@app.command(
    "kafka",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def _kafka(ctx: typer.Context) -> None:
    """Run a local Kafka broker in the foreground (options of
    python -m taskstream.dev_broker.local_kafka)."""
    from taskstream.dev_broker.local_kafka import main as kafka_main

    raise typer.Exit(kafka_main(list(ctx.args)))


@app.command("schemas")
def _schemas(
    directory: Annotated[
        Path | None, typer.Argument(help="target directory (default: schemas/json)")
    ] = None,
) -> None:
    """Write the JSON Schema files."""
    from taskstream.schemas.jsonschema import write_schemas

    for path in write_schemas(directory) if directory else write_schemas():
        print(path)


def _settings_error(exc: ValidationError) -> int:
    for error in exc.errors():
        name = ".".join(str(part) for part in error["loc"])
        print(f"taskstream: bad setting TASKSTREAM_{name.upper()}: {error['msg']}", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; the exit status (0 done, 1 failed, 2 usage or settings)."""
    command = typer.main.get_command(app)
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        command.main(args=args, prog_name="taskstream", standalone_mode=True)
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else 1
    except _UsageError as exc:
        print(f"taskstream: {exc}", file=sys.stderr)
        return 2
    except ValidationError as exc:
        return _settings_error(exc)
    except KeyboardInterrupt:
        return 130
    return 0
