"""Previews of schedules: a task's next slots, and those of a schedule not created yet.

Both come from :func:`taskstream.schemas.schedules.upcoming_slots`, the scheduler's own
slot and jitter functions, so they are what the scheduler fires (DST changes included)
unless a misfire, a pause or an overlap policy intervenes.
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Path, Query
from fastapi.responses import JSONResponse, Response

from taskstream.core.aggregate import TaskStatus
from taskstream.core.http_errors import error_responses
from taskstream.core.openapi import answers
from taskstream.core.refusals import invalid_field
from taskstream.core.routes.common import UUID, api_router
from taskstream.core.task_writes import TaskWrites, stored_spec
from taskstream.schemas import Schedule
from taskstream.schemas.api import PreviewRequest, PreviewSlot, SchedulePreview
from taskstream.schemas.errors import ScheduleError
from taskstream.schemas.schedules import check_schedule, upcoming_slots

__all__ = ["MAX_PREVIEW", "schedules_router"]

MAX_PREVIEW = 1000
"""The most slots one preview lists."""

_NOT_SCHEDULED = {
    TaskStatus.COMPLETED.value: "the task has completed: its schedule has no further slot",
    TaskStatus.DELETED.value: "the task was deleted",
    TaskStatus.QUARANTINED.value: "the task is quarantined and fires nothing until it is "
    "resumed (PUT /api/tasks/{id}/status)",
}


def schedules_router(writes: TaskWrites) -> APIRouter:
    router = api_router()
    settings = writes.settings

    @router.get(
        "/api/tasks/{task_id}/next",
        summary="A task's next slots, as the scheduler will fire them",
        responses=error_responses(
            401, 404, 422, also=answers((200, SchedulePreview, "the next slots"))
        ),
    )
    def next_slots(
        task_id: str = Path(json_schema_extra=UUID),
        count: int = Query(10, ge=1, le=MAX_PREVIEW),
    ) -> Response:
        row = writes.live_task(task_id)
        schedule = stored_spec(row).schedule
        preview = SchedulePreview(
            task_id=task_id, status=row.status, timezone=schedule.timezone, slots=[]
        )
        note = _NOT_SCHEDULED.get(row.status)
        if note is None:
            now = datetime.now(UTC)
            last = _utc(row.last_slot) if row.last_slot is not None else None
            after = now if last is None or last < now else last
            preview = _preview(preview, schedule, _utc(row.anchor), after, count, task_id)
            if row.status == TaskStatus.PAUSED.value:
                note = "the task is paused: these slots are skipped until it is resumed"
        return JSONResponse(
            preview.model_copy(update={"note": note or preview.note}).model_dump(mode="json")
        )

    @router.post(
        "/api/schedules/preview",
        summary="The first slots of a schedule not created yet (the create's checks apply)",
        responses=error_responses(
            400, 401, 422, also=answers((200, SchedulePreview, "the first slots"))
        ),
    )
    def preview_schedule(body: PreviewRequest) -> Response:
        after = body.after.astimezone(UTC) if body.after is not None else datetime.now(UTC)
        try:
            check_schedule(body.schedule, now=after, min_interval=settings.min_interval)
        except ScheduleError as exc:
            raise invalid_field(exc.field, str(exc), "schedule") from None
        empty = SchedulePreview(timezone=body.schedule.timezone, slots=[])
        preview = _preview(empty, body.schedule, after, after, body.count, None)
        if body.schedule.jitter and preview.note is None:
            preview = preview.model_copy(
                update={
                    "note": "each slot fires up to the jitter later, by an offset fixed "
                    "per task and slot: GET /api/tasks/{id}/next shows it once the task exists"
                }
            )
        return JSONResponse(preview.model_dump(mode="json"))

    return router


def _preview(
    preview: SchedulePreview,
    schedule: Schedule,
    anchor: datetime,
    after: datetime,
    count: int,
    task_id: str | None,
) -> SchedulePreview:
    upcoming = upcoming_slots(schedule, anchor=anchor, after=after, count=count, task_id=task_id)
    zone = schedule.zone
    slots = [
        PreviewSlot(
            scheduled_for=slot.at,
            local=slot.at.astimezone(zone).isoformat(),
            due_at=slot.due_at,
            skipped=slot.skipped,
        )
        for slot in upcoming
    ]
    fires = sum(not slot.skipped for slot in slots)
    note = None if fires == count else f"the schedule has {fires} more slot(s): it ends"
    return preview.model_copy(update={"slots": slots, "note": note})


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
