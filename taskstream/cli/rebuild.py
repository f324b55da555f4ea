"""taskstream rebuild: drop the task store and rebuild it from task-events.

  taskstream rebuild            asks before it drops anything (stdin must be a terminal)
  taskstream rebuild --yes      no question: for scripts and CI

The store is the database at TASKSTREAM_DATABASE_URL; the log is
<TASKSTREAM_TOPIC_PREFIX>task-events on TASKSTREAM_KAFKA_BOOTSTRAP_SERVERS. Every table
of the store is dropped, created again at the newest schema, and filled by replaying the
log from its first record. Stop every core instance that uses this database first.

Progress goes to stderr every few seconds; the last line, on stdout, is
"rebuilt the store from N events in S s (R events/s)". Exit status: 0 done, 1 failed
(the message says whether the store was touched), 2 not confirmed.
"""

from __future__ import annotations

import sys
import time
from typing import Annotated, TextIO

import typer
from confluent_kafka import KafkaException
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

__all__ = ["PROGRESS_INTERVAL", "ProgressPrinter", "rebuild_command"]

PROGRESS_INTERVAL = 5.0
"""Seconds between two progress lines."""


class ProgressPrinter:
    """A ``progress`` callback for :func:`taskstream.core.rebuild.rebuild` that prints now and
    then."""

    def __init__(self, stream: TextIO, interval: float = PROGRESS_INTERVAL) -> None:
        self.stream = stream
        self.interval = interval
        self.started = time.monotonic()
        self._last = self.started

    def __call__(self, applied: int) -> None:
        now = time.monotonic()
        if now - self._last < self.interval:
            return
        self._last = now
        rate = applied / max(now - self.started, 1e-9)
        print(
            f"rebuild: {applied} events applied in {now - self.started:.0f} s "
            f"({rate:.0f} events/s)",
            file=self.stream,
            flush=True,
        )


def _confirmed(target: str, topic: str, assume_yes: bool) -> bool:
    if assume_yes:
        return True
    if not sys.stdin.isatty():
        print(
            f"taskstream rebuild: refusing to drop the task store at {target} without --yes "
            "(stdin is not a terminal, so nobody can confirm)",
            file=sys.stderr,
        )
        return False
    print(
        f"This drops every table of the task store at {target} and rebuilds it from {topic}.\n"
        "Stop every core instance that uses this database first.",
        file=sys.stderr,
    )
    try:
        answer = input("Rebuild the store? [y/N] ")
    except EOFError:
        answer = ""
    if answer.strip().lower() not in {"y", "yes"}:
        print("taskstream rebuild: not confirmed; nothing was changed", file=sys.stderr)
        return False
    return True


def _run(assume_yes: bool, timeout: float) -> int:
    from taskstream.core.rebuild import RebuildError, rebuild
    from taskstream.core.settings import CoreSettings

    settings = CoreSettings()
    target = make_url(settings.database_url).render_as_string(hide_password=True)
    topic = settings.topics.task_events
    if not _confirmed(target, topic, assume_yes):
        return 2
    print(f"rebuild: {target} from {topic} on {settings.kafka_bootstrap_servers}", file=sys.stderr)
    try:
        report = rebuild(settings, ProgressPrinter(sys.stderr), timeout=timeout)
    except RebuildError as exc:
        print(f"taskstream rebuild: {exc}", file=sys.stderr)
        return 1
    except TimeoutError as exc:
        print(
            f"taskstream rebuild: {exc}. The store is incomplete: run the rebuild again "
            "(with a larger --timeout)",
            file=sys.stderr,
        )
        return 1
    except (SQLAlchemyError, KafkaException) as exc:
        print(
            f"taskstream rebuild: failed: {exc}\nThe store at {target} may be incomplete: "
            "fix the cause and run the rebuild again",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        print(
            "taskstream rebuild: interrupted; the store is incomplete: run the rebuild again",
            file=sys.stderr,
        )
        raise
    print(
        f"rebuilt the store from {report.events} events in {report.seconds:.1f} s "
        f"({report.events_per_second:.0f} events/s)",
        flush=True,
    )
    if report.stepped_over:
        print(
            f"taskstream rebuild: {report.stepped_over} record(s) the store could not apply "
            "were stepped over, as a live core does; the log above names each with its task",
            file=sys.stderr,
        )
    return 0


def rebuild_command(
    yes: Annotated[
        bool,
        typer.Option(
            "--yes", help="drop the store without asking (required when stdin is not a terminal)"
        ),
    ] = False,
    timeout: Annotated[
        float,
        typer.Option(
            min=0.001,
            metavar="SECONDS",
            help="give up if the end of the log is not reached in this time",
        ),
    ] = 3600.0,
) -> None:
    """Drop the task store and rebuild it from task-events."""
    raise typer.Exit(_run(yes, timeout))
