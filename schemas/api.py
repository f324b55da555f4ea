"""The REST API's contract: what the core's routes take and what they answer.

Requests: ``POST /api/tasks`` takes our model or the seed's Spring-style body. Our model
uses snake_case names (camelCase aliases are accepted). The seed's body,
``{"name", "cronExpression", "handlerClass", "parameters", "maxRetries"}``, maps onto
it: ``cronExpression`` -> ``schedule.cron``, ``handlerClass`` -> ``handler``,
``parameters`` (an object, or a string holding one) -> ``params``, ``maxRetries`` ->
``retry.max_attempts = maxRetries + 1``.

Answers: the views (``Task``, ``TaskPage``, ``Accepted``, ...) are what the routes send,
declared in the OpenAPI document and returned by :mod:`taskstream.client`. A view reads
fields it does not know without failing (a newer server may add some), and reads a task's
spec as recorded (:mod:`taskstream.schemas.recorded`): it never re-applies admission rules.
"""

from __future__ import annotations

import re
from typing import Any, Literal

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from taskstream.schemas.durations import Duration
from taskstream.schemas.execution_log import LogLine
from taskstream.schemas.task import (
    MisfirePolicy,
    OverlapPolicy,
    Priority,
    RetryPolicy,
    Schedule,
    TaskSpec,
    TaskStatus,
)
from taskstream.schemas.workers import WorkerHeartbeat

__all__ = [
    "MAX_BATCH",
    "MAX_VERSION",
    "Accepted",
    "BackfillAccepted",
    "BackfillProgress",
    "BackfillRequest",
    "BatchItem",
    "BatchResult",
    "CancelAccepted",
    "CreateTaskRequest",
    "ErrorBody",
    "ExecutionCounts",
    "ExecutionLogRun",
    "ExecutionLogs",
    "FieldError",
    "HandlerInfo",
    "HandlerList",
    "Health",
    "HealthComponent",
    "PatchTaskRequest",
    "PreviewRequest",
    "PreviewSlot",
    "ReplaceTaskRequest",
    "RunAccepted",
    "SchedulePreview",
    "StatusRequest",
    "Task",
    "TaskPage",
    "Worker",
    "WorkerList",
]

MAX_BATCH = 1000
"""The most tasks one ``POST /api/tasks/batch`` takes."""
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


class BackfillRequest(_Request):
    """``POST /api/tasks/{id}/backfill``: run the task's schedule over a past range."""

    start: AwareDatetime
    end: AwareDatetime
    """The last instant of the range (a slot at ``end`` is in it); not after now."""
    overlap: Literal["allow", "forbid"] = "allow"
    """``forbid``: a slot starts only once nothing of the task runs."""
    rate: float = Field(default=1.0, gt=0, le=1000)
    """Slots started per second, at most."""


class PreviewRequest(_Request):
    """``POST /api/schedules/preview``: a schedule not created yet, and how many slots."""

    schedule: Schedule
    count: int = Field(default=10, ge=1, le=1000)
    after: AwareDatetime | None = None
    """Preview from this instant (default: now), as if the task were created then."""


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


# -- answers ---------------------------------------------------------------------------


class _View(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class FieldError(_View):
    """One wrong field of a refused request: where, what is wrong, and its kind."""

    field: str
    message: str
    type: str = "value_error"


class ErrorBody(_View):
    """Every 4xx and 5xx answer of every service: ``error`` (a code), ``message`` (what was
    wrong and how to fix it) and, for a refused body, ``errors`` (one per field). Some
    refusals add a field (``current_version`` on a 409, ``limit_bytes`` on a 413)."""

    model_config = ConfigDict(frozen=True, extra="allow")

    error: str
    message: str
    errors: list[FieldError] = Field(default_factory=list)


class ExecutionCounts(_View):
    scheduled: int = 0
    succeeded: int = 0
    failed: int = 0
    skipped: int = 0


class BackfillAccepted(_View):
    """The backfill is on the log: its id and how many slots it runs."""

    task_id: str
    backfill_id: str
    total: int
    first_slot: AwareDatetime
    state: Literal["running", "cancelled"] = "running"


class BackfillProgress(_View):
    """A task's last backfill: its range, how many of its slots fired, and its state."""

    id: str
    start: AwareDatetime
    end: AwareDatetime
    total: int
    fired: int
    state: Literal["running", "completed", "cancelled"]


class Task(TaskSpec):
    """A task as ``GET /api/tasks/{id}`` shows it: its definition and its state."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    id: str
    status: TaskStatus
    version: int = Field(ge=1)
    created_at: AwareDatetime
    updated_at: AwareDatetime
    last_scheduled_for: AwareDatetime | None = None
    last_execution_id: str | None = None
    last_status: str | None = None
    quarantined: dict[str, Any] | None = None
    """Why a component set the task aside (``component``, ``error_type``, ``reason``...)."""
    executions: ExecutionCounts = Field(default_factory=ExecutionCounts)
    backfill: BackfillProgress | None = None
    """Its last backfill (``POST /api/tasks/{id}/backfill``), if it had one."""
    warnings: list[str] = Field(default_factory=list)
    """Why the task may not run as written (e.g. no live executor serves its handler)."""


class TaskPage(_View):
    """``GET /api/tasks``: one page of tasks, and how many match in all."""

    items: list[Task]
    page: int
    size: int
    total: int


class Accepted(_View):
    """A 202: the change is on the log, but this core's store did not show it in time.

    Read the task again (``GET /api/tasks/{id}``) to see it applied.
    """

    id: str
    status: Literal["accepted"] = "accepted"
    event_id: str | None = None
    warnings: list[str] = Field(default_factory=list)


class BatchItem(_View):
    """One task of a batch: written (``status`` 201 or 202, ``id``) or refused (``error``)."""

    index: int
    status: int
    id: str | None = None
    location: str | None = None
    warnings: list[str] = Field(default_factory=list)
    error: str | None = None
    message: str | None = None
    errors: list[FieldError] = Field(default_factory=list)

    @property
    def written(self) -> bool:
        return self.status in (201, 202)


class BatchResult(_View):
    """``POST /api/tasks/batch``: one item per task sent, in order."""

    items: list[BatchItem]
    created: int
    refused: int


class RunAccepted(_View):
    """``POST /api/tasks/{id}/run``: the run is requested; its execution id is known."""

    task_id: str
    execution_id: str
    requested_at: AwareDatetime


class CancelAccepted(_View):
    """``POST /api/tasks/{id}/cancel``: the request is on the log (``execution_id`` None:
    every unfinished execution of the task)."""

    task_id: str
    execution_id: str | None = None


class ExecutionLogRun(_View):
    """One run of an execution on one executor, and what its handler logged and printed."""

    run_id: str
    worker_id: str
    attempt: int
    first_sent_at: AwareDatetime
    complete: bool
    """The final chunk arrived: the run ended and nothing is missing."""
    dropped_lines: int = 0
    dropped_bytes: int = 0
    lines: list[LogLine] = Field(default_factory=list)


class ExecutionLogs(_View):
    """``GET /api/executions/{id}/logs``: every run of the execution kept, oldest first."""

    execution_id: str
    task_id: str
    runs: list[ExecutionLogRun]


class Worker(WorkerHeartbeat):
    """An executor as ``GET /api/workers`` shows it: its last heartbeat, and whether that is
    recent enough for it to count as live."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    live: bool
    last_seen_seconds: float


class WorkerList(_View):
    """``GET /api/workers``; ``ready``: the core has read the workers topic to its end."""

    items: list[Worker]
    ready: bool = True


class PreviewSlot(_View):
    """One upcoming slot of a schedule, as the scheduler will treat it."""

    scheduled_for: AwareDatetime
    """The slot in UTC: the execution's ``scheduled_for`` and the base of its id."""
    local: str
    """The same instant in the schedule's time zone (ISO 8601 with its offset)."""
    due_at: AwareDatetime | None
    """When it fires: the slot plus the task's jitter (None: a jitter, and no task yet)."""
    skipped: bool = False
    """A local time repeated when the clock went back: recorded as skipped (``dst``)."""


class SchedulePreview(_View):
    """``GET /api/tasks/{id}/next`` and ``POST /api/schedules/preview``."""

    task_id: str | None = None
    status: str | None = None
    """The task's status (a paused task's slots are skipped until it is resumed)."""
    timezone: str
    slots: list[PreviewSlot]
    note: str | None = None
    """Why there are fewer slots than asked, or why they will not run as shown."""


class HandlerInfo(_View):
    """A handler as ``GET /api/handlers`` shows it: what a task names, what it takes."""

    name: str
    """The name a task writes in ``handler``."""
    class_path: str
    """The class a task may name instead (the seed's ``handlerClass``)."""
    description: str
    """The first line of the class's docstring."""
    params_schema: dict[str, Any] | None
    """The JSON Schema of its params, checked at POST; None: it takes any JSON object."""
    queues: list[str]
    """The queues on which a live executor serves it now (empty: none does)."""


class HandlerList(_View):
    """``GET /api/handlers``: every handler installed where the core runs, by name."""

    items: list[HandlerInfo]
    workers_ready: bool = True
    """False while the core has not read the workers topic to its end (``queues`` partial)."""


class HealthComponent(_View):
    """One component of a service in ``/health``: its state, why, and its own details."""

    model_config = ConfigDict(frozen=True, extra="allow")

    state: str
    reason: str | None = None


class Health(_View):
    """``/health`` and ``/ready`` of every service: 200 when live (ready), else 503 with the
    one error shape's ``error`` and ``message`` beside these fields."""

    model_config = ConfigDict(frozen=True, extra="allow")

    status: Literal["ok", "failing"]
    state: str
    service: str
    components: dict[str, HealthComponent]
