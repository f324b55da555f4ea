"""The ``shell`` handler run by a real executor against the broker: its limits end up as
events. Over its memory or CPU limit a command is killed and reported failed with the
reason; over its wall time it is reported timed out and its process group is gone.

One executor with the shell enabled runs every order at once (they are all written
before it starts), another with it disabled refuses one; each test waits for its own.
"""

from __future__ import annotations

import shutil
import sys
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from taskstream.executor.settings import ExecutorSettings
from taskstream.handlers.shell import ShellHandler
from taskstream.infra.kafka import ensure_topics, standard_topics
from taskstream.schemas import Event, RetryPolicy, WorkOrder
from tests.integration.executor_support import (
    EventLog,
    Writer,
    builtin_registry,
    executor_settings,
    running_executor,
    work_order,
)
from tests.kafka_read import RawRecord, read_topic
from tests.support import eventually

pytestmark = pytest.mark.kafka

# the child's PATH is /usr/bin:/bin: use python3 from there, else this interpreter
PYTHON = "python3" if shutil.which("python3", path="/usr/bin:/bin") else sys.executable
ONCE = RetryPolicy(max_attempts=1)
"""No retries: a retryable failure or a timeout goes straight to the dead-letter topic."""
# a grandchild in the command's process group, and both pids written where the test looks
LEAVES_A_GRANDCHILD = (
    'sleep 30 & echo $! > "$PID_DIR/grandchild.pid"; echo $$ > "$PID_DIR/shell.pid"; wait'
)


@dataclass
class Setup:
    enabled: ExecutorSettings
    disabled: ExecutorSettings
    enabled_log: EventLog
    disabled_log: EventLog
    orders: dict[str, WorkOrder]
    pid_dirs: dict[str, Path]
    never_written: Path


def _shell(params: dict[str, Any], *, timeout: float = 60) -> WorkOrder:
    return work_order("shell", params, timeout=timeout, retry=ONCE)


def _settings(kafka_bootstrap: str, *, shell_enabled: bool) -> ExecutorSettings:
    settings = executor_settings(
        kafka_bootstrap,
        f"test-{uuid.uuid4().hex[:10]}.",
        executor_concurrency=8,
        executor_shell_enabled=shell_enabled,
    )
    ensure_topics(settings, standard_topics(settings, settings.executor_queues))
    return settings


@pytest.fixture(scope="module")
def setup(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    enabled = _settings(kafka_bootstrap, shell_enabled=True)
    disabled = _settings(kafka_bootstrap, shell_enabled=False)
    pid_dirs = {name: tmp_path_factory.mktemp(name) for name in ("task_timeout", "params_timeout")}
    never_written = tmp_path_factory.mktemp("disabled") / "ran"
    orders = {
        "succeeds": _shell(
            {"command": "echo hello $WHO; echo note >&2", "shell": True, "env": {"WHO": "shell"}}
        ),
        "memory": _shell({"command": [PYTHON, "-c", "b = bytearray(1 << 30)"], "memory_mb": 200}),
        "cpu": _shell({"command": [PYTHON, "-c", "while True: pass"], "cpu_seconds": 1}),
        "task_timeout": _shell(
            {
                "command": LEAVES_A_GRANDCHILD,
                "shell": True,
                "env": {"PID_DIR": str(pid_dirs["task_timeout"])},
            },
            timeout=2,
        ),
        "params_timeout": _shell(
            {
                "command": LEAVES_A_GRANDCHILD,
                "shell": True,
                "env": {"PID_DIR": str(pid_dirs["params_timeout"])},
                "timeout": "2s",
            }
        ),
        "disabled": _shell({"command": ["touch", str(never_written)]}),
    }
    Writer(enabled).orders(*(o for name, o in orders.items() if name != "disabled"))
    Writer(disabled).orders(orders["disabled"])
    with ExitStack() as stack:
        registry = builtin_registry(ShellHandler)
        stack.enter_context(running_executor(enabled, registry))
        stack.enter_context(running_executor(disabled, registry))
        enabled_log, disabled_log = (
            EventLog(s.kafka_bootstrap_servers, s.topics.task_events) for s in (enabled, disabled)
        )
        stack.callback(enabled_log.close)
        stack.callback(disabled_log.close)
        yield Setup(enabled, disabled, enabled_log, disabled_log, orders, pid_dirs, never_written)


def _outcome(log: EventLog, order: WorkOrder, event_type: str) -> Any:
    [event] = eventually(
        lambda: log.of(event_type, order.execution_id), timeout=60, what=event_type
    )
    return event


def _dead_letter(log: EventLog, order: WorkOrder, reason: str) -> Any:
    letter = _outcome(log, order, "ExecutionDeadLettered")
    assert letter.reason == reason
    return letter


def _only_events(log: EventLog, order: WorkOrder) -> list[str]:
    """The types of every event of ``order``'s execution read so far."""
    events: list[Event] = log.events
    return [e.type for e in events if getattr(e.data, "execution_id", None) == order.execution_id]


def _dead_letter_record(settings: ExecutorSettings, order: WorkOrder) -> RawRecord:
    def record() -> RawRecord | None:
        records = read_topic(settings.kafka_bootstrap_servers, settings.topics.dead_letter)
        return next(
            (r for r in records if r.headers["execution-id"] == order.execution_id.encode()),
            None,
        )

    return eventually(record, what="the dead-letter record")


def _gone(pid: int) -> bool:
    """The process no longer runs (it may linger as a zombie if nobody reaps it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def _assert_group_killed(pid_dir: Path) -> None:
    for name in ("shell.pid", "grandchild.pid"):
        pid = int((pid_dir / name).read_text())
        eventually(partial(_gone, pid), timeout=5, what=f"{name} {pid} to be killed")


def test_a_command_that_exits_0_succeeds_with_its_output(setup: Setup) -> None:
    order = setup.orders["succeeds"]
    done = _outcome(setup.enabled_log, order, "ExecutionSucceeded")
    assert done.output == {"exit_code": 0, "stdout": "hello shell\n", "stderr": "note\n"}
    assert done.worker_id == setup.enabled.executor_id
    assert _only_events(setup.enabled_log, order) == ["ExecutionSucceeded"]


def test_over_its_memory_limit_a_command_fails_with_the_reason_and_is_dead_lettered(
    setup: Setup,
) -> None:
    order = setup.orders["memory"]
    failed = _outcome(setup.enabled_log, order, "ExecutionFailed")
    assert failed.error_type == "RetryableError" and failed.retryable is True
    assert failed.error_message.startswith(
        "memory limit of 200 MB exceeded: the command failed (exit code 1) with "
        "'MemoryError' in its stderr; raise params.memory_mb if it needs more; stderr: "
    ), failed.error_message
    assert failed.error_message.endswith("MemoryError")
    letter = _dead_letter(setup.enabled_log, order, "max_attempts")
    assert letter.error_type == "RetryableError"
    assert letter.error_message == failed.error_message
    assert not setup.enabled_log.of("RetryScheduled", poll=False)
    record = _dead_letter_record(setup.enabled, order)
    assert record.key == order.task_id.encode()
    assert record.headers["dead-letter-reason"] == b"max_attempts"
    assert record.headers["dead-letter-detail"].startswith(
        b"RetryableError: memory limit of 200 MB exceeded"
    )
    assert record.value["execution_id"] == order.execution_id, "the work order itself"


def test_over_its_cpu_limit_a_command_is_killed_and_fails_with_the_reason(setup: Setup) -> None:
    order = setup.orders["cpu"]
    failed = _outcome(setup.enabled_log, order, "ExecutionFailed")
    assert failed.error_type == "RetryableError" and failed.retryable is True
    message = failed.error_message
    assert message.startswith("CPU limit of 1 s exceeded: the command was killed by SIGXCPU after ")
    assert message.endswith(" s of CPU time; raise params.cpu_seconds if it needs more")
    assert failed.duration_seconds < 30
    letter = _dead_letter(setup.enabled_log, order, "max_attempts")
    assert letter.error_type == "RetryableError" and letter.error_message == message


def test_past_the_task_timeout_a_command_times_out_and_its_process_group_is_killed(
    setup: Setup,
) -> None:
    order = setup.orders["task_timeout"]
    timed_out = _outcome(setup.enabled_log, order, "ExecutionTimedOut")
    assert timed_out.timeout_seconds == 2
    assert 1.9 <= timed_out.duration_seconds < 5
    letter = _dead_letter(setup.enabled_log, order, "max_attempts")
    assert letter.error_type == "TimeoutError"
    # the executor's deadline and the handler's fall together: either may report it
    assert letter.error_message in (
        "handler ran past its timeout of 2s",
        "command ran past its wall-time limit of 2 s (the task's timeout); "
        "its process group was killed",
    ), letter.error_message
    assert not setup.enabled_log.of("ExecutionFailed", order.execution_id, poll=False)
    _assert_group_killed(setup.pid_dirs["task_timeout"])


def test_past_its_params_timeout_a_command_times_out_and_its_process_group_is_killed(
    setup: Setup,
) -> None:
    order = setup.orders["params_timeout"]
    timed_out = _outcome(setup.enabled_log, order, "ExecutionTimedOut")
    assert 1.9 <= timed_out.duration_seconds < 5, "the task's timeout is 60 s"
    assert timed_out.timeout_seconds == 2, "the limit that ran out: params.timeout"
    letter = _dead_letter(setup.enabled_log, order, "max_attempts")
    assert letter.error_type == "HandlerTimeoutError"
    assert letter.error_message == (
        "command ran past its wall-time limit of 2 s (params.timeout); its process group was killed"
    )
    assert not setup.enabled_log.of("ExecutionFailed", order.execution_id, poll=False)
    _assert_group_killed(setup.pid_dirs["params_timeout"])


def test_an_executor_without_the_shell_enabled_refuses_it_permanently(setup: Setup) -> None:
    order = setup.orders["disabled"]
    failed = _outcome(setup.disabled_log, order, "ExecutionFailed")
    assert failed.error_type == "HandlerDisabledError" and failed.retryable is False
    assert failed.error_message == (
        "the 'shell' handler is disabled on this executor: set "
        "TASKSTREAM_EXECUTOR_SHELL_ENABLED=true to let it run commands"
    )
    letter = _dead_letter(setup.disabled_log, order, "permanent")
    assert letter.error_type == "HandlerDisabledError"
    assert not setup.disabled_log.of("RetryScheduled", poll=False)
    record = _dead_letter_record(setup.disabled, order)
    assert record.headers["dead-letter-reason"] == b"permanent"
    assert not setup.never_written.exists(), "the command never ran"
