"""How the API refuses a request, and the small pieces of its answers.

Every refusal is one JSON shape, ``{"error", "message", ...}``: :class:`Refusal` carries it
to the exception handler of :func:`taskstream.core.api.create_api`, which answers it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Any

from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from prometheus_client import Counter
from pydantic import ValidationError

from taskstream.core.store import TaskRow, task_as_dict
from taskstream.schemas import TaskSpec
from taskstream.schemas.errors import TaskstreamError

__all__ = [
    "Refusal",
    "field_errors",
    "if_match_version",
    "invalid",
    "invalid_field",
    "is_uuid",
    "task_answer",
    "validated",
    "warned",
    "warnings_field",
]

REJECTIONS = Counter(
    "taskstream_task_rejections_total", "task requests rejected by the API", ["reason"]
)


class Refusal(TaskstreamError):
    """A request refused before anything was written: its status and JSON body."""

    def __init__(self, status: int, error: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.body: dict[str, Any] = {"error": error, "message": message, **extra}
        REJECTIONS.labels(error).inc()

    @property
    def response(self) -> JSONResponse:
        return JSONResponse(self.body, status_code=self.status)


def field_errors(errors: list[Any], prefix: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Pydantic's errors as the API's ``errors`` list: field, message, type."""
    result = []
    for item in errors:
        location = [*prefix, *(str(part) for part in item.get("loc", ()) if part != "body")]
        message = str(item.get("msg", "invalid value")).removeprefix("Value error, ")
        result.append(
            {"field": ".".join(location) or "body", "message": message, "type": item.get("type")}
        )
    return result


def invalid(errors: list[dict[str, Any]]) -> Refusal:
    """422 ``validation_failed`` naming each field."""
    summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    return Refusal(422, "validation_failed", summary, errors=errors)


def invalid_field(field: str, message: str, kind: str) -> Refusal:
    return invalid([{"field": field, "message": message, "type": kind}])


def validated(build: Callable[[], TaskSpec]) -> TaskSpec:
    """The spec ``build`` makes, or 422 naming the fields it refused."""
    try:
        spec: TaskSpec = build()
    except ValidationError as exc:
        raise invalid(field_errors(list(exc.errors()))) from None
    return spec


def task_answer(row: TaskRow, status: int = 200, warnings: Sequence[str] = ()) -> JSONResponse:
    """A task as the API shows it, with its version as ETag."""
    document: dict[str, Any] = jsonable_encoder(task_as_dict(row))
    return warned(
        JSONResponse(
            document | warnings_field(warnings),
            status_code=status,
            headers={"ETag": f'"{row.version}"', "Location": f"/api/tasks/{row.id}"},
        ),
        warnings,
    )


def warned(response: JSONResponse, warnings: Sequence[str]) -> JSONResponse:
    """Add one ``Warning: 199 - "..."`` header per warning (RFC 7234 miscellaneous)."""
    for warning in warnings:
        quoted = warning.replace("\\", "\\\\").replace('"', '\\"')
        text = quoted.encode("ascii", "backslashreplace").decode()
        response.headers.append("Warning", f'199 - "{text}"')
    return response


def warnings_field(warnings: Sequence[str]) -> dict[str, Any]:
    return {"warnings": list(warnings)} if warnings else {}


def if_match_version(value: str | None) -> int | None:
    """The task version an ``If-Match`` header names (422 if it names none)."""
    if value is None:
        return None
    text = value.strip().removeprefix("W/").strip('"')
    if not text.isdigit():
        raise invalid_field(
            "If-Match", 'If-Match must be a task version such as "3"', "invalid_version"
        )
    return int(text)


def is_uuid(text: str) -> bool:
    try:
        return str(uuid.UUID(text)) == text.lower()
    except ValueError:
        return False
