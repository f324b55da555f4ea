"""How a run ends, and how that becomes an Outcome: results, errors, timeouts, cancels."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import pytest
from pydantic import Field

from taskstream.executor.metrics import LINGERING_THREADS
from taskstream.executor.outcomes import Ending, Outcome
from taskstream.executor.runner import HandlerRunner, HandlerThreads, RunControl
from taskstream.handlers import (
    HandlerRegistry,
    PermanentError,
    RetryableError,
    TaskContext,
    TaskHandler,
    TaskResult,
)
from taskstream.handlers.params import Duration, HandlerParams
from taskstream.schemas import Priority, WorkOrder, execution_id
from tests.support import eventually

SLOT = datetime(2030, 1, 1, tzinfo=UTC)


class Ok(TaskHandler):
    name: ClassVar[str] = "ok"

    def run(self, ctx: TaskContext) -> TaskResult:
        return TaskResult.success({"attempt": ctx.attempt, "params": dict(ctx.params)})


class Raises(TaskHandler):
    name: ClassVar[str] = "raises"

    def run(self, ctx: TaskContext) -> Any:
        kind = ctx.params["kind"]
        if kind == "permanent":
            raise PermanentError("never")
        if kind == "retryable":
            raise RetryableError("later", delay=7.5)
        if kind == "timeout":
            raise TimeoutError("the command ran out of time")
        raise ValueError("boom")


class Stubborn(TaskHandler):
    """A sync handler that ignores ctx.cancelled for a while."""

    name: ClassVar[str] = "stubborn"
    release = threading.Event()

    def run(self, ctx: TaskContext) -> None:
        self.release.wait(10)


class Polite(TaskHandler):
    name: ClassVar[str] = "polite"

    def run(self, ctx: TaskContext) -> None:
        ctx.cancelled.wait(10)


class AsyncSleep(TaskHandler):
    name: ClassVar[str] = "async-sleep"
    cancelled = threading.Event()

    async def run(self, ctx: TaskContext) -> dict[str, str]:
        try:
            await asyncio.sleep(float(ctx.params.get("seconds", 0)))
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        return {"loop": threading.current_thread().name}


class WhichThread(TaskHandler):
    name: ClassVar[str] = "which-thread"

    def run(self, ctx: TaskContext) -> dict[str, Any]:
        return {"ident": threading.get_ident(), "name": threading.current_thread().name}


class Shell(TaskHandler):
    name: ClassVar[str] = "shell"

    def run(self, ctx: TaskContext) -> None:
        raise AssertionError("must not run while disabled")


def _order(
    handler: str, params: dict[str, Any] | None = None, timeout: float | None = None
) -> WorkOrder:
    return WorkOrder(
        execution_id=execution_id("t", SLOT, 2),
        task_id="t",
        task_name="n",
        handler=handler,
        params=params or {},
        attempt=2,
        scheduled_for=SLOT,
        priority=Priority.HIGH,
        queue="default",
        timeout=None if timeout is None else timedelta(seconds=timeout),
    )


@pytest.fixture
def runner() -> Iterator[HandlerRunner]:
    registry = HandlerRegistry()
    for handler in (Ok, Raises, Stubborn, Polite, AsyncSleep, Shell, WhichThread):
        registry.register(handler)
    runner = HandlerRunner(registry, default_timeout=5.0)
    yield runner
    runner.close()


def test_success_carries_the_output(runner: HandlerRunner) -> None:
    outcome = runner.run(_order("ok", {"a": 1}), RunControl())
    assert outcome.ending is Ending.SUCCEEDED
    assert outcome.output == {"attempt": 2, "params": {"a": 1}}


@pytest.mark.parametrize(
    ("kind", "ending", "error_type", "retryable", "retry_after"),
    [
        ("permanent", Ending.FAILED, "PermanentError", False, None),
        ("retryable", Ending.FAILED, "RetryableError", True, 7.5),
        ("other", Ending.FAILED, "ValueError", True, None),
        ("timeout", Ending.TIMED_OUT, "TimeoutError", True, None),
    ],
)
def test_exceptions_map_to_endings(
    runner: HandlerRunner,
    kind: str,
    ending: Ending,
    error_type: str,
    retryable: bool,
    retry_after: float | None,
) -> None:
    outcome = runner.run(_order("raises", {"kind": kind}, timeout=3), RunControl())
    assert outcome.ending is ending
    assert outcome.error_type == error_type
    assert outcome.retryable is retryable
    assert outcome.retry_after == retry_after
    if ending is Ending.TIMED_OUT:
        assert outcome.timeout == 3


def test_a_sync_handler_past_its_timeout_is_left_lingering(runner: HandlerRunner) -> None:
    Stubborn.release.clear()
    before = LINGERING_THREADS._value.get()
    started = time.monotonic()
    outcome = runner.run(_order("stubborn", timeout=0.3), RunControl())
    assert outcome.ending is Ending.TIMED_OUT and outcome.timeout == 0.3
    assert time.monotonic() - started < 2, "the runner stops waiting at the deadline"
    assert LINGERING_THREADS._value.get() == before + 1
    Stubborn.release.set()
    eventually(
        lambda: LINGERING_THREADS._value.get() == before,
        timeout=5,
        interval=0.01,
        what="the abandoned thread to end on its own",
    )


def test_a_timeout_sets_ctx_cancelled_for_a_polite_sync_handler(runner: HandlerRunner) -> None:
    control = RunControl()
    outcome = runner.run(_order("polite", timeout=0.2), control)
    assert outcome.ending is Ending.TIMED_OUT
    assert control.cancelled.is_set()


def test_an_async_handler_runs_on_the_loop_and_is_cancelled_on_timeout(
    runner: HandlerRunner,
) -> None:
    ok = runner.run(_order("async-sleep", {"seconds": 0}), RunControl())
    assert ok.ending is Ending.SUCCEEDED and ok.output == {"loop": "handlers-asyncio"}
    AsyncSleep.cancelled.clear()
    outcome = runner.run(_order("async-sleep", {"seconds": 30}, timeout=0.2), RunControl())
    assert outcome.ending is Ending.TIMED_OUT
    assert AsyncSleep.cancelled.wait(5), "the asyncio task was cancelled"


def test_a_cancel_request_ends_the_run_with_its_reason(runner: HandlerRunner) -> None:
    control = RunControl()
    threading.Timer(0.2, control.cancel, args=("operator said stop",)).start()
    started = time.monotonic()
    outcome = runner.run(_order("polite", timeout=30), control)
    assert outcome.ending is Ending.CANCELLED
    assert outcome.error_message == "operator said stop"
    assert time.monotonic() - started < 5
    AsyncSleep.cancelled.clear()
    control = RunControl()
    threading.Timer(0.2, control.cancel, args=("async too",)).start()
    outcome = runner.run(_order("async-sleep", {"seconds": 30}, timeout=30), control)
    assert outcome.ending is Ending.CANCELLED and outcome.error_message == "async too"
    assert AsyncSleep.cancelled.wait(5)


def test_cancelled_before_start_does_not_run(runner: HandlerRunner) -> None:
    control = RunControl()
    control.cancel("early")
    outcome = runner.run(_order("raises", {"kind": "other"}), control)
    assert outcome.ending is Ending.CANCELLED and outcome.error_message == "early"


def test_the_shell_handler_is_refused_unless_enabled(runner: HandlerRunner) -> None:
    outcome = runner.run(_order("shell"), RunControl())
    assert outcome.ending is Ending.FAILED and outcome.retryable is False
    assert outcome.error_type == "HandlerDisabledError"
    assert "TASKSTREAM_EXECUTOR_SHELL_ENABLED" in outcome.error_message
    assert "shell" not in runner.handler_names()
    runner.shell_enabled = True
    assert "shell" in runner.handler_names()


def test_an_unknown_handler_fails_permanently(runner: HandlerRunner) -> None:
    outcome = runner.run(_order("com.example.Nope"), RunControl())
    assert outcome.ending is Ending.FAILED and outcome.retryable is False
    assert outcome.error_type == "UnknownHandlerError"


class CountParams(HandlerParams):
    upto: int = Field(ge=1)
    pause: Duration | None = None


class Count(TaskHandler[CountParams]):
    name: ClassVar[str] = "count"
    called = threading.Event()

    def run(self, ctx: TaskContext[CountParams]) -> dict[str, Any]:
        self.called.set()
        return {"args": type(ctx.args).__name__, "upto": ctx.args.upto, "pause": ctx.args.pause}


@pytest.mark.parametrize("run_here", [False, True])
def test_a_typed_handler_gets_its_params_parsed(runner: HandlerRunner, run_here: bool) -> None:
    runner.registry.register(Count)
    order = _order("count", {"upto": 3, "pause": "2s"})
    if run_here:
        outcome = runner.run_here(order, RunControl(), None, lambda _: None)
    else:
        outcome = runner.run(order, RunControl())
    assert outcome is not None and outcome.ending is Ending.SUCCEEDED, outcome
    assert outcome.output == {"args": "CountParams", "upto": 3, "pause": 2.0}


def test_params_that_do_not_fit_fail_permanently_before_the_handler_runs(
    runner: HandlerRunner,
) -> None:
    runner.registry.register(Count)
    Count.called.clear()
    outcome = runner.run(_order("count", {"upto": 0, "extra": 1}), RunControl())
    assert outcome.ending is Ending.FAILED and outcome.retryable is False
    assert outcome.error_type == "InvalidParamsError"
    assert outcome.error_message == (
        "count handler: params.upto must be a whole number of at least 1, not 0; "
        "unknown parameter 'extra' (it takes pause, upto)"
    )
    assert not Count.called.is_set()


def test_output_that_is_not_json_becomes_its_repr(runner: HandlerRunner) -> None:
    class Weird(TaskHandler):
        name: ClassVar[str] = "weird"

        def run(self, ctx: TaskContext) -> object:
            return {1, 2}

    runner.registry.register(Weird)
    outcome = runner.run(_order("weird"), RunControl())
    assert outcome.ending is Ending.SUCCEEDED and outcome.output == "{1, 2}"


def test_sync_handlers_reuse_their_threads_and_a_lingering_one_only_once_it_returns(
    runner: HandlerRunner,
) -> None:
    first = runner.run(_order("which-thread"), RunControl())
    assert first.ending is Ending.SUCCEEDED
    assert first.output["name"] == f"handler-{_order('x').execution_id[:8]}"
    eventually(lambda: runner.threads.idle == 1, what="the thread back among the idle")
    second = runner.run(_order("which-thread"), RunControl())
    assert second.output["ident"] == first.output["ident"], "the idle thread ran it"

    Stubborn.release.clear()
    eventually(lambda: runner.threads.idle == 1, what="the thread idle again")
    stuck = runner.run(_order("stubborn", timeout=0.2), RunControl())
    assert stuck.ending is Ending.TIMED_OUT
    assert runner.threads.idle == 0, "the lingering thread is not handed out"
    meanwhile = runner.run(_order("which-thread"), RunControl())
    assert meanwhile.ending is Ending.SUCCEEDED
    Stubborn.release.set()
    eventually(lambda: runner.threads.idle == 2, what="both threads idle once it returned")


def test_idle_threads_beyond_the_kept_number_end_and_close_ends_the_rest() -> None:
    threads = HandlerThreads(keep=1)
    release = threading.Event()
    running: list[threading.Thread] = []
    lock = threading.Lock()

    def job() -> None:
        with lock:
            running.append(threading.current_thread())
        release.wait(10)

    threads.run(job, "handler-a")
    threads.run(job, "handler-b")
    eventually(lambda: len(running) == 2, what="both jobs on threads of their own")
    assert running[0] is not running[1]
    assert {thread.name for thread in running} == {"handler-a", "handler-b"}
    release.set()
    eventually(
        lambda: threads.idle == 1 and sum(t.is_alive() for t in running) == 1,
        what="one thread kept idle, the other ended",
    )
    threads.close()
    eventually(lambda: not any(t.is_alive() for t in running), what="the idle thread to end")
    assert threads.idle == 0


# -- run_here: a sync handler on the calling slot, under the watchdog ---------------------


def _here(runner: HandlerRunner, order: WorkOrder, control: RunControl) -> Outcome:
    """run_here for a run that must end on its own (no overrun)."""
    overruns: list[Outcome] = []
    outcome = runner.run_here(order, control, None, overruns.append)
    assert overruns == [] and outcome is not None
    return outcome


def test_run_here_runs_a_sync_handler_on_the_calling_thread(runner: HandlerRunner) -> None:
    outcome = _here(runner, _order("which-thread"), RunControl())
    assert outcome.ending is Ending.SUCCEEDED
    assert outcome.output == {
        "ident": threading.get_ident(),
        "name": threading.current_thread().name,
    }
    assert runner.watchdog.running == 0, "a run that ended is no longer watched"
    ok = _here(runner, _order("async-sleep", {"seconds": 0}), RunControl())
    assert ok.output == {"loop": "handlers-asyncio"}, "an async handler still runs on the loop"


@pytest.mark.parametrize(
    ("kind", "ending", "error_type", "retryable"),
    [
        ("permanent", Ending.FAILED, "PermanentError", False),
        ("retryable", Ending.FAILED, "RetryableError", True),
        ("other", Ending.FAILED, "ValueError", True),
        ("timeout", Ending.TIMED_OUT, "TimeoutError", True),
    ],
)
def test_run_here_maps_exceptions_like_run(
    runner: HandlerRunner, kind: str, ending: Ending, error_type: str, retryable: bool
) -> None:
    order = _order("raises", {"kind": kind}, timeout=3)
    here = _here(runner, order, RunControl())
    there = runner.run(order, RunControl())
    assert (here.ending, here.error_type, here.retryable, here.retry_after) == (
        there.ending,
        there.error_type,
        there.retryable,
        there.retry_after,
    )
    assert (here.ending, here.error_type, here.retryable) == (ending, error_type, retryable)


def _in_thread(
    runner: HandlerRunner, order: WorkOrder, control: RunControl
) -> tuple[threading.Thread, list[Outcome], list[Outcome | None]]:
    """run_here on a thread of its own (the slot); what it overran with and returned."""
    overruns: list[Outcome] = []
    returned: list[Outcome | None] = []
    slot = threading.Thread(
        target=lambda: returned.append(runner.run_here(order, control, None, overruns.append)),
        daemon=True,
    )
    slot.start()
    return slot, overruns, returned


def test_run_here_overruns_a_stubborn_handler_at_its_deadline(runner: HandlerRunner) -> None:
    Stubborn.release.clear()
    before = LINGERING_THREADS._value.get()
    control = RunControl()
    started = time.monotonic()
    slot, overruns, returned = _in_thread(runner, _order("stubborn", timeout=0.3), control)
    eventually(lambda: overruns != [], timeout=3, interval=0.01, what="the overrun")
    assert time.monotonic() - started < 2, "the watchdog ends the run at its deadline"
    (outcome,) = overruns
    assert outcome.ending is Ending.TIMED_OUT and outcome.timeout == 0.3
    assert outcome.duration >= 0.3
    assert control.cancelled.is_set(), "ctx.cancelled tells the handler"
    assert LINGERING_THREADS._value.get() == before + 1
    assert returned == [] and slot.is_alive(), "the slot's thread is still in the handler"
    Stubborn.release.set()
    slot.join(5)
    assert returned == [None], "its late result is dropped"
    assert len(overruns) == 1, "overrun is called once"
    assert LINGERING_THREADS._value.get() == before


def test_run_here_overruns_a_run_cancelled_while_it_runs(runner: HandlerRunner) -> None:
    Stubborn.release.clear()
    control = RunControl()
    slot, overruns, returned = _in_thread(runner, _order("stubborn", timeout=30), control)
    eventually(lambda: runner.watchdog.running == 1, timeout=3, interval=0.01, what="the run")
    control.cancel("operator said stop")
    eventually(lambda: overruns != [], timeout=3, interval=0.01, what="the overrun")
    assert overruns[0].ending is Ending.CANCELLED
    assert overruns[0].error_message == "operator said stop"
    Stubborn.release.set()
    slot.join(5)
    assert returned == [None] and len(overruns) == 1


def test_run_here_reports_cancelled_when_a_polite_handler_returns_on_the_request(
    runner: HandlerRunner,
) -> None:
    control = RunControl()
    control.cancel("early")
    outcome = _here(runner, _order("raises", {"kind": "other"}), control)
    assert outcome.ending is Ending.CANCELLED and outcome.error_message == "early"
    control = RunControl()
    slot, overruns, returned = _in_thread(runner, _order("polite", timeout=30), control)
    eventually(lambda: runner.watchdog.running == 1, timeout=3, interval=0.01, what="the run")
    control.cancel("stop please")
    slot.join(5)
    ended = overruns or returned
    assert len(ended) == 1, "one ending, from whichever saw it first"
    assert ended[0] is not None and ended[0].ending is Ending.CANCELLED
    assert ended[0].error_message == "stop please"


def test_the_watchdog_survives_an_overrun_callback_that_raises(runner: HandlerRunner) -> None:
    Stubborn.release.clear()

    def broken(_: Outcome) -> None:
        raise RuntimeError("the hand-over failed")

    first = threading.Thread(
        target=runner.run_here,
        args=(_order("stubborn", timeout=0.2), RunControl(), None, broken),
        daemon=True,
    )
    first.start()
    slot, overruns, returned = _in_thread(runner, _order("polite", timeout=0.3), RunControl())
    eventually(lambda: overruns != [], timeout=3, interval=0.01, what="the next overrun")
    assert overruns[0].ending is Ending.TIMED_OUT, "the watchdog went on watching"
    Stubborn.release.set()
    first.join(5)
    slot.join(5)
    assert returned == [None]
