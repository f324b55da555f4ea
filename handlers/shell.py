"""The ``shell`` handler: run a command as a child process, fenced in. Off by default.

An executor runs it only when started with ``TASKSTREAM_EXECUTOR_SHELL_ENABLED=true``
(``ctx.environment.shell_enabled``); anywhere else it fails permanently, so whoever can
create tasks cannot run commands on executors that did not opt in.

Params::

    {"command": ["pg_dump", "-f", "out.sql", "app"],  a list of arguments, run without a shell;
                                                      a string only with "shell": true (/bin/sh -c)
     "shell": false,
     "env": {"PGHOST": "db"},                 added to the clean environment
     "timeout": "10m",                        wall time; never past the task's own timeout
     "cpu_seconds": 60,                       RLIMIT_CPU
     "memory_mb": 512,                        RLIMIT_AS (address space, not resident memory)
     "max_output_bytes": 65536,               per stream; the tail is kept
     "permanent_on_failure": false}           a non-zero exit is retryable unless true

The child gets a clean environment (``PATH=/usr/bin:/bin``, ``HOME`` = its working
directory, ``LANG=C.UTF-8``, then ``env``), no stdin, its working directory
(``ctx.environment.work_dir``, or a fresh temporary directory removed afterwards) and its
own process group. That group is killed with SIGKILL when the wall time runs out, when
``ctx.cancelled`` is set (checked every 50 ms), and when the command exits, so nothing it
started outlives it.

The captured output is also printed (stdout to stdout, stderr to stderr), so an executor
keeps it in the execution's log, whatever the ending.

Exit 0 gives ``{"exit_code": 0, "stdout": "...", "stderr": "..."}``. Otherwise:

- a non-zero exit or a signal: :class:`~taskstream.handlers.base.RetryableError`
  (:class:`~taskstream.handlers.base.PermanentError` with ``permanent_on_failure``), whose message
  says when the CPU or memory limit was the cause;
- wall time exceeded: ``TimeoutError`` (the executor reports a timeout), a
  :class:`~taskstream.handlers.base.HandlerTimeoutError` naming the limit when ``params.timeout``
  was the shorter one;
- cancelled: :class:`~taskstream.handlers.base.RetryableError` (the executor reports the cancel).
"""

from __future__ import annotations

import os
import resource
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field, ValidationInfo, field_validator

from taskstream.handlers.base import (
    HandlerTimeoutError,
    PermanentError,
    RetryableError,
    TaskContext,
    TaskHandler,
    TaskResult,
)
from taskstream.handlers.params import Duration, HandlerParams, Invalid, time_left

__all__ = ["BASE_PATH", "DISABLED_MESSAGE", "ShellHandler", "ShellParams"]

DISABLED_MESSAGE = (
    "the shell handler is disabled on this executor; "
    "start it with TASKSTREAM_EXECUTOR_SHELL_ENABLED=true"
)
BASE_PATH = "/usr/bin:/bin"
"""``PATH`` of the child unless ``params.env`` sets one."""

POLL_INTERVAL = 0.05
"""Seconds between checks of the deadline and ``ctx.cancelled``."""
DRAIN_GRACE = 1.0
"""Seconds to keep reading output after the group is gone (a daemon may hold a pipe)."""

_MEMORY_MARKERS = (
    "MemoryError",
    "Cannot allocate memory",
    "std::bad_alloc",
    "out of memory",
    "memory exhausted",
)
_CRASH_SIGNALS = frozenset({signal.SIGSEGV, signal.SIGABRT, signal.SIGBUS})
_ERROR_TAIL = 1000


class ShellParams(HandlerParams):
    """The ``shell`` handler's params."""

    shell: bool = False
    """Run ``command``, one string, through ``/bin/sh -c``."""
    command: list[str] | str = Field(examples=[["ls", "-l"]])
    """A list of arguments, run without a shell; a string only with ``"shell": true``."""
    env: dict[str, str] = Field(default_factory=dict, examples=[{"PGHOST": "db"}])
    """Added to the clean environment."""
    timeout: Duration | None = None
    """Wall time; never past the task's own timeout."""
    cpu_seconds: int = Field(60, ge=1)
    """RLIMIT_CPU."""
    memory_mb: int = Field(512, ge=1)
    """RLIMIT_AS (address space, not resident memory)."""
    max_output_bytes: int = Field(64 * 1024, ge=1)
    """Per stream; the tail is kept."""
    permanent_on_failure: bool = False
    """A non-zero exit is retryable unless true."""

    @field_validator("command", mode="before")
    @classmethod
    def _command_line(cls, value: Any, info: ValidationInfo) -> Any:
        shell = info.data.get("shell", False)
        if isinstance(value, str):
            if not shell:
                raise Invalid(
                    'is a string, which runs through /bin/sh only with "shell": true; '
                    'or give a list of arguments such as ["ls", "-l"]'
                )
            if not value.strip() or "\0" in value:
                raise Invalid("must be a non-empty command line without NUL")
            return value
        if shell:
            raise Invalid('must be one string when "shell" is true')
        if not isinstance(value, list) or not value:
            raise Invalid('must be a non-empty list of strings, e.g. ["ls", "-l"]')
        for index, item in enumerate(value):
            if not isinstance(item, str) or "\0" in item:
                raise Invalid("must be a string without NUL characters", at=f"[{index}]")
        if not value[0]:
            raise Invalid("must name the program to run", at="[0]")
        return value

    @field_validator("env")
    @classmethod
    def _variables(cls, env: dict[str, str]) -> dict[str, str]:
        for key, text in env.items():
            if not key or "=" in key or "\0" in key:
                raise Invalid(f"has an invalid variable name {key!r}")
            if "\0" in text:
                raise Invalid("must not contain NUL characters", at=f".{key}")
        return env

    @property
    def argv(self) -> list[str]:
        """What runs: the list, or ``/bin/sh -c`` with the string."""
        if isinstance(self.command, str):
            return ["/bin/sh", "-c", self.command]
        return list(self.command)


class ShellHandler(TaskHandler[ShellParams]):
    """Runs ``params.command`` with resource limits, a wall time and a clean environment."""

    name: ClassVar[str] = "shell"

    def run(self, ctx: TaskContext[ShellParams]) -> TaskResult:
        if not ctx.environment.shell_enabled:
            raise PermanentError(DISABLED_MESSAGE)
        command = ctx.args
        left = time_left(ctx)
        wall = min(command.timeout, left) if command.timeout is not None else left
        if wall <= 0:
            raise TimeoutError("shell handler: the task's deadline passed before the command")
        with ExitStack() as stack:
            cwd = ctx.environment.work_dir
            if cwd is None:
                cwd = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="taskstream-")))
            ctx.logger.info(
                "running %s (cpu %ds, memory %d MB, wall %.1fs) in %s",
                command.argv[0] if not command.shell else "/bin/sh -c",
                command.cpu_seconds,
                command.memory_mb,
                wall,
                cwd,
            )
            finished = _run(command, cwd, wall, ctx)
        _echo(finished)
        return _result(command, finished, wall, ctx)


@dataclass(frozen=True, slots=True)
class _Finished:
    """How the child ended."""

    returncode: int
    cpu_seconds: float
    stdout: str
    stderr: str
    killed_because: str | None
    """``"timeout"`` or ``"cancelled"`` when taskstream killed it."""
    elapsed: float


def _run(command: ShellParams, cwd: Path, wall: float, ctx: TaskContext[Any]) -> _Finished:
    env = {"PATH": BASE_PATH, "HOME": str(cwd), "LANG": "C.UTF-8", **command.env}
    try:
        # preexec_fn only calls setrlimit (no locks, no imports), which is safe after fork
        # even in a threaded executor; the process group comes from process_group=0.
        process = subprocess.Popen(
            command.argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            process_group=0,
            preexec_fn=_limiter(command.cpu_seconds, command.memory_mb),
        )
    except FileNotFoundError as exc:
        raise PermanentError(
            f"shell handler: cannot run {command.argv[0]!r}: not found (PATH is "
            f"{env['PATH']}); give its absolute path or set params.env.PATH"
        ) from exc
    except PermissionError as exc:
        raise PermanentError(
            f"shell handler: cannot run {command.argv[0]!r}: permission denied; "
            "is it executable by the executor's user?"
        ) from exc
    except (OSError, subprocess.SubprocessError) as exc:
        raise RetryableError(f"shell handler: cannot start {command.argv[0]!r}: {exc}") from exc
    return _supervise(process, command.max_output_bytes, time.monotonic() + wall, ctx)


def _limiter(cpu_seconds: int, memory_mb: int) -> Callable[[], None]:
    """The child's ``preexec_fn``: limits computed here, in the parent, only applied there."""
    cpu = _within_hard_limit(resource.RLIMIT_CPU, cpu_seconds, cpu_seconds + 1)
    memory = memory_mb * 1024 * 1024
    address_space = _within_hard_limit(resource.RLIMIT_AS, memory, memory)

    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_CPU, cpu)
        resource.setrlimit(resource.RLIMIT_AS, address_space)

    return apply


def _within_hard_limit(kind: int, soft: int, hard: int) -> tuple[int, int]:
    """``(soft, hard)`` lowered to this process's hard limit (a child cannot raise it)."""
    current = resource.getrlimit(kind)[1]
    if current != resource.RLIM_INFINITY:
        soft, hard = min(soft, current), min(hard, current)
    return soft, hard


class _Tail:
    """The last ``limit`` bytes of a stream, and how many came before them."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.kept = bytearray()
        self.total = 0

    def feed(self, data: bytes) -> None:
        self.total += len(data)
        self.kept += data
        if len(self.kept) > self.limit:
            del self.kept[: len(self.kept) - self.limit]

    def text(self) -> str:
        dropped = self.total - len(self.kept)
        text = self.kept.decode("utf-8", errors="replace")
        return f"[... {dropped} bytes truncated]\n{text}" if dropped else text


def _supervise(
    process: subprocess.Popen[bytes], max_output: int, deadline: float, ctx: TaskContext
) -> _Finished:
    """Read the output, watch the clock and the cancel flag, and reap the child."""
    started = time.monotonic()
    stdout, stderr = _Tail(max_output), _Tail(max_output)
    selector = selectors.DefaultSelector()
    assert process.stdout is not None and process.stderr is not None
    selector.register(process.stdout, selectors.EVENT_READ, stdout)
    selector.register(process.stderr, selectors.EVENT_READ, stderr)
    killed_because: str | None = None
    usage: resource.struct_rusage | None = None
    drain_until: float | None = None
    try:
        while True:
            if usage is None:
                if _has_exited(process.pid):
                    # reaped only after the group is killed: the zombie keeps its pgid unused
                    _kill_group(process.pid)
                    usage = _reap(process)
                    drain_until = time.monotonic() + DRAIN_GRACE
                elif ctx.cancelled.is_set() or time.monotonic() >= deadline:
                    timed_out = time.monotonic() >= deadline or time_left(ctx) <= 0
                    killed_because = "timeout" if timed_out else "cancelled"
                    _kill_group(process.pid)
                    usage = _reap(process)
                    drain_until = time.monotonic() + DRAIN_GRACE
            if not selector.get_map():
                if usage is not None:
                    break
                ctx.cancelled.wait(POLL_INTERVAL)
                continue
            if drain_until is not None and time.monotonic() > drain_until:
                break
            for key, _ in selector.select(POLL_INTERVAL):
                data = os.read(key.fd, 65536)
                if data:
                    key.data.feed(data)
                else:
                    selector.unregister(key.fileobj)
    finally:
        if usage is None:  # an exception in the loop: leave nothing behind
            _kill_group(process.pid)
            _reap(process)
        selector.close()
        process.stdout.close()
        process.stderr.close()
    assert usage is not None and process.returncode is not None
    return _Finished(
        returncode=process.returncode,
        cpu_seconds=usage.ru_utime + usage.ru_stime,
        stdout=stdout.text(),
        stderr=stderr.text(),
        killed_because=killed_because,
        elapsed=time.monotonic() - started,
    )


def _has_exited(pid: int) -> bool:
    """Whether the child has exited, without reaping it (``WNOWAIT``)."""
    return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass  # the group is already empty


def _reap(process: subprocess.Popen[bytes]) -> resource.struct_rusage:
    """Wait for the child, record its exit code on ``process``, return its resource usage."""
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return usage


def _echo(finished: _Finished) -> None:
    """Print the command's captured output: the executor keeps it as the run's log."""
    for text, stream in ((finished.stdout, sys.stdout), (finished.stderr, sys.stderr)):
        if text:
            stream.write(text if text.endswith("\n") else text + "\n")


def _result(
    command: ShellParams, finished: _Finished, wall: float, ctx: TaskContext[Any]
) -> TaskResult:
    if finished.killed_because == "timeout":
        tail = _stderr_tail(finished)
        if command.timeout is not None and command.timeout <= wall:
            raise HandlerTimeoutError(
                f"command ran past its wall-time limit of {wall:.3g} s (params.timeout); its "
                f"process group was killed{tail}",
                limit=command.timeout,
            )
        raise TimeoutError(  # the task's own timeout: the executor reports that limit
            f"command ran past its wall-time limit of {wall:.3g} s (the task's timeout); its "
            f"process group was killed{tail}"
        )
    if finished.killed_because == "cancelled":
        raise RetryableError(
            f"cancelled after {finished.elapsed:.1f} s; the command's process group was killed"
        )
    if finished.returncode == 0:
        ctx.logger.info("command exited with 0 after %.1fs", finished.elapsed)
        return TaskResult.success(
            {"exit_code": 0, "stdout": finished.stdout, "stderr": finished.stderr}
        )
    message = _failure_message(command, finished) + _stderr_tail(finished)
    if command.permanent_on_failure:
        raise PermanentError(message)
    raise RetryableError(message)


def _failure_message(command: ShellParams, finished: _Finished) -> str:
    code = finished.returncode
    signum = -code if code < 0 else None
    if signum is None and command.shell and code > 128:
        signum = code - 128  # /bin/sh reports a child killed by signal N as 128 + N
    name = _signal_name(signum) if signum else ""
    if signum == signal.SIGXCPU or (
        signum == signal.SIGKILL and finished.cpu_seconds >= command.cpu_seconds - 0.05
    ):
        return (
            f"CPU limit of {command.cpu_seconds} s exceeded: the command was killed by {name} "
            f"after {finished.cpu_seconds:.1f} s of CPU time; raise params.cpu_seconds if it "
            "needs more"
        )
    memory_hint = next((m for m in _MEMORY_MARKERS if m in finished.stderr), None)
    if memory_hint is not None:
        how = f"killed by {name}" if signum else f"exit code {code}"
        return (
            f"memory limit of {command.memory_mb} MB exceeded: the command failed ({how}) "
            f"with {memory_hint!r} in its stderr; raise params.memory_mb if it needs more"
        )
    if signum == signal.SIGKILL:
        return (
            f"memory limit exceeded? the command was killed by SIGKILL, which taskstream "
            f"did not send: the kernel's out-of-memory killer does; lower its memory use "
            f"(params.memory_mb is {command.memory_mb} MB)"
        )
    if signum in _CRASH_SIGNALS:
        return (
            f"the command crashed ({name}); a program that cannot allocate memory may "
            f"crash so: if it needs more than {command.memory_mb} MB, raise params.memory_mb"
        )
    if signum:
        return f"the command was killed by {name}"
    return f"the command exited with code {code}"


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def _stderr_tail(finished: _Finished) -> str:
    tail = finished.stderr.strip()[-_ERROR_TAIL:]
    return f"; stderr: {tail}" if tail else ""
