"""The monitor's settings (environment variables ``TASKSTREAM_MONITOR_*`` and shared ones)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import BeforeValidator, Field, SecretStr, field_validator
from pydantic_settings import NoDecode

from taskstream.infra.settings import CommonSettings, TokenList, split_list
from taskstream.schemas import Duration

__all__ = ["MonitorSettings"]


def _base_url(value: str) -> str:
    url = value.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
        raise ValueError(f"{value!r} is not a base URL such as http://127.0.0.1:8080")
    return url


URLList = Annotated[list[str], NoDecode, BeforeValidator(split_list)]
"""Base URLs: a comma-separated variable (``http://a:8081,http://b:8081``), or a list."""


class MonitorSettings(CommonSettings):
    monitor_host: str = Field(
        default="127.0.0.1", description="address the monitor's web server binds"
    )
    monitor_port: int = Field(default=6066, ge=1, le=65535, description="port of the monitor")
    monitor_tokens: TokenList = Field(
        default_factory=list,
        description=("bearer tokens the monitor's /api/ accepts (comma-separated); empty: no auth"),
    )
    monitor_tokens_file: Path | None = Field(
        default=None, description="a file of bearer tokens, one per line (# comments)"
    )
    monitor_insecure: bool = Field(
        default=False, description="allow a monitor on a non-loopback address without tokens"
    )
    monitor_core_url: str | None = Field(
        default=None,
        description=(
            "base URL of the core (http://host:port): the dashboard shows its /health "
            "(no token is sent; /health is open); none: the core is not shown"
        ),
    )
    monitor_executor_urls: URLList = Field(
        default_factory=list,
        description="base URLs of the executors' /health (comma-separated); empty: none shown",
    )
    monitor_peer_health_timeout: Duration = Field(
        default=timedelta(seconds=1),
        description=(
            "how long the monitor waits for another service's /health before it shows "
            "that service as unreachable"
        ),
    )
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
    monitor_batch_size: int = Field(
        default=1000,
        ge=1,
        le=100_000,
        description=(
            "task-events records the monitor folds at a time: each table key a batch "
            "changes is written (one changelog record) once per batch"
        ),
    )
    monitor_batch_wait: Duration = Field(
        default=timedelta(milliseconds=200),
        description=(
            "how long the monitor waits to fill a batch before it folds what it has "
            "(the most its views lag behind task-events when it keeps up)"
        ),
    )
    monitor_store: str = Field(
        default="memory://",
        description="faust table store: memory:// or rocksdb:// (the 'rocksdb' extra)",
    )
    monitor_data_dir: Path = Field(
        default=Path(".taskstream/monitor"), description="faust's data directory"
    )
    monitor_session_timeout: Duration = Field(
        default=timedelta(seconds=10),
        description=(
            "how long the broker keeps a monitor that stopped heartbeating in its consumer "
            "group: after a kill -9 the restarted monitor gets its partitions back (and "
            "counts again) once the dead one's session has run out (faust's default: 60s); "
            "heartbeats go every fifth of it"
        ),
    )
    monitor_worker_timeout: Duration = Field(
        default=timedelta(seconds=20),
        description="an executor whose last heartbeat is older than this is not live (lost)",
    )
    monitor_alert_rules_file: Path | None = Field(
        default=None, description="a TOML (or JSON) file of alert rules, read at start-up"
    )
    monitor_alert_check_interval: Duration = Field(
        default=timedelta(seconds=5),
        description="how often time-based alert rules (long run, missed schedule, lost "
        "executor, failure rate windows) are checked",
    )
    monitor_alert_recent_size: int = Field(
        default=100, ge=1, le=10_000, description="notifications kept for GET /api/alerts"
    )
    monitor_alert_webhook_url: str | None = Field(
        default=None, description="POST every notification here as JSON; none: no webhook"
    )
    monitor_alert_webhook_timeout: Duration = Field(
        default=timedelta(seconds=5), description="timeout of one webhook request"
    )
    monitor_alert_webhook_attempts: int = Field(
        default=3, ge=1, le=20, description="tries per webhook notification (5xx, 429, errors)"
    )
    monitor_alert_smtp_host: str | None = Field(
        default=None, description="SMTP server for e-mail notifications; none: no e-mail"
    )
    monitor_alert_smtp_port: int = Field(default=25, ge=1, le=65535, description="SMTP port")
    monitor_alert_smtp_starttls: bool = Field(
        default=False, description="upgrade the SMTP connection with STARTTLS"
    )
    monitor_alert_smtp_username: str | None = Field(
        default=None, description="SMTP AUTH user; none: no authentication"
    )
    monitor_alert_smtp_password: SecretStr | None = Field(
        default=None, description="SMTP AUTH password (never logged)"
    )
    monitor_alert_smtp_password_file: Path | None = Field(
        default=None, description="a file holding the SMTP AUTH password (a mounted secret)"
    )
    monitor_alert_smtp_timeout: Duration = Field(
        default=timedelta(seconds=10), description="timeout of one SMTP conversation"
    )
    monitor_alert_smtp_attempts: int = Field(
        default=3, ge=1, le=20, description="tries per e-mail notification"
    )
    monitor_alert_email_from: str = Field(
        default="taskstream@localhost", description="sender of alert e-mails"
    )
    monitor_alert_email_to: list[str] = Field(
        default_factory=list, description="recipients of alert e-mails (JSON list)"
    )
    monitor_alert_topic_enabled: bool = Field(
        default=True, description="write every notification to the alerts topic"
    )

    @field_validator("monitor_worker_timeout", "monitor_alert_check_interval")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value.total_seconds() < 0.05:
            raise ValueError(f"must be at least 50ms, got {value}")
        return value

    @field_validator("monitor_core_url")
    @classmethod
    def _core_url(cls, value: str | None) -> str | None:
        return None if value is None or not value.strip() else _base_url(value)

    @field_validator("monitor_executor_urls")
    @classmethod
    def _executor_urls(cls, value: list[str]) -> list[str]:
        return [_base_url(url) for url in value]

    @field_validator("monitor_peer_health_timeout")
    @classmethod
    def _peer_timeout(cls, value: timedelta) -> timedelta:
        if not 0.05 <= value.total_seconds() <= 10:
            raise ValueError(f"must be between 50ms and 10s, got {value}")
        return value

    @field_validator("monitor_batch_wait")
    @classmethod
    def _batch_wait(cls, value: timedelta) -> timedelta:
        if not 0.001 <= value.total_seconds() <= 10:
            raise ValueError(f"must be between 1ms and 10s, got {value}")
        return value

    @field_validator("monitor_session_timeout")
    @classmethod
    def _session(cls, value: timedelta) -> timedelta:
        if not 1 <= value.total_seconds() <= 90:  # at most faust's request timeout
            raise ValueError(f"must be between 1s and 90s, got {value}")
        return value

    @field_validator("monitor_window_retention")
    @classmethod
    def _at_least_a_minute(cls, value: timedelta) -> timedelta:
        if value.total_seconds() < 60:
            raise ValueError(f"must be at least a minute, got {value}")
        return value

    @property
    def app_id(self) -> str:
        return f"{self.topic_prefix}monitor"

    def smtp_password(self) -> str | None:
        """The SMTP password from the variable, else from the secret file, else None."""
        if self.monitor_alert_smtp_password is not None:
            return self.monitor_alert_smtp_password.get_secret_value()
        if self.monitor_alert_smtp_password_file is not None:
            return self.monitor_alert_smtp_password_file.read_text().strip()
        return None
