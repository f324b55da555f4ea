"""``/api/tasks/{id}/backfill``: run a task's schedule over a past range, paced; cancel it.

The request is one event, ``BackfillRequested``, with the range's first slot and its
count; the scheduler that owns the task fires each slot as a durable timer with ids of
its own (:func:`taskstream.core.aggregate.backfill_run_key`) and writes the next step
with each fire, so a backfill goes on across failover. Its progress is the task's
``backfill`` (``GET /api/tasks/{id}``).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Path
from fastapi.responses import JSONResponse, Response

from taskstream.core.http_errors import error_responses
from taskstream.core.openapi import answers
from taskstream.core.refusals import Refusal, invalid_field
from taskstream.core.routes.common import UUID, api_router
from taskstream.core.task_writes import CHANGES, TaskWrites, stored_spec
from taskstream.schemas import (
    BackfillFinished,
    BackfillOverlap,
    BackfillRequested,
    BackfillState,
    Event,
    Schedule,
)
from taskstream.schemas.api import BackfillAccepted, BackfillRequest
from taskstream.schemas.schedules import backfill_slot

__all__ = ["MAX_BACKFILL_SLOTS", "backfills_router"]

MAX_BACKFILL_SLOTS = 10_000
"""The most slots one backfill runs (split a longer range into several)."""
_TICK = timedelta(microseconds=1)


def backfills_router(writes: TaskWrites) -> APIRouter:
    router = api_router()

    @router.post(
        "/api/tasks/{task_id}/backfill",
        status_code=202,
        summary="Run the task's schedule over a past range, paced",
        responses=error_responses(
            400, 401, 404, 409, 413, 422, 503, also=answers((202, BackfillAccepted, "on the log"))
        ),
    )
    async def backfill(
        body: BackfillRequest, task_id: str = Path(json_schema_extra=UUID)
    ) -> Response:
        row = writes.live_task(task_id)
        running = row.backfill is not None and row.backfill["state"] == "running"
        if running:
            assert row.backfill is not None
            raise Refusal(
                409,
                "backfill_running",
                f"task {task_id!r} has a backfill running ({row.backfill['fired']} of "
                f"{row.backfill['total']} slots fired): wait for it, or cancel it with "
                f"DELETE /api/tasks/{task_id}/backfill",
                backfill_id=row.backfill["id"],
            )
        start, end = body.start.astimezone(UTC), body.end.astimezone(UTC)
        if end <= start:
            raise invalid_field("end", "end must be after start", "backfill_range")
        if end > datetime.now(UTC):
            raise invalid_field(
                "end",
                "end is in the future: the schedule fires those slots itself; end the range "
                "at or before now",
                "backfill_range",
            )
        schedule = stored_spec(row).schedule
        anchor = row.anchor.replace(tzinfo=UTC) if row.anchor.tzinfo is None else row.anchor
        slots = _slots(schedule, anchor, start, end)
        if not slots:
            raise invalid_field(
                "start",
                "no slot of the task's schedule falls between start and end"
                + (" (a one-shot has none to backfill)" if schedule.at is not None else ""),
                "backfill_range",
            )
        if len(slots) > MAX_BACKFILL_SLOTS:
            raise invalid_field(
                "end",
                f"the range holds more than {MAX_BACKFILL_SLOTS} slots: split it into "
                "several backfills, one after the other",
                "backfill_range",
            )
        requested = BackfillRequested(
            backfill_id=str(uuid.uuid4()),
            start=start,
            end=end,
            first_slot=slots[0],
            total=len(slots),
            overlap=BackfillOverlap(body.overlap),
            rate=body.rate,
        )
        await writes.publish(Event.create(task_id, requested))
        CHANGES.labels("backfill").inc()
        accepted = BackfillAccepted(
            task_id=task_id,
            backfill_id=requested.backfill_id,
            total=requested.total,
            first_slot=requested.first_slot,
        )
        return JSONResponse(
            accepted.model_dump(mode="json"),
            status_code=202,
            headers={"Location": f"/api/tasks/{task_id}"},
        )

    @router.delete(
        "/api/tasks/{task_id}/backfill",
        status_code=202,
        summary="Cancel the task's running backfill (slots fired already still run)",
        responses=error_responses(
            401, 404, 409, 503, also=answers((202, BackfillAccepted, "the cancel is on the log"))
        ),
    )
    async def cancel_backfill(task_id: str = Path(json_schema_extra=UUID)) -> Response:
        row = writes.live_task(task_id)
        progress = row.backfill
        if progress is None or progress["state"] != "running":
            raise Refusal(
                409, "no_backfill", f"task {task_id!r} has no backfill running: nothing to cancel"
            )
        finished = BackfillFinished(
            backfill_id=progress["id"], state=BackfillState.CANCELLED, fired=progress["fired"]
        )
        await writes.publish(Event.create(task_id, finished))
        CHANGES.labels("backfill_cancel").inc()
        accepted = BackfillAccepted(
            task_id=task_id,
            backfill_id=progress["id"],
            total=progress["total"],
            first_slot=progress["start"],
            state="cancelled",
        )
        return JSONResponse(accepted.model_dump(mode="json"), status_code=202)

    return router


def _slots(schedule: Schedule, anchor: datetime, start: datetime, end: datetime) -> list[datetime]:
    """The schedule's slots in ``[start, end]``, at most one more than the limit."""
    found: list[datetime] = []
    slot = backfill_slot(schedule, anchor=anchor, after=start - _TICK)
    while slot is not None and slot <= end and len(found) <= MAX_BACKFILL_SLOTS:
        found.append(slot)
        slot = backfill_slot(schedule, anchor=anchor, after=slot)
    return found
