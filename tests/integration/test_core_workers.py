"""The core's executor directory on a real broker, and what the API makes of it.

Heartbeats come from the executor's own :class:`HeartbeatSender` and, for the cases an
executor does not produce on demand (an expired heartbeat, poison bytes), as records
written here. The API runs in-process, served by uvicorn on a free port, over a real core runtime
(:func:`taskstream.core.service.bootstrap`).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from confluent_kafka import Producer

from taskstream.core.api import CoreRuntime, create_api
from taskstream.core.service import bootstrap, shutdown
from taskstream.core.settings import CoreSettings
from taskstream.core.workers import WorkerDirectory
from taskstream.executor.heartbeat import HeartbeatSender
from taskstream.executor.publisher import Publisher
from taskstream.handlers import HandlerRegistry
from taskstream.handlers.builtin import EchoHandler, NoopHandler
from taskstream.infra.kafka import ensure_topics, standard_topics
from taskstream.infra.processes import free_port
from taskstream.schemas import WorkerHeartbeat
from tests.support import eventually

pytestmark = pytest.mark.kafka


def _settings(bootstrap_servers: str, prefix: str, **overrides: Any) -> CoreSettings:
    values: dict[str, Any] = {
        "kafka_bootstrap_servers": bootstrap_servers,
        "topic_prefix": prefix,
        "task_events_partitions": 3,
        "execution_partitions": 1,
        **overrides,
    }
    return CoreSettings(**values)


def _heartbeat(executor_id: str, *, age: timedelta = timedelta(0)) -> WorkerHeartbeat:
    now = datetime.now(UTC)
    return WorkerHeartbeat(
        executor_id=executor_id,
        host="elsewhere",
        pid=42,
        queues=["default"],
        handlers=["echo"],
        capacity=4,
        in_flight=0,
        cpu_percent=0.0,
        memory_rss_bytes=1,
        started_at=now - age - timedelta(minutes=1),
        sent_at=now - age,
    )


class _Records:
    """Writes records to the workers topic as any producer would."""

    def __init__(self, settings: CoreSettings) -> None:
        self.topic = settings.topics.workers
        self._producer = Producer({"bootstrap.servers": settings.kafka_bootstrap_servers})

    def write(self, key: str, value: bytes | None) -> None:
        self._producer.produce(self.topic, key=key.encode(), value=value)
        assert self._producer.flush(30) == 0, "records not delivered"

    def beat(self, heartbeat: WorkerHeartbeat) -> None:
        self.write(heartbeat.executor_id, heartbeat.encode())


def _sender(publisher: Publisher, settings: CoreSettings, executor_id: str) -> HeartbeatSender:
    return HeartbeatSender(
        publisher,
        settings.topics.workers,
        0.5,
        lambda: {"in_flight": 0},
        executor_id=executor_id,
        queues=["default"],
        handlers=["echo"],
        capacity=2,
    )


def _ids(heartbeats: list[WorkerHeartbeat]) -> list[str]:
    return [beat.executor_id for beat in heartbeats]


def test_the_directory_follows_heartbeats_tombstones_expiry_and_survives_poison(
    kafka_bootstrap: str, topic_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = _settings(kafka_bootstrap, topic_prefix)
    workers = settings.topics.workers
    ensure_topics(settings, [s for s in standard_topics(settings, []) if s.name == workers])
    records = _Records(settings)
    records.beat(_heartbeat("early"))
    records.write("poison", b"\xff not a heartbeat")
    records.beat(_heartbeat("early-then-gone"))
    records.write("early-then-gone", None)

    directory = WorkerDirectory(settings)
    publisher = Publisher(settings)
    sender = _sender(publisher, settings, "real-executor")
    directory.start()
    try:
        assert directory.wait_ready(30), "the directory never caught up with the topic"
        assert _ids(directory.known()) == ["early"], "everything there at start is read"
        [poisoned] = [r for r in caplog.records if "undecodable heartbeat" in r.getMessage()]
        assert poisoned.taskstream_fields == {"topic": workers, "partition": 0, "offset": 1}

        sender.start()
        eventually(
            lambda: "real-executor" in _ids(directory.serving("echo", "default")),
            what="the executor's own heartbeat",
        )
        assert directory.serving("echo", "reports") == []
        assert directory.serving("noop", "default") == []

        records.beat(_heartbeat("expired", age=timedelta(minutes=5)))
        eventually(lambda: "expired" in _ids(directory.known()), what="the expired heartbeat")
        assert "expired" not in _ids(directory.live())
        assert "expired" not in _ids(directory.serving("echo", "default"))

        sender.stop()  # a clean stop writes the tombstone
        eventually(
            lambda: "real-executor" not in _ids(directory.known()), what="the tombstone applied"
        )

        records.write("poison", b"{}")
        records.beat(_heartbeat("after-poison"))
        eventually(lambda: "after-poison" in _ids(directory.live()), what="a beat after poison")
        assert directory.alive and directory.error is None
    finally:
        sender.stop()
        directory.stop()
        publisher.close()
    assert not directory.alive


# -- the API -------------------------------------------------------------------------------


@pytest.fixture
def core(kafka_bootstrap: str, topic_prefix: str, tmp_path: Path) -> Iterator[CoreRuntime]:
    """A core runtime in-process with the noop and echo handlers, SQLite in ``tmp_path``."""
    registry = HandlerRegistry()
    registry.register(NoopHandler)
    registry.register(EchoHandler)
    settings = _settings(
        kafka_bootstrap, topic_prefix, database_url=f"sqlite:///{tmp_path / 'store.db'}"
    )
    runtime = bootstrap(settings, registry)
    try:
        yield runtime
    finally:
        shutdown(runtime)


@contextmanager
def _api(runtime: CoreRuntime, **changes: Any) -> Iterator[httpx.Client]:
    """The API over ``runtime`` with some settings changed, on a free port."""
    settings = runtime.settings.model_copy(update=changes.pop("settings", {}))
    app = create_api(dataclasses.replace(runtime, settings=settings, **changes))
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, port=port, log_config=None, access_log=False, lifespan="off")
    )
    thread = threading.Thread(target=server.run, name="test-api", daemon=True)
    thread.start()
    try:
        eventually(lambda: server.started, what="the API to listen")
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            yield client
    finally:
        server.should_exit = True
        thread.join(10)


def _create(client: httpx.Client, handler: str, status: int = 201) -> httpx.Response:
    body = {"name": f"{handler}-task", "schedule": {"every": "1h"}, "handler": handler}
    response = client.post("/api/tasks", json=body)
    assert response.status_code == status, response.text
    return response


def test_the_api_warns_rejects_or_ignores_unserved_handlers_and_lists_workers(
    core: CoreRuntime, caplog: pytest.LogCaptureFixture
) -> None:
    """One executor serves ``echo`` on ``default``; nobody serves ``noop``."""
    records = _Records(core.settings)
    records.beat(_heartbeat("gone-quiet", age=timedelta(minutes=5)))
    publisher = Publisher(core.settings)
    sender = _sender(publisher, core.settings, "echo-executor")
    sender.start()
    try:
        eventually(
            lambda: core.workers.ready and core.workers.serving("echo", "default"),
            what="the directory to see the echo executor",
        )
        with (
            _api(core, settings={"unserved_handler": "warn"}) as warn,
            _api(core, settings={"unserved_handler": "reject"}) as reject,
            _api(core, settings={"unserved_handler": "ignore"}) as ignore,
        ):
            _check_modes(core, warn, reject, ignore, caplog)
        loading = WorkerDirectory(core.settings)  # never started: has read nothing yet
        try:
            with _api(core, workers=loading, settings={"unserved_handler": "reject"}) as early:
                [note] = _create(early, "noop").json()["warnings"]
                assert "executor directory is still loading" in note
        finally:
            loading.stop()
        with _api(core) as api:
            _check_listing(api)
        with _api(core, settings={"api_tokens": ["t0ken"]}) as secured:
            assert secured.get("/api/workers").status_code == 401
            authorized = {"Authorization": "Bearer t0ken"}
            assert secured.get("/api/workers", headers=authorized).is_success
    finally:
        sender.stop()
        publisher.close()


def _check_modes(
    core: CoreRuntime,
    warn: httpx.Client,
    reject: httpx.Client,
    ignore: httpx.Client,
    caplog: pytest.LogCaptureFixture,
) -> None:
    served = _create(warn, "echo")
    assert "warnings" not in served.json() and "warning" not in served.headers

    caplog.set_level(logging.WARNING, logger="taskstream.core.api")
    # named by class path: checked under its canonical registered name
    unserved = _create(warn, "handlers.builtin.NoopHandler")
    task = unserved.json()
    assert task["handler"] == "noop"
    [warning] = task["warnings"]
    assert warning.startswith("no live executor serves handler 'noop' on queue 'default'")
    assert "(live executors: echo-executor (queues default; handlers echo))" in warning
    assert unserved.headers["warning"].startswith('199 - "no live executor serves')
    assert '\\"default\\"' in unserved.headers["warning"], "quotes escaped in the header"
    logged = [r for r in caplog.records if getattr(r, "taskstream_fields", {}).get("task_id")]
    assert [r.taskstream_fields["task_id"] for r in logged] == [task["id"]]
    assert warn.get(f"/api/tasks/{task['id']}").json()["version"] == 1

    _, before = core.store.list_tasks(page=0, size=1)
    refused = _create(reject, "noop", status=422).json()
    assert refused["error"] == "handler_unserved"
    assert refused["message"].startswith("no live executor serves handler 'noop'")
    assert (refused["handler"], refused["queue"]) == ("noop", "default")
    echo_task = f"/api/tasks/{served.json()['id']}"
    moved = reject.patch(echo_task, json={"handler": "noop"})
    assert moved.status_code == 422 and moved.json()["error"] == "handler_unserved"
    replaced = reject.put(
        echo_task, json={"name": "x", "schedule": {"every": "1h"}, "handler": "noop"}
    )
    assert replaced.status_code == 422
    _create(reject, "echo")  # in the store when answered; the refused writes never were
    assert core.store.list_tasks(page=0, size=1)[1] == before + 1
    assert reject.get(echo_task).json()["handler"] == "echo"
    # a task already on an unserved handler can still be edited, with the warning
    renamed = reject.patch(f"/api/tasks/{task['id']}", json={"name": "renamed"})
    assert renamed.status_code == 200 and renamed.json()["warnings"] == [warning]

    quiet = _create(ignore, "noop")
    assert "warnings" not in quiet.json() and "warning" not in quiet.headers


def _check_listing(api: httpx.Client) -> None:
    listed = api.get("/api/workers").json()
    assert listed["ready"] is True
    by_id = {item["executor_id"]: item for item in listed["items"]}
    assert set(by_id) == {"echo-executor", "gone-quiet"}
    assert by_id["echo-executor"]["live"] is True
    assert by_id["echo-executor"]["handlers"] == ["echo"]
    assert 0 <= by_id["echo-executor"]["last_seen_seconds"] < 20
    assert by_id["gone-quiet"]["live"] is False
    assert by_id["gone-quiet"]["last_seen_seconds"] >= 300
    only_live = api.get("/api/workers", params={"live": "true"}).json()["items"]
    assert [item["executor_id"] for item in only_live] == ["echo-executor"]
    assert api.get("/health").json()["components"]["workers"]["state"] == "ok"
