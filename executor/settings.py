"""The executor's settings (environment variables ``TASKSTREAM_EXECUTOR_*`` and shared ones)."""

from __future__ import annotations

import os
import socket
from datetime import timedelta

from pydantic import Field, model_validator

from taskstream.infra.settings import CommonSettings
from taskstream.schemas import Duration

__all__ = ["MIN_BUFFERED", "ExecutorSettings"]

MIN_BUFFERED = 1000
"""The default buffer's floor. A pause drops what the client had fetched ahead, and a
resume fetches again: the buffer must hold enough orders to keep the slots busy through
that round trip. With ``4 x concurrency`` (32 by default) a burst paused and resumed every
16 orders and drained at 640 executions/s, with 1,000 at 1,970/s (``bench/throughput.py
--tasks 20000 --due-in 30 --no-monitor --concurrency 8``)."""


class ExecutorSettings(CommonSettings):
    executor_queues: list[str] = Field(
        default=["default"], min_length=1, description="queues this executor serves"
    )
    executor_id: str = Field(
        default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}",
        description="this executor's name in events and heartbeats",
    )
    executor_host: str = Field(default="127.0.0.1", description="address of /health and /metrics")
    executor_port: int = Field(
        default=8081, ge=0, le=65535, description="port of /health and /metrics"
    )
    executor_default_timeout: Duration = Field(
        default=timedelta(minutes=5), description="timeout of tasks that set none"
    )
    executor_concurrency: int = Field(
        default=8, ge=1, le=1024, description="executions that run at the same time"
    )
    executor_max_buffered: int | None = Field(
        default=None,
        ge=1,
        description=(
            "work orders a queue's consumer holds (received, not finished) before it pauses "
            "its fullest lanes; resumed below half. Default: the larger of 1,000 and "
            "4 x executor_concurrency"
        ),
    )
    executor_heartbeat_interval: Duration = Field(
        default=timedelta(seconds=5),
        description="how often the executor announces itself on the workers topic",
    )
    executor_shell_enabled: bool = Field(
        default=False,
        description="allow the 'shell' handler to run commands; off: its work orders fail",
    )
    executor_session_timeout: Duration = Field(
        default=timedelta(seconds=10),
        description="a dead executor's partitions move to the others after this",
    )
    executor_shutdown_grace: Duration = Field(
        default=timedelta(seconds=10),
        description=(
            "on stop or revoke, how long running executions may finish before they are "
            "dropped (the partition's next owner runs them again)"
        ),
    )

    executor_log_max_bytes: int = Field(
        default=65_536,
        ge=1024,
        le=16 * 1024 * 1024,
        description=(
            "what a run keeps of its handler's logs and prints: this much of the head, a "
            "quarter of it of the tail; the middle is dropped and counted"
        ),
    )
    executor_log_flush_interval: Duration = Field(
        default=timedelta(seconds=2),
        description="how often a running handler's new log lines are shipped",
    )
    executor_started_event_after: Duration = Field(
        default=timedelta(seconds=1),
        description=(
            "a run still going after this long gets an ExecutionStarted event (the "
            "running views); one that ends sooner is only its outcome event, which "
            "carries started_at. 0: an ExecutionStarted at every start"
        ),
    )

    @model_validator(mode="after")
    def _positive_durations(self) -> ExecutorSettings:
        if self.executor_started_event_after.total_seconds() < 0:
            raise ValueError(
                "executor_started_event_after must be 0 or more, got "
                f"{self.executor_started_event_after}"
            )
        for name in (
            "executor_default_timeout",
            "executor_heartbeat_interval",
            "executor_log_flush_interval",
        ):
            value: timedelta = getattr(self, name)
            if value.total_seconds() <= 0:
                raise ValueError(f"{name} must be positive, got {value}")
        return self

    @property
    def max_buffered(self) -> int:
        """The effective buffer limit of one queue's consumer."""
        return self.executor_max_buffered or max(MIN_BUFFERED, 4 * self.executor_concurrency)

    def group_id(self, queue: str) -> str:
        return f"{self.topic_prefix}executor-{queue}"
