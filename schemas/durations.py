"""Human durations on the wire: ``"30s"``, ``"15m"``, ``"1h30m"``, ``"250ms"``, ``"2d"``.

A duration is written as one or more ``<number><unit>`` parts with units ``ms``, ``s``,
``m``, ``h`` and ``d``; a bare number means seconds. :func:`format_duration` writes the
shortest canonical form back, so a value survives a round trip through JSON unchanged.

Every duration is bounded: at least 0 and at most :data:`MAX_DURATION` (100 years), so
adding one to any date taskstream accepts (:data:`taskstream.schemas.task.LATEST`) cannot overflow.
A negative, non-finite or longer value is a :class:`DurationError` that says so.

Both are memoised: every event and work order carries a few durations, nearly always the
same handful of values, and each service decodes and encodes them for every record.
"""

from __future__ import annotations

import functools
import math
import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, TypeAdapter, WithJsonSchema

from taskstream.schemas.errors import DurationError
from taskstream.schemas.recorded import reading_recorded

__all__ = ["MAX_DURATION", "Duration", "durations_as_written", "format_duration", "parse_duration"]

MAX_DURATION = timedelta(days=36_525)
"""The longest duration taskstream accepts: 100 years."""
_MAX_SECONDS = MAX_DURATION.total_seconds()

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PATTERN = r"^(\d+(\.\d+)?(ms|s|m|h|d))+$|^\d+(\.\d+)?$"


def parse_duration(text: str) -> timedelta:
    """Parse ``"1h30m"`` into a :class:`~datetime.timedelta`; raise :class:`DurationError`."""
    return _bounded(_parse(text), text)


@functools.lru_cache(maxsize=4096)  # an error is raised again each time, never cached
def _parse(text: str) -> float:
    """The seconds ``text`` says, unbounded (the bound depends on who reads it)."""
    cleaned = text.strip().lower().replace(" ", "")
    if not cleaned:
        raise DurationError("empty duration: write it like '30s', '15m', '1h' or '250ms'")
    try:
        bare = float(cleaned)
    except ValueError:
        pass
    else:
        return bare
    position, seconds = 0, 0.0
    for match in _PART.finditer(cleaned):
        if match.start() != position:
            break
        seconds += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        position = match.end()
    if position != len(cleaned) or position == 0:
        raise DurationError(
            f"invalid duration {text!r}: write it like '30s', '15m', '1h30m' or '250ms' "
            "(units ms, s, m, h, d)"
        )
    return seconds


def _bounded(seconds: float, given: object) -> timedelta:
    """``seconds`` as a timedelta; :class:`DurationError` if negative, not finite or too long.

    Reading what is recorded (:func:`taskstream.schemas.recorded.recorded`), a duration longer than
    :data:`MAX_DURATION` that is still a time span is kept: it was accepted when written.
    """
    if reading_recorded() and math.isfinite(seconds) and seconds > _MAX_SECONDS:
        try:
            return timedelta(seconds=seconds)
        except OverflowError:
            pass  # not a time span at all: refused below
    if not math.isfinite(seconds) or not 0 <= seconds <= _MAX_SECONDS:
        raise DurationError(
            f"duration {given!r} is out of range: a duration is at least 0 and at most "
            "100 years ('36525d')"
        )
    return timedelta(seconds=seconds)


@functools.lru_cache(maxsize=4096)
def format_duration(value: timedelta) -> str:
    """Write a duration in its shortest form: ``timedelta(minutes=90)`` -> ``"1h30m"``."""
    total_ms = round(value.total_seconds() * 1000)
    if total_ms == 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        count, total_ms = divmod(total_ms, size)
        if count:
            parts.append(f"{count}{unit}")
    if total_ms:
        parts.append(f"{total_ms}ms")
    return "".join(parts)


def _coerce(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return _bounded(value.total_seconds(), str(value))
    if isinstance(value, bool):
        raise DurationError("a duration is a string such as '30s' or a number of seconds")
    if isinstance(value, int | float):
        try:
            return _bounded(float(value), value)
        except OverflowError:  # an int too large for a float
            return _bounded(math.inf, value)
    if isinstance(value, str):
        return parse_duration(value)
    raise DurationError(f"a duration is a string such as '30s', not {type(value).__name__}")


Duration = Annotated[
    timedelta,
    BeforeValidator(_coerce),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "pattern": _PATTERN, "examples": ["30s", "1h30m"]}),
]
"""A :class:`timedelta` that reads ``"30s"`` or seconds and writes ``"30s"`` in JSON."""


def durations_as_written(schema: Any) -> None:
    """Rewrite, in place, every duration default of a JSON Schema as the API takes it
    (``"1s"``). pydantic writes a ``timedelta`` default as ISO 8601 (``"PT1S"``) outside
    serialization mode, which the duration's own pattern refuses."""
    if isinstance(schema, dict):
        default = schema.get("default")
        if schema.get("pattern") == _PATTERN and isinstance(default, str) and default[:1] == "P":
            schema["default"] = format_duration(TypeAdapter(timedelta).validate_python(default))
        for value in schema.values():
            durations_as_written(value)
    elif isinstance(schema, list):
        for value in schema:
            durations_as_written(value)
