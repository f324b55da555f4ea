"""The monitor's API contract: what its routes answer (``/api/monitor/*``, ``/api/alerts``).

Like :mod:`taskstream.schemas.api`, a view reads fields it does not know without failing.
"""

from __future__ import annotations

from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from taskstream.schemas.alert_rules import AlertRule
from taskstream.schemas.alerts import AlertNotification, AlertState

__all__ = [
    "AlertList",
    "AlertRuleList",
    "ExecutionRecord",
    "MetricWindow",
    "MonitorMetrics",
    "RecentExecutions",
    "TaskHistory",
    "TaskStats",
]


class _View(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class ExecutionRecord(_View):
    """One execution as the monitor folded it from ``task-events``; its fields fill in as
    its events arrive (``status`` is the furthest it got: scheduled, running, an ending)."""

    execution_id: str
    task_id: str
    status: str | None = None
    attempt: int | None = None
    scheduled_for: AwareDatetime | None = None
    fired_at: AwareDatetime | None = None
    started_at: AwareDatetime | None = None
    finished_at: AwareDatetime | None = None
    duration_seconds: float | None = None
    queue: str | None = None
    priority: str | None = None
    handler: str | None = None
    worker_id: str | None = None
    output: Any = None
    error_type: str | None = None
    error_message: str | None = None
    retryable: bool | None = None
    dead_letter_reason: str | None = None


class TaskHistory(_View):
    """``GET /api/monitor/tasks/{id}/executions``: a page of the task's last executions."""

    task_id: str
    items: list[ExecutionRecord]
    page: int
    size: int
    total: int


class TaskStats(_View):
    """``GET /api/monitor/tasks/{id}/stats``: counts by ending, the last outcome and the
    duration quantiles (``count``, ``p50``, ``p95``, ``p99``, ``max`` seconds)."""

    task_id: str
    counts: dict[str, int]
    last_status: str | None = None
    last_finished_at: AwareDatetime | None = None
    duration_seconds: dict[str, float | None] = Field(default_factory=dict)


class RecentExecutions(_View):
    """``GET /api/monitor/executions``: finished executions of every task, newest first."""

    items: list[ExecutionRecord]


class MetricWindow(_View):
    """One minute: executions that finished in it, by ending, and their durations."""

    model_config = ConfigDict(frozen=True, extra="allow")  # one count per ending

    start: AwareDatetime
    finished: int
    duration_seconds: dict[str, float | None] | None = None

    def count(self, ending: str) -> int:
        """Executions of the minute that ended so (``succeeded``, ``failed``...)."""
        value = (self.model_extra or {}).get(ending, 0)
        return int(value)


class MonitorMetrics(_View):
    """``GET /api/monitor/metrics``: totals, one window per minute (oldest first), lag."""

    generated_at: AwareDatetime
    totals: dict[str, int]
    windows: list[MetricWindow]
    lag: dict[str, int | None]


class AlertList(_View):
    """``GET /api/alerts``: the alerts firing now (latest first) and the recent notices."""

    active: list[AlertState]
    recent: list[AlertNotification]


class AlertRuleList(_View):
    """``GET /api/alerts/rules``: every rule, from the rules file and the API."""

    items: list[AlertRule]
