"""What one event changed about an execution: the source of every count.

The monitor counts from the *transition* of an execution's record (before and after
:func:`taskstream.monitor.records.apply_event`), never from the event alone, so that each execution
is counted once whatever arrives twice, late or out of order:

- its **outcome** (``succeeded``, ``failed``, ``timed_out``, ``cancelled``) is counted when
  the record first gets a ``finished_at``, i.e. at its first run-ending event; a second
  one (a rerun of the same execution id after an executor died) counts nothing;
- ``dead_lettered`` is counted when the record's status first becomes ``dead_lettered``
  (it usually follows a failure, so such an execution counts in both);
- its **phase** (``scheduled``, ``running``, ``done``) only moves forward, because the
  fold never moves a status back: the monitor keeps how many executions are scheduled
  and running now from the phase changes.

A retry is a new execution id (attempt n + 1), so it is counted on its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from taskstream.schemas import (
    Event,
    ExecutionCancelled,
    ExecutionFailed,
    ExecutionSucceeded,
    ExecutionTimedOut,
)

__all__ = ["OUTCOMES", "Phase", "Transition", "phase", "transition"]

OUTCOMES = ("succeeded", "failed", "timed_out", "cancelled")
"""How a run ends; ``dead_lettered`` is counted besides, when it happens."""

Phase = Literal["scheduled", "running", "done"]

_OUTCOME_OF: dict[type, str] = {
    ExecutionSucceeded: "succeeded",
    ExecutionFailed: "failed",
    ExecutionTimedOut: "timed_out",
    ExecutionCancelled: "cancelled",
}


def phase(record: dict[str, Any] | None) -> Phase | None:
    """Where an execution is: None before its first event, then forward only."""
    if record is None or record.get("status") is None:
        return None
    status = record["status"]
    if status in ("scheduled", "running"):
        return status  # type: ignore[no-any-return]
    return "done"


@dataclass(frozen=True, slots=True)
class Transition:
    execution_id: str
    task_id: str
    status: str
    """The record's status after the event."""
    phase_before: Phase | None
    phase_after: Phase
    outcome: str | None = None
    """The run outcome this event reached first, if it did."""
    finished_at: datetime | None = None
    duration_seconds: float | None = None
    dead_lettered_at: datetime | None = None
    """Set when this event moved the execution to ``dead_lettered``."""

    @property
    def ended_at(self) -> datetime | None:
        """When the execution became terminal, if this event made it so."""
        if self.phase_before == "done" or self.phase_after != "done":
            return None
        return self.finished_at or self.dead_lettered_at

    @property
    def counts(self) -> bool:
        """Whether anything the monitor counts changed."""
        return (
            self.outcome is not None
            or self.dead_lettered_at is not None
            or self.phase_before != self.phase_after
        )


def transition(before: dict[str, Any] | None, after: dict[str, Any], event: Event) -> Transition:
    """What ``event`` changed, given the record before it and the record it produced."""
    outcome = finished_at = duration = dead_lettered_at = None
    if "finished_at" not in (before or {}) and "finished_at" in after:
        outcome = _OUTCOME_OF[type(event.data)]
        finished_at = event.occurred_at
        duration = float(after["duration_seconds"])
    if (before or {}).get("status") != "dead_lettered" and after["status"] == "dead_lettered":
        dead_lettered_at = event.occurred_at
    after_phase = phase(after)
    assert after_phase is not None
    return Transition(
        execution_id=after["execution_id"],
        task_id=after["task_id"],
        status=after["status"],
        phase_before=phase(before),
        phase_after=after_phase,
        outcome=outcome,
        finished_at=finished_at,
        duration_seconds=duration,
        dead_lettered_at=dead_lettered_at,
    )
