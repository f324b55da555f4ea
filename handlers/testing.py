"""Run a handler in a test, without a broker or an executor.

::

    from taskstream.handlers.testing import run_handler

    def test_report() -> None:
        run = run_handler(DailyReport, {"rows": [...]})
        run.raise_error()                    # or: assert run.succeeded, run.error
        assert run.output["total"] == 42
        assert "built report" in run.logs    # what the handler logged through ctx.logger

:func:`run_handler` builds the :class:`~taskstream.handlers.base.TaskContext` the
executor would build (params parsed into the handler's params model as ``ctx.args``:
params that do not fit end the run with
:class:`~taskstream.handlers.params.InvalidParamsError`, and the handler is not called)
and runs the handler the way the executor does: a sync ``run`` in a thread, an async one
on an event loop, both with ``timeout``. On timeout it sets ``ctx.cancelled`` and the
run's error is a ``TimeoutError``; a sync handler that ignores the flag keeps its
(daemon) thread until it returns. An output that is not JSON (which the executor could
only record as its ``repr``) is reported as a ``TypeError``.

:func:`handler_context` builds only the context, for a test that calls ``run`` itself.

It is a test aid: taskstream's own tests of the executor run against a real broker.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, TypedDict

import orjson
from typing_extensions import Unpack

from taskstream.handlers.base import HandlerEnvironment, TaskContext, TaskHandler, TaskResult
from taskstream.handlers.params import InvalidParamsError, parse_params

__all__ = ["ContextOptions", "HandlerRun", "handler_context", "run_handler"]


@dataclass(frozen=True, kw_only=True)
class HandlerRun:
    """How one run ended: ``output`` on success, ``error`` otherwise."""

    output: Any
    error: BaseException | None
    duration: float
    """Seconds the run took."""
    logs: list[str]
    """The messages the handler logged through ``ctx.logger``, formatted, in order."""
    context: TaskContext[Any]
    """The context the handler got (to check ``cancelled``, for instance)."""

    @property
    def succeeded(self) -> bool:
        return self.error is None

    def raise_error(self) -> None:
        """Raise the run's error, if it failed (a test then shows the handler's traceback)."""
        if self.error is not None:
            raise self.error


class ContextOptions(TypedDict, total=False):
    """What a test may set of the context (the rest is as the executor sets it)."""

    attempt: int
    """Counts from 1 (default 1)."""
    timeout: float
    """Seconds until the deadline (default 30)."""
    environment: HandlerEnvironment
    task_id: str
    task_name: str
    execution_id: str
    scheduled_for: datetime
    """Default: now."""
    cancelled: threading.Event
    """Lets a test cancel the run from another thread, as the executor does."""


def handler_context(
    handler: TaskHandler[Any] | type[TaskHandler[Any]],
    params: Mapping[str, Any] | None = None,
    **options: Unpack[ContextOptions],
) -> TaskContext[Any]:
    """The context the executor would give ``handler`` for ``params``, deadline from now.

    Params are parsed into the handler's params model as ``ctx.args``; raises
    :class:`~taskstream.handlers.params.InvalidParamsError` if they do not fit.
    """
    ctx = _raw_context(params, options, _Capture())
    return _parsed(handler, ctx)


def run_handler(
    handler: TaskHandler[Any] | type[TaskHandler[Any]],
    params: Mapping[str, Any] | None = None,
    **options: Unpack[ContextOptions],
) -> HandlerRun:
    """Run ``handler`` (a class or an instance) once with ``params`` and report how it went."""
    instance = handler() if isinstance(handler, type) else handler
    capture = _Capture()
    started = time.monotonic()
    timeout = options.get("timeout", 30.0)
    ctx = _raw_context(params, options, capture)
    try:
        ctx = _parsed(instance, ctx)
    except InvalidParamsError as exc:
        return HandlerRun(output=None, error=exc, duration=0.0, logs=[], context=ctx)
    output: Any = None
    error: BaseException | None = None
    try:
        if inspect.iscoroutinefunction(instance.run):
            result = _run_async(instance, ctx, timeout)
        else:
            result = _run_in_thread(instance, ctx, timeout)
    except TimeoutError as exc:
        ctx.cancelled.set()
        error = exc if str(exc) else TimeoutError(f"handler ran past its timeout of {timeout:g}s")
    except Exception as exc:
        error = exc
    else:
        output = result.output if isinstance(result, TaskResult) else result
        try:
            orjson.dumps(output)
        except TypeError as exc:
            error = TypeError(
                f"the handler returned {type(output).__name__}, which is not JSON ({exc}); "
                "the executor would record its repr(): return dicts, lists, strings, numbers, "
                "booleans or None"
            )
    return HandlerRun(
        output=output,
        error=error,
        duration=time.monotonic() - started,
        logs=capture.messages,
        context=ctx,
    )


def _raw_context(
    params: Mapping[str, Any] | None, options: ContextOptions, capture: _Capture
) -> TaskContext[Any]:
    attempt = options.get("attempt", 1)
    timeout = options.get("timeout", 30.0)
    if attempt < 1:
        raise ValueError(f"attempt counts from 1, not {attempt}")
    if timeout <= 0:
        raise ValueError(f"timeout must be positive seconds, not {timeout}")
    task_id = options.get("task_id", "test-task")
    execution_id = options.get("execution_id", "test-execution")
    return TaskContext(
        task_id=task_id,
        task_name=options.get("task_name", "test-task"),
        execution_id=execution_id,
        attempt=attempt,
        scheduled_for=options.get("scheduled_for") or datetime.now(UTC),
        params=dict(params or {}),
        deadline=time.monotonic() + timeout,
        cancelled=options.get("cancelled") or threading.Event(),
        logger=capture.adapter(task_id, execution_id),
        environment=options.get("environment") or HandlerEnvironment(),
    )


def _parsed(
    handler: TaskHandler[Any] | type[TaskHandler[Any]], ctx: TaskContext[Any]
) -> TaskContext[Any]:
    """``ctx`` with its params parsed into the handler's model, as the executor does."""
    model = handler.params_model
    if model is None:
        return ctx
    name = getattr(handler, "name", type(handler).__name__)
    return replace(ctx, args=parse_params(name, model, ctx.params))


def _run_async(handler: TaskHandler[Any], ctx: TaskContext[Any], timeout: float) -> Any:
    async def main() -> Any:
        return await asyncio.wait_for(handler.run(ctx), timeout)  # type: ignore[arg-type]

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(main())
    # called from async test code: give the handler a loop of its own in a thread
    return _run_in_thread_with(lambda: asyncio.run(main()), ctx, timeout + 5.0)


def _run_in_thread(handler: TaskHandler[Any], ctx: TaskContext[Any], timeout: float) -> Any:
    return _run_in_thread_with(lambda: handler.run(ctx), ctx, timeout)


def _run_in_thread_with(call: Callable[[], Any], ctx: TaskContext[Any], timeout: float) -> Any:
    """``call()`` on a daemon thread (it may never return); its result or its exception."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["result"] = call()
        except BaseException as exc:  # handed to the caller's thread
            outcome["error"] = exc

    thread = threading.Thread(target=target, name=f"handler-{ctx.execution_id}", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise TimeoutError(f"handler ran past its timeout of {timeout:g}s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("result")


class _Capture(logging.Handler):
    """Keeps the formatted messages of one run's logger."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    def adapter(self, task_id: str, execution_id: str) -> logging.LoggerAdapter[logging.Logger]:
        # A logger of its own, outside the logging registry (nothing leaks between runs),
        # whose records still reach the "taskstream.handler" logger (and caplog) after it.
        logger = logging.Logger("taskstream.handler", logging.DEBUG)
        logger.parent = logging.getLogger("taskstream.handler")
        logger.addHandler(self)
        fields = {"task_id": task_id, "execution_id": execution_id}
        return logging.LoggerAdapter(logger, {"taskstream_fields": fields})
