"""Errors raised while reading or writing the event contract.

SchemaError
 ├── DurationError          a duration string such as "30s" could not be parsed
 ├── UnknownEventTypeError  an event's type is not in the registry
 └── EventDecodeError       bytes on the wire are not a valid event (keeps the bytes)
"""

from __future__ import annotations

__all__ = ["DurationError", "EventDecodeError", "SchemaError", "UnknownEventTypeError"]


class SchemaError(ValueError):
    """Base class of every error in :mod:`schemas`."""


class DurationError(SchemaError):
    """A duration string could not be parsed."""


class UnknownEventTypeError(SchemaError):
    """An event names a type (or version) this code does not know."""


class EventDecodeError(SchemaError):
    """Bytes read from a topic are not a valid event; ``raw`` keeps them for a dead letter."""

    def __init__(self, message: str, raw: bytes) -> None:
        super().__init__(message)
        self.raw = raw
