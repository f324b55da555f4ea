"""The executor's settings (environment variables ``TASKSTREAM_EXECUTOR_*`` and shared ones)."""

from __future__ import annotations

import os
import socket
from datetime import timedelta

from pydantic import Field

from schemas import Duration
from taskstream.infra.settings import CommonSettings

__all__ = ["ExecutorSettings"]


class ExecutorSettings(CommonSettings):
    executor_queues: list[str] = Field(
        default=["default"], description="queues this executor serves"
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

    def group_id(self, queue: str) -> str:
        return f"{self.topic_prefix}executor-{queue}"
