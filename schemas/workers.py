"""The worker heartbeat: what an executor says about itself on the ``workers`` topic.

Liveness is decided here, once, for every reader (the core's directory and its
``/api/workers``, the monitor's table, its ``/api/workers`` and alerts): an executor is live
while its last heartbeat is younger than the reader's timeout.

The topic is compacted and keyed by executor id, so it holds the latest heartbeat of
every executor; a clean shutdown writes a tombstone (null value). Executors write it,
the core reads it (which handlers run on which queues), and so may any other consumer.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, ClassVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from taskstream.schemas.errors import EventDecodeError

__all__ = ["WorkerHeartbeat", "is_live", "read_workers_record", "serves", "worker_view"]


class WorkerHeartbeat(BaseModel):
    """One executor's state, as a value of the ``workers`` topic (key: ``executor_id``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    TYPE: ClassVar[str] = "WorkerHeartbeat"
    VERSION: ClassVar[int] = 1

    executor_id: str = Field(description="the executor's name, also the record key")
    host: str
    pid: int = Field(ge=0)
    queues: list[str] = Field(description="the queues it consumes")
    handlers: list[str] = Field(
        description="registered names of the handlers it runs ('shell' only when enabled)"
    )
    capacity: int = Field(ge=1, description="executions it runs at once")
    in_flight: int = Field(ge=0, description="executions running when it was sent")
    cpu_percent: float = Field(ge=0, description="CPU since the last heartbeat; 100 = one core")
    memory_rss_bytes: int = Field(ge=0)
    started_at: AwareDatetime
    sent_at: AwareDatetime
    version: int = VERSION

    def encode(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def decode(cls, raw: bytes) -> WorkerHeartbeat:
        """Decode a ``workers`` record value; raise ``EventDecodeError`` on bad input."""
        try:
            return cls.model_validate_json(raw)
        except ValidationError as exc:
            raise EventDecodeError(f"invalid worker heartbeat: {exc}", raw) from exc


def is_live(heartbeat: WorkerHeartbeat, now: datetime, timeout: timedelta) -> bool:
    """True if ``heartbeat`` was sent less than ``timeout`` before ``now``."""
    return now - heartbeat.sent_at < timeout


def serves(heartbeat: WorkerHeartbeat, handler: str, queue: str) -> bool:
    """True if the executor runs ``handler`` (a registered name) and consumes ``queue``."""
    return handler in heartbeat.handlers and queue in heartbeat.queues


def read_workers_record(
    key: bytes | None, value: bytes | None
) -> tuple[str, WorkerHeartbeat | None]:
    """The executor a ``workers`` record is about, and its heartbeat (None: it left).

    Raise ``EventDecodeError`` for a value that is no heartbeat or a keyless tombstone.
    """
    if value is None:
        if not key:
            raise EventDecodeError("a tombstone without a key names no executor", b"")
        return key.decode(errors="replace"), None
    heartbeat = WorkerHeartbeat.decode(value)
    return (key.decode(errors="replace") if key else heartbeat.executor_id), heartbeat


def worker_view(heartbeat: WorkerHeartbeat, now: datetime, timeout: timedelta) -> dict[str, Any]:
    """A heartbeat as ``GET /api/workers`` shows it (every service): its fields, ``live``
    and ``last_seen_seconds`` (the model is :class:`taskstream.schemas.api.Worker`)."""
    return {
        **heartbeat.model_dump(mode="json"),
        "live": is_live(heartbeat, now, timeout),
        "last_seen_seconds": round((now - heartbeat.sent_at).total_seconds(), 3),
    }
