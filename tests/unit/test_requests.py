from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError

from taskstream.schemas.api import CreateTaskRequest

SEED_BODY = {
    "name": "sample-task",
    "cronExpression": "*/5 * * * * *",
    "handlerClass": "handlers.builtin.EchoHandler",
    "parameters": '{"key":"value"}',
    "maxRetries": 3,
}


def test_seed_body_maps_onto_the_model() -> None:
    request = CreateTaskRequest.model_validate(SEED_BODY)
    spec = request.to_spec("echo")
    assert spec.schedule.cron == "*/5 * * * * *"
    assert spec.handler == "echo"
    assert spec.params == {"key": "value"}
    assert spec.retry.max_attempts == 4


def test_seed_parameters_may_be_an_object() -> None:
    request = CreateTaskRequest.model_validate({**SEED_BODY, "parameters": {"batchSize": 100}})
    assert request.params == {"batchSize": 100}


def test_own_model_accepts_camel_case_aliases() -> None:
    request = CreateTaskRequest.model_validate(
        {
            "name": "n",
            "schedule": {"every": "30s", "timeZone": "Europe/Berlin"},
            "handler": "noop",
            "priority": "high",
            "timeout": "2m",
            "retry": {"maxAttempts": 5, "initialDelay": "2s", "maxDelay": "1m", "jitter": "0s"},
        }
    )
    spec = request.to_spec("noop")
    assert spec.schedule.timezone == "Europe/Berlin"
    assert spec.retry.max_attempts == 5
    assert spec.retry.initial_delay == timedelta(seconds=2)
    assert spec.timeout == timedelta(minutes=2)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**SEED_BODY, "parameters": "not json"}, None),
        ({**SEED_BODY, "maxRetries": -1}, None),
        ({**SEED_BODY, "cronExpression": "bad cron"}, "schedule.cron"),
        ({"name": "n", "schedule": {"every": "soon"}, "handler": "noop"}, "schedule.every"),
        ({"name": "n", "handler": "noop"}, "schedule"),
        ({"name": "n", "schedule": {"every": "1s"}, "handler": "noop", "bogus": 1}, "bogus"),
        (
            {"name": "n", "schedule": {"every": "1s"}, "handler": "noop", "priority": "urgent"},
            "priority",
        ),
    ],
)
def test_bad_bodies_name_the_field(body: dict[str, object], field: str | None) -> None:
    with pytest.raises(ValidationError) as caught:
        CreateTaskRequest.model_validate(body)
    if field is not None:
        locations = {".".join(str(p) for p in error["loc"]) for error in caught.value.errors()}
        assert field in locations
