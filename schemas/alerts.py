"""The alert notification: what the monitor says when an alert fires or resolves.

The same JSON document is the body of the webhook POST, the value of the ``alerts``
topic (key: the rule id) and the attachment-free text of the e-mail. One alert is one
``key`` (the rule id and the subject: a task id or an executor id); each of its episodes
starts with a ``firing`` notice, may repeat it (``repeat`` > 0) while it keeps firing,
and ends with a ``resolved`` notice when the condition clears.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, ClassVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from taskstream.schemas.errors import EventDecodeError

__all__ = ["AlertNotification", "AlertSeverity", "AlertState", "AlertStatus", "AlertSubject"]


class AlertStatus(StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


class AlertSeverity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class AlertSubject(StrEnum):
    """What an alert is about."""

    TASK = "task"
    EXECUTOR = "executor"


class AlertNotification(BaseModel):
    """One notice of an alert, as sent to every channel (``alerts`` topic key: ``rule_id``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    TYPE: ClassVar[str] = "AlertNotification"
    VERSION: ClassVar[int] = 1

    id: str = Field(description="unique id of this notice (UUID)")
    key: str = Field(description="the alert: '<rule_id>|<subject>'; notices of one alert share it")
    rule_id: str
    kind: str = Field(description="the rule's kind, e.g. 'consecutive_failures'")
    status: AlertStatus
    severity: AlertSeverity
    subject_type: AlertSubject
    subject: str = Field(description="the task id or the executor id")
    summary: str = Field(description="one line for people")
    details: dict[str, Any] = Field(default_factory=dict, description="the facts behind it")
    started_at: AwareDatetime = Field(description="when this episode of the alert began firing")
    resolved_at: AwareDatetime | None = None
    sent_at: AwareDatetime
    repeat: int = Field(default=0, ge=0, description="0: the first notice; n: the nth reminder")
    version: int = VERSION

    def encode(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def decode(cls, raw: bytes) -> AlertNotification:
        """Decode an ``alerts`` record value; raise ``EventDecodeError`` on bad input."""
        try:
            return cls.model_validate_json(raw)
        except ValidationError as exc:
            raise EventDecodeError(f"invalid alert notification: {exc}", raw) from exc


class AlertState(BaseModel):
    """One alert's state: a JSON object in the monitor's ``alert-state`` table, and an item of
    ``GET /api/alerts``'s ``active``."""

    model_config = ConfigDict(frozen=True)

    key: str
    rule_id: str
    kind: str
    subject_type: AlertSubject
    subject: str
    severity: AlertSeverity
    status: AlertStatus
    started_at: AwareDatetime
    resolved_at: AwareDatetime | None = None
    last_notice_at: AwareDatetime | None = None
    """When the last firing notice of this key went out (the throttle counts from it)."""
    notified: bool = False
    """Whether this episode's firing was notified (a throttled one may not be yet)."""
    repeat: int = 0
    summary: str = ""
    details: dict[str, Any] = {}

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")
