"""The declaration of each monitor route: read once, both to serve and to document it.

A module that adds pages declares an :class:`Operation` per method next to them and
registers the page at ``operation.path``; its query parameters (:class:`IntQuery`,
:class:`ChoiceQuery`) both read the request (a bad value: 422 ``validation_failed``
naming ``query.<name>``, as the core answers) and describe themselves in the OpenAPI
document (:mod:`taskstream.monitor.openapi`), so what is served and what is documented cannot drift.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import BaseModel
from yarl import URL

from taskstream.infra.error_shape import ERROR_SCHEMA
from taskstream.monitor.http_errors import invalid

__all__ = [
    "ChoiceQuery",
    "IntQuery",
    "Operation",
    "PathParam",
    "errors",
    "json_answer",
    "model_answer",
]

_INTEGER = re.compile(r"-?[0-9]{1,30}")

_DESCRIPTIONS = {
    400: "the body is not JSON (NaN and Infinity are not JSON numbers)",
    401: "a bearer token is required (TASKSTREAM_MONITOR_TOKENS) and was missing or wrong",
    404: "no such item, or no such route",
    405: "the path does not serve this method (the Allow header lists the ones it serves)",
    409: "the rule comes from the rules file and is read-only",
    413: "the body is larger than the monitor reads",
    422: "a parameter or a field is invalid; each is named in errors",
    503: "the monitor is starting or restoring its tables (error: starting, recovering), "
    "or Kafka is unreachable (kafka_unavailable): retry in a few seconds",
}


class _Request(Protocol):
    """A request of faust's web (or aiohttp's): what a parameter reads."""

    @property
    def rel_url(self) -> URL: ...


def _one(request: _Request, name: str) -> str | None:
    values = request.rel_url.query.getall(name, [])
    if len(values) > 1:
        raise invalid([_field(name, "give it once", "multiple_values")])
    return values[0] if values else None


def _field(name: str, message: str, kind: str) -> dict[str, str]:
    return {"field": f"query.{name}", "message": message, "type": kind}


@dataclass(frozen=True, kw_only=True)
class IntQuery:
    """An optional integer query parameter between ``low`` and ``high``."""

    name: str
    default: int
    low: int
    high: int
    description: str

    def read(self, request: _Request) -> int:
        text = _one(request, self.name)
        if text is None:
            return self.default
        value = int(text) if _INTEGER.fullmatch(text) else None
        if value is None or not self.low <= value <= self.high:
            message = f"must be an integer between {self.low} and {self.high}, not {text!r}"
            raise invalid([_field(self.name, message, "int_range")])
        return value

    def openapi(self) -> dict[str, Any]:
        schema = {"type": "integer", "minimum": self.low, "maximum": self.high}
        return _query(self.name, self.description, {**schema, "default": self.default})


@dataclass(frozen=True, kw_only=True)
class ChoiceQuery:
    """An optional query parameter that is one of ``choices`` (None when absent)."""

    name: str
    choices: tuple[str, ...]
    description: str

    def read(self, request: _Request) -> str | None:
        text = _one(request, self.name)
        if text is not None and text not in self.choices:
            message = f"must be one of {', '.join(self.choices)}, not {text!r}"
            raise invalid([_field(self.name, message, "enum")])
        return text

    def openapi(self) -> dict[str, Any]:
        return _query(self.name, self.description, {"type": "string", "enum": list(self.choices)})


def _query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    }


@dataclass(frozen=True, kw_only=True)
class PathParam:
    name: str
    description: str
    schema: Mapping[str, Any] = field(default_factory=lambda: {"type": "string", "minLength": 1})

    def openapi(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "in": "path",
            "required": True,
            "description": self.description,
            "schema": dict(self.schema),
        }


@dataclass(frozen=True, kw_only=True)
class Operation:
    """One method of one route, as the OpenAPI document shows it.

    ``responses`` maps a status to its OpenAPI response object; the ``errors`` statuses
    are added in the one error shape. ``open``: served without a token (a probe, the
    document, the dashboard's files); every other operation also answers 401.
    """

    method: str
    path: str
    operation_id: str
    summary: str
    responses: Mapping[int, Mapping[str, Any]]
    errors: tuple[int, ...] = ()
    parameters: tuple[IntQuery | ChoiceQuery | PathParam, ...] = ()
    request_body: Mapping[str, Any] | None = None
    open: bool = False
    tags: tuple[str, ...] = ()

    def openapi(self) -> dict[str, Any]:
        responses = {str(status): dict(answer) for status, answer in self.responses.items()}
        statuses = {*self.errors, 405, *(() if self.open else (401,))}
        responses.update(errors(*sorted(statuses)))
        document: dict[str, Any] = {
            "operationId": self.operation_id,
            "summary": self.summary,
            "responses": dict(sorted(responses.items())),
        }
        if self.tags:
            document["tags"] = list(self.tags)
        if self.parameters:
            document["parameters"] = [parameter.openapi() for parameter in self.parameters]
        if self.request_body is not None:
            document["requestBody"] = dict(self.request_body)
        document["security"] = [] if self.open else [{"bearer": []}, {}]
        return document


def errors(*statuses: int) -> dict[str, dict[str, Any]]:
    """OpenAPI responses for ``statuses``, in the one error shape."""
    return {
        str(status): {
            "description": _DESCRIPTIONS[status],
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
        for status in statuses
    }


def model_answer(description: str, model: type[BaseModel]) -> dict[str, Any]:
    """An OpenAPI response whose JSON body is ``model`` (a component of the document:
    list the model in :data:`taskstream.monitor.openapi.ANSWER_MODELS`)."""
    return json_answer(description, {"$ref": f"#/components/schemas/{model.__name__}"})


def json_answer(description: str, schema: Mapping[str, Any]) -> dict[str, Any]:
    """An OpenAPI response with a JSON body of ``schema``."""
    return {"description": description, "content": {"application/json": {"schema": dict(schema)}}}


ERROR_COMPONENT = ERROR_SCHEMA
