"""``taskstream.Client`` and ``AsyncClient`` against the real stack (core, executor, monitor
as processes on a real broker), with bearer tokens on both APIs.

Every answer is read into its schema model, and the raw answers are checked to hold no
field the models do not know (the views ignore unknown fields, so a drift would be silent).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from taskstream import AsyncClient, Client
from taskstream.client import Conflict, NotFound, ServiceUnreachable, Unauthorized, ValidationFailed
from taskstream.infra.processes import free_port
from taskstream.schemas import Priority, Schedule
from taskstream.schemas.alert_rules import AlertRule, ConsecutiveFailuresRule
from taskstream.schemas.api import (
    Accepted,
    CreateTaskRequest,
    HandlerInfo,
    HandlerList,
    Task,
    Worker,
)
from taskstream.schemas.monitor_api import ExecutionRecord, TaskStats
from tests.e2e.stack import Stack, running_stack
from tests.support import eventually

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]

CORE_TOKEN = "core-" + uuid.uuid4().hex
MONITOR_TOKEN = "monitor-" + uuid.uuid4().hex
HOURLY = {"every": "1h"}  # does not fire by itself during a test


@pytest.fixture(scope="module")
def secured(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    prefix = f"client-{uuid.uuid4().hex[:8]}."
    with running_stack(
        kafka_bootstrap,
        prefix,
        tmp_path_factory.mktemp("client"),
        TASKSTREAM_API_TOKENS=CORE_TOKEN,
        TASKSTREAM_MONITOR_TOKENS=MONITOR_TOKEN,
    ) as stack:
        yield stack


@pytest.fixture
def client(secured: Stack) -> Iterator[Client]:
    with Client(
        secured.core, token=CORE_TOKEN, monitor_url=secured.monitor, monitor_token=MONITOR_TOKEN
    ) as client:
        yield client


def _echo(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "schedule": HOURLY, "handler": "echo", **fields}


def _created(answer: Task | Accepted, client: Client) -> Task:
    """The task, read again if the store did not show it within the request."""
    return answer if isinstance(answer, Task) else client.get_task(answer.id)


def _raw(url: str, token: str) -> Any:
    response = httpx.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=10)
    response.raise_for_status()
    return response.json()


def test_a_task_lives_through_the_client(client: Client, secured: Stack) -> None:
    model = CreateTaskRequest.model_validate(_echo("client-model", params={"n": 1}))
    task = _created(client.create_task(model), client)
    assert (task.name, task.handler, task.params, task.status) == (
        "client-model",
        "echo",
        {"n": 1},
        "active",
    )
    assert client.get_task(task.id) == task

    patched = _created(client.patch_task(task.id, {"priority": "high"}), client)
    assert patched.priority is Priority.HIGH and patched.version == task.version + 1
    with pytest.raises(Conflict) as stale:
        client.patch_task(task.id, {"queue": "other"}, expected_version=task.version)
    assert stale.value.detail("current_version") == patched.version

    replaced = _created(
        client.replace_task(task.id, _echo("client-replaced"), expected_version=patched.version),
        client,
    )
    assert replaced.name == "client-replaced" and replaced.priority is Priority.MEDIUM

    paused = _created(client.pause_task(task.id), client)
    assert paused.status == "paused"
    assert _created(client.resume_task(task.id), client).status == "active"

    listed = {t.id for t in client.iter_tasks(size=1)}
    assert task.id in listed
    page = client.list_tasks(status="active", size=1000)
    assert task.id in {t.id for t in page.items} and page.total >= 1

    raw = _raw(f"{secured.core}/api/tasks/{task.id}", CORE_TOKEN)
    assert set(raw) <= set(Task.model_fields), "the API shows a field the Task view lacks"

    client.delete_task(task.id, expected_version=client.get_task(task.id).version)
    with pytest.raises(NotFound) as gone:
        client.get_task(task.id)
    assert gone.value.code == "not_found"


def test_a_run_is_seen_in_the_core_the_executor_and_the_monitor(
    client: Client, secured: Stack
) -> None:
    task = _created(client.create_task(_echo("client-run", params={"hello": "client"})), client)
    run = client.run_task(task.id)
    assert run.task_id == task.id

    def finished() -> ExecutionRecord | None:
        items = client.task_history(task.id).items
        return next(
            (r for r in items if r.execution_id == run.execution_id and r.finished_at), None
        )

    record = eventually(finished, timeout=60, what="the run in the monitor's history")
    assert record.status == "succeeded" and record.output == {"hello": "client"}
    assert record.handler == "echo" and record.worker_id

    stats: TaskStats = eventually(
        lambda: (s := client.task_stats(task.id)).counts.get("succeeded") and s,
        what="the task's stats",
    )
    assert stats.last_status == "succeeded"
    assert run.execution_id in {r.execution_id for r in client.recent_executions().items}
    metrics = client.monitor_metrics(minutes=5)
    assert len(metrics.windows) == 5 and sum(w.count("succeeded") for w in metrics.windows) >= 1

    logs = eventually(
        lambda: _logs_if_complete(client, run.execution_id), timeout=60, what="the run's logs"
    )
    assert any("echo" in line.message for run_log in logs.runs for line in run_log.lines)
    assert "echo" in client.execution_log_text(run.execution_id)

    history = _raw(f"{secured.monitor}/api/monitor/tasks/{task.id}/executions", MONITOR_TOKEN)
    for item in history["items"]:
        assert set(item) <= set(ExecutionRecord.model_fields), "a record field the view lacks"

    cancelled = client.cancel(task.id)
    assert cancelled.task_id == task.id and cancelled.execution_id is None


def _logs_if_complete(client: Client, execution_id: str) -> Any:
    try:
        logs = client.execution_logs(execution_id)
    except NotFound:
        return None
    return logs if logs.runs and logs.runs[-1].complete else None


def test_workers_show_the_live_executor(client: Client, secured: Stack) -> None:
    answer = eventually(lambda: (w := client.workers(live=True)).items and w, what="a worker")
    worker = answer.items[0]
    assert worker.live and "echo" in worker.handlers and worker.capacity >= 1
    raw = _raw(f"{secured.core}/api/workers", CORE_TOKEN)
    assert set(raw["items"][0]) <= set(Worker.model_fields)


def test_handlers_show_their_params_schema_and_where_they_run(
    client: Client, secured: Stack
) -> None:
    def served() -> HandlerList | None:
        answer = client.handlers()
        echo = next(item for item in answer.items if item.name == "echo")
        return answer if answer.workers_ready and echo.queues == ["default"] else None

    answer = eventually(served, what="echo served on the default queue")
    by_name = {item.name: item for item in answer.items}
    assert {"echo", "noop", "fail", "sleep", "http", "kafka", "python", "shell"} <= set(by_name)
    assert by_name["echo"].params_schema is None  # any JSON object
    assert by_name["shell"].queues == []  # the executor runs without the shell handler
    http = client.handler("taskstream.handlers.http.HttpHandler")  # by class path too
    assert http.name == "http" and http.params_schema is not None
    assert http.params_schema["required"] == ["url"]
    assert {"url", "json", "timeout", "success_codes"} <= set(http.params_schema["properties"])
    with pytest.raises(NotFound, match="unknown handler 'nope'"):
        client.handler("nope")
    raw = _raw(f"{secured.core}/api/handlers", CORE_TOKEN)
    assert set(raw["items"][0]) <= set(HandlerInfo.model_fields)


def test_previews_list_the_slots_a_task_will_fire(client: Client) -> None:
    created = client.create_task(_echo("client-preview"))
    preview = client.next_slots(created.id, count=4)
    assert preview.task_id == created.id and len(preview.slots) == 4
    assert preview.slots == sorted(preview.slots, key=lambda slot: slot.scheduled_for)
    berlin = Schedule(cron="30 2 * * *", timezone="Europe/Berlin")
    after = datetime(2030, 10, 26, tzinfo=UTC)
    ahead = client.preview_schedule(berlin, count=3, after=after)
    assert [slot.skipped for slot in ahead.slots] == [False, False, True, False]
    with pytest.raises(ValidationFailed, match="never fires"):
        client.preview_schedule({"at": "2001-01-01T00:00:00Z"})


def test_a_batch_says_which_tasks_were_written(client: Client) -> None:
    result = client.create_tasks([_echo("client-batch-1"), _echo("client-batch-2", queue="Bad!")])
    assert (result.created, result.refused) == (1, 1)
    written, refused = result.items
    assert written.written and written.id
    assert not refused.written and refused.status == 422
    assert [e.field for e in refused.errors] == ["queue"]


def test_a_refused_request_raises_its_error_with_each_field(client: Client) -> None:
    with pytest.raises(ValidationFailed) as refused:
        client.create_task({"name": "bad", "schedule": {"cron": "61 * * * *"}, "handler": "echo"})
    assert refused.value.status == 422 and refused.value.code == "validation_failed"
    assert [e.field for e in refused.value.errors] == ["schedule.cron"]
    assert "schedule.cron" in str(refused.value)


def test_alert_rules_through_the_client(client: Client) -> None:
    rule = ConsecutiveFailuresRule(id="client-rule", kind="consecutive_failures", threshold=2)
    stored = client.put_alert_rule(rule)
    assert stored == AlertRule(rule=rule, source="api")
    assert client.alert_rule("client-rule").rule == rule
    assert "client-rule" in {r.rule.id for r in client.alert_rules()}
    assert client.alerts().active == [] or all(a.rule_id for a in client.alerts().active)
    client.delete_alert_rule("client-rule")
    with pytest.raises(NotFound):
        client.alert_rule("client-rule")


def test_a_missing_or_wrong_token_is_unauthorized(secured: Stack) -> None:
    with Client(secured.core, monitor_url=secured.monitor) as anonymous:
        with pytest.raises(Unauthorized):
            anonymous.list_tasks()
        with pytest.raises(Unauthorized):
            anonymous.alerts()
    with Client(secured.core, token="wrong", retries=0) as wrong, pytest.raises(Unauthorized):
        wrong.list_tasks()


def test_a_service_that_is_not_there_is_unreachable() -> None:
    with Client(f"http://127.0.0.1:{free_port()}", retries=1) as nowhere:
        with pytest.raises(ServiceUnreachable) as error:
            nowhere.list_tasks()
    assert not error.value.sent and "cannot reach the core" in str(error.value)


def test_the_async_client_makes_the_same_calls(secured: Stack) -> None:
    async def scenario() -> tuple[Task, ExecutionRecord]:
        async with AsyncClient(
            secured.core,
            token=CORE_TOKEN,
            monitor_url=secured.monitor,
            monitor_token=MONITOR_TOKEN,
        ) as client:
            answer = await client.create_task(_echo("client-async"))
            task = answer if isinstance(answer, Task) else await client.get_task(answer.id)
            run = await client.run_task(task.id)
            listed = [t.id async for t in client.iter_tasks(size=2)]
            assert task.id in listed
            deadline = asyncio.get_running_loop().time() + 60
            while True:
                history = await client.task_history(task.id)
                done = [r for r in history.items if r.execution_id == run.execution_id]
                if done and done[0].finished_at:
                    return await client.get_task(task.id), done[0]
                assert asyncio.get_running_loop().time() < deadline, "the async run never ended"
                await asyncio.sleep(0.2)  # poll interval of the deadline-bounded wait above

    task, record = asyncio.run(scenario())
    assert task.name == "client-async" and record.status == "succeeded"
