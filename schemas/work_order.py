"""The work order: what the scheduler puts on an execution topic for an executor."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, ClassVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from taskstream.schemas.durations import Duration
from taskstream.schemas.task import Priority, RetryPolicy

__all__ = ["WorkOrder"]


class WorkOrder(BaseModel):
    """One execution to run: a snapshot of the task, so the executor needs no lookup."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    TYPE: ClassVar[str] = "WorkOrder"
    VERSION: ClassVar[int] = 1

    execution_id: str
    task_id: str
    task_name: str
    handler: str
    params: dict[str, Any] = Field(default_factory=dict)
    attempt: int = Field(ge=1)
    scheduled_for: AwareDatetime
    priority: Priority
    queue: str
    timeout: Duration | None = None
    retry: RetryPolicy = Field(default_factory=RetryPolicy)

    def deadline_after(self, started: float, default: timedelta) -> float:
        """The monotonic deadline of a run that started at ``started`` (monotonic)."""
        return started + (self.timeout or default).total_seconds()
