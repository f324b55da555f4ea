"""Errors raised while reading or writing the event contract.

SchemaError
 ├── DurationError          a duration string such as "30s" could not be parsed
 ├── CronError              a cron expression the scheduler's evaluator cannot read
 ├── ScheduleError          a schedule that never fires, or fires too often, from now
 ├── UnknownEventTypeError  an event's type is not in the registry
 └── EventDecodeError       bytes on the wire are not a valid event (keeps the bytes)
"""

from __future__ import annotations

__all__ = [
    "CronError",
    "DurationError",
    "EventDecodeError",
    "ScheduleError",
    "SchemaError",
    "UnknownEventTypeError",
]


class SchemaError(ValueError):
    """Base class of every error in :mod:`schemas`."""


class DurationError(SchemaError):
    """A duration string could not be parsed."""


class CronError(SchemaError):
    """A cron expression that cronsim, the scheduler's evaluator, cannot read."""


class ScheduleError(SchemaError):
    """A schedule that is well formed but cannot be admitted now (see
    :func:`schemas.schedules.check_schedule`); ``field`` names the part at fault."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


class UnknownEventTypeError(SchemaError):
    """An event names a type (or version) this code does not know."""


class EventDecodeError(SchemaError):
    """Bytes read from a topic are not a valid event; ``raw`` keeps them for a dead letter."""

    def __init__(self, message: str, raw: bytes) -> None:
        super().__init__(message)
        self.raw = raw
