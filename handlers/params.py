"""A handler's params as a pydantic model: declared once, checked at POST and at run.

Declare the params of a handler as a :class:`HandlerParams` model and name it as the
handler's type argument::

    class GreetParams(HandlerParams):
        who: str = Field(min_length=1, examples=["world"])
        times: int = Field(default=1, ge=1)

    class GreetHandler(TaskHandler[GreetParams]):
        name = "greet"

        def run(self, ctx: TaskContext[GreetParams]) -> TaskResult:
            return TaskResult.success(" ".join([f"hello {ctx.args.who}"] * ctx.args.times))

The core refuses a task whose params do not fit (422, one error per field, named
``params.<field>``) when the handler is installed where the core runs; the executor
parses them before the run and hands the object over as ``ctx.args`` (a run whose params
do not fit fails permanently with :class:`InvalidParamsError`, without calling the
handler). ``ctx.params`` keeps the raw JSON.

:class:`HandlerParams` refuses unknown names (with a "did you mean" hint), does not
coerce (``"5"`` is not a number, ``1`` is not ``true``) and is frozen. Every problem is
said as ``params.<field> <what is wrong and what to write>``: validators raise
:class:`Invalid` to say it in their own words, about a part of the field if need be.
"""

from __future__ import annotations

import difflib
import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import annotated_types
import orjson
from pydantic import BaseModel, ConfigDict, PlainValidator, ValidationError, WithJsonSchema
from pydantic_core import ErrorDetails

from taskstream.handlers.base import PermanentError
from taskstream.schemas.durations import parse_duration
from taskstream.schemas.errors import DurationError, TaskstreamError

if TYPE_CHECKING:
    from taskstream.handlers.base import TaskContext

__all__ = [
    "Duration",
    "HandlerParams",
    "Invalid",
    "InvalidParamsError",
    "ParamProblem",
    "json_kind",
    "params_problems",
    "parse_params",
    "time_left",
]

M = TypeVar("M", bound=BaseModel)


class HandlerParams(BaseModel):
    """Base of a handler's params model: unknown names refused, no coercion, frozen.

    Params are validated as JSON (pydantic's strict JSON mode): ``"5"`` is not a number
    and ``1`` is not ``true``, while a ``datetime``, a ``UUID`` or an enum is read from
    its string, as a JSON body writes it.
    """

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Invalid(TaskstreamError, ValueError):
    """Raised by a params validator: ``problem`` said after the field's name.

    ``at`` names a part of the field (``"[1]"``, ``".PATH"``) when the problem is there.
    A model validator (about several fields) writes whole sentences: its ``problem`` is
    said as it is.
    """

    def __init__(self, problem: str, *, at: str = "") -> None:
        super().__init__(problem)
        self.problem = problem
        self.at = at


@dataclass(frozen=True, slots=True)
class ParamProblem:
    """One reason why params do not fit a handler's model."""

    field: str
    """``params.<path>`` (``params`` for a problem of the whole object)."""
    message: str
    """The field, what is wrong and what to write (``params.url is required, e.g. ...``)."""


class InvalidParamsError(PermanentError):
    """A run's params do not fit its handler's model: no retry can fix them."""

    def __init__(self, handler: str, problems: Sequence[ParamProblem]) -> None:
        super().__init__(f"{handler} handler: " + "; ".join(p.message for p in problems))
        self.handler = handler
        self.problems = tuple(problems)


def parse_params(handler: str, model: type[M], params: Mapping[str, Any]) -> M:
    """``params`` as ``model``; raise :class:`InvalidParamsError` naming every problem."""
    try:
        return _validated(model, params)
    except ValidationError as exc:
        raise InvalidParamsError(handler, _problems(model, exc)) from None


def params_problems(model: type[BaseModel], params: Any) -> list[ParamProblem]:
    """Why ``params`` do not fit ``model`` (empty: they do)."""
    try:
        _validated(model, params)
    except ValidationError as exc:
        return _problems(model, exc)
    return []


def _validated(model: type[M], params: Any) -> M:
    """``params`` validated as the JSON they are: strict (``"5"`` is no number, ``1`` no
    boolean) yet a time or an id is read from its string, as in a JSON body."""
    try:
        document = orjson.dumps(dict(params) if isinstance(params, Mapping) else params)
    except TypeError:  # not JSON (a test's set, a non-string key): python mode says why
        return model.model_validate(params)
    return model.model_validate_json(document)


def time_left(ctx: TaskContext[Any]) -> float:
    """Seconds until ``ctx.deadline`` (0 once it has passed)."""
    return max(0.0, ctx.deadline - time.monotonic())


def json_kind(value: Any) -> str:
    """A JSON reader's name for the type of ``value``: ``a string``, ``an object``..."""
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


def _seconds(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise Invalid(f'must be a duration such as "10s", not {json_kind(value)}')
    try:
        seconds = parse_duration(value).total_seconds() if isinstance(value, str) else float(value)
    except DurationError as exc:
        raise Invalid(f"is not a duration: {exc}") from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise Invalid(f'must be longer than zero, such as "10s", not {value!r}')
    return seconds


Duration = Annotated[
    float,
    PlainValidator(_seconds),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "examples": ["10s", "1m30s"]},
                {"type": "number", "exclusiveMinimum": 0},
            ],
            "description": 'a duration: "10s", "1m30s", or seconds',
        }
    ),
]
"""Seconds, written as a duration (``"10s"``, ``"1m30s"``) or a number; more than zero."""


# -- problems, in the handlers' words ------------------------------------------------------


def _problems(model: type[BaseModel], exc: ValidationError) -> list[ParamProblem]:
    problems: list[ParamProblem] = []
    for error in exc.errors(include_url=False):
        problem = _problem(model, error)
        if problem not in problems:
            problems.append(problem)
    return problems


def _problem(model: type[BaseModel], error: ErrorDetails) -> ParamProblem:
    loc = error["loc"]
    kind = error["type"]
    context = error.get("ctx") or {}
    raised = context.get("error")
    if kind == "extra_forbidden" and len(loc) == 1:
        return _unknown(model, str(loc[0]))
    if isinstance(raised, Invalid) and not loc:
        return ParamProblem("params", raised.problem)
    path = _path(loc) + (raised.at if isinstance(raised, Invalid) else "")
    field = f"params{path}"
    if isinstance(raised, Invalid):
        return ParamProblem(field, f"{field} {raised.problem}")
    return ParamProblem(field, f"{field} {_said(model, loc, kind, error, context)}")


def _unknown(model: type[BaseModel], name: str) -> ParamProblem:
    known = [field.alias or name for name, field in model.model_fields.items()]
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    takes = ", ".join(sorted(known)) or "no parameters"
    return ParamProblem(f"params.{name}", f"unknown parameter {name!r}{hint} (it takes {takes})")


def _path(loc: tuple[int | str, ...]) -> str:
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc)


_BOUNDS = {
    "greater_than": ("more than", "gt"),
    "less_than": ("less than", "lt"),
    "less_than_equal": ("at most", "le"),
}
"""Pydantic's error types of a bound other than ``ge``: the words, the context's key."""
_KINDS = {
    "float_type": "a number",
    "float_parsing": "a number",
    "list_type": "a list",
    "dict_type": "an object",
    "model_type": "an object",
    "model_attributes_type": "an object",
}
"""Pydantic's error types of a value of the wrong kind: what it must be instead."""


def _said(
    model: type[BaseModel],
    loc: tuple[int | str, ...],
    kind: str,
    error: ErrorDetails,
    context: Mapping[str, Any],
) -> str:
    """What is wrong with one value, and what to write instead."""
    value = error.get("input")
    if kind == "missing":
        return "is required" + _example(model, loc)
    if kind == "string_type":
        if _non_empty(model, loc):
            return f"must be a non-empty string{_example(model, loc)}, not {json_kind(value)}"
        quote = ' (quote numbers: "1")' if isinstance(value, int | float) and len(loc) > 1 else ""
        return f"must be a string, not {json_kind(value)}{quote}"
    if kind == "string_too_short":
        return "must be a non-empty string" + _example(model, loc)
    if kind == "bool_type":
        return f"must be true or false, not {json_kind(value)}"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"must be a whole number{_at_least(model, loc)}, not {value!r}"
    if kind == "greater_than_equal":
        bound = context.get("ge")
        noun = "a whole number of " if isinstance(bound, int) else ""  # an int field's bound
        return f"must be {noun}at least {_number(bound)}, not {value!r}"
    if kind in _BOUNDS:
        words, name = _BOUNDS[kind]
        return f"must be {words} {_number(context.get(name))}, not {value!r}"
    if kind in _KINDS:
        return f"must be {_KINDS[kind]}{_like(model, loc)}, not {json_kind(value)}"
    if kind == "too_short":
        return f"must be a non-empty list{_like(model, loc)}"
    if kind in ("literal_error", "enum"):
        return f"must be one of {context.get('expected')}, not {value!r}"
    if kind == "extra_forbidden":
        return "is not a known field: remove it"
    message = error["msg"]
    return "is invalid: " + message[:1].lower() + message[1:]


def _top_field(model: type[BaseModel], loc: tuple[int | str, ...]) -> Any:
    if len(loc) != 1:
        return None
    for name, field in model.model_fields.items():
        if (field.alias or name) == loc[0]:
            return field
    return None


def _example(model: type[BaseModel], loc: tuple[int | str, ...]) -> str:
    field = _top_field(model, loc)
    if field is None or not field.examples:
        return ""
    return f", e.g. {_json(field.examples[0])}"


def _like(model: type[BaseModel], loc: tuple[int | str, ...]) -> str:
    field = _top_field(model, loc)
    if field is None or not field.examples:
        return ""
    return f" such as {_json(field.examples[0])}"


def _non_empty(model: type[BaseModel], loc: tuple[int | str, ...]) -> bool:
    shortest = _constraint(model, loc, annotated_types.MinLen)
    return shortest is not None and shortest.min_length >= 1


def _at_least(model: type[BaseModel], loc: tuple[int | str, ...]) -> str:
    bound = _constraint(model, loc, annotated_types.Ge)
    return f" of at least {bound.ge}" if bound is not None else ""


C = TypeVar("C")


def _constraint(model: type[BaseModel], loc: tuple[int | str, ...], kind: type[C]) -> C | None:
    """The top-level field's constraint of ``kind`` (``Ge``, ``MinLen``...), if declared."""
    field = _top_field(model, loc)
    for constraint in field.metadata if field is not None else ():
        if isinstance(constraint, kind):
            return constraint
    return None


def _number(bound: Any) -> str:
    """A bound as a person writes it: ``0``, not ``0.0``."""
    return f"{bound:g}" if isinstance(bound, float) else str(bound)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)
