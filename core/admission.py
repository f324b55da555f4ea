"""What the API admits beyond the models: rules that depend on the time of the write,
and on the handlers installed where the core runs.

The request models are the API's contract (:mod:`taskstream.schemas.api`).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel

from taskstream.handlers.params import params_problems
from taskstream.schemas import TaskSpec
from taskstream.schemas.errors import ScheduleError
from taskstream.schemas.schedules import check_schedule

__all__ = ["admission_errors", "params_errors"]


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


def params_errors(model: type[BaseModel], params: Any) -> list[dict[str, Any]]:
    """Why ``params`` do not fit a handler's params model, one entry per field."""
    return [
        {"field": problem.field, "message": problem.message, "type": "invalid_params"}
        for problem in params_problems(model, params)
    ]
