"""Which handlers exist: entry points plus what code registers, and nothing else.

A task names its handler by registered name (``"echo"``) or by the class path of a
registered class (``"taskstream.handlers.builtin.EchoHandler"``, the seed's ``handlerClass``; the
pre-0.2 path ``"handlers.builtin.EchoHandler"`` still resolves).
A class path that is not registered never loads: requests cannot import code.
"""

from __future__ import annotations

import logging
from importlib.metadata import entry_points
from typing import Any

from taskstream.handlers.base import TaskHandler
from taskstream.schemas.errors import TaskstreamError

__all__ = ["ENTRY_POINT_GROUP", "HandlerRegistry", "UnknownHandlerError", "class_path"]

ENTRY_POINT_GROUP = "taskstream.handlers"
logger = logging.getLogger(__name__)


class UnknownHandlerError(TaskstreamError, LookupError):
    """A task names a handler that is not registered."""


def class_path(cls: type[TaskHandler[Any]]) -> str:
    """The dotted path of a handler class, which a task may name instead of its name."""
    return f"{cls.__module__}.{cls.__qualname__}"


# Before 0.2 the built-ins were importable as ``handlers.*``; tasks in the log may still name
# them by that class path (``handlers.builtin.EchoHandler``), so it resolves too.
_PACKAGE = "taskstream.handlers."
_PACKAGE_BEFORE_0_2 = "handlers."


def _class_paths(cls: type[TaskHandler[Any]]) -> list[str]:
    path = class_path(cls)
    if path.startswith(_PACKAGE):
        return [path, _PACKAGE_BEFORE_0_2 + path.removeprefix(_PACKAGE)]
    return [path]


class HandlerRegistry:
    """Registered handler classes, by name and by class path."""

    def __init__(self) -> None:
        self._by_name: dict[str, type[TaskHandler[Any]]] = {}
        self._by_path: dict[str, type[TaskHandler[Any]]] = {}
        self._name_of: dict[type[TaskHandler[Any]], str] = {}

    @classmethod
    def from_entry_points(cls, group: str = ENTRY_POINT_GROUP) -> HandlerRegistry:
        """A registry of every handler installed under the entry-point ``group``."""
        registry = cls()
        for entry in entry_points(group=group):
            try:
                handler = entry.load()
            except Exception:
                logger.exception("cannot load handler entry point %s = %s", entry.name, entry.value)
                continue
            if not (isinstance(handler, type) and issubclass(handler, TaskHandler)):
                logger.error("entry point %s is not a TaskHandler subclass; skipped", entry.value)
                continue
            registry.register(handler, name=entry.name)
        return registry

    def register(self, handler: type[TaskHandler[Any]], *, name: str | None = None) -> None:
        """Register ``handler`` under ``name`` (default: its ``name`` attribute)."""
        key = name or getattr(handler, "name", None)
        if not key:
            raise ValueError(f"{class_path(handler)} has no 'name': set `name = \"...\"`")
        existing = self._by_name.get(key)
        if existing is not None and existing is not handler:
            raise ValueError(
                f"handler name {key!r} is taken by {class_path(existing)}; choose another name"
            )
        self._by_name[key] = handler
        for path in _class_paths(handler):
            self._by_path[path] = handler
        self._name_of.setdefault(handler, key)

    def resolve(self, reference: str) -> type[TaskHandler[Any]]:
        """The class for a registered name or class path; raise ``UnknownHandlerError``."""
        handler = self._by_name.get(reference) or self._by_path.get(reference)
        if handler is None:
            raise UnknownHandlerError(
                f"unknown handler {reference!r}: registered handlers are "
                f"{', '.join(sorted(self._by_name)) or 'none'}. Register yours under the "
                f"'{ENTRY_POINT_GROUP}' entry-point group of your package"
            )
        return handler

    def canonical_name(self, reference: str) -> str:
        """The registered name for a name or class path."""
        if reference in self._by_name:
            return reference
        return self._name_of[self.resolve(reference)]

    def names(self) -> list[str]:
        return sorted(self._by_name)

    def by_name(self) -> dict[str, type[TaskHandler[Any]]]:
        """Every registered handler class, by registered name, in name order."""
        return {name: self._by_name[name] for name in self.names()}
