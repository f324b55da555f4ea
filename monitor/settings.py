"""The monitor's settings (environment variables ``TASKSTREAM_MONITOR_*`` and shared ones)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from taskstream.infra.settings import CommonSettings

__all__ = ["MonitorSettings"]


class MonitorSettings(CommonSettings):
    monitor_host: str = Field(
        default="127.0.0.1", description="address of the monitor's web server"
    )
    monitor_port: int = Field(default=6066, ge=1, le=65535, description="port of the monitor")
    monitor_history_size: int = Field(
        default=100, ge=1, description="executions kept in each task's history"
    )
    monitor_store: str = Field(
        default="memory://", description="faust table store: memory:// or rocksdb://"
    )
    monitor_data_dir: Path = Field(
        default=Path(".taskstream/monitor"), description="faust's data directory"
    )

    @property
    def app_id(self) -> str:
        return f"{self.topic_prefix}monitor"
