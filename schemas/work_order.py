"""The work order: what the scheduler puts on an execution topic for an executor."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, ClassVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from taskstream.schemas.durations import Duration
from taskstream.schemas.task import Priority, RetryPolicy

__all__ = ["WorkOrder", "WorkOrderV1"]


class WorkOrderV1(BaseModel):
    """One execution to run: a snapshot of the task, so the executor needs no lookup."""

    # v1 as published (its JSON Schema); v1 orders are read as WorkOrder (v2)
    model_config = ConfigDict(frozen=True, extra="forbid", title="WorkOrder")

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


class WorkOrder(WorkOrderV1):
    """One execution to run: a snapshot of the task, so the executor needs no lookup.

    v2 added ``run_key``; a v1 order reads as v2 with ``run_key`` null, and a v2 order
    without one is written without the field, byte for byte a v1 order (so an executor
    of before v2 still runs every order the schedule fires).
    """

    VERSION: ClassVar[int] = 2

    run_key: str | None = Field(
        default=None,
        description=(
            "which run of the slot this is, beside the schedule's own ('backfill:<id>'); "
            "its retries keep it, so their ids stay its own (schemas.ids.execution_id)"
        ),
    )

    def deadline_after(self, started: float, default: timedelta) -> float:
        """The monotonic deadline of a run that started at ``started`` (monotonic)."""
        return started + (self.timeout or default).total_seconds()
