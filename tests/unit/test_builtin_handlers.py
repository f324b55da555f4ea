"""The built-in handlers without I/O: their params, ``fail``'s attempts, ``python`` callables."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from taskstream import handlers
from taskstream.handlers import (
    HandlerEnvironment,
    HandlerRegistry,
    PermanentError,
    RetryableError,
    TaskContext,
    TaskHandler,
    TaskResult,
)
from taskstream.handlers import python as python_handler
from taskstream.handlers.builtin import FailHandler
from taskstream.handlers.http import HttpHandler, _retry_after, parse_success_codes
from taskstream.handlers.kafka import KafkaHandler, producer_settings
from taskstream.handlers.python import PythonHandler, callable_handler, register_callable
from taskstream.handlers.shell import DISABLED_MESSAGE, ShellHandler
from taskstream.handlers.testing import handler_context
from taskstream.infra.kafka import producer_config
from taskstream.infra.settings import CommonSettings

SHELL_ON = HandlerEnvironment(shell_enabled=True)


def _ctx(
    handler: type[TaskHandler[Any]],
    params: dict[str, Any] | None = None,
    *,
    attempt: int = 1,
    timeout: float = 10.0,
    environment: HandlerEnvironment | None = None,
) -> TaskContext[Any]:
    """The context the executor gives ``handler``: params parsed into its model."""
    return handler_context(
        handler,
        params,
        task_id="task-1",
        task_name="unit",
        execution_id="exec-1",
        attempt=attempt,
        timeout=timeout,
        environment=environment,
    )


# --- the SDK surface -----------------------------------------------------------------


def test_public_surface_is_pinned() -> None:
    assert sorted(handlers.__all__) == [
        "ENTRY_POINT_GROUP",
        "HandlerEnvironment",
        "HandlerError",
        "HandlerParams",
        "HandlerRegistry",
        "HandlerTimeoutError",
        "Invalid",
        "InvalidParamsError",
        "PermanentError",
        "RetryableError",
        "TaskContext",
        "TaskHandler",
        "TaskResult",
        "UnknownHandlerError",
    ]
    for name in handlers.__all__:
        assert hasattr(handlers, name), name


def test_new_builtins_are_registered_through_entry_points() -> None:
    registry = HandlerRegistry.from_entry_points()
    assert registry.resolve("http") is HttpHandler
    assert registry.resolve("shell") is ShellHandler
    assert registry.resolve("kafka") is KafkaHandler
    assert registry.resolve("python") is PythonHandler
    assert registry.canonical_name("taskstream.handlers.shell.ShellHandler") == "shell"


def test_environment_defaults_keep_old_contexts_working() -> None:
    ctx = TaskContext(
        task_id="t",
        task_name="n",
        execution_id="e",
        attempt=1,
        scheduled_for=datetime.now(UTC),
        params={},
        deadline=time.monotonic() + 1,
    )
    assert ctx.environment == HandlerEnvironment(
        kafka_bootstrap_servers=None,
        topic_prefix="taskstream.",
        executor_id="",
        shell_enabled=False,
        work_dir=None,
        kafka_producer_settings={},
    )
    with pytest.raises(AttributeError):
        ctx.environment.shell_enabled = True  # type: ignore[misc]
    with pytest.raises(TypeError):
        HandlerEnvironment("127.0.0.1:9092")  # type: ignore[call-arg]


# --- fail ------------------------------------------------------------------------------


def test_fail_until_attempt_fails_retryably_then_succeeds() -> None:
    params = {"until_attempt": 3, "message": "not yet"}
    for attempt in (1, 2):
        with pytest.raises(RetryableError, match=r"not yet \(attempt \d; succeeds from attempt 3"):
            FailHandler().run(_ctx(FailHandler, params, attempt=attempt))
    assert FailHandler().run(_ctx(FailHandler, params, attempt=3)).output == {"attempt": 3}
    assert FailHandler().run(_ctx(FailHandler, params, attempt=4)).output == {"attempt": 4}


def test_fail_keeps_message_and_permanent() -> None:
    with pytest.raises(PermanentError, match=r"^boom"):
        FailHandler().run(
            _ctx(FailHandler, {"until_attempt": 2, "permanent": True, "message": "boom"})
        )
    with pytest.raises(RetryableError, match=r"^failed on purpose"):
        FailHandler().run(_ctx(FailHandler, {}, attempt=9))


@pytest.mark.parametrize("bad", [0, -1, "2", 1.5, True])
def test_fail_rejects_a_bad_until_attempt(bad: object) -> None:
    with pytest.raises(PermanentError, match=r"params.until_attempt must be a whole number"):
        FailHandler().run(_ctx(FailHandler, {"until_attempt": bad}))


# --- http params -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, r"params.url is required"),
        ({"url": "ftp://example.com"}, r"params.url must be an absolute http"),
        ({"url": "/relative"}, r"params.url must be an absolute http"),
        ({"url": 5}, r"params.url must be a non-empty string"),
        ({"url": "http://x", "method": "BREW"}, r"params.method must be one of"),
        ({"url": "http://x", "json": {}, "body": "b"}, r"params.json and params.body exclude"),
        ({"url": "http://x", "headers": ["a"]}, r"params.headers must be an object"),
        ({"url": "http://x", "headers": {"X-N": 1}}, r"params.headers.X-N must be a string"),
        ({"url": "http://x", "body": {"a": 1}}, r"params.body must be a string"),
        ({"url": "http://x", "timeout": "soon"}, r"params.timeout is not a duration"),
        ({"url": "http://x", "timeout": "0s"}, r"params.timeout must be longer than zero"),
        ({"url": "http://x", "success_codes": []}, r"params.success_codes must be a non-empty"),
        ({"url": "http://x", "success_codes": ["6xx"]}, r"params.success_codes has '6xx'"),
        ({"url": "http://x", "success_codes": [700]}, r"params.success_codes has 700"),
        ({"url": "http://x", "success_codes": ["299-200"]}, r"invalid range '299-200'"),
        ({"url": "http://x", "methd": "GET"}, r"unknown parameter 'methd'; did you mean 'method'"),
    ],
)
def test_http_refuses_bad_params_naming_them(params: dict[str, Any], message: str) -> None:
    with pytest.raises(PermanentError, match=message):
        HttpHandler().run(_ctx(HttpHandler, params))


def test_success_codes_accept_codes_classes_and_ranges() -> None:
    assert parse_success_codes(None) == frozenset(range(200, 300))
    codes = parse_success_codes([204, "3xx", "404", "410-411"])
    assert codes == frozenset({204, *range(300, 400), 404, 410, 411})


def test_retry_after_takes_seconds_or_an_http_date() -> None:
    assert _retry_after("7") == 7.0
    assert _retry_after(None) is None
    assert _retry_after("whenever") is None
    assert _retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past: now
    in_a_minute = datetime.fromtimestamp(time.time() + 60, UTC)
    header = in_a_minute.strftime("%a, %d %b %Y %H:%M:%S GMT")
    delay = _retry_after(header)
    assert delay is not None and 55 <= delay <= 60


# --- shell params ----------------------------------------------------------------------


def test_shell_is_disabled_unless_the_executor_enables_it() -> None:
    with pytest.raises(PermanentError) as caught:
        ShellHandler().run(_ctx(ShellHandler, {"command": ["true"]}))
    assert str(caught.value) == DISABLED_MESSAGE
    assert "TASKSTREAM_EXECUTOR_SHELL_ENABLED=true" in str(caught.value)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, r"params.command is required"),
        (
            {"command": "ls -l"},
            r'params.command is a string, which runs through /bin/sh only with "shell": true',
        ),
        ({"command": ["ls"], "shell": True}, r"params.command must be one string when"),
        ({"command": []}, r"params.command must be a non-empty list"),
        ({"command": ["ls", 1]}, r"params.command\[1\] must be a string"),
        ({"command": [""]}, r"params.command\[0\] must name the program"),
        ({"command": ["ls"], "shell": "yes"}, r"params.shell must be true or false"),
        ({"command": ["ls"], "cpu_seconds": 0}, r"params.cpu_seconds must be a whole number"),
        ({"command": ["ls"], "memory_mb": "1G"}, r"params.memory_mb must be a whole number"),
        ({"command": ["ls"], "env": {"A": 1}}, r"params.env.A must be a string"),
        ({"command": ["ls"], "env": {"A=B": "1"}}, r"params.env has an invalid variable name"),
        ({"command": ["ls"], "timeout": -1}, r"params.timeout must be longer than zero"),
        ({"command": ["ls"], "cwd": "/"}, r"unknown parameter 'cwd'"),
    ],
)
def test_shell_refuses_bad_params_naming_them(params: dict[str, Any], message: str) -> None:
    with pytest.raises(PermanentError, match=message):
        ShellHandler().run(_ctx(ShellHandler, params, environment=SHELL_ON))


# --- kafka params ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, r"params.topic is required"),
        ({"topic": "a topic"}, r"params.topic 'a topic' is not a Kafka topic name"),
        ({"topic": "t", "key": 5}, r"params.key must be a string"),
        ({"topic": "t", "headers": {"a": 1}}, r"params.headers.a must be a string"),
        (
            {"topic": "t", "headers": {"taskstream-task-id": "x"}},
            r"params.headers.taskstream-task-id is set by taskstream itself",
        ),
        ({"topic": "t", "value": {1, 2}}, r"params.value cannot be encoded as JSON"),
        ({"topic": "t"}, r"no Kafka bootstrap servers: set params.bootstrap_servers"),
    ],
)
def test_kafka_refuses_bad_params_naming_them(params: dict[str, Any], message: str) -> None:
    with pytest.raises(PermanentError, match=message):
        KafkaHandler().run(_ctx(KafkaHandler, params))


def test_kafka_producers_take_the_executors_settings() -> None:
    executor = producer_config(CommonSettings(kafka_linger_ms=17, kafka_compression="zstd"))
    del executor["bootstrap.servers"]
    settings = producer_settings("broker-b:9092", executor)
    assert settings["linger.ms"] == 17 and settings["compression.type"] == "zstd"
    assert settings["acks"] == "all" and settings["enable.idempotence"] is True
    assert settings["bootstrap.servers"] == "broker-b:9092", "the task's broker, not the executor's"
    alone = producer_settings("broker-b:9092", {})
    assert (alone["acks"], alone["enable.idempotence"]) == ("all", True), "without an executor"


# --- python callables ------------------------------------------------------------------


@pytest.fixture
def registered() -> Iterator[list[str]]:
    """Names registered by a test, forgotten after it."""
    names: list[str] = []
    yield names
    for name in names:
        python_handler.unregister_callable(name)


def test_python_calls_a_registered_function_with_kwargs(registered: list[str]) -> None:
    registered.append("unit.add")

    @callable_handler("unit.add")
    def add(a: int, b: int = 1) -> dict[str, int]:
        return {"sum": a + b}

    result = PythonHandler().run(
        _ctx(PythonHandler, {"callable": "unit.add", "kwargs": {"a": 2, "b": 3}})
    )
    assert result.output == {"sum": 5}
    assert "unit.add" in python_handler.registered_callables()


def test_python_awaits_async_functions_and_passes_ctx(registered: list[str]) -> None:
    registered.append("unit.async")
    seen: list[TaskContext] = []

    async def report(ctx: TaskContext, region: str) -> TaskResult:
        await asyncio.sleep(0)
        seen.append(ctx)
        return TaskResult.success({"region": region, "attempt": ctx.attempt})

    register_callable("unit.async", report)
    ctx = _ctx(PythonHandler, {"callable": "unit.async", "kwargs": {"region": "eu"}}, attempt=2)
    assert PythonHandler().run(ctx).output == {"region": "eu", "attempt": 2}
    assert seen == [ctx]


def test_python_async_function_stops_at_the_deadline(registered: list[str]) -> None:
    registered.append("unit.forever")
    register_callable("unit.forever", lambda: asyncio.Event().wait())
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        PythonHandler().run(_ctx(PythonHandler, {"callable": "unit.forever"}, timeout=0.2))
    assert time.monotonic() - started < 5


def test_python_unknown_name_lists_the_registered_ones(registered: list[str]) -> None:
    registered.append("unit.known")
    register_callable("unit.known", lambda: None)
    with pytest.raises(PermanentError) as caught:
        PythonHandler().run(_ctx(PythonHandler, {"callable": "os.system"}))
    message = str(caught.value)
    assert "no callable is registered as 'os.system'" in message
    assert "unit.known" in message
    assert "@callable_handler('os.system')" in message


def test_python_checks_kwargs_against_the_signature(registered: list[str]) -> None:
    registered.append("unit.strict")
    register_callable("unit.strict", lambda day: day)
    with pytest.raises(PermanentError, match=r"params.kwargs do not fit unit.strict\(day\)"):
        PythonHandler().run(_ctx(PythonHandler, {"callable": "unit.strict", "kwargs": {"dya": 1}}))
    with pytest.raises(PermanentError, match=r"params.kwargs must be an object"):
        PythonHandler().run(_ctx(PythonHandler, {"callable": "unit.strict", "kwargs": [1]}))
    with pytest.raises(PermanentError, match=r"params.kwargs.ctx is reserved"):
        PythonHandler().run(_ctx(PythonHandler, {"callable": "unit.strict", "kwargs": {"ctx": 1}}))


def test_python_refuses_results_that_are_not_json(registered: list[str]) -> None:
    registered.append("unit.path")
    register_callable("unit.path", lambda: Path("/tmp"))
    with pytest.raises(PermanentError, match="returned PosixPath, which is not JSON"):
        PythonHandler().run(_ctx(PythonHandler, {"callable": "unit.path"}))


def test_python_errors_steer_retries(registered: list[str]) -> None:
    registered.append("unit.flaky")

    def flaky() -> None:
        raise RetryableError("later", delay=3)

    register_callable("unit.flaky", flaky)
    with pytest.raises(RetryableError) as caught:
        PythonHandler().run(_ctx(PythonHandler, {"callable": "unit.flaky"}))
    assert caught.value.delay == 3


def test_register_callable_guards_its_names(registered: list[str]) -> None:
    registered.append("unit.taken")

    def first() -> None: ...

    def second() -> None: ...

    register_callable("unit.taken", first)
    register_callable("unit.taken", first)  # the same function again: fine
    with pytest.raises(ValueError, match=r"'unit.taken' is taken by .*first; choose another"):
        register_callable("unit.taken", second)
    with pytest.raises(ValueError, match="it is a name, not an import path"):
        register_callable("os:system", first)
    with pytest.raises(TypeError, match="needs a function"):
        register_callable("unit.nothing", 42)  # type: ignore[call-overload]
    decorate = register_callable("unit.decorated")
    registered.append("unit.decorated")
    assert decorate(second) is second
    assert "unit.decorated" in python_handler.registered_callables()


def test_python_callables_can_run_on_many_threads(registered: list[str]) -> None:
    registered.append("unit.square")
    register_callable("unit.square", lambda n: n * n)
    results: list[Any] = []

    def call(n: int) -> None:
        ctx = _ctx(PythonHandler, {"callable": "unit.square", "kwargs": {"n": n}})
        results.append(PythonHandler().run(ctx).output)

    threads = [threading.Thread(target=call, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert sorted(results) == [n * n for n in range(8)]
