"""The worker heartbeat: what an executor says about itself on the ``workers`` topic.

The topic is compacted and keyed by executor id, so it holds the latest heartbeat of
every executor; a clean shutdown writes a tombstone (null value). Executors write it,
the core reads it (which handlers run on which queues), and so may any other consumer.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from taskstream.schemas.errors import EventDecodeError

__all__ = ["WorkerHeartbeat"]


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
