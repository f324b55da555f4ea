"""``example.report``: totals of a day's rows, grouped by one of their fields.

Params (:class:`ReportParams`)::

    {"title": "Daily sales",                   default "Daily report"
     "rows": [{"region": "eu", "amount": 120.5}, ...],   required: objects
     "group_by": "region",                    the field rows are grouped by; required
     "measure": "amount",                     the numeric field summed; required
     "top": 3}                                keep the N largest groups (default: all)

Output::

    {"title": "Daily sales", "day": "2026-11-23", "rows": 4, "total": 410.0,
     "groups": [{"key": "us", "total": 250.0, "count": 2, "share": 0.61}, ...]}

The params are a pydantic model, the handler's type argument: the core refuses a task
whose params do not fit it (422, naming the field) and the executor hands the parsed
object to ``run`` as ``ctx.args``. Params that do not fit a run fail it permanently (a
retry would fail the same way), with a message that names the param or the row to fix.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, ClassVar, Self

from pydantic import Field, model_validator

from taskstream.handlers import HandlerParams, Invalid, TaskContext, TaskHandler, TaskResult

__all__ = ["DailyReport", "ReportParams"]


class ReportParams(HandlerParams):
    """The params of ``example.report``."""

    title: str = Field("Daily report", min_length=1)
    rows: list[dict[str, Any]] = Field(examples=[[{"region": "eu", "amount": 120.5}]])
    group_by: str = Field(min_length=1, examples=["region"])
    """The field rows are grouped by."""
    measure: str = Field(min_length=1, examples=["amount"])
    """The numeric field summed."""
    top: int | None = Field(None, ge=1)
    """Keep the N largest groups (default: all)."""

    @model_validator(mode="after")
    def _rows_have_the_fields(self) -> Self:
        for index, row in enumerate(self.rows):
            if row.get(self.group_by) is None:
                raise Invalid(f"params.rows[{index}] has no {self.group_by!r} (params.group_by)")
            amount = row.get(self.measure)
            if isinstance(amount, bool) or not isinstance(amount, int | float):
                raise Invalid(
                    f"params.rows[{index}].{self.measure} must be a number, not {amount!r}"
                )
        return self


class DailyReport(TaskHandler[ReportParams]):
    """Sums ``params.measure`` of ``params.rows`` per ``params.group_by``."""

    name: ClassVar[str] = "example.report"

    def run(self, ctx: TaskContext[ReportParams]) -> TaskResult:
        params = ctx.args
        totals: dict[str, float] = defaultdict(float)
        counts: dict[str, int] = defaultdict(int)
        for row in params.rows:
            key = str(row[params.group_by])
            totals[key] += float(row[params.measure])
            counts[key] += 1
        grand_total = sum(totals.values())
        ranked = sorted(totals, key=lambda key: (-totals[key], key))[: params.top]
        groups = [
            {
                "key": key,
                "total": round(totals[key], 2),
                "count": counts[key],
                "share": round(totals[key] / grand_total, 4) if grand_total else 0.0,
            }
            for key in ranked
        ]
        day = ctx.scheduled_for.date().isoformat()
        ctx.logger.info(
            "built report %r for %s: %d rows in %d groups",
            params.title,
            day,
            len(params.rows),
            len(totals),
        )
        return TaskResult.success(
            {
                "title": params.title,
                "day": day,
                "rows": len(params.rows),
                "total": round(grand_total, 2),
                "groups": groups,
            }
        )
