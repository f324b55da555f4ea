"""The heartbeat value on the workers topic, and the executor's settings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest
from pydantic import ValidationError

from taskstream.executor.heartbeat import ProcessStats
from taskstream.executor.settings import ExecutorSettings
from taskstream.schemas import WorkerHeartbeat

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def test_the_heartbeat_is_plain_json_with_the_documented_fields() -> None:
    heartbeat = WorkerHeartbeat(
        executor_id="host-1",
        host="host",
        pid=1,
        queues=["default"],
        handlers=["noop", "sleep"],
        capacity=8,
        in_flight=3,
        cpu_percent=12.5,
        memory_rss_bytes=50_000_000,
        started_at=NOW,
        sent_at=NOW + timedelta(seconds=5),
    )
    document = orjson.loads(heartbeat.encode())
    assert set(document) == {
        "executor_id", "host", "pid", "queues", "handlers", "capacity", "in_flight",
        "cpu_percent", "memory_rss_bytes", "started_at", "sent_at", "version",
    }  # fmt: skip
    assert document["version"] == 1
    assert WorkerHeartbeat.decode(heartbeat.encode()) == heartbeat
    with pytest.raises(ValidationError):
        WorkerHeartbeat.model_validate({**document, "surprise": 1})
    with pytest.raises(ValidationError):
        WorkerHeartbeat.model_validate({**document, "sent_at": "2030-01-01T00:00:00"})


def test_process_stats_are_plausible() -> None:
    stats = ProcessStats()
    sum(range(200_000))  # burn a little CPU
    assert 0 <= stats.cpu_percent() < 1000
    assert stats.memory_rss_bytes() > 10_000_000


def test_executor_settings_defaults_and_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CONCURRENCY", "MAX_BUFFERED", "SHELL_ENABLED", "HEARTBEAT_INTERVAL"):
        monkeypatch.delenv(f"TASKSTREAM_EXECUTOR_{name}", raising=False)
    settings = ExecutorSettings()
    assert settings.executor_concurrency == 8 and settings.max_buffered == 1000
    assert settings.executor_heartbeat_interval == timedelta(seconds=5)
    assert settings.executor_shell_enabled is False
    monkeypatch.setenv("TASKSTREAM_EXECUTOR_CONCURRENCY", "300")
    monkeypatch.setenv("TASKSTREAM_EXECUTOR_SHELL_ENABLED", "true")
    monkeypatch.setenv("TASKSTREAM_EXECUTOR_HEARTBEAT_INTERVAL", "250ms")
    settings = ExecutorSettings()
    assert settings.max_buffered == 1200 and settings.executor_shell_enabled
    assert settings.executor_heartbeat_interval == timedelta(milliseconds=250)
    monkeypatch.setenv("TASKSTREAM_EXECUTOR_MAX_BUFFERED", "10")
    assert ExecutorSettings().max_buffered == 10
    monkeypatch.setenv("TASKSTREAM_EXECUTOR_CONCURRENCY", "0")
    with pytest.raises(ValidationError, match="executor_concurrency"):
        ExecutorSettings()


def test_every_executor_setting_has_a_description() -> None:
    for name, field in ExecutorSettings.model_fields.items():
        if name.startswith("executor_"):
            assert field.description, name
