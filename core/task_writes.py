"""What every write of the API does: check, append one event, wait until the store shows it.

Changes are conditional on the task's version (the client's ``expected_version`` /
``If-Match``, or the version the API read): a stale one gets 409, and a change that
loses a race to a concurrent one is rejected by every consumer of the log alike, and
answered 409.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from concurrent.futures import Future
from datetime import UTC, datetime

from fastapi.responses import JSONResponse, Response
from prometheus_client import Counter

from taskstream.core.admission import admission_errors, params_errors
from taskstream.core.aggregate import TaskStatus
from taskstream.core.event_size import EventTooLarge
from taskstream.core.publisher import PublishError, confirmed
from taskstream.core.refusals import (
    Refusal,
    if_match_version,
    invalid,
    invalid_field,
    is_uuid,
    task_answer,
    warned,
    warnings_field,
)
from taskstream.core.runtime import CoreRuntime
from taskstream.core.store import TaskRow
from taskstream.core.workers import loading_message, unserved_message
from taskstream.handlers import UnknownHandlerError
from taskstream.infra.logs import fields
from taskstream.schemas import Event, EventData, TaskSpec, recorded

__all__ = ["CHANGES", "SUBMISSIONS", "TaskWrites", "moves", "settled", "settled_all", "stored_spec"]

logger = logging.getLogger("taskstream.core.api")

SUBMISSIONS = Counter("taskstream_task_submissions_total", "tasks accepted by the API")
CHANGES = Counter("taskstream_task_changes_total", "task changes accepted by the API", ["kind"])


class TaskWrites:
    """The checks and the append of the API's writes, over one :class:`CoreRuntime`."""

    def __init__(self, runtime: CoreRuntime) -> None:
        self.runtime = runtime
        self.settings = runtime.settings

    def check_spec(self, spec: TaskSpec, current: TaskSpec | None = None) -> TaskSpec:
        """``spec`` with its handler's canonical name, or 422 naming what is refused."""
        runtime, settings = self.runtime, self.settings
        refused = admission_errors(
            spec,
            now=datetime.now(UTC),
            min_interval=settings.min_interval,
            schedule_changed=current is None or current.schedule != spec.schedule,
        )
        if refused:
            raise invalid(refused)
        try:
            handler = runtime.registry.canonical_name(spec.handler)
            model = runtime.registry.resolve(spec.handler).params_model
        except UnknownHandlerError as exc:
            raise invalid_field("handler", str(exc), "unknown_handler") from None
        changed = current is None or (current.handler, current.params) != (handler, spec.params)
        if model is not None and changed and (wrong := params_errors(model, spec.params)):
            raise invalid(wrong)
        if spec.queue not in settings.queues:
            raise invalid_field(
                "queue",
                f"unknown queue {spec.queue!r}; this deployment serves {settings.queues}",
                "unknown_queue",
            )
        return spec if handler == spec.handler else spec.model_copy(update={"handler": handler})

    def served(self, spec: TaskSpec, task_id: str, *, introduced: bool = True) -> list[str]:
        """Warnings about ``spec``'s handler, or 422 if no live executor serves it.

        Only a write that introduces the handler on the queue (a create, or a change of
        either) is rejected; a change of other fields of such a task is warned about.
        """
        runtime, settings = self.runtime, self.settings
        if settings.unserved_handler == "ignore":
            return []
        logged = fields(task_id=task_id, action="unserved_handler")
        if not runtime.workers.ready:  # never reject on a partial view
            message = loading_message(spec.handler, spec.queue)
        else:
            found = unserved_message(spec.handler, spec.queue, runtime.workers.live())
            if found is None:
                return []
            message = found
            if settings.unserved_handler == "reject" and introduced:
                logger.info("refused: %s", message, extra=logged)
                raise Refusal(
                    422, "handler_unserved", message, handler=spec.handler, queue=spec.queue
                )
        return [message]  # logged once the write is on the log (see log_warnings)

    @staticmethod
    def log_warnings(task_id: str, warnings: Sequence[str]) -> None:
        logged = fields(task_id=task_id, action="unserved_handler")
        for message in warnings:
            logger.warning("task %s: %s", task_id, message, extra=logged)

    def live_task(self, task_id: str) -> TaskRow:
        """The task, or 404 if it does not exist or was deleted."""
        if not is_uuid(task_id):
            raise Refusal(404, "not_found", f"no task {task_id!r}: task ids are UUIDs (lower case)")
        row = self.runtime.store.get(task_id)
        if row is None or row.status == TaskStatus.DELETED.value:
            gone = "was deleted" if row is not None else "does not exist"
            raise Refusal(404, "not_found", f"task {task_id!r} {gone}")
        return row

    def writable(self) -> None:
        """503 at once while the broker is unreachable: nothing is queued for it."""
        down = self.runtime.broker.unreachable()
        if down is not None:
            raise Refusal(
                503,
                "kafka_unavailable",
                f"Kafka is {down}; nothing was written: retry once /health answers 200",
            )

    async def publish(self, event: Event) -> TaskRow | None:
        """Append ``event``; return the task once the store shows the event (or None)."""
        runtime = self.runtime
        self.sized(event)
        self.writable()
        try:
            position = await confirmed(runtime.publisher.publish(event), runtime.publisher.timeout)
        except PublishError as exc:
            raise Refusal(
                503,
                "kafka_unavailable",
                f"{exc}; the write most likely was not written (read task "
                f"{event.task_id!r} to be sure), retry the request",
                task_id=event.task_id,
            ) from None
        seen = await settled(
            runtime.projection.applied(position.partition, position.offset),
            self.settings.read_your_writes_timeout,
        )
        return runtime.store.get(event.task_id) if seen else None

    def sized(self, event: Event) -> None:
        """413 if the broker would refuse ``event`` for its size."""
        limit = self.runtime.event_limit
        try:
            limit.check(event)
        except EventTooLarge as exc:
            raise Refusal(413, "event_too_large", str(exc), limit_bytes=limit.max_bytes) from None

    async def change(
        self, task_id: str, data: EventData, kind: str, warnings: Sequence[str] = ()
    ) -> Response:
        """Append a change of the task; answer it changed, 202 if the store lags, or 409."""
        event = Event.create(task_id, data)
        row = await self.publish(event)
        self.log_warnings(task_id, warnings)
        if row is None:
            accepted = {"id": task_id, "status": "accepted", "event_id": event.id}
            return warned(
                JSONResponse(accepted | warnings_field(warnings), status_code=202), warnings
            )
        if row.last_change_event_id != event.id:
            raise Refusal(
                409,
                "conflict",
                f"task {task_id!r} was changed concurrently (now version "
                f"{row.version}); read it again and retry",
                current_version=row.version,
            )
        CHANGES.labels(kind).inc()
        return task_answer(row, warnings=warnings)

    def versioned(
        self, task_id: str, given: int | None, if_match: str | None
    ) -> tuple[TaskRow, int]:
        """The live task and the version a change to it expects (409 if stale)."""
        row = self.live_task(task_id)
        return row, self.expected(row, given or if_match_version(if_match))

    @staticmethod
    def expected(row: TaskRow, given: int | None) -> int:
        if given is not None and given != row.version:
            raise Refusal(
                409,
                "version_conflict",
                f"task {row.id!r} is at version {row.version}, not {given}; "
                "read it again and retry",
                current_version=row.version,
            )
        return row.version


def stored_spec(row: TaskRow) -> TaskSpec:
    """The task's spec as the store holds it (read as recorded: see
    :mod:`taskstream.schemas.recorded`)."""
    with recorded():
        return TaskSpec.model_validate(row.spec)


def moves(row: TaskRow, spec: TaskSpec) -> bool:
    """True if ``spec`` runs the task with another handler or on another queue."""
    return (row.handler, row.queue) != (spec.handler, spec.queue)


async def settled_all(futures: Sequence[Future[bool]], timeout: float) -> bool:
    """True if every future turned True within ``timeout`` seconds (the rest are cancelled)."""
    if not futures:
        return True
    waiting = [asyncio.wrap_future(future) for future in futures]
    try:
        return all(await asyncio.wait_for(asyncio.gather(*waiting), timeout))
    except TimeoutError:
        return False


async def settled(future: Future[bool], timeout: float) -> bool:
    """The future's result, or False once ``timeout`` seconds have passed (it is cancelled)."""
    try:
        return await asyncio.wait_for(asyncio.wrap_future(future), timeout)
    except TimeoutError:
        return False
