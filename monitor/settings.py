"""The monitor's settings (environment variables ``TASKSTREAM_MONITOR_*`` and shared ones)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from pydantic import Field, field_validator

from schemas import Duration
from taskstream.infra.settings import CommonSettings

__all__ = ["MonitorSettings"]


class MonitorSettings(CommonSettings):
    monitor_host: str = Field(
        default="127.0.0.1", description="address of the monitor's web server"
    )
    monitor_port: int = Field(default=6066, ge=1, le=65535, description="port of the monitor")
    monitor_history_size: int = Field(
        default=100,
        ge=1,
        description=(
            "executions kept in each task's history; an execution that leaves it (and the "
            "recent list) is evicted once finished"
        ),
    )
    monitor_recent_size: int = Field(
        default=500,
        ge=1,
        description=(
            "finished executions kept per task-events partition for "
            "GET /api/monitor/executions (newest first)"
        ),
    )
    monitor_window_retention: Duration = Field(
        default=timedelta(hours=24),
        description="how long the per-minute windows of /api/monitor/metrics are kept",
    )
    monitor_store: str = Field(
        default="memory://",
        description="faust table store: memory:// or rocksdb:// (the 'rocksdb' extra)",
    )
    monitor_data_dir: Path = Field(
        default=Path(".taskstream/monitor"), description="faust's data directory"
    )

    @field_validator("monitor_window_retention")
    @classmethod
    def _at_least_a_minute(cls, value: timedelta) -> timedelta:
        if value.total_seconds() < 60:
            raise ValueError(f"must be at least a minute, got {value}")
        return value

    @property
    def app_id(self) -> str:
        return f"{self.topic_prefix}monitor"
