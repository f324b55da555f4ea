"""Capturing what a handler logs and prints, one :class:`RunLog` per run.

Three ways in, all ending in the run's :class:`RunLog`:

- ``print`` and writes to ``sys.stdout``/``sys.stderr``: after :func:`install` both are
  tees that send text written while a run is *current* to its log, and everything else
  to the real stream;
- ``logging`` records of any logger, emitted while a run is current;
- records of ``ctx.logger`` from any thread (a handler's own worker threads do not
  inherit the current run), matched by the execution id the logger carries.

A run is current in the thread (or asyncio task) the executor runs the handler in:
:func:`capturing` sets it, as a context variable.

A run keeps its first ``max_bytes`` of lines (the head, shipped as it grows), then the
last quarter of ``max_bytes`` (the tail, shipped at the end); lines in between are
dropped and counted. A single line longer than :data:`MAX_LINE_CHARS` is cut.
"""

from __future__ import annotations

import io
import logging
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO

from taskstream.schemas import LogLine, LogStream

__all__ = [
    "HANDLER_LOGGER",
    "MAX_LINE_CHARS",
    "CapturedTail",
    "RunLog",
    "capturing",
    "current_run_log",
    "install",
    "release",
    "uninstall",
]

MAX_LINE_CHARS = 8192
"""Longer lines are cut to this many characters, with a note of how many were cut."""
HANDLER_LOGGER = "taskstream.handler"
"""The logger behind ``ctx.logger``."""

_current: ContextVar[RunLog | None] = ContextVar("taskstream_run_log", default=None)
_by_execution: dict[str, RunLog] = {}
_registry_lock = threading.Lock()


@dataclass(frozen=True)
class CapturedTail:
    """What :meth:`RunLog.finish` hands over: the lines not shipped yet, and the losses."""

    lines: list[LogLine]
    dropped_lines: int
    dropped_bytes: int


class RunLog:
    """The lines of one run, capped; thread-safe."""

    def __init__(self, execution_id: str, max_bytes: int) -> None:
        self.execution_id = execution_id
        self._head_budget = max_bytes
        self._tail_budget = max(max_bytes // 4, 1)
        self._lock = threading.Lock()
        self._unshipped: list[LogLine] = []
        self._tail: deque[tuple[LogLine, int]] = deque()
        self._tail_bytes = 0
        self._head_full = False
        self._partial: dict[LogStream, str] = {}
        self.dropped_lines = 0
        self.dropped_bytes = 0

    def add(
        self,
        stream: LogStream,
        message: str,
        *,
        level: str | None = None,
        logger: str | None = None,
        at: datetime | None = None,
    ) -> None:
        """Keep one line (a log record's message may span several text lines)."""
        if len(message) > MAX_LINE_CHARS:
            cut = len(message) - MAX_LINE_CHARS
            message = f"{message[:MAX_LINE_CHARS]}... [{cut} characters cut]"
        line = LogLine(
            at=at or datetime.now(UTC), stream=stream, level=level, logger=logger, message=message
        )
        size = len(message.encode("utf-8", "replace")) + 1
        with self._lock:
            if not self._head_full and size <= self._head_budget:
                self._head_budget -= size
                self._unshipped.append(line)
                return
            self._head_full = True
            self._tail.append((line, size))
            self._tail_bytes += size
            while self._tail_bytes > self._tail_budget and self._tail:
                _, dropped = self._tail.popleft()
                self._tail_bytes -= dropped
                self.dropped_lines += 1
                self.dropped_bytes += dropped

    def write(self, stream: LogStream, text: str) -> None:
        """Text written to stdout or stderr: whole lines are kept, a partial one waits."""
        with self._lock:
            pending = self._partial.pop(stream, "") + text
        *complete, rest = pending.split("\n")
        if rest:
            with self._lock:
                self._partial[stream] = rest
        for line in complete:
            self.add(stream, line)

    def take(self) -> list[LogLine]:
        """The head's lines kept since the last call (the tail waits for :meth:`finish`)."""
        with self._lock:
            taken, self._unshipped = self._unshipped, []
        return taken

    def finish(self) -> CapturedTail:
        """End the run: flush partial lines; everything not taken yet, and the losses."""
        with self._lock:
            partial, self._partial = self._partial, {}
        for stream, rest in partial.items():
            self.add(stream, rest)
        with self._lock:
            lines = [*self._unshipped, *(line for line, _ in self._tail)]
            self._unshipped, self._tail, self._tail_bytes = [], deque(), 0
            return CapturedTail(lines, self.dropped_lines, self.dropped_bytes)


@contextmanager
def capturing(run_log: RunLog | None) -> Iterator[None]:
    """Make ``run_log`` the current run of this thread or task (None: no capture)."""
    if run_log is None:
        yield
        return
    token = _current.set(run_log)
    with _registry_lock:
        _by_execution[run_log.execution_id] = run_log
    try:
        yield
    finally:
        _current.reset(token)


def release(run_log: RunLog) -> None:
    """The run ended: ``ctx.logger`` records of its execution are no longer kept."""
    with _registry_lock:
        if _by_execution.get(run_log.execution_id) is run_log:
            del _by_execution[run_log.execution_id]


def current_run_log() -> RunLog | None:
    return _current.get()


class _CaptureHandler(logging.Handler):
    """Sends the records of the current run (or of ``ctx.logger``) to its log."""

    def emit(self, record: logging.LogRecord) -> None:
        run_log = _current.get() or _by_ids(record)
        if run_log is None:
            return
        try:
            message = record.getMessage()
            if record.exc_info:
                message += "\n" + logging.Formatter().formatException(record.exc_info)
            run_log.add(
                "log",
                message,
                level=record.levelname,
                logger=record.name,
                at=datetime.fromtimestamp(record.created, UTC),
            )
        except Exception:
            self.handleError(record)


def _by_ids(record: logging.LogRecord) -> RunLog | None:
    if not record.name.startswith(HANDLER_LOGGER):
        return None
    ids: Any = getattr(record, "taskstream_fields", None)
    execution_id = ids.get("execution_id") if isinstance(ids, dict) else None
    if not isinstance(execution_id, str):
        return None
    with _registry_lock:
        return _by_execution.get(execution_id)


class _Tee(io.TextIOBase):
    """``sys.stdout``/``sys.stderr``: the current run's text to its log, the rest through."""

    def __init__(self, stream: LogStream, original: TextIO) -> None:
        super().__init__()
        self.stream_name: LogStream = stream
        self.original = original

    def write(self, text: str) -> int:
        run_log = _current.get()
        if run_log is None:
            return self.original.write(text)
        run_log.write(self.stream_name, text)
        return len(text)

    def flush(self) -> None:
        self.original.flush()

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self.original.fileno()

    def isatty(self) -> bool:
        return self.original.isatty()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.original, "encoding", "utf-8")


_installed: list[Callable[[], None]] = []
_users = [0]
_install_lock = threading.Lock()


def install() -> None:
    """Start capturing: tee stdout and stderr, add the logging handler.

    Counted: capture stops at the :func:`uninstall` matching the first call.
    """
    with _install_lock:
        _users[0] += 1
        if _installed:
            return
        handler = _CaptureHandler(level=logging.NOTSET)
        logging.getLogger().addHandler(handler)
        stdout, stderr = sys.stdout, sys.stderr
        sys.stdout = _Tee("stdout", stdout)
        sys.stderr = _Tee("stderr", stderr)

        def undo() -> None:
            logging.getLogger().removeHandler(handler)
            if isinstance(sys.stdout, _Tee) and sys.stdout.original is stdout:
                sys.stdout = stdout
            if isinstance(sys.stderr, _Tee) and sys.stderr.original is stderr:
                sys.stderr = stderr

        _installed.append(undo)


def uninstall() -> None:
    """Stop capturing (what :func:`install` changed, if nobody changed it since)."""
    with _install_lock:
        _users[0] = max(_users[0] - 1, 0)
        while _installed and not _users[0]:
            _installed.pop()()
