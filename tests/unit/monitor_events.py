"""Building execution events for the monitor's unit tests (no tests here)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from taskstream.schemas import (
    Event,
    EventData,
    ExecutionCancelled,
    ExecutionDeadLettered,
    ExecutionFailed,
    ExecutionScheduled,
    ExecutionSkipped,
    ExecutionStarted,
    ExecutionSucceeded,
    ExecutionTimedOut,
    Priority,
    SkipReason,
    execution_id,
)

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


class Run:
    """The events of one execution of ``task_id`` for the slot ``slot`` (attempt ``attempt``)."""

    def __init__(self, task_id: str, slot: datetime, attempt: int = 1) -> None:
        self.task_id = task_id
        self.slot = slot
        self.attempt = attempt
        self.id = execution_id(task_id, slot, attempt)

    def _common(self) -> dict[str, object]:
        return {"execution_id": self.id, "attempt": self.attempt, "scheduled_for": self.slot}

    def _event(self, data: EventData, after: float) -> Event:
        return Event.create(self.task_id, data, occurred_at=self.slot + timedelta(seconds=after))

    def scheduled(self, after: float = 0) -> Event:
        data = ExecutionScheduled(
            **self._common(), topic="t", queue="default", priority=Priority.MEDIUM
        )
        return self._event(data, after)

    def started(self, after: float = 0.1) -> Event:
        return self._event(ExecutionStarted(**self._common(), worker_id="w", handler="echo"), after)

    def ended(self, outcome: str, duration: float, after: float | None = None) -> Event:
        common = {**self._common(), "worker_id": "w", "duration_seconds": duration}
        data: EventData
        if outcome == "succeeded":
            data = ExecutionSucceeded(**common)
        elif outcome == "failed":
            data = ExecutionFailed(**common, error_type="E", error_message="boom")
        elif outcome == "timed_out":
            data = ExecutionTimedOut(**common, timeout_seconds=duration)
        else:
            assert outcome == "cancelled"
            data = ExecutionCancelled(**common, reason="asked")
        return self._event(data, 0.1 + duration if after is None else after)

    def dead_lettered(self, after: float) -> Event:
        return self._event(ExecutionDeadLettered(**self._common(), reason="max_attempts"), after)

    def events(self, outcome: str, duration: float) -> list[Event]:
        return [self.scheduled(), self.started(), self.ended(outcome, duration)]


def skipped(task_id: str, slot: datetime, count: int = 1) -> Event:
    data = ExecutionSkipped(scheduled_for=slot, reason=SkipReason.MISFIRE, count=count)
    return Event.create(task_id, data, occurred_at=slot)
