"""The core service's settings (environment variables ``TASKSTREAM_*``)."""

from __future__ import annotations

import os
import socket
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from taskstream.infra.settings import CommonSettings, TokenList
from taskstream.schemas import Duration

__all__ = ["CoreSettings"]


def _default_instance_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class CoreSettings(CommonSettings):
    api_host: str = Field(default="127.0.0.1", description="address the REST API binds")
    api_port: int = Field(default=8080, ge=0, le=65535, description="port of the REST API")
    database_url: str = Field(
        default="sqlite:///.taskstream/taskstream.db",
        description="SQLAlchemy URL of the task store (postgresql+psycopg://... in production)",
    )
    queues: list[str] = Field(
        default=["default"], description="queues whose execution topics the core creates"
    )
    instance_id: str = Field(
        default_factory=_default_instance_id, description="this core instance's name"
    )
    read_your_writes_timeout: float = Field(
        default=5.0, ge=0, description="seconds a write waits for the store to show it"
    )
    scheduler_session_timeout_ms: int = Field(
        default=10_000, ge=1000, description="a dead core instance's tasks move after this"
    )
    api_tokens: TokenList = Field(
        default_factory=list,
        description="bearer tokens the API accepts (comma-separated); empty: no auth",
    )
    api_tokens_file: Path | None = Field(
        default=None, description="a file of bearer tokens, one per line"
    )
    api_insecure: bool = Field(default=False, description="allow a non-loopback API without tokens")
    api_max_body_bytes: int = Field(
        default=1_048_576, ge=1024, description="larger request bodies get 413"
    )
    scheduler_transaction_timeout_ms: int = Field(
        default=10_000,
        ge=1000,
        description="a dead instance's open fire transaction is aborted after this",
    )
    fire_batch_size: int = Field(default=1000, ge=1, description="fires per transaction")
    core_worker_timeout: Duration = Field(
        default=timedelta(seconds=20),
        description="an executor whose last heartbeat is older than this is not live",
    )
    min_interval: Duration = Field(
        default=timedelta(seconds=1),
        description=(
            "the shortest gap between two slots of a task: an 'every' below it, or a cron "
            "whose next slots fall closer, is refused with 422"
        ),
    )
    unserved_handler: Literal["warn", "reject", "ignore"] = Field(
        default="warn",
        description=(
            "a task write whose handler no live executor serves on its queue: 'warn' "
            "(written, with a warning), 'reject' (422) or 'ignore'"
        ),
    )

    @property
    def scheduler_group(self) -> str:
        return f"{self.topic_prefix}core-scheduler"

    @property
    def scheduler_transactional_id(self) -> str:
        return f"{self.topic_prefix}core-scheduler-{self.instance_id}"

    @field_validator("core_worker_timeout")
    @classmethod
    def _positive_timeout(cls, value: timedelta) -> timedelta:
        if value.total_seconds() <= 0:
            raise ValueError(f"core_worker_timeout must be positive, got {value}")
        return value
