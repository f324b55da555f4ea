"""Reading a built-in handler's ``params``: typed, validated, every problem named.

A handler builds one :class:`Params` over ``ctx.params`` with the names it takes. An
unknown name, a missing required one or a value of the wrong type is a
:class:`~taskstream.handlers.base.PermanentError` whose message names the parameter and says what
to write instead, since a retry would fail the same way.
"""

from __future__ import annotations

import difflib
import math
import time
from collections.abc import Collection, Mapping
from typing import Any

from taskstream.handlers.base import PermanentError, TaskContext
from taskstream.schemas.durations import parse_duration
from taskstream.schemas.errors import DurationError

__all__ = ["Params", "time_left"]


def time_left(ctx: TaskContext) -> float:
    """Seconds until ``ctx.deadline`` (0 once it has passed)."""
    return max(0.0, ctx.deadline - time.monotonic())


class Params:
    """Typed access to the params of the handler called ``handler``."""

    def __init__(self, handler: str, params: Mapping[str, Any], allowed: Collection[str]) -> None:
        self.handler = handler
        self._params = params
        for name in params:
            if name not in allowed:
                close = difflib.get_close_matches(name, allowed, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise PermanentError(
                    f"{handler} handler: unknown parameter {name!r}{hint} "
                    f"(it takes {', '.join(sorted(allowed))})"
                )

    def error(self, name: str, problem: str) -> PermanentError:
        """A ``PermanentError`` saying ``params.<name> <problem>``."""
        return PermanentError(f"{self.handler} handler: params.{name} {problem}")

    def __contains__(self, name: str) -> bool:
        return name in self._params

    def get(self, name: str) -> Any:
        """The raw value, or None when absent."""
        return self._params.get(name)

    def required_str(self, name: str, example: str) -> str:
        value = self._params.get(name)
        if value is None:
            raise self.error(name, f"is required, e.g. {example}")
        if not isinstance(value, str) or not value:
            raise self.error(name, f"must be a non-empty string, e.g. {example}")
        return value

    def optional_str(self, name: str) -> str | None:
        value = self._params.get(name)
        if value is not None and not isinstance(value, str):
            raise self.error(name, f"must be a string, not {_kind(value)}")
        return value

    def boolean(self, name: str, default: bool) -> bool:
        value = self._params.get(name, default)
        if not isinstance(value, bool):
            raise self.error(name, f"must be true or false, not {_kind(value)}")
        return value

    def positive_int(self, name: str, default: int) -> int:
        value = self._params.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise self.error(name, f"must be a whole number of at least 1, not {value!r}")
        return value

    def str_map(self, name: str) -> dict[str, str]:
        """An object of string values (e.g. headers, environment variables); {} if absent."""
        value = self._params.get(name)
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise self.error(
                name, f'must be an object like {{"NAME": "value"}}, not {_kind(value)}'
            )
        for key, item in value.items():
            if not isinstance(item, str):
                raise self.error(
                    f"{name}.{key}", f'must be a string, not {_kind(item)} (quote numbers: "1")'
                )
        return dict(value)

    def duration(self, name: str) -> float | None:
        """Seconds of a duration such as ``"10s"`` or ``"1m30s"`` (or a number); None if absent."""
        value = self._params.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise self.error(name, f'must be a duration such as "10s", not {_kind(value)}')
        try:
            seconds = (
                parse_duration(value).total_seconds() if isinstance(value, str) else float(value)
            )
        except DurationError as exc:
            raise self.error(name, f"is not a duration: {exc}") from None
        if not math.isfinite(seconds) or seconds <= 0:
            raise self.error(name, f'must be longer than zero, such as "10s", not {value!r}')
        return seconds


def _kind(value: Any) -> str:
    """A JSON reader's name for the type of ``value``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list | tuple):
        return "a list"
    return type(value).__name__
