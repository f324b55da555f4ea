"""``example.report``: totals of a day's rows, grouped by one of their fields.

Params::

    {"title": "Daily sales",                   default "Daily report"
     "rows": [{"region": "eu", "amount": 120.5}, ...],   required: objects
     "group_by": "region",                    the field rows are grouped by; required
     "measure": "amount",                     the numeric field summed; required
     "top": 3}                                keep the N largest groups (default: all)

Output::

    {"title": "Daily sales", "day": "2026-11-23", "rows": 4, "total": 410.0,
     "groups": [{"key": "us", "total": 250.0, "count": 2, "share": 0.61}, ...]}

Bad params raise :class:`~taskstream.handlers.PermanentError` (a retry would fail the same way),
with a message that names the param or the row to fix.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any, ClassVar

from taskstream.handlers import PermanentError, TaskContext, TaskHandler, TaskResult

__all__ = ["DailyReport"]


class DailyReport(TaskHandler):
    """Sums ``params.measure`` of ``params.rows`` per ``params.group_by``."""

    name: ClassVar[str] = "example.report"

    def run(self, ctx: TaskContext) -> TaskResult:
        title = ctx.params.get("title", "Daily report")
        if not isinstance(title, str) or not title:
            raise PermanentError("example.report: params.title must be a non-empty string")
        group_by = _field(ctx.params, "group_by", '"region"')
        measure = _field(ctx.params, "measure", '"amount"')
        top = ctx.params.get("top")
        if top is not None and (isinstance(top, bool) or not isinstance(top, int) or top < 1):
            raise PermanentError(
                f"example.report: params.top must be a whole number of at least 1, not {top!r}"
            )
        rows = ctx.params.get("rows")
        if not isinstance(rows, list):
            raise PermanentError(
                "example.report: params.rows must be a list of objects, e.g. "
                '[{"region": "eu", "amount": 120.5}]'
            )

        totals: dict[str, float] = defaultdict(float)
        counts: dict[str, int] = defaultdict(int)
        for index, row in enumerate(rows):
            key, amount = _read_row(index, row, group_by, measure)
            totals[key] += amount
            counts[key] += 1
        grand_total = sum(totals.values())
        ranked = sorted(totals, key=lambda key: (-totals[key], key))[:top]
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
            "built report %r for %s: %d rows in %d groups", title, day, len(rows), len(totals)
        )
        return TaskResult.success(
            {
                "title": title,
                "day": day,
                "rows": len(rows),
                "total": round(grand_total, 2),
                "groups": groups,
            }
        )


def _field(params: Mapping[str, Any], name: str, example: str) -> str:
    value = params.get(name)
    if not isinstance(value, str) or not value:
        raise PermanentError(
            f"example.report: params.{name} must name a field of the rows, e.g. {example}"
        )
    return value


def _read_row(index: int, row: Any, group_by: str, measure: str) -> tuple[str, float]:
    if not isinstance(row, Mapping):
        raise PermanentError(f"example.report: params.rows[{index}] must be an object")
    key = row.get(group_by)
    if key is None:
        raise PermanentError(
            f"example.report: params.rows[{index}] has no {group_by!r} (params.group_by)"
        )
    amount = row.get(measure)
    if isinstance(amount, bool) or not isinstance(amount, int | float):
        raise PermanentError(
            f"example.report: params.rows[{index}].{measure} must be a number, not {amount!r}"
        )
    return str(key), float(amount)
