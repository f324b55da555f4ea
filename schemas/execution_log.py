"""Per-execution logs: what a handler logged and printed, as chunks on ``execution-logs``.

An executor ships the lines one run of a handler produced in numbered chunks while it
runs (every few seconds) and a last one, ``final``, when it ends. Records are keyed by
execution id, so the chunks of one run stay in order on one partition. A run is one
attempt on one executor: the same execution id can run twice when an executor dies
mid-run, so chunks carry a ``run_id`` too.

The executor caps what it keeps of a run (the head, then the tail); what it drops in
between is counted in the final chunk's ``dropped_lines`` and ``dropped_bytes``.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

__all__ = ["ExecutionLogChunk", "LogLine", "LogStream"]

LogStream = Literal["log", "stdout", "stderr"]
"""Where a line came from: a ``logging`` record, or ``print``/writes to stdout/stderr."""


class LogLine(BaseModel):
    """One line a handler logged or printed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    at: AwareDatetime
    stream: LogStream
    level: str | None = Field(default=None, description="the record's level; None for prints")
    logger: str | None = Field(default=None, description="the record's logger; None for prints")
    message: str


class ExecutionLogChunk(BaseModel):
    """A run's lines, in order: a value of ``execution-logs`` (key: ``execution_id``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    TYPE: ClassVar[str] = "ExecutionLogChunk"
    VERSION: ClassVar[int] = 1

    execution_id: str
    task_id: str
    attempt: int = Field(ge=1)
    run_id: str = Field(description="one run of the execution on one executor")
    worker_id: str
    seq: int = Field(ge=0, description="the chunk's number within its run, from 0")
    lines: tuple[LogLine, ...] = ()
    final: bool = Field(default=False, description="the run ended: no chunk follows")
    dropped_lines: int = Field(default=0, ge=0, description="lines over the size cap, dropped")
    dropped_bytes: int = Field(default=0, ge=0)
    sent_at: AwareDatetime

    def encode(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def decode(cls, raw: bytes) -> ExecutionLogChunk:
        return cls.model_validate_json(raw)
