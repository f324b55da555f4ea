"""The core checks a task's params against its handler's model at every write.

On a real broker, with the handlers installed through entry points (as ``taskstream
core`` finds them): params that do not fit are a 422 naming each ``params.<field>``, and
nothing reaches ``task-events``; a handler without a model takes any params.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from taskstream.core.api import CoreRuntime
from taskstream.handlers import HandlerRegistry
from tests.integration.core_api import core_runtime, served
from tests.kafka_read import read_topic

pytestmark = pytest.mark.kafka


@pytest.fixture
def api(kafka_bootstrap: str, topic_prefix: str, tmp_path: Path) -> Iterator[httpx.Client]:
    registry = HandlerRegistry.from_entry_points()
    with core_runtime(kafka_bootstrap, topic_prefix, tmp_path, registry) as runtime:
        with served(runtime) as client:
            client.runtime = runtime  # type: ignore[attr-defined]
            yield client


def _task(handler: str, params: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {
        "name": "t",
        "schedule": {"every": "1h"},
        "handler": handler,
        "params": params,
        **fields,
    }


def _written(api: httpx.Client) -> list[str]:
    runtime: CoreRuntime = api.runtime  # type: ignore[attr-defined]
    settings = runtime.settings
    records = read_topic(settings.kafka_bootstrap_servers, settings.topics.task_events)
    return [str(r.value["type"]) for r in records if not str(r.value["type"]).startswith("Exec")]


def _errors(response: httpx.Response) -> list[tuple[str, str]]:
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "validation_failed"
    return [(e["field"], e["message"]) for e in body["errors"]]


def test_a_create_whose_params_do_not_fit_is_422_naming_every_field(api: httpx.Client) -> None:
    refused = api.post("/api/tasks", json=_task("http", {"url": 5, "methd": "GET"}))
    assert _errors(refused) == [
        ("params.url", 'params.url must be a non-empty string, e.g. "https://example.com/hook", '
         "not a number"),
        ("params.methd", "unknown parameter 'methd'; did you mean 'method'? (it takes body, "
         "headers, json, method, success_codes, timeout, url)"),
    ]  # fmt: skip
    assert "params.url: params.url must be a non-empty string" in refused.json()["message"]
    shell = api.post("/api/tasks", json=_task("shell", {"command": "ls -l"}))
    [(field, message)] = _errors(shell)
    assert field == "params.command" and '"shell": true' in message
    by_class_path = api.post(
        "/api/tasks", json=_task("taskstream.handlers.builtin.FailHandler", {"until_attempt": 0})
    )
    assert _errors(by_class_path) == [
        ("params.until_attempt", "params.until_attempt must be a whole number of at least 1, not 0")
    ]
    assert _written(api) == []


def test_params_that_fit_are_taken_and_a_handler_without_a_model_takes_any(
    api: httpx.Client,
) -> None:
    fitting = api.post("/api/tasks", json=_task("http", {"url": "https://example.com/hook"}))
    assert fitting.status_code == 201, fitting.text
    assert fitting.json()["params"] == {"url": "https://example.com/hook"}  # as written
    anything = api.post("/api/tasks", json=_task("echo", {"whatever": [1, {"x": None}]}))
    assert anything.status_code == 201, anything.text
    assert _written(api) == ["TaskCreated", "TaskCreated"]


def test_replace_patch_and_batch_check_params_too(api: httpx.Client) -> None:
    created = api.post("/api/tasks", json=_task("sleep", {"seconds": 1}))
    assert created.status_code == 201, created.text
    task = created.json()["id"]

    put = api.put(f"/api/tasks/{task}", json=_task("sleep", {"seconds": -1}))
    assert _errors(put) == [("params.seconds", "params.seconds must be at least 0, not -1")]
    patched = api.patch(f"/api/tasks/{task}", json={"params": {"secs": 2}})
    [(field, message)] = _errors(patched)
    assert field == "params.secs" and "did you mean 'seconds'?" in message
    moved = api.patch(f"/api/tasks/{task}", json={"handler": "kafka"})  # sleep's params
    assert [field for field, _ in _errors(moved)] == ["params.topic", "params.seconds"]
    renamed = api.patch(f"/api/tasks/{task}", json={"name": "renamed"})
    assert renamed.status_code == 200, renamed.text

    batch = api.post(
        "/api/tasks/batch",
        json=[_task("kafka", {"topic": "a topic"}), _task("kafka", {"topic": "reports"})],
    )
    assert batch.status_code == 207, batch.text
    first, second = batch.json()["items"]
    assert first["status"] == 422 and second["status"] == 201
    [error] = first["errors"]
    assert error["field"] == "params.topic" and "is not a Kafka topic name" in error["message"]
    assert sorted(_written(api)) == ["TaskCreated", "TaskCreated", "TaskUpdated"]  # 3 partitions


def test_handlers_are_listed_with_the_schema_their_params_are_checked_against(
    api: httpx.Client,
) -> None:
    listed = api.get("/api/handlers")
    assert listed.status_code == 200, listed.text
    body = listed.json()
    by_name = {item["name"]: item for item in body["items"]}
    assert list(by_name) == sorted(by_name)
    fail = by_name["fail"]
    assert fail["class_path"] == "taskstream.handlers.builtin.FailHandler"
    assert fail["description"] == "Fails on purpose, for tests of retries and dead letters."
    assert fail["queues"] == []  # no executor runs beside this core
    assert set(fail["params_schema"]["properties"]) == {"message", "permanent", "until_attempt"}
    assert by_name["echo"]["params_schema"] is None
    assert "json" in by_name["http"]["params_schema"]["properties"]  # the alias, as written
    one = api.get("/api/handlers/taskstream.handlers.kafka.KafkaHandler")
    assert one.status_code == 200 and one.json()["name"] == "kafka"
    missing = api.get("/api/handlers/nope")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    assert "registered handlers are" in missing.json()["message"]
