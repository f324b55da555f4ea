"""What a handler logs and prints lands in its own run's log, capped, and nowhere else."""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, ClassVar

import pytest

from taskstream.executor import capture
from taskstream.executor.capture import MAX_LINE_CHARS, RunLog, capturing
from taskstream.executor.outcomes import Ending
from taskstream.executor.runner import HandlerRunner, RunControl
from taskstream.handlers import HandlerRegistry, TaskContext, TaskHandler
from taskstream.schemas import Priority, WorkOrder, execution_id

SLOT = datetime(2030, 1, 1, tzinfo=UTC)


@contextmanager
def installed() -> Iterator[None]:
    """Install inside the test body: pytest re-points sys.stdout between test phases."""
    capture.install()
    try:
        yield
    finally:
        capture.uninstall()


def _messages(run_log: RunLog) -> list[tuple[str, str]]:
    return [(line.stream, line.message) for line in run_log.finish().lines]


def test_head_then_tail_with_the_middle_counted() -> None:
    run_log = RunLog("e", max_bytes=100)  # head 100 bytes, tail 25
    for n in range(30):
        run_log.add("stdout", f"line {n:02d}")  # 7 characters + newline = 8 bytes
    head = run_log.take()
    assert [line.message for line in head] == [f"line {n:02d}" for n in range(12)]
    tail = run_log.finish()
    assert [line.message for line in tail.lines] == ["line 27", "line 28", "line 29"]
    assert tail.dropped_lines == 30 - 12 - 3
    assert tail.dropped_bytes == tail.dropped_lines * 8


def test_take_ships_each_head_line_once() -> None:
    run_log = RunLog("e", max_bytes=10_000)
    run_log.add("log", "a", level="INFO", logger="x")
    assert [line.message for line in run_log.take()] == ["a"]
    run_log.add("log", "b", level="INFO", logger="x")
    assert [line.message for line in run_log.take()] == ["b"]
    assert run_log.take() == []
    assert run_log.finish().lines == []


def test_writes_are_split_into_lines_and_a_partial_one_is_kept_at_the_end() -> None:
    run_log = RunLog("e", max_bytes=10_000)
    run_log.write("stdout", "one\ntw")
    run_log.write("stdout", "o\nthree")
    run_log.write("stderr", "err\n")
    assert _messages(run_log) == [
        ("stdout", "one"),
        ("stdout", "two"),
        ("stderr", "err"),
        ("stdout", "three"),
    ]


def test_an_overlong_line_is_cut_and_says_so() -> None:
    run_log = RunLog("e", max_bytes=1_000_000)
    run_log.add("stdout", "x" * (MAX_LINE_CHARS + 10))
    [line] = run_log.finish().lines
    assert line.message.startswith("x" * MAX_LINE_CHARS)
    assert line.message.endswith("[10 characters cut]")


def test_prints_and_logs_go_to_the_current_run_only() -> None:
    mine, other = RunLog("mine", 10_000), RunLog("other", 10_000)
    seen_by_other_thread = threading.Event()

    def elsewhere() -> None:
        with capturing(other):
            print("other's print")
            seen_by_other_thread.set()

    with installed():
        with capturing(mine):
            print("hello")
            sys.stderr.write("warning: low disk\n")
            logging.getLogger("some.library").warning("retrying %s", "db")
            thread = threading.Thread(target=elsewhere)
            thread.start()
            thread.join()
        print("after the run")  # not captured: no run is current

    assert seen_by_other_thread.is_set()
    lines = mine.finish().lines
    assert [(line.stream, line.message) for line in lines] == [
        ("stdout", "hello"),
        ("stderr", "warning: low disk"),
        ("log", "retrying db"),
    ]
    assert lines[2].level == "WARNING" and lines[2].logger == "some.library"
    assert _messages(other) == [("stdout", "other's print")]


def test_ctx_logger_records_from_a_handlers_own_thread_are_kept() -> None:
    run_log = RunLog("exec-1", 10_000)
    adapter = logging.LoggerAdapter(
        logging.getLogger(capture.HANDLER_LOGGER),
        {"taskstream_fields": {"execution_id": "exec-1"}},
    )
    with installed(), capturing(run_log):
        worker = threading.Thread(target=lambda: adapter.warning("from a worker thread"))
        worker.start()
        worker.join()
    capture.release(run_log)
    with installed():
        adapter.warning("after release")
    assert _messages(run_log) == [("log", "from a worker thread")]


def test_uninstall_restores_the_streams_after_the_last_user() -> None:
    original = sys.stdout
    capture.install()
    capture.install()
    capture.uninstall()
    assert sys.stdout is not original  # one user left
    capture.uninstall()
    assert sys.stdout is original


class Chatty(TaskHandler):
    name: ClassVar[str] = "chatty"

    def run(self, ctx: TaskContext) -> None:
        print("sync print", ctx.attempt)
        ctx.logger.warning("via ctx.logger")
        if ctx.params.get("fail"):
            raise ValueError("bad input")


class AsyncChatty(TaskHandler):
    name: ClassVar[str] = "async-chatty"

    async def run(self, ctx: TaskContext) -> None:
        await asyncio.sleep(0)
        print("async print")
        logging.getLogger("lib").error("async log")


def _order(handler: str, params: dict[str, Any] | None = None) -> WorkOrder:
    return WorkOrder(
        execution_id=execution_id("t", SLOT, 1),
        task_id="t",
        task_name="n",
        handler=handler,
        params=params or {},
        attempt=1,
        scheduled_for=SLOT,
        priority=Priority.MEDIUM,
        queue="default",
    )


@pytest.fixture
def runner() -> Iterator[HandlerRunner]:
    registry = HandlerRegistry()
    registry.register(Chatty)
    registry.register(AsyncChatty)
    runner = HandlerRunner(registry, default_timeout=5.0)
    yield runner
    runner.close()


def test_the_runner_captures_a_sync_handler_and_its_traceback(runner: HandlerRunner) -> None:
    order = _order("chatty", {"fail": True})
    run_log = RunLog(order.execution_id, 10_000)
    with installed():
        outcome = runner.run(order, RunControl(), run_log)
    assert outcome.ending is Ending.FAILED
    lines = run_log.finish().lines
    assert [(line.stream, line.message) for line in lines[:2]] == [
        ("stdout", "sync print 1"),
        ("log", "via ctx.logger"),
    ]
    assert lines[2].level == "ERROR"
    assert "Traceback" in lines[2].message and "ValueError: bad input" in lines[2].message


def test_the_runner_captures_an_async_handler(runner: HandlerRunner) -> None:
    order = _order("async-chatty")
    run_log = RunLog(order.execution_id, 10_000)
    with installed():
        assert runner.run(order, RunControl(), run_log).ending is Ending.SUCCEEDED
    assert _messages(run_log) == [("stdout", "async print"), ("log", "async log")]
