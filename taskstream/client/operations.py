"""Each API operation as a :class:`Call`: what to send, and how to read the answer.

:class:`~taskstream.Client` and :class:`~taskstream.AsyncClient` send the same calls, one
synchronously and one with asyncio, so the API is described once, here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from taskstream.client.errors import ArgumentError, UnexpectedAnswer, refusal
from taskstream.schemas.alert_rules import AlertRule, Rule
from taskstream.schemas.api import (
    Accepted,
    BackfillAccepted,
    BatchResult,
    CancelAccepted,
    CreateTaskRequest,
    ExecutionLogs,
    HandlerInfo,
    HandlerList,
    PatchTaskRequest,
    RunAccepted,
    SchedulePreview,
    Task,
    TaskPage,
    WorkerList,
)
from taskstream.schemas.monitor_api import (
    AlertList,
    AlertRuleList,
    MonitorMetrics,
    RecentExecutions,
    TaskHistory,
    TaskStats,
)
from taskstream.schemas.recorded import recorded
from taskstream.schemas.task import Schedule

__all__ = ["Call", "Service", "TaskBody"]

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)
Service = Literal["core", "monitor"]
TaskBody = CreateTaskRequest | Mapping[str, Any]
"""A task definition: the request model, or the JSON body as a mapping."""
Params = Mapping[str, str | int | bool]


@dataclass(frozen=True)
class Call(Generic[T]):
    """One request, and the function that turns its answer into ``T``."""

    service: Service
    method: str
    path: str
    read: Callable[[httpx.Response], T]
    params: Params = field(default_factory=dict)
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    read_on_error: frozenset[int] = frozenset()
    """Error statuses whose body is still the answer (a batch that wrote nothing)."""
    retry: bool = True
    """Safe to send again after a 503 or a refused connection (not a create or a run, which
    would then be written twice: see the README's Python client)."""

    def answer(self, response: httpx.Response) -> T:
        """The answer's value; an error status raises its :class:`RequestRefused`."""
        if response.is_error and response.status_code not in self.read_on_error:
            raise refusal(response, self.service)
        try:
            return self.read(response)
        except (ValidationError, ValueError) as exc:
            where = f"{self.method} {self.path} ({self.service})"
            raise UnexpectedAnswer(
                f"{where} answered {response.status_code} with a body the client cannot read "
                f"({exc.__class__.__name__}): is the URL a taskstream {self.service} of this "
                "version?"
            ) from None


def _model(model: type[M]) -> Callable[[httpx.Response], M]:
    def read(response: httpx.Response) -> M:
        with recorded():  # a view shows what is stored: admission rules are not re-applied
            return model.model_validate_json(response.content)

    return read


def _task_or_accepted(response: httpx.Response) -> Task | Accepted:
    if response.status_code == 202:
        return _model(Accepted)(response)
    return _model(Task)(response)


def _nothing(response: httpx.Response) -> None:
    return None


def _text(response: httpx.Response) -> str:
    return response.text


def _rule_list(response: httpx.Response) -> list[AlertRule]:
    return _model(AlertRuleList)(response).items


def _task_path(task_id: str, action: str = "") -> str:
    path = f"/api/tasks/{quote(task_id, safe='')}"
    return f"{path}/{action}" if action else path


def _body(value: BaseModel | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_unset=True)
    return dict(value)


def _versioned(body: dict[str, Any], expected_version: int | None) -> dict[str, Any]:
    return body if expected_version is None else {**body, "expected_version": expected_version}


def _given(**params: str | int | bool | None) -> dict[str, str | int | bool]:
    return {name: value for name, value in params.items() if value is not None}


# -- the core: tasks ---------------------------------------------------------------------


def create_task(task: TaskBody) -> Call[Task | Accepted]:
    return Call("core", "POST", "/api/tasks", _task_or_accepted, body=_body(task), retry=False)


def create_tasks(tasks: list[TaskBody]) -> Call[BatchResult]:
    body = [_body(task) for task in tasks]
    return Call(
        "core",
        "POST",
        "/api/tasks/batch",
        _model(BatchResult),
        body=body,
        read_on_error=frozenset({422, 503}),  # nothing written: still one item per task
        retry=False,
    )


def get_task(task_id: str) -> Call[Task]:
    return Call("core", "GET", _task_path(task_id), _model(Task))


def list_tasks(
    page: int, size: int, status: str | None, handler: str | None, queue: str | None
) -> Call[TaskPage]:
    params = _given(page=page, size=size, status=status, handler=handler, queue=queue)
    return Call("core", "GET", "/api/tasks", _model(TaskPage), params=params)


def replace_task(
    task_id: str, task: TaskBody, expected_version: int | None
) -> Call[Task | Accepted]:
    body = _versioned(_body(task), expected_version)
    return Call("core", "PUT", _task_path(task_id), _task_or_accepted, body=body)


def patch_task(
    task_id: str, changes: PatchTaskRequest | Mapping[str, Any], expected_version: int | None
) -> Call[Task | Accepted]:
    body = _versioned(_body(changes), expected_version)
    return Call("core", "PATCH", _task_path(task_id), _task_or_accepted, body=body)


def set_status(
    task_id: str, status: Literal["active", "paused"], expected_version: int | None
) -> Call[Task | Accepted]:
    body = _versioned({"status": status}, expected_version)
    return Call("core", "PUT", _task_path(task_id, "status"), _task_or_accepted, body=body)


def delete_task(task_id: str, expected_version: int | None) -> Call[None]:
    headers = {} if expected_version is None else {"If-Match": f'"{expected_version}"'}
    return Call("core", "DELETE", _task_path(task_id), _nothing, headers=headers)


def run_task(task_id: str) -> Call[RunAccepted]:
    return Call("core", "POST", _task_path(task_id, "run"), _model(RunAccepted), retry=False)


def cancel(task_id: str, execution_id: str | None) -> Call[CancelAccepted]:
    params = _given(execution_id=execution_id)
    return Call("core", "POST", _task_path(task_id, "cancel"), _model(CancelAccepted), params)


# -- the core: executions and executors --------------------------------------------------


def _logs_path(execution_id: str) -> str:
    return f"/api/executions/{quote(execution_id, safe='')}/logs"


def execution_logs(execution_id: str) -> Call[ExecutionLogs]:
    return Call("core", "GET", _logs_path(execution_id), _model(ExecutionLogs))


def execution_log_text(execution_id: str) -> Call[str]:
    return Call("core", "GET", _logs_path(execution_id), _text, params={"format": "text"})


def next_slots(task_id: str, count: int) -> Call[SchedulePreview]:
    path = f"{_task_path(task_id)}/next"
    return Call("core", "GET", path, _model(SchedulePreview), params={"count": count})


def preview_schedule(
    schedule: Schedule | Mapping[str, Any], count: int, after: datetime | None
) -> Call[SchedulePreview]:
    body: dict[str, Any] = {"schedule": _body(schedule), "count": count}
    if after is not None:
        body["after"] = after.isoformat()
    return Call("core", "POST", "/api/schedules/preview", _model(SchedulePreview), body=body)


def backfill(
    task_id: str, start: datetime, end: datetime, overlap: str, rate: float
) -> Call[BackfillAccepted]:
    body = {"start": start.isoformat(), "end": end.isoformat(), "overlap": overlap, "rate": rate}
    path = f"{_task_path(task_id)}/backfill"
    return Call("core", "POST", path, _model(BackfillAccepted), body=body, retry=False)


def cancel_backfill(task_id: str) -> Call[BackfillAccepted]:
    path = f"{_task_path(task_id)}/backfill"
    return Call("core", "DELETE", path, _model(BackfillAccepted), retry=False)


def handlers() -> Call[HandlerList]:
    return Call("core", "GET", "/api/handlers", _model(HandlerList))


def handler(name: str) -> Call[HandlerInfo]:
    path = f"/api/handlers/{quote(name, safe='')}"
    return Call("core", "GET", path, _model(HandlerInfo))


def workers(live: bool | None) -> Call[WorkerList]:
    params = _given(live=None if live is None else str(live).lower())
    return Call("core", "GET", "/api/workers", _model(WorkerList), params=params)


# -- the monitor -------------------------------------------------------------------------


def task_history(task_id: str, page: int, size: int) -> Call[TaskHistory]:
    path = f"/api/monitor/tasks/{quote(task_id, safe='')}/executions"
    params = {"page": page, "size": size}
    return Call("monitor", "GET", path, _model(TaskHistory), params=params)


def task_stats(task_id: str) -> Call[TaskStats]:
    path = f"/api/monitor/tasks/{quote(task_id, safe='')}/stats"
    return Call("monitor", "GET", path, _model(TaskStats))


def recent_executions(limit: int, status: str | None) -> Call[RecentExecutions]:
    params = _given(limit=limit, status=status)
    return Call("monitor", "GET", "/api/monitor/executions", _model(RecentExecutions), params)


def monitor_metrics(minutes: int) -> Call[MonitorMetrics]:
    params = {"minutes": minutes}
    return Call("monitor", "GET", "/api/monitor/metrics", _model(MonitorMetrics), params)


def alerts() -> Call[AlertList]:
    return Call("monitor", "GET", "/api/alerts", _model(AlertList))


def alert_rules() -> Call[list[AlertRule]]:
    return Call("monitor", "GET", "/api/alerts/rules", _rule_list)


def _rule_path(rule_id: str) -> str:
    return f"/api/alerts/rules/{quote(rule_id, safe='')}"


def alert_rule(rule_id: str) -> Call[AlertRule]:
    return Call("monitor", "GET", _rule_path(rule_id), _model(AlertRule))


def put_alert_rule(rule: Rule | Mapping[str, Any]) -> Call[AlertRule]:
    body = rule.model_dump(mode="json") if isinstance(rule, BaseModel) else dict(rule)
    rule_id = body.get("id")
    if not isinstance(rule_id, str) or not rule_id:
        raise ArgumentError("a rule needs an 'id', e.g. {'id': 'payments-failing', ...}")
    return Call("monitor", "PUT", _rule_path(rule_id), _model(AlertRule), body=body)


def delete_alert_rule(rule_id: str) -> Call[None]:
    return Call("monitor", "DELETE", _rule_path(rule_id), _nothing)
