"""Bad input to the core API on a real broker: always a 4xx in one shape, never a write.

Each test sends what issue #11 saw answered 201 or 500, and checks the answer (status,
``{"error", "message", ...}``) and that nothing reached ``task-events``.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka.admin import NewTopic

from taskstream.core.api import CoreRuntime
from taskstream.infra.kafka import admin_client
from tests.integration.core_api import core_runtime, served
from tests.kafka_read import read_topic

pytestmark = pytest.mark.kafka


def _task(**fields: Any) -> dict[str, Any]:
    return {"name": "t", "schedule": {"every": "1h"}, "handler": "noop", **fields}


def _events(runtime: CoreRuntime) -> list[str]:
    """The types of the events the API wrote (not the scheduler's fires)."""
    settings = runtime.settings
    records = read_topic(settings.kafka_bootstrap_servers, settings.topics.task_events)
    types = [str(record.value["type"]) for record in records]
    return [kind for kind in types if not kind.startswith("Execution")]


def _refused(response: httpx.Response, status: int, error: str, *needles: str) -> dict[str, Any]:
    assert response.status_code == status, response.text[:400]
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert body["error"] == error, str(body)[:400]
    assert isinstance(body["message"], str) and body["message"], body
    for needle in needles:
        assert needle in body["message"], body
    return body


def test_a_cron_the_scheduler_cannot_fire_is_refused_where_the_api_took_it(
    core: CoreRuntime, api: httpx.Client
) -> None:
    for cron in ("0 0 30 2 *", "0 0 31 4 *", "0 0 30,31 2 *", "0 0 ? * *"):
        body = _refused(
            api.post("/api/tasks", json=_task(schedule={"cron": cron})), 422, "validation_failed"
        )
        assert body["errors"][0]["field"] == "schedule.cron", body
    never = api.post("/api/tasks", json=_task(schedule={"cron": "0 0 30 2 *"})).json()
    assert "never fires" in never["message"]
    huge = api.post("/api/tasks", json=_task(schedule={"every": "100000000d"}))
    _refused(huge, 422, "validation_failed", "100 years")
    created = api.post("/api/tasks", json=_task(schedule={"cron": "0 0 30 * *"}))
    assert created.status_code == 201, created.text
    task = created.json()["id"]
    patched = api.patch(f"/api/tasks/{task}", json={"schedule": {"cron": "0 0 31 4 *"}})
    assert "never fires" in _refused(patched, 422, "validation_failed")["message"]
    assert _events(core) == ["TaskCreated"]


def test_schedules_with_no_slot_from_now_or_slots_too_close_are_refused(
    core: CoreRuntime, api: httpx.Client
) -> None:
    past = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    ended = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    cases = [
        ({"at": past}, "schedule.at", "in the past"),
        ({"cron": "* * * * *", "end": ended}, "schedule.cron", "end"),
        ({"every": "1ms"}, "schedule.every", "minimum interval"),
        ({"every": "999ms"}, "schedule.every", "minimum interval"),
        ({"at": "9999-12-31T23:59:59-01:00"}, "schedule.at", "out of range"),
        ({"every": "1h", "start": "0001-01-01T00:00:00+01:00"}, "schedule.start", "out of range"),
    ]
    for schedule, field, needle in cases:
        response = api.post("/api/tasks", json=_task(schedule=schedule))
        body = _refused(response, 422, "validation_failed", needle)
        assert body["errors"][0]["field"] == field, body
    assert api.post("/api/tasks", json=_task(schedule={"every": "1s"})).status_code == 201
    assert _events(core) == ["TaskCreated"]


def test_a_stricter_minimum_interval_refuses_a_cron_that_fires_more_often(
    core: CoreRuntime,
) -> None:
    with served(core, min_interval=timedelta(seconds=10)) as api:
        dense = api.post("/api/tasks", json=_task(schedule={"cron": "*/5 * * * * *"}))
        _refused(dense, 422, "validation_failed", "5s apart", "minimum interval of 10s")
        assert api.post("/api/tasks", json=_task(schedule={"cron": "*/10 * * * * *"})).is_success
    assert _events(core) == ["TaskCreated"]


def test_durations_out_of_range_are_refused_and_do_not_break_a_batch(
    core: CoreRuntime, api: httpx.Client
) -> None:
    for field, value in (
        ("timeout", "99999999999999999h"),
        ("timeout", 1e300),
        ("timeout", -5),
        ("timeout", "0s"),
        ("misfire_grace", "99999999999999999h"),
        ("retry", {"initial_delay": "99999999999999999d"}),
    ):
        response = api.post("/api/tasks", json=_task(**{field: value}))
        _refused(response, 422, "validation_failed", field)
    batch = api.post(
        "/api/tasks/batch", json=[_task(name="ok"), _task(timeout="99999999999999999h")]
    )
    assert batch.status_code == 207, batch.text
    items = batch.json()["items"]
    assert items[0]["status"] == 201 and items[1]["status"] == 422, items
    assert items[1]["errors"][0]["field"] == "timeout"
    assert _events(core) == ["TaskCreated"]


def test_out_of_range_integer_query_parameters_are_422(api: httpx.Client) -> None:
    for params in ({"page": "99999999999999999999"}, {"page": -1}, {"size": 10**30}):
        _refused(api.get("/api/tasks", params=params), 422, "validation_failed")
    assert api.get("/api/tasks", params={"page": 10**9}).json()["items"] == []


def test_non_finite_numbers_nul_and_bad_ids_are_refused_before_the_log(
    core: CoreRuntime, api: httpx.Client
) -> None:
    json_headers = {"Content-Type": "application/json"}
    for raw in (
        b'{"name": "t", "schedule": {"every": "1h"}, "handler": "noop", "params": {"x": NaN}}',
        b'{"name": "t", "schedule": {"every": "1h"}, "handler": "noop", "params": [-Infinity]}',
    ):
        body = _refused(
            api.post("/api/tasks", content=raw, headers=json_headers), 400, "malformed_json"
        )
        assert "NaN" in body["message"], body
    nul_batch = api.post(
        "/api/tasks/batch",
        content=b'[{"name": "t", "schedule": {"every": "1h"}, "handler": "noop", '
        b'"params": {"x": Infinity}}]',
        headers=json_headers,
    )
    _refused(nul_batch, 400, "malformed_json")
    for body, field in (
        (_task(name="a\u0000b"), "name"),
        (_task(params={"deep": ["ok", {"k": "v\u0000"}]}), "params.deep.1.k"),
        (_task(params={"k\u0000": 1}), "params"),
    ):
        refused = _refused(api.post("/api/tasks", json=body), 422, "validation_failed", "NUL")
        assert refused["errors"][0]["field"] == field, refused
    task = api.post("/api/tasks", json=_task()).json()["id"]
    for execution in ("../../x", "x\u0000", "not-a-uuid"):
        cancel = api.post(f"/api/tasks/{task}/cancel", params={"execution_id": execution})
        _refused(cancel, 422, "validation_failed", "execution_id")
    patched = api.patch(f"/api/tasks/{task}", json={"name": "n\u0000"})
    _refused(patched, 422, "validation_failed", "NUL")
    for path in ("/api/tasks/../../x", "/api/tasks/x%00y", f"/api/tasks/{task}x"):
        _refused(api.get(path), 404, "not_found")
    listed = api.get("/api/tasks", params={"handler": "noop\u0000"})
    _refused(listed, 422, "validation_failed")
    assert _events(core) == ["TaskCreated"]
    cancel = api.post(f"/api/tasks/{task}/cancel", params={"execution_id": str(uuid.uuid4())})
    assert cancel.status_code == 202, cancel.text


def test_unknown_routes_wrong_methods_and_unparsable_bodies_answer_in_the_one_shape(
    api: httpx.Client,
) -> None:
    _refused(api.get("/api/nothing-here"), 404, "not_found")
    _refused(api.get(f"/api/tasks/{uuid.uuid4()}"), 404, "not_found")
    wrong = api.post(f"/api/tasks/{uuid.uuid4()}")
    _refused(wrong, 405, "method_not_allowed")
    assert set(wrong.headers["allow"].replace(" ", "").split(",")) == {
        "GET",
        "HEAD",
        "PUT",
        "PATCH",
        "DELETE",
    }
    listing = api.delete("/api/tasks")
    _refused(listing, 405, "method_not_allowed")
    assert set(listing.headers["allow"].replace(" ", "").split(",")) == {"GET", "HEAD", "POST"}
    garbage = api.post("/api/tasks", content=b"{nope", headers={"Content-Type": "application/json"})
    _refused(garbage, 400, "malformed_json")
    _refused(api.post("/api/tasks", json=[1, 2]), 422, "validation_failed")
    _refused(
        api.post("/api/tasks", content=b"", headers={"Content-Type": "application/json"}),
        422,
        "validation_failed",
    )


def test_an_event_over_the_topics_message_limit_is_413_naming_the_limit(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    limit = 200_000
    topic = f"{topic_prefix}task-events"
    admin_settings = type("S", (), {"kafka_bootstrap_servers": kafka_bootstrap})
    admin = admin_client(admin_settings)  # type: ignore[arg-type]
    created = admin.create_topics([NewTopic(topic, 3, 1, config={"max.message.bytes": str(limit)})])
    created[topic].result(30)
    with core_runtime(kafka_bootstrap, topic_prefix, tmp_path) as runtime, served(runtime) as api:
        big = _task(params={"blob": "x" * (limit + 1000)})
        body = _refused(api.post("/api/tasks", json=big), 413, "event_too_large", str(limit))
        assert "max.message.bytes" in body["message"]
        batch = api.post("/api/tasks/batch", json=[_task(name="small"), big])
        assert batch.status_code == 207, batch.text
        assert [item["status"] for item in batch.json()["items"]] == [201, 413]
        task = batch.json()["items"][0]["id"]
        patched = api.patch(f"/api/tasks/{task}", json={"params": big["params"]})
        _refused(patched, 413, "event_too_large")
        assert api.post("/api/tasks", json=_task(params={"blob": "x" * 1000})).status_code == 201
        assert _events(runtime) == ["TaskCreated", "TaskCreated"]


def test_params_over_the_producers_limit_are_413_not_a_server_error(
    core: CoreRuntime, api: httpx.Client
) -> None:
    # under the API's 1 MiB body limit, over the producer's 1,000,000-byte message limit
    big = _task(params={"blob": "x" * 1_010_000})
    _refused(api.post("/api/tasks", json=big), 413, "event_too_large")
    assert _events(core) == []
