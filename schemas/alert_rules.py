"""Alert rules: validated, frozen values, one model per kind (tagged by ``kind``).

Every rule has an ``id``, a ``severity``, the ``channels`` it notifies, a ``throttle``
(the least time between two firing notices of one alert), ``renotify`` (remind after
each throttle while it keeps firing) and ``notify_resolved``. Task rules may name the
tasks they watch (ids or names; none: every task); ``executor_lost`` may name executors.

They are part of the API's contract (``PUT /api/alerts/rules/{id}`` takes one, the client
returns them), so they live here; the monitor parses and evaluates them
(``taskstream.monitor.alerts``).
"""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator, model_validator

from taskstream.schemas.alerts import AlertSeverity, AlertSubject
from taskstream.schemas.durations import Duration

__all__ = [
    "RULE_KINDS",
    "RULE_MODELS",
    "AlertRule",
    "Channel",
    "ConsecutiveFailuresRule",
    "DeadLetterRule",
    "ExecutorLostRule",
    "FailureRateRule",
    "LongRunRule",
    "MissedScheduleRule",
    "Rule",
    "RuleSource",
    "TaskQuarantinedRule",
    "TaskRule",
]

_ID_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,62}$"


class Channel(StrEnum):
    WEBHOOK = "webhook"
    EMAIL = "email"
    TOPIC = "topic"


class _RuleBase(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    SUBJECT: ClassVar[AlertSubject]

    id: str = Field(pattern=_ID_PATTERN, description="lower-case letters, digits, '_', '.', '-'")
    description: str = ""
    severity: AlertSeverity = AlertSeverity.WARNING
    channels: tuple[Channel, ...] = (Channel.WEBHOOK, Channel.EMAIL, Channel.TOPIC)
    throttle: Duration = Field(default=timedelta(minutes=15))
    renotify: bool = True
    notify_resolved: bool = True
    enabled: bool = True

    @field_validator("channels")
    @classmethod
    def _some_channels(cls, value: tuple[Channel, ...]) -> tuple[Channel, ...]:
        if not value:
            raise ValueError("name at least one channel: 'webhook', 'email' or 'topic'")
        if len(set(value)) != len(value):
            raise ValueError("a channel is named twice")
        return value

    @field_validator("throttle")
    @classmethod
    def _throttle_positive(cls, value: timedelta) -> timedelta:
        if value.total_seconds() < 1:
            raise ValueError("throttle must be at least 1s, e.g. '15m'")
        return value


class TaskRule(_RuleBase):
    """A rule about tasks: one alert per task (the subject is the task id)."""

    SUBJECT: ClassVar[AlertSubject] = AlertSubject.TASK

    tasks: tuple[str, ...] = Field(
        default=(), description="task ids or names it watches; empty: every task"
    )

    def watches(self, task_id: str, task_name: str | None) -> bool:
        return not self.tasks or task_id in self.tasks or task_name in self.tasks


class ConsecutiveFailuresRule(TaskRule):
    """``threshold`` failed attempts (failed or timed out) in a row; a success clears it."""

    kind: Literal["consecutive_failures"]
    threshold: int = Field(default=3, ge=1, le=1000)


class FailureRateRule(TaskRule):
    """At least ``threshold`` (0-1) of the attempts that ended within ``window`` failed."""

    kind: Literal["failure_rate"]
    threshold: float = Field(gt=0, le=1, description="a fraction: 0.5 is half")
    window: Duration = Field(default=timedelta(hours=1))
    min_executions: int = Field(
        default=5, ge=1, description="no alert on fewer ended attempts in the window"
    )

    @field_validator("window")
    @classmethod
    def _window(cls, value: timedelta) -> timedelta:
        if value.total_seconds() < 1:
            raise ValueError("window must be at least 1s, e.g. '1h'")
        return value


class LongRunRule(TaskRule):
    """An execution still running ``limit`` after it started; clears when it ends."""

    kind: Literal["long_run"]
    limit: Duration

    @field_validator("limit")
    @classmethod
    def _limit(cls, value: timedelta) -> timedelta:
        if value.total_seconds() <= 0:
            raise ValueError("limit must be more than 0s, e.g. '10m'")
        return value


class MissedScheduleRule(TaskRule):
    """A slot of an active task neither fired nor skipped ``grace`` after its due time."""

    kind: Literal["missed_schedule"]
    grace: Duration = Field(default=timedelta(minutes=1))


class DeadLetterRule(TaskRule):
    """An execution of the task was dead-lettered; clears when a later one succeeds."""

    kind: Literal["dead_letter"]


class TaskQuarantinedRule(TaskRule):
    """A component set the task aside (``TaskQuarantined``: it cannot evaluate it); clears
    when a change lifts the quarantine."""

    kind: Literal["task_quarantined"]


class ExecutorLostRule(_RuleBase):
    """An executor's last heartbeat is older than ``timeout``; clears when it heartbeats
    again or leaves cleanly (a tombstone). The subject is the executor id."""

    SUBJECT: ClassVar[AlertSubject] = AlertSubject.EXECUTOR

    kind: Literal["executor_lost"]
    executors: tuple[str, ...] = Field(
        default=(), description="executor ids it watches; empty: every executor"
    )
    timeout: Duration | None = Field(
        default=None, description="default: TASKSTREAM_MONITOR_WORKER_TIMEOUT"
    )

    def watches(self, executor_id: str) -> bool:
        return not self.executors or executor_id in self.executors


Rule = Annotated[
    ConsecutiveFailuresRule
    | FailureRateRule
    | LongRunRule
    | MissedScheduleRule
    | DeadLetterRule
    | TaskQuarantinedRule
    | ExecutorLostRule,
    Field(discriminator="kind"),
]
RULE_ADAPTER: TypeAdapter[Rule] = TypeAdapter(Rule)
RULE_MODELS: tuple[type[BaseModel], ...] = (
    ConsecutiveFailuresRule,
    FailureRateRule,
    LongRunRule,
    MissedScheduleRule,
    DeadLetterRule,
    TaskQuarantinedRule,
    ExecutorLostRule,
)
RULE_KINDS = (
    "consecutive_failures",
    "failure_rate",
    "long_run",
    "missed_schedule",
    "executor_lost",
    "dead_letter",
    "task_quarantined",
)


RuleSource = Literal["file", "api"]


class AlertRule(BaseModel):
    """A rule as ``GET /api/alerts/rules`` lists it: the rule, and where it comes from.

    On the wire it is one flat object, the rule's fields beside ``source`` and
    ``shadows_api_rule``; this model reads and writes that shape.
    """

    model_config = ConfigDict(frozen=True)

    rule: Rule
    source: RuleSource = "api"
    """``file``: from the rules file (read-only through the API); ``api``: written by it."""
    shadows_api_rule: bool = False
    """A file rule that hides an API rule of the same id."""

    @model_validator(mode="before")
    @classmethod
    def _from_flat(cls, data: Any) -> Any:
        if isinstance(data, dict) and "rule" not in data:
            fields = dict(data)
            source = fields.pop("source", "api")
            shadows = fields.pop("shadows_api_rule", False)
            return {"rule": fields, "source": source, "shadows_api_rule": shadows}
        return data

    def flat(self) -> dict[str, Any]:
        """The wire shape: the rule's fields, ``source`` and ``shadows_api_rule``."""
        return {
            **self.rule.model_dump(mode="json"),
            "source": self.source,
            "shadows_api_rule": self.shadows_api_rule,
        }
