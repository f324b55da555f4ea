"""The events on ``task-events``: one frozen, versioned model per event type.

Every event travels in the same envelope (:class:`Event`): ``id``, ``type``,
``version``, ``task_id``, ``occurred_at`` and ``data``. ``data`` is the payload model
registered for ``(type, version)``; decoding looks the pair up in :data:`EVENT_TYPES`,
so only known types are ever built. To change a payload, add a new version beside the
old one and keep the old one registered as a reader that :meth:`EventData.upgraded`
turns into the new model: consumers then see one form whatever the log holds.

Versions so far: the four outcomes (``ExecutionSucceeded``, ``ExecutionFailed``,
``ExecutionTimedOut``, ``ExecutionCancelled``) are v2, which adds ``started_at`` and
``handler``, so a run that ends quickly is one event without an ``ExecutionStarted``;
their v1 is read as v2 with both null. Every other type is v1.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, SerializeAsAny

from taskstream.schemas.task import Priority, TaskSpec

__all__ = [
    "EVENT_TYPES",
    "TERMINAL_EVENT_TYPES",
    "BackfillFinished",
    "BackfillOverlap",
    "BackfillRequested",
    "BackfillState",
    "BackfillStep",
    "CancelRequested",
    "Event",
    "EventData",
    "ExecutionCancelled",
    "ExecutionDeadLettered",
    "ExecutionFailed",
    "ExecutionScheduled",
    "ExecutionSkipped",
    "ExecutionStarted",
    "ExecutionSucceeded",
    "ExecutionTimedOut",
    "RetryScheduled",
    "RunRequested",
    "SkipReason",
    "TaskCreated",
    "TaskDeleted",
    "TaskPaused",
    "TaskQuarantined",
    "TaskResumed",
    "TaskUpdated",
    "Trigger",
    "event_type",
]


class EventData(BaseModel):
    """Base of every event payload. Subclasses set ``TYPE`` and ``VERSION``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    TYPE: ClassVar[str]
    VERSION: ClassVar[int] = 1

    def upgraded(self) -> EventData:
        """This payload in its type's current version: itself, unless it was read from
        an older version (which overrides this to build the current model)."""
        return self


EVENT_TYPES: dict[tuple[str, int], type[EventData]] = {}
"""The registry of known payloads, keyed by ``(type, version)``."""


def event_type(cls: type[EventData]) -> type[EventData]:
    """Class decorator: register a payload model under its ``TYPE`` and ``VERSION``."""
    key = (cls.TYPE, cls.VERSION)
    if key in EVENT_TYPES:
        raise RuntimeError(f"event type {cls.TYPE} v{cls.VERSION} is registered twice")
    EVENT_TYPES[key] = cls
    return cls


@event_type
class TaskCreated(EventData):
    """A task was defined. ``task`` is its full definition."""

    TYPE: ClassVar[str] = "TaskCreated"
    task: TaskSpec


class _Change(EventData):
    """A change to a task that may name the version it expects.

    Every consumer applies the log in the same order, and each one ignores a change
    whose ``expected_version`` is not the task's version at that point, so concurrent
    writers are resolved by the log itself: the first wins, the others are no-ops.
    """

    expected_version: int | None = Field(default=None, ge=1)


@event_type
class TaskUpdated(_Change):
    """A task's definition was replaced by ``task``."""

    TYPE: ClassVar[str] = "TaskUpdated"
    task: TaskSpec


@event_type
class TaskPaused(_Change):
    """The task stops firing; slots that come due are skipped (reason ``paused``)."""

    TYPE: ClassVar[str] = "TaskPaused"


@event_type
class TaskResumed(_Change):
    """A paused task fires again from its next slot."""

    TYPE: ClassVar[str] = "TaskResumed"


@event_type
class TaskDeleted(_Change):
    """The task is gone: no more slots, and the API answers 404 for it."""

    TYPE: ClassVar[str] = "TaskDeleted"


@event_type
class TaskQuarantined(EventData):
    """A component could not evaluate the task and set it aside; the loop went on.

    The task is not scheduled until it changes (a ``TaskUpdated`` or ``TaskResumed``
    lifts the quarantine). ``change_event_id`` is the task's last change when it failed:
    a quarantine that names an older change than the task's current one is stale and
    ignored. The event id is :func:`taskstream.schemas.ids.quarantine_event_id`, so a component that
    meets the same record again (a restart) writes the same event, which the fold ignores.
    """

    TYPE: ClassVar[str] = "TaskQuarantined"
    component: str
    """Which loop failed on the task: ``scheduler``, ``projection``..."""
    error_type: str
    error_message: str
    change_event_id: str
    """The task's last change (``TaskCreated``/``TaskUpdated``/...) when it failed."""
    event_id: str | None = None
    """The event whose handling raised, if it was an event (not arming a timer)."""
    partition: int | None = Field(default=None, ge=0)
    offset: int | None = Field(default=None, ge=0)
    """Where the record that raised is on ``task-events``, if one did."""


@event_type
class RunRequested(EventData):
    """Someone asked for a run now, outside the schedule (the slot is ``occurred_at``)."""

    TYPE: ClassVar[str] = "RunRequested"


@event_type
class CancelRequested(EventData):
    """Stop ``execution_id``, or every unfinished execution of the task if it is None."""

    TYPE: ClassVar[str] = "CancelRequested"
    execution_id: str | None = None
    reason: str = "requested"


class Trigger(StrEnum):
    """Why an execution was scheduled."""

    SCHEDULE = "schedule"
    MANUAL = "manual"
    RETRY = "retry"
    BACKFILL = "backfill"
    """A slot of a past range, run on request (``BackfillRequested``); since v2."""


class _V1:
    """Enums as v1 of an event knew them (their JSON Schema, as v1 published it)."""

    class Trigger(StrEnum):
        """Why an execution was scheduled."""

        SCHEDULE = "schedule"
        MANUAL = "manual"
        RETRY = "retry"


@event_type
class ExecutionScheduled(EventData):
    """The scheduler fired a slot: a work order for ``execution_id`` is on ``topic``."""

    TYPE: ClassVar[str] = "ExecutionScheduled"
    VERSION: ClassVar[int] = 2
    execution_id: str
    attempt: int = Field(ge=1)
    scheduled_for: AwareDatetime
    topic: str
    queue: str
    priority: Priority
    trigger: Trigger = Trigger.SCHEDULE
    run_key: str | None = Field(
        default=None,
        description=(
            "which run of the slot this is, beside the schedule's own: 'backfill:<id>' "
            "for a backfill's; null for the schedule's slots, run-now and their retries "
            "(and when read from v1). Part of the execution id: see schemas.ids"
        ),
    )


@event_type
class ExecutionScheduledV1(EventData):
    """The scheduler fired a slot: a work order for ``execution_id`` is on ``topic``."""

    # v1 as published (no backfill trigger, no run_key): read as v2, run_key None
    model_config = ConfigDict(title="ExecutionScheduled")  # the published v1 schema's

    TYPE: ClassVar[str] = "ExecutionScheduled"
    execution_id: str
    attempt: int = Field(ge=1)
    scheduled_for: AwareDatetime
    topic: str
    queue: str
    priority: Priority
    trigger: _V1.Trigger = _V1.Trigger.SCHEDULE

    def upgraded(self) -> EventData:
        fields = {**dict(self), "trigger": Trigger(self.trigger.value)}
        return ExecutionScheduled.model_construct(**fields)


class SkipReason(StrEnum):
    MISFIRE = "misfire"
    OVERLAP = "overlap"
    PAUSED = "paused"
    DST = "dst"


@event_type
class ExecutionSkipped(EventData):
    """A slot that did not run, and why. ``count`` > 1 stands for a run of slots."""

    TYPE: ClassVar[str] = "ExecutionSkipped"
    scheduled_for: AwareDatetime
    reason: SkipReason
    detail: str = ""
    count: int = Field(default=1, ge=1)
    last_scheduled_for: AwareDatetime | None = None
    """With ``count`` > 1: the last slot of the run."""


@event_type
class RetryScheduled(EventData):
    """A failed attempt will be tried again: the core fires ``attempt`` at ``due_at``."""

    TYPE: ClassVar[str] = "RetryScheduled"
    VERSION: ClassVar[int] = 2
    execution_id: str
    """The id of the new attempt."""
    failed_execution_id: str
    attempt: int = Field(ge=2)
    scheduled_for: AwareDatetime
    """The slot the first attempt ran for."""
    due_at: AwareDatetime
    run_key: str | None = Field(
        default=None,
        description="the failed attempt's run_key (see ExecutionScheduled); null from v1",
    )


@event_type
class RetryScheduledV1(EventData):
    """A failed attempt will be tried again: the core fires ``attempt`` at ``due_at``."""

    # v1 as published (no run_key): read as v2, run_key None
    model_config = ConfigDict(title="RetryScheduled")  # the published v1 schema's
    TYPE: ClassVar[str] = "RetryScheduled"
    execution_id: str
    """The id of the new attempt."""
    failed_execution_id: str
    attempt: int = Field(ge=2)
    scheduled_for: AwareDatetime
    """The slot the first attempt ran for."""
    due_at: AwareDatetime

    def upgraded(self) -> EventData:
        return RetryScheduled.model_construct(**dict(self))


class BackfillOverlap(StrEnum):
    """Whether a backfill's next slot may start while an execution of the task runs."""

    ALLOW = "allow"
    FORBID = "forbid"


class _BackfillPlan(EventData):
    """What every step of a backfill carries forward: its range and its pace."""

    backfill_id: str
    end: AwareDatetime
    """The last slot of the range (inclusive)."""
    overlap: BackfillOverlap = BackfillOverlap.ALLOW
    rate: float = Field(gt=0, description="slots started per second, at most")
    total: int = Field(ge=1, description="the slots of the range, computed at the request")


@event_type
class BackfillRequested(_BackfillPlan):
    """Run the task's schedule over a past range: ``start`` to ``end``, paced.

    The core fires ``first_slot`` (the first slot of the schedule at or after ``start``)
    as a pending run, then each next slot as a :class:`BackfillStep`, until ``end``.
    """

    TYPE: ClassVar[str] = "BackfillRequested"
    start: AwareDatetime
    first_slot: AwareDatetime


@event_type
class BackfillStep(_BackfillPlan):
    """The next slot of a backfill, due at ``due_at``: written with the fire of the one
    before it, in the same transaction, so the cursor survives failover."""

    TYPE: ClassVar[str] = "BackfillStep"
    slot: AwareDatetime
    index: int = Field(ge=2, description="its place in the range, from 1")
    due_at: AwareDatetime


class BackfillState(StrEnum):
    COMPLETED = "completed"
    CANCELLED = "cancelled"


@event_type
class BackfillFinished(EventData):
    """A backfill ended: every slot of its range fired (``completed``) or it was cancelled."""

    TYPE: ClassVar[str] = "BackfillFinished"
    backfill_id: str
    state: BackfillState
    fired: int = Field(ge=0, description="the range's slots fired, by the core's count")


@event_type
class DeadLetterReplayed(EventData):
    """An operator replayed a dead-lettered execution (``taskstream dlq replay``): the core
    fires ``attempt`` at ``due_at``, like a retry.

    Not a ``RetryScheduled``: the core takes a retry only as the decision of an
    execution's first failure, so a late copy of one (its attempt rerun after a crash)
    fires nothing, and a dead-lettered execution was decided already.
    """

    TYPE: ClassVar[str] = "DeadLetterReplayed"
    VERSION: ClassVar[int] = 2
    execution_id: str
    """The id of the new attempt."""
    dead_lettered_execution_id: str
    attempt: int = Field(ge=2)
    scheduled_for: AwareDatetime
    """The slot the first attempt ran for."""
    due_at: AwareDatetime
    run_key: str | None = Field(
        default=None,
        description="the dead-lettered run's run_key (see ExecutionScheduled); null from v1",
    )


@event_type
class DeadLetterReplayedV1(EventData):
    """An operator replayed a dead-lettered execution (``taskstream dlq replay``): the core
    fires ``attempt`` at ``due_at``, like a retry.

    Not a ``RetryScheduled``: the core takes a retry only as the decision of an
    execution's first failure, so a late copy of one (its attempt rerun after a crash)
    fires nothing, and a dead-lettered execution was decided already.
    """

    # v1 as published (no run_key): read as v2, run_key None
    model_config = ConfigDict(title="DeadLetterReplayed")  # the published v1 schema's
    TYPE: ClassVar[str] = "DeadLetterReplayed"
    execution_id: str
    """The id of the new attempt."""
    dead_lettered_execution_id: str
    attempt: int = Field(ge=2)
    scheduled_for: AwareDatetime
    """The slot the first attempt ran for."""
    due_at: AwareDatetime

    def upgraded(self) -> EventData:
        return DeadLetterReplayed.model_construct(**dict(self))


# Since outcome events v2, ExecutionStarted is written only for a run still going after
# the executor's ``executor_started_event_after`` (1 s by default): a run that ends sooner
# has only its outcome, which carries ``started_at`` and ``handler`` itself. (The
# docstring below is its published v1 schema's description: left as it was.)
@event_type
class ExecutionStarted(EventData):
    """An executor began running the handler."""

    TYPE: ClassVar[str] = "ExecutionStarted"
    execution_id: str
    attempt: int = Field(ge=1)
    scheduled_for: AwareDatetime
    worker_id: str
    handler: str


class _Outcome(EventData):
    """What every outcome (v2) says: which attempt ended, where, after how long, and
    when and what it started, so that a run that ends quickly is one event."""

    VERSION: ClassVar[int] = 2
    execution_id: str
    attempt: int = Field(ge=1)
    scheduled_for: AwareDatetime
    worker_id: str
    duration_seconds: float = Field(ge=0, description="handler run time")
    started_at: AwareDatetime | None = Field(
        default=None,
        description=(
            "when the handler began; null if it never ran (cancelled before it started) "
            "or if the event was read from v1, whose ExecutionStarted said it"
        ),
    )
    handler: str | None = Field(
        default=None, description="the handler that ran; null if read from v1"
    )


class _OutcomeV1(EventData):
    """An outcome as v1 wrote it (``ExecutionStarted`` before it said when and what
    started): read as the v2 model, ``started_at`` and ``handler`` null."""

    execution_id: str
    attempt: int = Field(ge=1)
    scheduled_for: AwareDatetime
    worker_id: str
    duration_seconds: float = Field(ge=0, description="handler run time")

    CURRENT: ClassVar[type[_Outcome]]

    def upgraded(self) -> EventData:
        return self.CURRENT.model_construct(**dict(self))


@event_type
class ExecutionSucceeded(_Outcome):
    """The handler returned normally; ``output`` is its JSON result (may be null)."""

    TYPE: ClassVar[str] = "ExecutionSucceeded"
    output: Any = None


@event_type
class ExecutionFailed(_Outcome):
    """The handler raised. ``error_type`` is the exception's class name."""

    TYPE: ClassVar[str] = "ExecutionFailed"
    error_type: str
    error_message: str
    retryable: bool = True


@event_type
class ExecutionTimedOut(_Outcome):
    """The handler ran past its timeout and was stopped."""

    TYPE: ClassVar[str] = "ExecutionTimedOut"
    duration_seconds: float = Field(ge=0)
    timeout_seconds: float = Field(gt=0)


@event_type
class ExecutionCancelled(_Outcome):
    """The execution was stopped because someone asked (``CancelRequested``)."""

    TYPE: ClassVar[str] = "ExecutionCancelled"
    duration_seconds: float = Field(ge=0)
    reason: str = ""


@event_type
class ExecutionSucceededV1(_OutcomeV1):
    """The handler returned normally; ``output`` is its JSON result (may be null)."""

    model_config = ConfigDict(title="ExecutionSucceeded")  # the published v1 schema's
    TYPE: ClassVar[str] = "ExecutionSucceeded"
    CURRENT: ClassVar[type[_Outcome]] = ExecutionSucceeded
    output: Any = None


@event_type
class ExecutionFailedV1(_OutcomeV1):
    """The handler raised. ``error_type`` is the exception's class name."""

    model_config = ConfigDict(title="ExecutionFailed")  # the published v1 schema's
    TYPE: ClassVar[str] = "ExecutionFailed"
    CURRENT: ClassVar[type[_Outcome]] = ExecutionFailed
    error_type: str
    error_message: str
    retryable: bool = True


@event_type
class ExecutionTimedOutV1(_OutcomeV1):
    """The handler ran past its timeout and was stopped."""

    model_config = ConfigDict(title="ExecutionTimedOut")  # the published v1 schema's
    TYPE: ClassVar[str] = "ExecutionTimedOut"
    CURRENT: ClassVar[type[_Outcome]] = ExecutionTimedOut
    duration_seconds: float = Field(ge=0)
    timeout_seconds: float = Field(gt=0)


@event_type
class ExecutionCancelledV1(_OutcomeV1):
    """The execution was stopped because someone asked (``CancelRequested``)."""

    model_config = ConfigDict(title="ExecutionCancelled")  # the published v1 schema's
    TYPE: ClassVar[str] = "ExecutionCancelled"
    CURRENT: ClassVar[type[_Outcome]] = ExecutionCancelled
    duration_seconds: float = Field(ge=0)
    reason: str = ""


@event_type
class ExecutionDeadLettered(EventData):
    """The execution will not be tried again; its work order is on the dead-letter topic."""

    TYPE: ClassVar[str] = "ExecutionDeadLettered"
    execution_id: str
    attempt: int = Field(ge=1)
    scheduled_for: AwareDatetime
    reason: str
    """``max_attempts`` (retries exhausted), ``permanent`` (PermanentError) or another cause."""
    error_type: str = ""
    error_message: str = ""


class Event(BaseModel):
    """The envelope of every event on ``task-events``. Build one with :meth:`create`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    type: str
    version: int
    task_id: str
    occurred_at: AwareDatetime
    data: SerializeAsAny[EventData]

    @classmethod
    def create(
        cls,
        task_id: str,
        data: EventData,
        *,
        occurred_at: datetime | None = None,
        event_id: str | None = None,
    ) -> Event:
        return cls(
            id=event_id or str(uuid.uuid4()),
            type=data.TYPE,
            version=data.VERSION,
            task_id=task_id,
            occurred_at=occurred_at or datetime.now(UTC),
            data=data,
        )


TERMINAL_EVENT_TYPES = (ExecutionSucceeded, ExecutionFailed, ExecutionTimedOut, ExecutionCancelled)
"""Events after which an attempt is no longer running."""
