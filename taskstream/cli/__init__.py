"""The ``taskstream`` command: run the services, or the whole system with ``dev``.

taskstream dev         broker + core + executor + monitor on this machine
taskstream core        the REST API, task store and scheduler
taskstream executor    runs handlers for work orders
taskstream monitor     history, metrics and dashboard (faust)
taskstream kafka       a local Kafka broker in the foreground
taskstream schemas     write the JSON Schema files
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path

from pydantic import ValidationError

from taskstream.cli.dlq import add_dlq_command
from taskstream.cli.rebuild import add_rebuild_command
from taskstream.cli.tasks import add_tasks_command
from taskstream.infra.security import InsecureConfigurationError
from taskstream.schemas.errors import TaskstreamError

__all__ = ["main"]


def _settings_error(exc: ValidationError) -> int:
    for error in exc.errors():
        name = ".".join(str(part) for part in error["loc"])
        print(f"taskstream: bad setting TASKSTREAM_{name.upper()}: {error['msg']}", file=sys.stderr)
    return 2


def _check_environment() -> None:
    """Refuse ``TASKSTREAM_*`` variables that no service knows (a typo is not a default)."""
    from taskstream.core.settings import CoreSettings
    from taskstream.executor.settings import ExecutorSettings
    from taskstream.infra.settings import unknown_variables
    from taskstream.monitor.settings import MonitorSettings

    problems = unknown_variables([CoreSettings, ExecutorSettings, MonitorSettings])
    if problems:
        raise _UsageError("\n".join(problems))


class _UsageError(TaskstreamError):
    pass


def _core(_: argparse.Namespace) -> int:
    from taskstream.core.service import run
    from taskstream.core.settings import CoreSettings

    try:
        run(CoreSettings())
    except InsecureConfigurationError as exc:
        raise _UsageError(f"refusing to start: {exc}") from None
    return 0


def _executor(_: argparse.Namespace) -> int:
    from taskstream.executor.service import run
    from taskstream.executor.settings import ExecutorSettings

    run(ExecutorSettings())
    return 0


def _monitor(_: argparse.Namespace) -> int:
    from taskstream.monitor.service import run
    from taskstream.monitor.settings import MonitorSettings

    try:
        run(MonitorSettings())
    except InsecureConfigurationError as exc:
        raise _UsageError(f"refusing to start: {exc}") from None
    return 0


def _dev(args: argparse.Namespace) -> int:
    from taskstream.cli.dev import run_dev

    return run_dev(state_dir=Path(args.state_dir), fresh=args.fresh)


def _kafka(args: argparse.Namespace) -> int:
    from taskstream.dev_broker.local_kafka import main as kafka_main

    return kafka_main(args.kafka_args)


def _schemas(args: argparse.Namespace) -> int:
    from taskstream.schemas.jsonschema import write_schemas

    for path in write_schemas(Path(args.directory)) if args.directory else write_schemas():
        print(path)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="taskstream", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--version", action="version", version=f"taskstream {version('taskstream')}"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    dev = commands.add_parser("dev", help="run the whole system locally (Ctrl-C stops it)")
    dev.add_argument(
        "--state-dir",
        default=".taskstream",
        help="where the broker's data, the SQLite store and logs live",
    )
    dev.add_argument("--fresh", action="store_true", help="delete the state directory first")
    dev.set_defaults(run=_dev)
    commands.add_parser("core", help="run the core service").set_defaults(run=_core)
    commands.add_parser("executor", help="run an executor").set_defaults(run=_executor)
    commands.add_parser("monitor", help="run the monitor").set_defaults(run=_monitor)
    kafka = commands.add_parser("kafka", help="run a local Kafka broker in the foreground")
    kafka.add_argument(
        "kafka_args",
        nargs=argparse.REMAINDER,
        help="options of python -m taskstream.dev_broker.local_kafka",
    )
    kafka.set_defaults(run=_kafka)
    schemas = commands.add_parser("schemas", help="write the JSON Schema files")
    schemas.add_argument("directory", nargs="?", help="target directory (default: schemas/json)")
    schemas.set_defaults(run=_schemas)
    add_tasks_command(commands)
    add_rebuild_command(commands)
    add_dlq_command(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        _check_environment()
        return int(args.run(args))
    except _UsageError as exc:
        print(f"taskstream: {exc}", file=sys.stderr)
        return 2
    except ValidationError as exc:
        return _settings_error(exc)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
