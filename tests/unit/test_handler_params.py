"""Typed handler params: the model from the type argument, every problem in plain words."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta
from typing import Any, ClassVar, Literal, Self

import pytest
from pydantic import Field, model_validator

from taskstream.handlers import PermanentError, TaskContext, TaskHandler, TaskResult
from taskstream.handlers.builtin import EchoHandler, FailHandler, FailParams
from taskstream.handlers.http import HttpHandler, HttpParams
from taskstream.handlers.kafka import KafkaParams
from taskstream.handlers.params import (
    Duration,
    HandlerParams,
    Invalid,
    InvalidParamsError,
    ParamProblem,
    params_problems,
    parse_params,
)
from taskstream.handlers.shell import ShellParams
from taskstream.handlers.testing import run_handler


class GreetParams(HandlerParams):
    who: str = Field(min_length=1, examples=["world"])
    times: int = Field(1, ge=1)
    pause: Duration | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    steps: list[str] = Field(default_factory=list, examples=[["wave"]])
    loud: bool = False
    mood: str = "calm"

    @model_validator(mode="after")
    def _loud_is_not_calm(self) -> Self:
        if self.loud and self.mood == "calm":
            raise Invalid('params.loud and params.mood "calm" exclude each other: drop one')
        return self


class Greet(TaskHandler[GreetParams]):
    name: ClassVar[str] = "greet"
    calls = 0

    def run(self, ctx: TaskContext[GreetParams]) -> TaskResult:
        Greet.calls += 1
        return TaskResult.success(", ".join([f"hello {ctx.args.who}"] * ctx.args.times))


def _said(params: dict[str, Any]) -> list[str]:
    return [problem.message for problem in params_problems(GreetParams, params)]


def test_the_model_is_the_type_argument_and_plain_handlers_have_none() -> None:
    assert Greet.params_model is GreetParams
    assert FailHandler.params_model is FailParams
    assert HttpHandler.params_model is HttpParams
    assert EchoHandler.params_model is None

    class Sub(Greet):  # a subclass keeps its parent's model
        name: ClassVar[str] = "sub"

    assert Sub.params_model is GreetParams


def test_the_handler_gets_the_parsed_object_and_the_raw_params() -> None:
    run = run_handler(Greet, {"who": "ada", "times": 2, "pause": "1m30s"})
    run.raise_error()
    assert run.output == "hello ada, hello ada"
    assert run.context.args == GreetParams(who="ada", times=2, pause=90.0)
    assert run.context.params == {"who": "ada", "times": 2, "pause": "1m30s"}


def test_params_that_do_not_fit_fail_permanently_without_calling_the_handler() -> None:
    before = Greet.calls
    run = run_handler(Greet, {"times": 0})
    assert isinstance(run.error, InvalidParamsError) and isinstance(run.error, PermanentError)
    assert Greet.calls == before
    assert str(run.error) == (
        'greet handler: params.who is required, e.g. "world"; '
        "params.times must be a whole number of at least 1, not 0"
    )
    assert [p.field for p in run.error.problems] == ["params.who", "params.times"]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, 'params.who is required, e.g. "world"'),
        ({"who": ""}, 'params.who must be a non-empty string, e.g. "world"'),
        ({"who": 5}, 'params.who must be a non-empty string, e.g. "world", not a number'),
        ({"who": "a", "times": "2"}, "params.times must be a whole number of at least 1, not '2'"),
        (
            {"who": "a", "times": True},
            "params.times must be a whole number of at least 1, not True",
        ),
        ({"who": "a", "times": 1.5}, "params.times must be a whole number of at least 1, not 1.5"),
        ({"who": "a", "pause": "soon"}, "params.pause is not a duration: invalid duration 'soon'"),
        ({"who": "a", "pause": 0}, 'params.pause must be longer than zero, such as "10s", not 0'),
        ({"who": "a", "pause": [1]}, 'params.pause must be a duration such as "10s", not a list'),
        ({"who": "a", "tags": ["x"]}, "params.tags must be an object, not a list"),
        (
            {"who": "a", "tags": {"k": 1}},
            "params.tags.k must be a string, not a number (quote numb",
        ),
        ({"who": "a", "steps": "wave"}, 'params.steps must be a list such as ["wave"], not a str'),
        ({"who": "a", "steps": ["ok", 2]}, "params.steps[1] must be a string, not a number"),
        ({"who": "a", "loud": "yes"}, "params.loud must be true or false, not a string"),
        ({"who": "a", "tims": 2}, "unknown parameter 'tims'; did you mean 'times'? (it takes "),
        ({"who": "a", "loud": True}, 'params.loud and params.mood "calm" exclude each other'),
    ],
)
def test_each_problem_names_the_field_and_what_to_write(
    params: dict[str, Any], message: str
) -> None:
    said = _said(params)
    assert len(said) == 1 and said[0].startswith(message), said


def test_an_unknown_name_lists_what_the_handler_takes() -> None:
    [problem] = params_problems(GreetParams, {"who": "a", "zzz": 1})
    assert problem == ParamProblem(
        "params.zzz",
        "unknown parameter 'zzz' (it takes loud, mood, pause, steps, tags, times, who)",
    )


def test_an_alias_is_the_name_a_task_writes() -> None:
    """``json`` shadows a BaseModel method, so the http model spells it ``json_body``."""
    parsed = parse_params("http", HttpParams, {"url": "http://x/", "json": {"a": 1}})
    assert parsed.json_body == {"a": 1}
    [problem] = params_problems(HttpParams, {"url": "http://x/", "jsn": {}})
    assert "did you mean 'json'?" in problem.message and "json_body" not in problem.message


def test_invalid_at_names_a_part_of_the_field() -> None:
    [reserved] = params_problems(
        KafkaParams, {"topic": "t", "headers": {"taskstream-task-id": "x"}}
    )
    assert reserved.field == "params.headers.taskstream-task-id"
    assert reserved.message == (
        "params.headers.taskstream-task-id is set by taskstream itself: remove it from params"
    )
    [program] = params_problems(ShellParams, {"command": ["ls", 1]})
    assert program.field == "params.command[1]"


def test_a_problem_not_translated_still_names_the_field() -> None:
    class Odd(HandlerParams):
        ratio: float = Field(le=1.0)
        level: int = Field(gt=0, lt=10, multiple_of=2)

    said = [p.message for p in params_problems(Odd, {"ratio": 2.0, "level": 12})]
    assert said == [
        "params.ratio must be at most 1, not 2.0",
        "params.level must be less than 10, not 12",
    ]
    [odd] = params_problems(Odd, {"ratio": 0.5, "level": 3})
    assert odd.message == "params.level is invalid: input should be a multiple of 2"


def test_params_that_fit_have_no_problems_and_are_frozen() -> None:
    assert params_problems(GreetParams, {"who": "a"}) == []
    parsed = parse_params("greet", GreetParams, {"who": "a"})
    with pytest.raises(ValueError, match="frozen"):
        parsed.who = "b"  # type: ignore[misc]


def test_times_ids_and_choices_are_read_from_their_json_strings() -> None:
    class Report(HandlerParams):
        day: date
        since: datetime
        request: uuid.UUID
        format: Literal["csv", "json"] = "csv"

    raw = {
        "day": "2030-01-02",
        "since": "2030-01-01T09:00:00+01:00",
        "request": "7b4f3c2e-0000-4000-8000-000000000001",
        "format": "json",
    }
    parsed = parse_params("report", Report, raw)
    assert parsed.day == date(2030, 1, 2) and parsed.since.utcoffset() == timedelta(hours=1)
    assert parsed.request == uuid.UUID(raw["request"]) and parsed.format == "json"
    [problem] = params_problems(Report, {**raw, "format": "xml"})
    assert problem.message == "params.format must be one of 'csv' or 'json', not 'xml'"
    [problem] = params_problems(Report, {**raw, "day": "someday"})
    assert problem.field == "params.day" and problem.message.startswith("params.day is invalid")
