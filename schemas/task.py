"""The task model: what a user asks taskstream to run, and when.

A :class:`TaskSpec` is the definition carried by ``TaskCreated`` (and later
``TaskUpdated``) events. It is a frozen value: every change to a task is a new event.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from taskstream.schemas.cron import parse_cron
from taskstream.schemas.durations import Duration
from taskstream.schemas.recorded import reading_recorded

__all__ = [
    "DEFAULT_QUEUE",
    "EARLIEST",
    "LATEST",
    "MisfirePolicy",
    "OverlapPolicy",
    "Priority",
    "RetryPolicy",
    "Schedule",
    "ScheduleKind",
    "TaskSpec",
    "TaskStatus",
    "cron_fields",
]

DEFAULT_QUEUE = "default"
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
"""The earliest ``at``, ``start`` or ``end`` a schedule takes."""
LATEST = datetime(9000, 1, 1, tzinfo=UTC)
"""The latest one: far enough from ``datetime.max`` that no slot computation overflows."""
_NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"


class TaskStatus(StrEnum):
    """Where a task is in its life (the API's ``status``)."""

    ACTIVE = "active"
    PAUSED = "paused"
    COMPLETED = "completed"
    """No slot is left (a one-shot fired, or the schedule's end passed)."""
    DELETED = "deleted"
    QUARANTINED = "quarantined"
    """A component could not evaluate the task (``TaskQuarantined``): it is not scheduled
    until a change (``TaskUpdated``, ``TaskResumed``) lifts the quarantine."""


class Priority(StrEnum):
    """The lane a task's work orders travel in; high is served before medium and low."""

    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


class MisfirePolicy(StrEnum):
    """What happens to slots missed while no scheduler ran (downtime, failover)."""

    FIRE_ONCE = "fire_once"
    """Fire the latest missed slot once; the others are skipped (reason ``misfire``)."""
    FIRE_ALL = "fire_all"
    """Fire every missed slot within ``catch_up_window``; older ones are skipped."""
    SKIP = "skip"
    """Fire none of them; each is skipped."""


class OverlapPolicy(StrEnum):
    """What happens when a slot comes due while the task's previous run is unfinished."""

    ALLOW = "allow"
    """Run anyway: runs may overlap."""
    FORBID = "forbid"
    """Skip the new slot (reason ``overlap``)."""
    REPLACE = "replace"
    """Ask the running execution to cancel, and run the new slot."""


class ScheduleKind(StrEnum):
    CRON = "cron"
    EVERY = "every"
    AT = "at"


def cron_fields(expression: str) -> int:
    """Return 5 or 6 (seconds first) for a cron expression the scheduler can evaluate.

    Raise :class:`~taskstream.schemas.errors.CronError` (a ``ValueError``) otherwise: the expression
    is read by :func:`taskstream.schemas.cron.parse_cron`, the parser the scheduler fires with.
    """
    parse_cron(expression)
    return len(expression.split())


def _in_range(value: datetime) -> datetime:
    if reading_recorded():
        return value  # accepted when it was written (see schemas.recorded)
    # the year first: converting a date near datetime's limits to UTC would overflow
    if not EARLIEST.year <= value.year < LATEST.year or not EARLIEST <= value < LATEST:
        raise ValueError(
            f"{value.isoformat()} is out of range: dates are from {EARLIEST.date()} "
            f"to before {LATEST.date()}"
        )
    return value


Instant = Annotated[AwareDatetime, AfterValidator(_in_range)]
"""A timezone-aware date within :data:`EARLIEST` and :data:`LATEST`."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class Schedule(_Frozen):
    """When a task runs: exactly one of ``cron``, ``every`` or ``at``.

    ``cron`` takes 5 fields (minute first) or 6 fields with seconds first, as Spring and
    Quartz write them (``*/5 * * * * *`` is every five seconds). ``every`` is a fixed
    interval measured from the task's creation. ``at`` is a one-shot time with a zone.
    ``timezone`` is the IANA zone cron fields are read in (default UTC).
    """

    cron: str | None = None
    every: Duration | None = None
    at: Instant | None = None
    timezone: str = "UTC"
    start: Instant | None = None
    """No slot before this instant."""
    end: Instant | None = None
    """No slot after this instant; the task then completes."""
    jitter: Duration | None = None
    """Fire each slot up to this much later, by a fixed pseudo-random amount per slot."""

    @field_validator("cron")
    @classmethod
    def _check_cron(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = " ".join(value.split())
        if not reading_recorded():  # a recorded one is evaluated, or quarantined, where it fires
            cron_fields(value)
        return value

    @field_validator("every")
    @classmethod
    def _check_every(cls, value: Any) -> Any:
        if value is not None and value.total_seconds() < 0.001:
            raise ValueError("'every' must be at least 1ms, for example '30s'")
        return value

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r}: use an IANA name such as 'UTC' or 'Europe/Berlin'"
            ) from None
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> Schedule:
        given = [name for name in ("cron", "every", "at") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(
                "a schedule needs exactly one of 'cron', 'every' or 'at' "
                f'(got {", ".join(given) or "none"}), e.g. {{"cron": "*/5 * * * *"}}'
            )
        return self

    @model_validator(mode="after")
    def _bounds_ordered(self) -> Schedule:
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise ValueError("schedule.end must be after schedule.start")
        return self

    @property
    def kind(self) -> ScheduleKind:
        if self.cron is not None:
            return ScheduleKind.CRON
        if self.every is not None:
            return ScheduleKind.EVERY
        return ScheduleKind.AT

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class RetryPolicy(_Frozen):
    """How often and how patiently a failed execution is tried again.

    Attempt ``n`` (counting from 1) waits ``min(initial_delay * multiplier**(n-1),
    max_delay)`` plus a random extra of at most ``jitter`` before attempt ``n+1``.
    """

    max_attempts: Annotated[int, Field(ge=1, le=1000)] = 1
    initial_delay: Duration = Field(default=timedelta(seconds=1))
    multiplier: Annotated[float, Field(ge=1.0, le=100.0)] = 2.0
    max_delay: Duration = Field(default=timedelta(minutes=5))
    jitter: Duration = Field(default=timedelta(seconds=1))

    @model_validator(mode="after")
    def _delays_ordered(self) -> RetryPolicy:
        if self.max_delay < self.initial_delay:
            raise ValueError("retry.max_delay must be at least retry.initial_delay")
        return self


class TaskSpec(_Frozen):
    """A task definition as it travels in events (snake_case on the wire)."""

    name: Annotated[str, Field(min_length=1, max_length=200)]
    schedule: Schedule
    handler: Annotated[str, Field(min_length=1, max_length=300)]
    params: dict[str, Any] = Field(default_factory=dict)
    priority: Priority = Priority.MEDIUM
    queue: Annotated[str, Field(pattern=_NAME_PATTERN)] = DEFAULT_QUEUE
    timeout: Duration | None = None
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    misfire: MisfirePolicy = MisfirePolicy.FIRE_ONCE
    misfire_grace: Duration = Field(default=timedelta(seconds=5))
    """A slot fired later than this after its due time counts as missed."""
    catch_up_window: Duration = Field(default=timedelta(hours=1))
    """With ``fire_all``: how far back missed slots are still fired."""
    overlap: OverlapPolicy = OverlapPolicy.ALLOW

    @field_validator("name")
    @classmethod
    def _strip_name(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("name must not be blank")
        return value.strip()
