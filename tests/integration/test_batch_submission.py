"""``POST /api/tasks/batch`` on a real broker: per-item validation, one write, ids back.

The API runs in-process, served by uvicorn on a free port, over a real core runtime
(:func:`taskstream.core.service.bootstrap`); what was written is read back from ``task-events``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from taskstream.core.api import MAX_BATCH, CoreRuntime
from tests.integration.core_api import served
from tests.kafka_read import read_topic
from tests.support import eventually

pytestmark = pytest.mark.kafka


def _task(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "schedule": {"every": "1h"}, "handler": "noop", **fields}


def _created(runtime: CoreRuntime) -> dict[str, str]:
    """The id and name of every task created on the log so far."""
    settings = runtime.settings
    records = read_topic(settings.kafka_bootstrap_servers, settings.topics.task_events)
    return {
        str(r.value["task_id"]): str(r.value["data"]["task"]["name"])  # type: ignore[index]
        for r in records
        if r.value["type"] == "TaskCreated"
    }


def test_a_batch_creates_every_task_and_answers_with_their_ids(core: CoreRuntime) -> None:
    at = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    body = [
        _task("first"),
        {"name": "one-shot", "schedule": {"at": at}, "handler": "echo", "params": {"n": 2}},
        {  # the seed's body, as POST /api/tasks takes it
            "name": "seed-style",
            "cronExpression": "*/5 * * * * *",
            "handlerClass": "handlers.builtin.EchoHandler",
            "parameters": '{"key": "value"}',
            "maxRetries": 2,
        },
    ]
    with served(core) as api:
        response = api.post("/api/tasks/batch", json=body)
        assert response.status_code == 201, response.text
        answer = response.json()
        assert (answer["created"], answer["refused"]) == (3, 0)
        assert [item["index"] for item in answer["items"]] == [0, 1, 2]
        assert all(item["status"] == 201 for item in answer["items"])
        ids = [item["id"] for item in answer["items"]]
        assert len(set(ids)) == 3
        assert [item["location"] for item in answer["items"]] == [f"/api/tasks/{i}" for i in ids]
        # read-your-writes: each task is in the store when the batch is answered
        tasks = [api.get(item["location"]).json() for item in answer["items"]]
    assert [task["name"] for task in tasks] == ["first", "one-shot", "seed-style"]
    assert tasks[1]["params"] == {"n": 2} and tasks[1]["handler"] == "echo"
    assert tasks[2]["schedule"]["cron"] == "*/5 * * * * *"
    assert tasks[2]["retry"]["max_attempts"] == 3 and tasks[2]["params"] == {"key": "value"}
    assert all(task["version"] == 1 for task in tasks)
    assert _created(core) == dict(zip(ids, ["first", "one-shot", "seed-style"], strict=True))


def test_bad_items_are_refused_one_by_one_and_the_good_ones_written(core: CoreRuntime) -> None:
    body = [
        _task("good-0"),
        _task("bad-cron", schedule={"cron": "61 * * * *"}),
        _task("bad-handler", handler="com.example.SampleHandler"),
        "not an object",
        _task("bad-queue", queue="elsewhere"),
        _task("good-5", priority="high"),
    ]
    with served(core) as api:
        response = api.post("/api/tasks/batch", json=body)
    assert response.status_code == 207, response.text
    answer = response.json()
    assert (answer["created"], answer["refused"]) == (2, 4)
    items = answer["items"]
    assert [item["status"] for item in items] == [201, 422, 422, 422, 422, 201]
    assert all(item["error"] == "validation_failed" for item in items[1:5])
    [cron] = items[1]["errors"]
    assert cron["field"] == "schedule.cron" and "61 * * * *" in cron["message"]
    assert items[1]["message"].startswith("schedule.cron: invalid cron expression")
    assert [(e["field"], e["type"]) for e in items[2]["errors"]] == [("handler", "unknown_handler")]
    assert items[3]["errors"][0]["field"] == "body"
    assert [(e["field"], e["type"]) for e in items[4]["errors"]] == [("queue", "unknown_queue")]
    assert "id" not in items[1] and set(items[0]) >= {"id", "location"}
    written = _created(core)
    assert written == {items[0]["id"]: "good-0", items[5]["id"]: "good-5"}, "refused: unwritten"


def test_a_batch_with_nothing_to_write_is_refused_whole(core: CoreRuntime) -> None:
    with served(core) as api:
        nothing = api.post("/api/tasks/batch", json=[_task("x", schedule={"every": "0s"})])
        assert nothing.status_code == 422, nothing.text
        answer = nothing.json()
        assert answer["error"] == "batch_refused" and "none of the 1 tasks" in answer["message"]
        assert answer["items"][0]["errors"][0]["field"] == "schedule.every"

        malformed = api.post(
            "/api/tasks/batch", content=b"[{", headers={"Content-Type": "application/json"}
        )
        assert malformed.status_code == 400 and malformed.json()["error"] == "malformed_json"
        for shape in ({"tasks": []}, []):
            refused = api.post("/api/tasks/batch", json=shape)
            assert refused.status_code == 422, refused.text
            assert refused.json()["error"] == "validation_failed"
            assert refused.json()["errors"][0]["field"] == "body"
        too_many = api.post("/api/tasks/batch", json=[_task(f"t{n}") for n in range(MAX_BATCH + 1)])
        assert too_many.status_code == 422
        assert too_many.json()["errors"][0]["type"] == "batch_size"
        assert f"1 to {MAX_BATCH} tasks" in too_many.json()["message"]
    assert _created(core) == {}


def test_a_full_batch_is_one_request_within_the_body_limit(core: CoreRuntime) -> None:
    body = [_task(f"bulk-{n}", params={"n": n}) for n in range(MAX_BATCH)]
    payload = orjson.dumps(body)
    assert len(payload) < core.settings.api_max_body_bytes
    with served(core) as api:
        response = api.post(
            "/api/tasks/batch", content=payload, headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 201, response.text[:500]
        ids = [item["id"] for item in response.json()["items"]]
        listed = api.get("/api/tasks", params={"size": 1}).json()
    assert listed["total"] == MAX_BATCH
    written = _created(core)
    assert [written[task_id] for task_id in ids] == [f"bulk-{n}" for n in range(MAX_BATCH)]


def test_tokens_body_limit_and_unserved_handlers_apply_to_batches(core: CoreRuntime) -> None:
    with served(core, api_tokens=["t0ken"], api_max_body_bytes=2048) as api:
        anonymous = api.post("/api/tasks/batch", json=[_task("x")])
        assert anonymous.status_code == 401 and anonymous.json()["error"] == "unauthorized"
        authorized = {"Authorization": "Bearer t0ken"}
        large = [_task(f"t{n}", params={"pad": "x" * 100}) for n in range(30)]
        too_large = api.post("/api/tasks/batch", json=large, headers=authorized)
        assert too_large.status_code == 413
        assert too_large.json()["error"] == "payload_too_large"
    assert _created(core) == {}

    eventually(lambda: core.workers.ready, what="the executor directory to catch up")
    with served(core, unserved_handler="reject") as api:
        refused = api.post("/api/tasks/batch", json=[_task("nobody-runs-me")])
        assert refused.status_code == 422
        [item] = refused.json()["items"]
        assert (item["status"], item["error"]) == (422, "handler_unserved")
        assert (item["handler"], item["queue"]) == ("noop", "default")
    with served(core, unserved_handler="warn") as api:
        warned = api.post("/api/tasks/batch", json=[_task("warned")])
        assert warned.status_code == 201
        [item] = warned.json()["items"]
        [warning] = item["warnings"]
        assert warning.startswith("no live executor serves handler 'noop' on queue 'default'")
    assert list(_created(core).values()) == ["warned"]
