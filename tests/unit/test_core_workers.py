"""The core's executor directory without a broker: the fold, liveness, serving, messages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from taskstream.core.settings import CoreSettings
from taskstream.core.workers import WorkerTable, loading_message, unserved_message
from taskstream.schemas import EventDecodeError, WorkerHeartbeat
from taskstream.schemas.workers import is_live, serves, worker_view

NOW = datetime(2030, 1, 1, 12, tzinfo=UTC)
TIMEOUT = timedelta(seconds=20)


def beat(executor_id: str, *, age: float = 1.0, **fields: Any) -> WorkerHeartbeat:
    values: dict[str, Any] = {
        "executor_id": executor_id,
        "host": "host",
        "pid": 1,
        "queues": ["default"],
        "handlers": ["echo", "noop"],
        "capacity": 8,
        "in_flight": 0,
        "cpu_percent": 1.0,
        "memory_rss_bytes": 1,
        "started_at": NOW - timedelta(hours=1),
        "sent_at": NOW - timedelta(seconds=age),
        **fields,
    }
    return WorkerHeartbeat(**values)


def record(heartbeat: WorkerHeartbeat) -> tuple[bytes, bytes]:
    return heartbeat.executor_id.encode(), heartbeat.encode()


def test_an_executor_is_live_while_its_heartbeat_is_younger_than_the_timeout() -> None:
    assert is_live(beat("e", age=0), NOW, TIMEOUT)
    assert is_live(beat("e", age=19.9), NOW, TIMEOUT)
    assert not is_live(beat("e", age=20), NOW, TIMEOUT)
    assert not is_live(beat("e", age=3600), NOW, TIMEOUT)


def test_an_executor_serves_a_handler_only_on_its_queues() -> None:
    heartbeat = beat("e", queues=["default", "reports"], handlers=["echo"])
    assert serves(heartbeat, "echo", "reports")
    assert not serves(heartbeat, "noop", "default")
    assert not serves(heartbeat, "echo", "billing")


def test_the_fold_keeps_the_latest_heartbeat_and_a_tombstone_forgets() -> None:
    table = WorkerTable(TIMEOUT)
    table.apply(*record(beat("a", in_flight=1)))
    table.apply(*record(beat("b")))
    table.apply(*record(beat("a", in_flight=5)))
    assert [(b.executor_id, b.in_flight) for b in table.known()] == [("a", 5), ("b", 0)]
    table.apply(b"a", None)
    table.apply(b"never-seen", None)  # a tombstone of an executor compaction already forgot
    assert [b.executor_id for b in table.known()] == ["b"]


def test_a_bad_record_changes_nothing_and_says_why() -> None:
    table = WorkerTable(TIMEOUT)
    table.apply(*record(beat("a")))
    with pytest.raises(EventDecodeError) as caught:
        table.apply(b"a", b"\xff not json")
    assert caught.value.raw == b"\xff not json"
    with pytest.raises(EventDecodeError, match="tombstone without a key"):
        table.apply(None, None)
    assert [b.executor_id for b in table.known()] == ["a"]


def test_live_and_serving_leave_out_expired_executors() -> None:
    table = WorkerTable(TIMEOUT)
    table.apply(*record(beat("fresh", handlers=["echo"])))
    table.apply(*record(beat("stale", age=60, handlers=["echo", "sleep"])))
    table.apply(*record(beat("other-queue", queues=["reports"], handlers=["sleep"])))
    assert [b.executor_id for b in table.live(NOW)] == ["fresh", "other-queue"]
    assert [b.executor_id for b in table.serving("echo", "default", NOW)] == ["fresh"]
    assert table.serving("sleep", "default", NOW) == []  # only the expired one ran it there
    assert len(table.known()) == 3


def test_the_message_says_how_to_start_an_executor_and_which_are_live() -> None:
    live = [beat("e1", queues=["reports"], handlers=["echo", "noop"])]
    assert unserved_message("echo", "reports", live) is None
    message = unserved_message("sleep", "default", live)
    assert message == (
        "no live executor serves handler 'sleep' on queue 'default'; start one with "
        "`TASKSTREAM_EXECUTOR_QUEUES='[\"default\"]' taskstream executor` where 'sleep' is "
        "installed (live executors: e1 (queues reports; handlers echo, noop))"
    )
    shell = unserved_message("shell", "default", [])
    assert shell is not None
    assert "TASKSTREAM_EXECUTOR_SHELL_ENABLED=true" in shell and "(live executors: none)" in shell
    many = unserved_message("sleep", "default", [beat(f"e{n}") for n in range(8)])
    assert many is not None and many.endswith("and 3 more)")
    assert "still loading" in loading_message("echo", "default")


def test_a_worker_document_has_the_heartbeat_and_its_liveness() -> None:
    document = worker_view(beat("e", age=30.5), NOW, TIMEOUT)
    assert document["executor_id"] == "e" and document["handlers"] == ["echo", "noop"]
    assert document["live"] is False
    assert document["last_seen_seconds"] == 30.5
    assert document["sent_at"] == "2030-01-01T11:59:29.500000Z"


def test_the_core_settings_of_the_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CORE_WORKER_TIMEOUT", "UNSERVED_HANDLER"):
        monkeypatch.delenv(f"TASKSTREAM_{name}", raising=False)
    settings = CoreSettings()
    assert settings.core_worker_timeout == timedelta(seconds=20)
    assert settings.unserved_handler == "warn"
    monkeypatch.setenv("TASKSTREAM_CORE_WORKER_TIMEOUT", "1m")
    monkeypatch.setenv("TASKSTREAM_UNSERVED_HANDLER", "reject")
    settings = CoreSettings()
    assert settings.core_worker_timeout == timedelta(minutes=1)
    assert settings.unserved_handler == "reject"
    monkeypatch.setenv("TASKSTREAM_UNSERVED_HANDLER", "shout")
    with pytest.raises(ValidationError, match="unserved_handler"):
        CoreSettings()
    monkeypatch.setenv("TASKSTREAM_UNSERVED_HANDLER", "ignore")
    monkeypatch.setenv("TASKSTREAM_CORE_WORKER_TIMEOUT", "0s")
    with pytest.raises(ValidationError, match="core_worker_timeout must be positive"):
        CoreSettings()
