"""Handlers that ship with taskstream: ``noop``, ``echo``, ``fail`` and ``sleep``."""

from __future__ import annotations

import time
from typing import ClassVar

from handlers.base import PermanentError, RetryableError, TaskContext, TaskHandler, TaskResult

__all__ = ["EchoHandler", "FailHandler", "NoopHandler", "SleepHandler"]


class NoopHandler(TaskHandler):
    """Does nothing and succeeds: for tests and benchmarks."""

    name: ClassVar[str] = "noop"

    def run(self, ctx: TaskContext) -> TaskResult:
        return TaskResult.success()


class EchoHandler(TaskHandler):
    """Succeeds with its parameters as output, and logs them."""

    name: ClassVar[str] = "echo"

    def run(self, ctx: TaskContext) -> TaskResult:
        ctx.logger.info("echo %s", dict(ctx.params))
        return TaskResult.success(dict(ctx.params))


class FailHandler(TaskHandler):
    """Always fails; ``{"permanent": true}`` makes the failure permanent.

    ``{"message": "..."}`` sets the error message.
    """

    name: ClassVar[str] = "fail"

    def run(self, ctx: TaskContext) -> TaskResult:
        message = str(ctx.params.get("message", "failed on purpose by the 'fail' handler"))
        if ctx.params.get("permanent"):
            raise PermanentError(message)
        raise RetryableError(message)


class SleepHandler(TaskHandler):
    """Sleeps ``{"seconds": n}`` (default 1), waking early when cancelled."""

    name: ClassVar[str] = "sleep"

    def run(self, ctx: TaskContext) -> TaskResult:
        seconds = float(ctx.params.get("seconds", 1.0))
        started = time.monotonic()
        if ctx.cancelled.wait(seconds):
            raise RetryableError("sleep was cancelled")
        return TaskResult.success({"slept": round(time.monotonic() - started, 3)})
