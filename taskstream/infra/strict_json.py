"""Request bodies read strictly, the same way by every service's HTTP API.

Python's ``json`` takes ``NaN`` and ``Infinity`` (which are not JSON, RFC 8259) and
strings holding NUL or lone surrogates, which would then be stored as ``null``, refused
by PostgreSQL, or fail to encode as an event. :func:`loads_strict` parses with orjson,
which refuses all of those, and then refuses NUL (``\\u0000``) in any string or key.
"""

from __future__ import annotations

from typing import Any

import orjson

from taskstream.schemas.errors import TaskstreamError

__all__ = ["BadJson", "loads_strict"]


class BadJson(TaskstreamError, ValueError):
    """A body refused: ``status`` 400 (not JSON) or 422 (JSON, but a string holds NUL)."""

    def __init__(self, status: int, error: str, message: str, field: str = "body") -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.field = field

    @property
    def body(self) -> dict[str, Any]:
        document: dict[str, Any] = {"error": self.error, "message": str(self)}
        if self.status == 422:
            kind = "string_nul"
            document["errors"] = [{"field": self.field, "message": str(self), "type": kind}]
        return document


def loads_strict(raw: bytes | str) -> Any:
    """The parsed body; raise :class:`BadJson` for anything but plain JSON without NUL."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadJson(
            400,
            "malformed_json",
            f"the request body is not valid JSON ({exc}); note that NaN and Infinity are "
            "not JSON numbers and strings must be valid UTF-8",
        ) from None
    _check(value, ())
    return value


def _check(value: Any, path: tuple[str, ...]) -> None:
    if isinstance(value, str):
        if "\x00" in value:
            raise _nul(path)
    elif isinstance(value, dict):
        for key, item in value.items():
            if "\x00" in key:
                raise _nul(path, f"the key {key!r}")
            _check(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check(item, (*path, str(index)))


def _nul(path: tuple[str, ...], what: str = "the string") -> BadJson:
    field = ".".join(path) or "body"
    return BadJson(
        422,
        "validation_failed",
        f"{field}: {what} holds a NUL character (\\u0000), which taskstream does not store; "
        "remove it",
        field,
    )
