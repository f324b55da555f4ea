"""``handlers.testing.run_handler``: the harness handler authors test with."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
from pathlib import Path
from typing import Any, ClassVar

import pytest

from taskstream.handlers import (
    HandlerEnvironment,
    PermanentError,
    TaskContext,
    TaskHandler,
    TaskResult,
)
from taskstream.handlers.builtin import EchoHandler, FailHandler
from taskstream.handlers.testing import HandlerRun, run_handler


class Greeter(TaskHandler):
    name: ClassVar[str] = "greeter"

    def run(self, ctx: TaskContext) -> TaskResult:
        ctx.logger.info("greeting %s", ctx.params["who"])
        ctx.logger.debug("attempt %d", ctx.attempt)
        return TaskResult.success({"greeting": f"hello {ctx.params['who']}"})


class AsyncGreeter(TaskHandler):
    name: ClassVar[str] = "async-greeter"

    async def run(self, ctx: TaskContext) -> dict[str, Any]:
        await asyncio.sleep(0)
        ctx.logger.warning("async %s", ctx.execution_id)
        return {"greeting": f"hi {ctx.params['who']}"}


class Stubborn(TaskHandler):
    """Waits for the cancel flag, as a well-behaved long handler does."""

    name: ClassVar[str] = "stubborn"

    def run(self, ctx: TaskContext) -> None:
        ctx.cancelled.wait(30)


class AsyncForever(TaskHandler):
    name: ClassVar[str] = "async-forever"

    async def run(self, ctx: TaskContext) -> None:
        await asyncio.Event().wait()


class Shows(TaskHandler):
    """Returns what it was given."""

    name: ClassVar[str] = "shows"

    def run(self, ctx: TaskContext) -> dict[str, Any]:
        return {
            "task_id": ctx.task_id,
            "execution_id": ctx.execution_id,
            "attempt": ctx.attempt,
            "executor": ctx.environment.executor_id,
            "shell": ctx.environment.shell_enabled,
        }


def test_a_sync_handler_succeeds_with_output_and_logs() -> None:
    run = run_handler(Greeter, {"who": "ada"})
    assert run.succeeded
    run.raise_error()  # nothing to raise
    assert run.output == {"greeting": "hello ada"}
    assert run.logs == ["greeting ada", "attempt 1"]
    assert run.error is None
    assert 0 <= run.duration < 5


def test_an_instance_works_as_well_as_a_class() -> None:
    assert run_handler(EchoHandler(), {"a": 1}).output == {"a": 1}


def test_an_async_handler_runs_on_an_event_loop() -> None:
    run = run_handler(AsyncGreeter, {"who": "bob"}, execution_id="e-7")
    assert run.output == {"greeting": "hi bob"}
    assert run.logs == ["async e-7"]


def test_an_async_handler_from_async_code() -> None:
    async def main() -> HandlerRun:
        return run_handler(AsyncGreeter, {"who": "cy"})

    assert asyncio.run(main()).output == {"greeting": "hi cy"}


def test_errors_are_captured_and_raise_error_reraises_them() -> None:
    run = run_handler(FailHandler, {"permanent": True, "message": "nope"})
    assert not run.succeeded
    assert isinstance(run.error, PermanentError)
    with pytest.raises(PermanentError, match="nope"):
        run.raise_error()
    missing = run_handler(Greeter, {})
    assert isinstance(missing.error, KeyError)


def test_attempt_ids_and_environment_reach_the_context() -> None:
    environment = HandlerEnvironment(executor_id="exec-a", shell_enabled=True, work_dir=Path("/"))
    run = run_handler(Shows, attempt=3, task_id="t-1", execution_id="x-1", environment=environment)
    assert run.output == {
        "task_id": "t-1",
        "execution_id": "x-1",
        "attempt": 3,
        "executor": "exec-a",
        "shell": True,
    }
    assert run.context.environment is environment
    assert run_handler(Shows).output["shell"] is False


def test_a_sync_timeout_sets_cancelled_and_reports_timeout_error() -> None:
    run = run_handler(Stubborn, timeout=0.2)
    assert isinstance(run.error, TimeoutError)
    assert "timeout of 0.2s" in str(run.error)
    assert run.context.cancelled.is_set()
    assert run.duration < 5


def test_an_async_timeout_cancels_the_coroutine() -> None:
    run = run_handler(AsyncForever, timeout=0.2)
    assert isinstance(run.error, TimeoutError)
    assert run.context.cancelled.is_set()
    assert run.duration < 5


def test_the_caller_can_cancel_a_run() -> None:
    cancelled = threading.Event()
    cancelled.set()
    run = run_handler(Stubborn, cancelled=cancelled, timeout=10)
    assert run.succeeded
    assert run.duration < 5


def test_output_that_is_not_json_is_an_error() -> None:
    class Returns(TaskHandler):
        name: ClassVar[str] = "returns"

        def run(self, ctx: TaskContext) -> object:
            return object()

    run = run_handler(Returns)
    assert isinstance(run.error, TypeError)
    assert "not JSON" in str(run.error) and "repr()" in str(run.error)


def test_logs_also_reach_the_logging_tree(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="taskstream.handler"):
        run_handler(Greeter, {"who": "dee"})
    assert "greeting dee" in caplog.messages
    assert caplog.records[0].name == "taskstream.handler"


def test_runs_do_not_share_logs() -> None:
    first = run_handler(Greeter, {"who": "a"})
    second = run_handler(Greeter, {"who": "b"})
    assert first.logs == ["greeting a", "attempt 1"]
    assert second.logs == ["greeting b", "attempt 1"]


def test_the_run_is_frozen_and_arguments_are_checked() -> None:
    run = run_handler(EchoHandler)
    with pytest.raises(dataclasses.FrozenInstanceError):
        run.output = 1  # type: ignore[misc]
    with pytest.raises(ValueError, match="attempt counts from 1"):
        run_handler(EchoHandler, attempt=0)
    with pytest.raises(ValueError, match="timeout must be positive"):
        run_handler(EchoHandler, timeout=0)
