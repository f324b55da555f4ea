"""The handler SDK: subclass :class:`TaskHandler`, implement ``run(ctx)``.

``run`` takes one frozen :class:`TaskContext`, so new context fields never break a
plugin, and returns a :class:`TaskResult` (or any JSON value, or None). It may be a
plain function or a coroutine; the executor runs sync handlers in a worker thread.

A handler may declare its params as a pydantic model, its type argument:
``class GreetHandler(TaskHandler[GreetParams])`` (see :mod:`taskstream.handlers.params`).
The core then checks a task's params at POST and the executor hands the parsed object
to ``run`` as ``ctx.args``; a plain ``TaskHandler`` reads the raw ``ctx.params``.

Errors a handler may raise to steer retries::

    HandlerError
     ├── PermanentError   do not retry: the input can never succeed
     └── RetryableError   retry, optionally after ``delay`` seconds

A ``TimeoutError`` ends the execution as timed out; :class:`HandlerTimeoutError` also
says which limit ran out (e.g. a command's own wall time, shorter than the task's).
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, Generic, cast, get_args, get_origin

from pydantic import BaseModel
from typing_extensions import TypeVar

from taskstream.schemas.errors import TaskstreamError

__all__ = [
    "HandlerEnvironment",
    "HandlerError",
    "HandlerTimeoutError",
    "PermanentError",
    "RetryableError",
    "TaskContext",
    "TaskHandler",
    "TaskResult",
]

P = TypeVar("P", bound=BaseModel | None, default=None)
"""A handler's params model; None (the default) for a handler that reads raw params."""


class HandlerError(TaskstreamError):
    """Base of the errors a handler raises on purpose."""


class PermanentError(HandlerError):
    """The execution can never succeed; the executor does not retry it."""


class RetryableError(HandlerError):
    """A transient failure; ``delay`` (seconds) overrides the policy's next backoff."""

    def __init__(self, message: str, *, delay: float | None = None) -> None:
        super().__init__(message)
        self.delay = delay


class HandlerTimeoutError(HandlerError, TimeoutError):
    """The handler's own time limit ran out: reported as timed out, after ``limit`` seconds."""

    def __init__(self, message: str, *, limit: float) -> None:
        super().__init__(message)
        self.limit = limit


@dataclass(frozen=True, kw_only=True)
class HandlerEnvironment:
    """What the executor running a handler tells it about itself; the same for every run.

    The executor fills it from its settings. The defaults describe an executor with no
    broker configured and the ``shell`` handler disabled, which is also what a test gets.
    """

    kafka_bootstrap_servers: str | None = None
    """The executor's Kafka bootstrap servers (the ``kafka`` handler's default)."""
    topic_prefix: str = "taskstream."
    """The prefix of taskstream's own topics on that broker."""
    executor_id: str = ""
    """The executor's name, as in ``worker_id`` of its events."""
    shell_enabled: bool = False
    """Whether the ``shell`` handler may run commands (``TASKSTREAM_EXECUTOR_SHELL_ENABLED``)."""
    work_dir: Path | None = None
    """Where the ``shell`` handler runs commands; None: a fresh temporary directory per run."""
    kafka_producer_settings: Mapping[str, Any] = field(default_factory=dict)
    """The executor's own producer settings (librdkafka's names: ``acks``,
    ``enable.idempotence``, ``linger.ms``, ``compression.type``...), without
    ``bootstrap.servers``: the ``kafka`` handler's producers use them, so
    ``TASKSTREAM_KAFKA_LINGER_MS`` and the compression setting reach it too."""


@dataclass(frozen=True, kw_only=True)
class TaskContext(Generic[P]):
    """Everything a handler gets to know about the execution it runs."""

    task_id: str
    task_name: str
    execution_id: str
    attempt: int
    scheduled_for: datetime
    params: Mapping[str, Any]
    deadline: float
    """``time.monotonic()`` value after which the executor stops the run."""
    cancelled: threading.Event = field(default_factory=threading.Event)
    """Set when the run is cancelled or times out: long loops should check it."""
    logger: logging.LoggerAdapter[logging.Logger] = field(
        default_factory=lambda: logging.LoggerAdapter(logging.getLogger("taskstream.handler"))
    )
    environment: HandlerEnvironment = field(default_factory=HandlerEnvironment)
    """The executor's side of the run: its broker, its name, what it allows."""
    args: P = cast(Any, None)  # noqa: RUF009 (None, as the type of a handler without a model)
    """``params`` parsed into the handler's params model (None for a handler without one)."""


@dataclass(frozen=True, kw_only=True)
class TaskResult:
    """What a successful run returns; ``output`` must be JSON-serialisable."""

    output: Any = None

    @classmethod
    def success(cls, output: Any = None) -> TaskResult:
        return cls(output=output)


class TaskHandler(ABC, Generic[P]):
    """Base class of every handler. Set ``name`` and implement :meth:`run`.

    Register a handler with the ``taskstream.handlers`` entry-point group of your
    package, or in code with :meth:`taskstream.handlers.registry.HandlerRegistry.register`.
    Subclass ``TaskHandler[YourParams]`` to have the params checked and parsed.
    """

    name: ClassVar[str]
    params_model: ClassVar[type[BaseModel] | None] = None
    """The params model, taken from the type argument (``TaskHandler[YourParams]``)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for base in getattr(cls, "__orig_bases__", ()):
            origin = get_origin(base)
            if isinstance(origin, type) and issubclass(origin, TaskHandler):
                for argument in get_args(base):
                    if isinstance(argument, type) and issubclass(argument, BaseModel):
                        cls.params_model = argument

    @abstractmethod
    def run(self, ctx: TaskContext[P]) -> TaskResult | Any | Awaitable[TaskResult | Any]:
        """Do the work of one execution."""
