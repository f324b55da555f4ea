"""The simplest built-in handlers: ``noop``, ``echo``, ``fail`` and ``sleep``.

The others live in their own modules: :mod:`taskstream.handlers.http`,
:mod:`taskstream.handlers.shell`, :mod:`taskstream.handlers.kafka` and
:mod:`taskstream.handlers.python`.
"""

from __future__ import annotations

import time
from typing import ClassVar

from taskstream.handlers.base import (
    PermanentError,
    RetryableError,
    TaskContext,
    TaskHandler,
    TaskResult,
)

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
    """Fails on purpose, for tests of retries and dead letters.

    ``{"message": "..."}`` sets the error message and ``{"permanent": true}`` makes the
    failure permanent. ``{"until_attempt": n}`` fails only while ``ctx.attempt < n``
    and succeeds from attempt ``n`` on, with ``{"attempt": n}`` as output.
    """

    name: ClassVar[str] = "fail"

    def run(self, ctx: TaskContext) -> TaskResult:
        until = ctx.params.get("until_attempt")
        if until is not None:
            if isinstance(until, bool) or not isinstance(until, int) or until < 1:
                raise PermanentError(
                    f"fail handler: params.until_attempt must be a whole number of at least "
                    f"1, not {until!r}"
                )
            if ctx.attempt >= until:
                return TaskResult.success({"attempt": ctx.attempt})
        message = str(ctx.params.get("message", "failed on purpose by the 'fail' handler"))
        if until is not None:
            message = f"{message} (attempt {ctx.attempt}; succeeds from attempt {until})"
        if ctx.params.get("permanent"):
            raise PermanentError(message)
        raise RetryableError(message)


class SleepHandler(TaskHandler):
    """Sleeps ``{"seconds": n}`` (default 1), waking early when cancelled."""

    name: ClassVar[str] = "sleep"

    def run(self, ctx: TaskContext) -> TaskResult:
        seconds = float(ctx.params.get("seconds", 1.0))
        ctx.logger.info("sleeping %gs", seconds)
        started = time.monotonic()
        if ctx.cancelled.wait(seconds):
            raise RetryableError("sleep was cancelled")
        return TaskResult.success({"slept": round(time.monotonic() - started, 3)})
