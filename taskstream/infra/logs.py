"""Structured logs: one JSON object per line, with the task and execution named.

Log with a module logger and lazy ``%`` formatting; pass identifiers through
:func:`fields`, never as hand-made dicts::

    logger.info("fired %s", slot, extra=fields(task_id=tid, execution_id=eid, action="fire"))
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

__all__ = ["FIELD_NAMES", "JsonFormatter", "configure_logging", "fields"]

FIELD_NAMES = ("task_id", "execution_id", "action", "attempt", "topic", "partition", "offset")
_FIELD_KEY = "taskstream_fields"
_KNOWN = frozenset(FIELD_NAMES)


def fields(**values: Any) -> dict[str, Any]:
    """The ``extra=`` of a log call: known structured fields only, Nones dropped."""
    if not values.keys() <= _KNOWN:
        unknown = sorted(set(values) - _KNOWN)
        raise ValueError(f"unknown log fields {unknown}; known: {FIELD_NAMES}")
    return {_FIELD_KEY: {k: v for k, v in values.items() if v is not None}}


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "message": record.getMessage(),
        }
        document.update(getattr(record, _FIELD_KEY, {}))
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(document, default=str).decode()


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extra = getattr(record, _FIELD_KEY, {})
        if extra:
            line += " " + " ".join(f"{k}={v}" for k, v in extra.items())
        return line


def configure_logging(service: str, level: str = "INFO", fmt: str = "json") -> None:
    """Send every log record to stderr in the chosen format."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter(service))
    else:
        handler.setFormatter(
            _TextFormatter(f"%(asctime)s {service} %(levelname)s %(name)s: %(message)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
