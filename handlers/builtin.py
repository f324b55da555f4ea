"""The simplest built-in handlers: ``noop``, ``echo``, ``fail`` and ``sleep``.

The others live in their own modules: :mod:`taskstream.handlers.http`,
:mod:`taskstream.handlers.shell`, :mod:`taskstream.handlers.kafka` and
:mod:`taskstream.handlers.python`.
"""

from __future__ import annotations

import time
from typing import ClassVar

from pydantic import Field

from taskstream.handlers.base import (
    PermanentError,
    RetryableError,
    TaskContext,
    TaskHandler,
    TaskResult,
)
from taskstream.handlers.params import HandlerParams

__all__ = ["EchoHandler", "FailHandler", "FailParams", "NoopHandler", "SleepHandler", "SleepParams"]


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


class FailParams(HandlerParams):
    """The ``fail`` handler's params."""

    message: str = Field("failed on purpose by the 'fail' handler", examples=["boom"])
    """The error message."""
    permanent: bool = False
    """Fail permanently (no retry) instead of retryably."""
    until_attempt: int | None = Field(None, ge=1, examples=[3])
    """Fail only while ``ctx.attempt`` is below it, succeed from that attempt on."""


class FailHandler(TaskHandler[FailParams]):
    """Fails on purpose, for tests of retries and dead letters.

    ``{"message": "..."}`` sets the error message and ``{"permanent": true}`` makes the
    failure permanent. ``{"until_attempt": n}`` fails only while ``ctx.attempt < n``
    and succeeds from attempt ``n`` on, with ``{"attempt": n}`` as output.
    """

    name: ClassVar[str] = "fail"

    def run(self, ctx: TaskContext[FailParams]) -> TaskResult:
        until = ctx.args.until_attempt
        if until is not None and ctx.attempt >= until:
            return TaskResult.success({"attempt": ctx.attempt})
        message = ctx.args.message
        if until is not None:
            message = f"{message} (attempt {ctx.attempt}; succeeds from attempt {until})"
        if ctx.args.permanent:
            raise PermanentError(message)
        raise RetryableError(message)


class SleepParams(HandlerParams):
    """The ``sleep`` handler's params."""

    seconds: float = Field(1.0, ge=0, examples=[2.5])
    """How long to sleep."""


class SleepHandler(TaskHandler[SleepParams]):
    """Sleeps ``{"seconds": n}`` (default 1), waking early when cancelled."""

    name: ClassVar[str] = "sleep"

    def run(self, ctx: TaskContext[SleepParams]) -> TaskResult:
        seconds = ctx.args.seconds
        ctx.logger.info("sleeping %gs", seconds)
        started = time.monotonic()
        if ctx.cancelled.wait(seconds):
            raise RetryableError("sleep was cancelled")
        return TaskResult.success({"slept": round(time.monotonic() - started, 3)})
