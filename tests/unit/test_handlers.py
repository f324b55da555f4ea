from __future__ import annotations

import threading
from typing import Any, ClassVar

import pytest

from taskstream import handlers
from taskstream.handlers import (
    HandlerRegistry,
    PermanentError,
    RetryableError,
    TaskContext,
    TaskHandler,
)
from taskstream.handlers.builtin import EchoHandler, FailHandler, SleepHandler
from taskstream.handlers.testing import handler_context


def _ctx(handler: type[TaskHandler[Any]], **params: object) -> TaskContext[Any]:
    """What the executor hands ``handler``: its params parsed into its model."""
    return handler_context(handler, params, task_id="t", task_name="n", execution_id="e")


def test_builtins_are_registered_through_entry_points() -> None:
    registry = HandlerRegistry.from_entry_points()
    assert {"noop", "echo", "fail", "sleep"} <= set(registry.names())
    assert registry.canonical_name("taskstream.handlers.builtin.EchoHandler") == "echo"
    assert registry.canonical_name("echo") == "echo"


def test_a_builtin_keeps_resolving_by_its_class_path_before_0_2() -> None:
    """Tasks in the log written before the taskstream.* namespace name ``handlers.*``."""
    registry = HandlerRegistry.from_entry_points()
    assert registry.resolve("handlers.builtin.EchoHandler") is registry.resolve("echo")
    assert registry.canonical_name("handlers.shell.ShellHandler") == "shell"
    with pytest.raises(handlers.UnknownHandlerError):
        registry.resolve("taskstream.handlers.builtin.NoSuchHandler")


def test_unregistered_class_paths_never_load() -> None:
    registry = HandlerRegistry.from_entry_points()
    with pytest.raises(handlers.UnknownHandlerError, match="registered handlers are"):
        registry.resolve("os.system")


def test_register_in_code() -> None:
    class Report(TaskHandler):
        name: ClassVar[str] = "report"

        def run(self, ctx: TaskContext) -> None:
            return None

    registry = HandlerRegistry()
    registry.register(Report)
    assert registry.resolve("report") is Report
    with pytest.raises(ValueError, match="taken"):
        registry.register(EchoHandler, name="report")


def test_builtin_behaviour() -> None:
    assert EchoHandler().run(_ctx(EchoHandler, a=1)).output == {"a": 1}
    with pytest.raises(RetryableError):
        FailHandler().run(
            _ctx(
                FailHandler,
            )
        )
    with pytest.raises(PermanentError, match="boom"):
        FailHandler().run(_ctx(FailHandler, permanent=True, message="boom"))
    ctx = _ctx(SleepHandler, seconds=30)
    ctx.cancelled.set()
    with pytest.raises(RetryableError, match="cancelled"):
        SleepHandler().run(ctx)


def test_context_is_frozen() -> None:
    ctx = _ctx(EchoHandler)
    with pytest.raises(AttributeError):
        ctx.attempt = 2  # type: ignore[misc]
    assert isinstance(ctx.cancelled, threading.Event)
