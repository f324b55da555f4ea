"""The ``python`` handler: call a function registered under a name, with JSON kwargs.

A task names the function by its registered name, never by an import path, so a request
cannot make an executor import code. Register functions in code::

    from taskstream.handlers.python import callable_handler

    @callable_handler("reports.daily")
    async def daily_report(region: str, day: str | None = None) -> dict[str, int]:
        ...

(the module must be imported by the executor: a plugin package's entry point does
that), or, without importing anything up front, under the ``taskstream.callables``
entry-point group of your package::

    [project.entry-points."taskstream.callables"]
    "reports.daily" = "acme.reports:daily_report"

Params: ``{"callable": "reports.daily", "kwargs": {"region": "eu"}}``. The function is
called with ``kwargs`` as keyword arguments, plus ``ctx`` (the
:class:`~taskstream.handlers.base.TaskContext`) if it has a parameter of that name. It may be a
plain function or a coroutine function (awaited until the task's deadline); what it
returns must be JSON and becomes the output. It steers retries like any handler, by
raising :class:`~taskstream.handlers.base.PermanentError` or
:class:`~taskstream.handlers.base.RetryableError`.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import entry_points
from typing import Any, ClassVar, TypeVar, overload

import orjson
from pydantic import Field, field_validator

from taskstream.handlers.base import PermanentError, TaskContext, TaskHandler, TaskResult
from taskstream.handlers.params import HandlerParams, Invalid, time_left

__all__ = [
    "CALLABLE_ENTRY_POINT_GROUP",
    "PythonHandler",
    "PythonParams",
    "callable_handler",
    "register_callable",
    "registered_callables",
    "unregister_callable",
]

CALLABLE_ENTRY_POINT_GROUP = "taskstream.callables"

F = TypeVar("F", bound=Callable[..., Any])

_callables: dict[str, Callable[..., Any]] = {}
_lock = threading.Lock()


@overload
def register_callable(name: str, fn: F) -> F: ...
@overload
def register_callable(name: str, fn: None = None) -> Callable[[F], F]: ...
def register_callable(name: str, fn: F | None = None) -> F | Callable[[F], F]:
    """Register ``fn`` as ``name``; without ``fn``, a decorator that does so."""
    if fn is None:
        return callable_handler(name)
    if not isinstance(name, str) or not name.strip() or ":" in name or name != name.strip():
        raise ValueError(
            f"invalid callable name {name!r}: use a label such as 'reports.daily' "
            "(no spaces around it, no ':'; it is a name, not an import path)"
        )
    if not callable(fn):
        raise TypeError(f"register_callable({name!r}, ...) needs a function, not {fn!r}")
    with _lock:
        existing = _callables.get(name)
        if existing is not None and existing is not fn:
            raise ValueError(
                f"callable name {name!r} is taken by {_describe(existing)}; choose another "
                "name, or unregister_callable() it first"
            )
        _callables[name] = fn
    return fn


def callable_handler(name: str) -> Callable[[F], F]:
    """Decorator: ``@callable_handler("reports.daily")`` registers the function below."""

    def decorate(fn: F) -> F:
        return register_callable(name, fn)

    return decorate


def unregister_callable(name: str) -> None:
    """Forget ``name`` (registered in code); unknown names are ignored."""
    with _lock:
        _callables.pop(name, None)


def registered_callables() -> list[str]:
    """Every name a task may use: registered in code or under the entry-point group."""
    with _lock:
        names = set(_callables)
    names.update(entry.name for entry in entry_points(group=CALLABLE_ENTRY_POINT_GROUP))
    return sorted(names)


class PythonParams(HandlerParams):
    """The ``python`` handler's params."""

    callable: str = Field(min_length=1, examples=["reports.daily"])
    """The registered name of the function."""
    kwargs: dict[str, Any] = Field(default_factory=dict, examples=[{"region": "eu"}])
    """Its keyword arguments."""

    @field_validator("kwargs")
    @classmethod
    def _no_ctx(cls, kwargs: dict[str, Any]) -> dict[str, Any]:
        if "ctx" in kwargs:
            raise Invalid("is reserved: functions get the TaskContext as ctx", at=".ctx")
        return kwargs


class PythonHandler(TaskHandler[PythonParams]):
    """Calls the registered function ``params.callable`` with ``params.kwargs``."""

    name: ClassVar[str] = "python"

    def run(self, ctx: TaskContext[PythonParams]) -> TaskResult:
        name = ctx.args.callable
        fn = _lookup(name)
        arguments = dict(ctx.args.kwargs)
        signature = _signature(fn)
        if signature is not None:
            if "ctx" in signature.parameters:
                arguments["ctx"] = ctx
            try:
                signature.bind(**arguments)
            except TypeError as exc:
                raise PermanentError(
                    f"python handler: params.kwargs do not fit {name}{signature}: {exc}"
                ) from None
        ctx.logger.info("calling %s (%s)", name, _describe(fn))
        result = fn(**arguments)
        if inspect.isawaitable(result):
            result = _wait(result, time_left(ctx))
        output = result.output if isinstance(result, TaskResult) else result
        try:
            orjson.dumps(output)
        except TypeError as exc:
            raise PermanentError(
                f"python handler: {name} returned {type(output).__name__}, which is not JSON "
                f"({exc}): return dicts, lists, strings, numbers, booleans or None"
            ) from None
        return TaskResult.success(output)


def _lookup(name: str) -> Callable[..., Any]:
    """The function registered as ``name``, loading its entry point on first use."""
    with _lock:
        fn = _callables.get(name)
    if fn is not None:
        return fn
    for entry in entry_points(group=CALLABLE_ENTRY_POINT_GROUP, name=name):
        try:
            loaded = entry.load()
        except Exception as exc:
            raise PermanentError(
                f"python handler: the entry point {entry.name} = {entry.value} cannot be "
                f"loaded ({type(exc).__name__}: {exc}); fix or reinstall its package"
            ) from exc
        if not callable(loaded):
            raise PermanentError(
                f"python handler: the entry point {entry.name} = {entry.value} is not a function"
            )
        with _lock:
            return _callables.setdefault(name, loaded)
    raise PermanentError(
        f"python handler: no callable is registered as {name!r}; registered: "
        f"{', '.join(registered_callables()) or 'none'}. Register it with "
        f"@callable_handler({name!r}) in a module the executor imports, or under the "
        f"'{CALLABLE_ENTRY_POINT_GROUP}' entry-point group of your package"
    )


def _signature(fn: Callable[..., Any]) -> inspect.Signature | None:
    try:
        return inspect.signature(fn)
    except (TypeError, ValueError):  # some builtins have none: call them unchecked
        return None


def _wait(awaitable: Awaitable[Any], timeout: float) -> Any:
    """Run ``awaitable`` to completion on a fresh event loop, within ``timeout`` seconds."""

    async def main() -> Any:
        return await asyncio.wait_for(awaitable, timeout)

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(main())
    # called from inside a running loop (not how the executor calls it): use another thread
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, main()).result()


def _describe(fn: Callable[..., Any]) -> str:
    module = getattr(fn, "__module__", None) or "?"
    return f"{module}.{getattr(fn, '__qualname__', repr(fn))}"
