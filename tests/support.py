"""Helpers for tests: polling with a deadline (never a bare sleep), recorded poison input,
an executor's received work order."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

from taskstream.executor.execution import Received
from taskstream.schemas import Priority, Schedule, WorkOrder, execution_id, recorded

T = TypeVar("T")


def eventually(
    probe: Callable[[], T | None],
    *,
    timeout: float = 30.0,
    interval: float = 0.1,
    what: str | Callable[[], str] = "condition",
) -> T:
    """Call ``probe`` until it returns something truthy; fail after ``timeout`` seconds.

    ``what`` names the condition in the failure. Pass a callable when the text reads state
    (a service's log, a count): it is called at the deadline, so the failure shows the
    state then, not when the wait began.
    """
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            result = probe()
            if result:
                return result
        except AssertionError as exc:
            last_error = exc
        if time.monotonic() >= deadline:
            described = what() if callable(what) else what
            raise AssertionError(
                f"timed out after {timeout:.0f}s waiting for {described}"
                + (f": {last_error}" if last_error else "")
            )
        time.sleep(interval)  # poll interval of a deadline-bounded wait


def recorded_schedule(**fields: object) -> Schedule:
    """A schedule as an earlier version accepted it, which today's API refuses.

    Poison records of the fault-isolation tests: put on the log directly, read back as
    recorded (:mod:`taskstream.schemas.recorded`), evaluated (and quarantined) where they fire.
    """
    with recorded():
        return Schedule.model_validate(fields)


def received_order(task_id: str, done: Callable[[Received], None] = lambda _: None) -> Received:
    """A ``noop`` work order of ``task_id`` as an executor's pool takes it (offset 7)."""
    slot = datetime(2030, 1, 1, tzinfo=UTC)
    order = WorkOrder(
        execution_id=execution_id(task_id, slot, 1),
        task_id=task_id,
        task_name=task_id,
        handler="noop",
        params={},
        attempt=1,
        scheduled_for=slot,
        priority=Priority.MEDIUM,
        queue="default",
    )
    return Received("default", "t", 0, 7, 1, Priority.MEDIUM, order, done=done)
