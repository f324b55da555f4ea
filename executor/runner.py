"""Running one work order's handler, with its deadline and cancellation, into an Outcome.

The executor's slots call :meth:`HandlerRunner.run_here`: a sync handler runs on the
slot's own thread, under the :mod:`taskstream.executor.watchdog` (which ends the run at its
deadline or cancellation and hands the slot over to a new thread); an async handler runs
on the runner's one asyncio loop thread. :meth:`HandlerRunner.run` runs a sync handler on
a thread of its own instead, for a caller that must not lend its thread. The caller
waits for whichever comes first:

- the handler ends: success -> ``SUCCEEDED``; ``PermanentError`` -> ``FAILED``, not
  retryable; ``RetryableError`` -> ``FAILED`` with its ``delay``; ``TimeoutError`` (the
  shell handler raises it after killing its process) -> ``TIMED_OUT``; any other
  exception -> ``FAILED``, retryable;
- the deadline (``order.timeout`` or the executor's default) -> ``TIMED_OUT``;
- a cancellation -> ``CANCELLED`` with the request's reason.

On a deadline or cancellation an async handler's task is cancelled; a sync handler gets
``ctx.cancelled`` set and is no longer waited for. Its thread may linger: it is counted
in ``taskstream_executor_lingering_threads`` until it returns.

:meth:`HandlerRunner.run`'s threads are reused (:class:`HandlerThreads`): starting a
thread costs more than a short handler runs. A thread goes back to the idle ones when
its handler returns, a lingering one only then; idle threads beyond the number kept end.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import queue
import threading
import time
import traceback
from collections.abc import Awaitable, Callable
from concurrent.futures import Future, InvalidStateError
from typing import Any

import orjson
from pydantic import BaseModel

from taskstream.executor.capture import RunLog, capturing, current_run_log
from taskstream.executor.metrics import LINGERING_THREADS
from taskstream.executor.outcomes import Ending, Outcome
from taskstream.executor.watchdog import RunWatchdog, Watch
from taskstream.handlers import (
    HandlerEnvironment,
    HandlerRegistry,
    HandlerTimeoutError,
    PermanentError,
    RetryableError,
    TaskContext,
    TaskHandler,
    TaskResult,
    UnknownHandlerError,
)
from taskstream.handlers.params import InvalidParamsError, parse_params
from taskstream.infra.logs import fields
from taskstream.schemas import WorkOrder
from taskstream.schemas.errors import TaskstreamError

__all__ = ["SHELL_HANDLER", "HandlerRunner", "HandlerThreads", "RunControl"]

logger = logging.getLogger(__name__)
_handler_logger = logging.getLogger("taskstream.handler")

SHELL_HANDLER = "shell"
"""The registered name of the handler that runs commands, off unless enabled."""


class RunControl:
    """One execution's signals: cancellation (seen by the handler) and wake-ups."""

    def __init__(self) -> None:
        self.cancelled = threading.Event()
        """Given to the handler as ``ctx.cancelled``: set on cancellation and timeout."""
        self._wake: threading.Event | None = None
        """Only a run that waits for a handler on another thread needs one."""
        self._lock = threading.Lock()
        self._reason: str | None = None
        self._watched: tuple[RunWatchdog, Watch] | None = None

    @property
    def reason(self) -> str | None:
        """Why the execution was cancelled, or None."""
        with self._lock:
            return self._reason

    def cancel(self, reason: str) -> None:
        with self._lock:
            if self._reason is None:
                self._reason = reason or "cancelled"
            watched, wake = self._watched, self._wake
        self.cancelled.set()
        if wake is not None:
            wake.set()
        if watched is not None:
            watchdog, watch = watched
            watchdog.cancel(watch, self._reason or "cancelled")

    def watched_by(self, watchdog: RunWatchdog, watch: Watch) -> None:
        """The run is on its slot under ``watchdog``: a cancellation overruns it."""
        with self._lock:
            self._watched = watchdog, watch
            reason = self._reason
        if reason is not None:  # cancelled between the check before the run and now
            watchdog.cancel(watch, reason)

    def wake(self) -> None:
        with self._lock:
            wake = self._wake
        if wake is not None:
            wake.set()

    def reset_wake(self) -> None:
        """Forget earlier wake-ups; check the conditions after this, then :meth:`sleep`."""
        with self._lock:
            if self._wake is None:
                self._wake = threading.Event()
            wake = self._wake
        wake.clear()

    def sleep(self, timeout: float) -> None:
        """Wait for a wake-up (handler ended, cancellation) or ``timeout`` seconds."""
        with self._lock:
            wake = self._wake
        assert wake is not None, "reset_wake() first: it makes the event sleep waits on"
        wake.wait(timeout)


class HandlerThreads:
    """Threads that run sync handlers, one run at a time each, reused from run to run.

    :meth:`run` hands the job to an idle thread, or starts one if none is idle. A thread
    becomes idle again when its job returns; if ``keep`` threads are idle already, it
    ends instead. :meth:`close` ends the idle ones (busy ones end when their job does).
    """

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self._idle: list[_HandlerThread] = []
        self._lock = threading.Lock()
        self._closed = False

    def run(self, job: Callable[[], None], name: str) -> None:
        with self._lock:
            thread = self._idle.pop() if self._idle else None
        if thread is None:
            thread = _HandlerThread(self)
            thread.name = name
            thread.submit(job)
            thread.start()
        else:
            thread.name = name
            thread.submit(job)

    @property
    def idle(self) -> int:
        with self._lock:
            return len(self._idle)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for thread in idle:
            thread.submit(None)

    def _returned(self, thread: _HandlerThread) -> bool:
        """A thread's job returned: keep it idle (True) or let it end (False)."""
        with self._lock:
            if self._closed or len(self._idle) >= self.keep:
                return False
            self._idle.append(thread)
            return True


class _HandlerThread(threading.Thread):
    def __init__(self, pool: HandlerThreads) -> None:
        super().__init__(daemon=True)
        self._pool = pool
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()

    def submit(self, job: Callable[[], None] | None) -> None:
        self._jobs.put(job)

    def run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            try:
                job()
            except BaseException:  # a job reports its own errors; never lose the thread
                logger.exception("a handler thread's job raised")
            if not self._pool._returned(self):
                return


class HandlerRunner:
    """Runs handlers: sync ones on threads of their own, async ones on one event loop."""

    def __init__(
        self,
        registry: HandlerRegistry,
        default_timeout: float,
        *,
        shell_enabled: bool = False,
        environment: HandlerEnvironment | None = None,
        idle_threads: int = 16,
    ) -> None:
        self.registry = registry
        self.default_timeout = default_timeout
        self.shell_enabled = shell_enabled
        self._environment = environment or HandlerEnvironment(shell_enabled=shell_enabled)
        self.threads = HandlerThreads(idle_threads)
        """Sync handlers' threads for :meth:`run`; at most ``idle_threads`` are kept idle."""
        self.watchdog = RunWatchdog()
        """The deadlines and cancellations of the sync handlers :meth:`run_here` runs."""
        self._loop = asyncio.new_event_loop()
        self._loop_thread = threading.Thread(
            target=self._loop.run_forever, name="handlers-asyncio", daemon=True
        )
        self._loop_thread.start()

    def close(self, timeout: float = 2.0) -> None:
        """Cancel async handlers still running, stop the loop and close it."""
        self.threads.close()
        self.watchdog.close()
        if self._loop.is_closed():
            return
        try:
            asyncio.run_coroutine_threadsafe(self._shutdown(timeout), self._loop).result(
                timeout + 1
            )
        except Exception:
            logger.exception("async handlers did not stop cleanly")
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._loop_thread.join(timeout)
        if not self._loop_thread.is_alive():
            self._loop.close()

    async def _shutdown(self, timeout: float) -> None:
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)

    def handler_names(self) -> list[str]:
        """The handlers this executor runs (``shell`` only when enabled)."""
        names = self.registry.names()
        return names if self.shell_enabled else [n for n in names if n != SHELL_HANDLER]

    def timeout_of(self, order: WorkOrder) -> float:
        return order.timeout.total_seconds() if order.timeout else self.default_timeout

    def run(self, order: WorkOrder, control: RunControl, run_log: RunLog | None = None) -> Outcome:
        """Run ``order``'s handler until it ends, times out or is cancelled.

        A sync handler runs on a thread of :attr:`threads`, an async one on the loop; the
        caller waits. What the handler logs and prints while it runs goes to ``run_log``
        (if given).
        """
        outcome = self._run(order, control, run_log, None)
        assert outcome is not None  # only an overrun run_here answers None
        return outcome

    def run_here(
        self,
        order: WorkOrder,
        control: RunControl,
        run_log: RunLog | None,
        overrun: Callable[[Outcome], None],
    ) -> Outcome | None:
        """Like :meth:`run`, but a sync handler runs on the calling thread.

        If the run passes its deadline or is cancelled while the handler runs, the
        :attr:`watchdog` calls ``overrun`` with the ending (from its own thread, once),
        and this returns None when the handler returns at last: the caller's thread was
        left with the handler, and what it returned is dropped. An async handler runs on
        the loop while the caller waits, as with :meth:`run`.
        """
        return self._run(order, control, run_log, overrun)

    def _run(
        self,
        order: WorkOrder,
        control: RunControl,
        run_log: RunLog | None,
        overrun: Callable[[Outcome], None] | None,
    ) -> Outcome | None:
        """:meth:`run_here` with ``overrun``; :meth:`run` (a handler thread) without."""
        prepared = self._prepare(order, control)
        if isinstance(prepared, Outcome):
            return prepared
        handler, args, started, timeout = prepared
        ctx = self._context(order, control, started + timeout, args)
        if inspect.iscoroutinefunction(handler.run):
            return self._wait_async(handler, ctx, control, run_log, started, timeout)
        if overrun is None:
            thread_run = _ThreadRun(handler, ctx, control, self._loop, order, run_log, self.threads)
            return self._wait(thread_run.future, control, started, timeout, thread_run)
        watch = self.watchdog.watch(started, timeout, control.cancelled, overrun, order)
        control.watched_by(self.watchdog, watch)
        result: Any = None
        error: BaseException | None = None
        try:
            result = _call_captured(handler.run, ctx, run_log, self._loop)
        except BaseException as exc:  # the handler's failure is its outcome
            error = exc
        if not self.watchdog.finish(watch):
            return None
        duration = time.monotonic() - started
        reason = control.reason
        if reason is not None:  # even if the handler ended, politely, after the request
            return Outcome.cancelled(duration, reason)
        return _classify(error, result, duration, timeout)

    def _prepare(
        self, order: WorkOrder, control: RunControl
    ) -> tuple[TaskHandler[Any], BaseModel | None, float, float] | Outcome:
        """The handler to run, its parsed params, when its run starts and its timeout; or
        the run's ending if it cannot start (unknown, disabled, failing to build, params
        that do not fit its model, cancelled already)."""
        started = time.monotonic()
        try:
            handler_class = self._handler_class(order)
            handler = handler_class()
        except _Refused as exc:
            return _failed(exc.error_type, str(exc), 0.0, retryable=False)
        except Exception as exc:
            return _failed(type(exc).__name__, str(exc) or repr(exc), 0.0)
        args: BaseModel | None = None
        if handler_class.params_model is not None:
            name = self.registry.canonical_name(order.handler)
            try:
                args = parse_params(name, handler_class.params_model, order.params)
            except InvalidParamsError as exc:
                return _failed(type(exc).__name__, str(exc), 0.0, retryable=False)
        if control.reason is not None:  # cancelled before it started
            return Outcome.cancelled(0.0, control.reason)
        return handler, args, started, self.timeout_of(order)

    def _wait_async(
        self,
        handler: TaskHandler[Any],
        ctx: TaskContext[Any],
        control: RunControl,
        run_log: RunLog | None,
        started: float,
        timeout: float,
    ) -> Outcome:
        running = handler.run(ctx)
        assert inspect.isawaitable(running)  # an ``async def run``
        pending = asyncio.run_coroutine_threadsafe(_captured(run_log, running), self._loop)
        pending.add_done_callback(lambda _: control.wake())
        return self._wait(pending, control, started, timeout, None)

    def _wait(
        self,
        pending: Future[Any],
        control: RunControl,
        started: float,
        timeout: float,
        thread_run: _ThreadRun | None,
    ) -> Outcome:
        deadline = started + timeout
        while True:
            control.reset_wake()
            if pending.done() or control.reason is not None:
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            control.sleep(remaining)
        duration = time.monotonic() - started
        reason = control.reason
        if pending.done() and reason is None:
            if pending.cancelled():
                return _failed("CancelledError", "the handler's run was cancelled", duration)
            error = pending.exception()
            return _classify(error, None if error else pending.result(), duration, timeout)
        control.cancelled.set()
        pending.cancel()
        if thread_run is not None:
            thread_run.abandon()
        if reason is not None:  # even if the handler ended, politely, after the request
            return Outcome.cancelled(duration, reason)
        return Outcome.past_deadline(duration, timeout)

    def _handler_class(self, order: WorkOrder) -> type[TaskHandler[Any]]:
        try:
            handler_class = self.registry.resolve(order.handler)
            name = self.registry.canonical_name(order.handler)
        except UnknownHandlerError as exc:
            raise _Refused("UnknownHandlerError", str(exc)) from exc
        if name == SHELL_HANDLER and not self.shell_enabled:
            raise _Refused(
                "HandlerDisabledError",
                f"the {SHELL_HANDLER!r} handler is disabled on this executor: set "
                "TASKSTREAM_EXECUTOR_SHELL_ENABLED=true to let it run commands",
            )
        return handler_class

    def _context(
        self, order: WorkOrder, control: RunControl, deadline: float, args: BaseModel | None
    ) -> TaskContext[Any]:
        return TaskContext(
            task_id=order.task_id,
            task_name=order.task_name,
            execution_id=order.execution_id,
            attempt=order.attempt,
            scheduled_for=order.scheduled_for,
            params=dict(order.params),
            deadline=deadline,
            cancelled=control.cancelled,
            logger=logging.LoggerAdapter(
                _handler_logger,
                fields(
                    task_id=order.task_id, execution_id=order.execution_id, attempt=order.attempt
                ),
            ),
            environment=self._environment,
            args=args,
        )


class _Refused(TaskstreamError):
    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type


class _ThreadRun:
    """A sync handler on a thread of its own, which the caller may stop waiting for."""

    def __init__(
        self,
        handler: TaskHandler[Any],
        ctx: TaskContext[Any],
        control: RunControl,
        loop: asyncio.AbstractEventLoop,
        order: WorkOrder,
        run_log: RunLog | None,
        threads: HandlerThreads,
    ) -> None:
        self.future: Future[Any] = Future()
        self._run_log = run_log
        self._run: Callable[[TaskContext[Any]], Any] = handler.run
        self._ctx = ctx
        self._control = control
        self._loop = loop
        self._order = order
        self._lock = threading.Lock()
        self._abandoned = False
        self._finished = False
        threads.run(self._main, f"handler-{order.execution_id[:8]}")

    def _main(self) -> None:
        try:
            try:
                result = _call_captured(self._run, self._ctx, self._run_log, self._loop)
            except BaseException as exc:
                self.future.set_exception(exc)
            else:
                self.future.set_result(result)
        except InvalidStateError:
            pass  # the caller cancelled the future: it stopped waiting
        finally:
            with self._lock:
                self._finished = True
                lingered = self._abandoned
            if lingered:
                LINGERING_THREADS.dec()
                logger.info(
                    "abandoned handler thread finished",
                    extra=fields(
                        task_id=self._order.task_id, execution_id=self._order.execution_id
                    ),
                )
            self._control.wake()

    def abandon(self) -> None:
        """The caller stops waiting; count the thread as lingering while it runs."""
        with self._lock:
            if self._finished:
                return
            self._abandoned = True
        LINGERING_THREADS.inc()
        logger.warning(
            "handler thread still running after its execution ended; it is left to finish",
            extra=fields(
                task_id=self._order.task_id,
                execution_id=self._order.execution_id,
                attempt=self._order.attempt,
            ),
        )


def _call_captured(
    run: Callable[[TaskContext[Any]], Any],
    ctx: TaskContext[Any],
    run_log: RunLog | None,
    loop: asyncio.AbstractEventLoop,
) -> Any:
    """A sync handler's ``run`` on this thread, what it logs and prints going to
    ``run_log``; an awaitable it returns is awaited on ``loop``."""
    with capturing(run_log):
        try:
            result = run(ctx)
        except BaseException as exc:
            _keep_traceback(exc)
            raise
    if inspect.isawaitable(result):  # a sync ``run`` that returned an awaitable
        result = asyncio.run_coroutine_threadsafe(_captured(run_log, result), loop).result()
    return result


async def _captured(run_log: RunLog | None, awaitable: Awaitable[Any]) -> Any:
    """Await ``awaitable`` in a task whose prints and logs go to ``run_log``."""
    with capturing(run_log):
        try:
            return await awaitable
        except BaseException as exc:
            _keep_traceback(exc)
            raise


def _keep_traceback(exc: BaseException) -> None:
    """Add the traceback of what the handler raised to its run's log."""
    run_log = current_run_log()
    if run_log is None or isinstance(exc, asyncio.CancelledError):
        return
    text = "".join(traceback.format_exception(exc)).rstrip()
    run_log.add("log", text, level="ERROR", logger="taskstream.executor")


def _failed(error_type: str, message: str, duration: float, *, retryable: bool = True) -> Outcome:
    return Outcome(
        Ending.FAILED, duration, error_type=error_type, error_message=message, retryable=retryable
    )


def _classify(exc: BaseException | None, result: Any, duration: float, timeout: float) -> Outcome:
    """The ending of a handler that returned ``result`` or raised ``exc``."""
    if exc is None:
        return Outcome(Ending.SUCCEEDED, duration, output=_json_output(result))
    message = str(exc) or repr(exc)
    if isinstance(exc, TimeoutError):
        return Outcome(
            Ending.TIMED_OUT,
            duration,
            error_type=type(exc).__name__,
            error_message=message,
            timeout=exc.limit if isinstance(exc, HandlerTimeoutError) else timeout,
        )
    if isinstance(exc, PermanentError):
        return _failed(type(exc).__name__, message, duration, retryable=False)
    if isinstance(exc, RetryableError):
        return Outcome(
            Ending.FAILED,
            duration,
            error_type=type(exc).__name__,
            error_message=message,
            retry_after=exc.delay,
        )
    return _failed(type(exc).__name__, message, duration)


def _json_output(result: Any) -> Any:
    value = result.output if isinstance(result, TaskResult) else result
    try:
        orjson.dumps(value)
    except TypeError:
        return repr(value)
    return value
