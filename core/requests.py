"""What ``POST /api/tasks`` accepts: our model, and the seed's Spring-style body.

Our model uses snake_case names (camelCase aliases are accepted). The seed's body,
``{"name", "cronExpression", "handlerClass", "parameters", "maxRetries"}``, maps onto
it: ``cronExpression`` -> ``schedule.cron``, ``handlerClass`` -> ``handler``,
``parameters`` (an object, or a string holding one) -> ``params``, ``maxRetries`` ->
``retry.max_attempts = maxRetries + 1``.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from taskstream.schemas import (
    Duration,
    MisfirePolicy,
    OverlapPolicy,
    Priority,
    RetryPolicy,
    Schedule,
    TaskSpec,
)
from taskstream.schemas.errors import ScheduleError
from taskstream.schemas.schedules import check_schedule

__all__ = [
    "MAX_VERSION",
    "CreateTaskRequest",
    "PatchTaskRequest",
    "ReplaceTaskRequest",
    "StatusRequest",
    "admission_errors",
]

MAX_VERSION = 2**53 - 1
"""The largest task version a request may name: within the store's 64-bit integers and
exact as a JSON number in every language (2^53 - 1, JavaScript's safe integer limit).
2^63 - 1 was not: a client that writes numbers as doubles sends 2^63, over the limit."""


class _Request(BaseModel):
    model_config = ConfigDict(
        extra="forbid", populate_by_name=True, alias_generator=to_camel, frozen=True
    )


class CreateTaskRequest(_Request):
    """A new task. Exactly one schedule: ``schedule`` or the seed's ``cronExpression``."""

    name: str
    schedule: Schedule
    handler: str
    params: dict[str, Any] = Field(default_factory=dict)
    priority: Priority = Priority.MEDIUM
    queue: str = "default"
    timeout: Duration | None = None
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    misfire: MisfirePolicy = MisfirePolicy.FIRE_ONCE
    misfire_grace: Duration | None = None
    catch_up_window: Duration | None = None
    overlap: OverlapPolicy = OverlapPolicy.ALLOW

    @model_validator(mode="before")
    @classmethod
    def _from_seed_body(cls, body: Any) -> Any:
        return _normalise_body(body)

    def to_spec(self, handler: str) -> TaskSpec:
        """The task definition, with ``handler`` in its registered (canonical) name."""
        fields = self.model_dump(exclude={"handler", "expected_version"}, exclude_none=True)
        return TaskSpec.model_validate({**fields, "handler": handler})


class ReplaceTaskRequest(CreateTaskRequest):
    """``PUT /api/tasks/{id}``: a whole new definition, optionally conditional."""

    expected_version: int | None = Field(default=None, ge=1, le=MAX_VERSION)


class PatchTaskRequest(_Request):
    """``PATCH /api/tasks/{id}``: the top-level fields given replace the current ones."""

    name: str | None = None
    schedule: Schedule | None = None
    handler: str | None = None
    params: dict[str, Any] | None = None
    priority: Priority | None = None
    queue: str | None = None
    timeout: Duration | None = None
    retry: RetryPolicy | None = None
    misfire: MisfirePolicy | None = None
    misfire_grace: Duration | None = None
    catch_up_window: Duration | None = None
    overlap: OverlapPolicy | None = None
    expected_version: int | None = Field(default=None, ge=1, le=MAX_VERSION)

    @model_validator(mode="before")
    @classmethod
    def _from_seed_body(cls, body: Any) -> Any:
        return _normalise_body(body)

    def merged(self, current: TaskSpec) -> dict[str, Any]:
        """The current definition with this patch applied (validate with TaskSpec)."""
        patch = self.model_dump(exclude_unset=True, exclude={"expected_version"}, mode="json")
        return {**current.model_dump(mode="json"), **patch}


class StatusRequest(_Request):
    """``PUT /api/tasks/{id}/status``: pause or resume."""

    status: str = Field(pattern="^(active|paused)$")
    expected_version: int | None = Field(default=None, ge=1, le=MAX_VERSION)


def admission_errors(
    spec: TaskSpec, *, now: datetime, min_interval: timedelta, schedule_changed: bool = True
) -> list[dict[str, Any]]:
    """Why the API refuses to write ``spec`` now, one entry per field (empty: admitted).

    What the event model cannot say, because it depends on the time of the write: the
    schedule must fire after ``now``, no closer than ``min_interval``, computed by the
    scheduler's own function (checked when the schedule is new or changed, so a change of
    another field of a finished one-shot task is still taken); and a ``timeout`` is more
    than zero.
    """
    errors: list[dict[str, Any]] = []
    if spec.timeout is not None and spec.timeout <= timedelta(0):
        errors.append(
            {
                "field": "timeout",
                "message": "timeout must be more than 0s, e.g. '30s'; leave it out for the "
                "executor's default (TASKSTREAM_EXECUTOR_DEFAULT_TIMEOUT)",
                "type": "timeout_not_positive",
            }
        )
    if schedule_changed:
        try:
            check_schedule(spec.schedule, now=now, min_interval=min_interval)
        except ScheduleError as exc:
            errors.append({"field": exc.field, "message": str(exc), "type": "schedule"})
    return errors


def _normalise_body(body: Any) -> Any:
    """Map the seed's Spring-style names onto ours; nested camelCase to snake_case."""
    if not isinstance(body, dict):
        return body
    body = dict(body)
    if "cronExpression" in body:
        if "schedule" in body:
            raise ValueError("give either 'schedule' or 'cronExpression', not both")
        body["schedule"] = {"cron": body.pop("cronExpression")}
    if "handlerClass" in body:
        if "handler" in body:
            raise ValueError("give either 'handler' or 'handlerClass', not both")
        body["handler"] = body.pop("handlerClass")
    if "parameters" in body:
        if "params" in body:
            raise ValueError("give either 'params' or 'parameters', not both")
        body["params"] = _parameters(body.pop("parameters"))
    if "maxRetries" in body:
        retries = body.pop("maxRetries")
        retry = dict(body.get("retry") or {})
        if isinstance(retries, int) and not isinstance(retries, bool) and retries >= 0:
            retry["max_attempts"] = retries + 1
        else:
            raise ValueError("maxRetries must be a whole number >= 0")
        body["retry"] = retry
    for nested in ("schedule", "retry"):
        if isinstance(body.get(nested), dict):
            body[nested] = {_snake(key): value for key, value in body[nested].items()}
    return body


def _snake(name: str) -> str:
    return _SPECIAL_NAMES.get(name) or _CAMEL_HUMP.sub(r"_\1", name).lower()


_SPECIAL_NAMES = {"timeZone": "timezone"}

_CAMEL_HUMP = re.compile(r"(?<=[a-z0-9])([A-Z])")


def _parameters(value: Any) -> Any:
    if isinstance(value, str):
        try:
            value = orjson.loads(value) if value.strip() else {}
        except orjson.JSONDecodeError:
            raise ValueError(
                "parameters is a string but not a JSON object: pass an object"
            ) from None
    if not isinstance(value, dict):
        raise ValueError("parameters must be a JSON object (or a string holding one)")
    return value
