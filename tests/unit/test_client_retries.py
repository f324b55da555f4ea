"""When the client sends a call again: its retry policy, over an in-process HTTP transport.

The transport stands in for the network only; what the services answer is tested on the
real stack (tests/e2e/test_client.py). Here: a 503 is retried for a call that is safe to
repeat and not for a create; a refused connection is retried for every call; Retry-After
is honoured; the last error is raised as the exception tree's.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx
import pytest

from taskstream import AsyncClient, Client
from taskstream.client import ServiceUnavailable, ServiceUnreachable, ValidationFailed
from taskstream.schemas import TaskstreamError

TASK = {
    "id": "5d3c8f0e-0000-4000-8000-000000000001",
    "name": "t",
    "schedule": {"every": "1h"},
    "handler": "echo",
    "status": "active",
    "version": 1,
    "created_at": "2026-12-07T00:00:00+00:00",
    "updated_at": "2026-12-07T00:00:00+00:00",
}
UNAVAILABLE = {"error": "kafka_unavailable", "message": "Kafka is unreachable; retry"}


def _answers(*answers: httpx.Response | type[Exception]) -> tuple[list[str], httpx.MockTransport]:
    """A transport that gives these answers in order (an exception class: raised)."""
    seen: list[str] = []
    queue = list(answers)

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.method} {request.url.path}")
        answer = queue.pop(0)
        if isinstance(answer, type):
            raise answer("no connection", request=request)
        return answer

    return seen, httpx.MockTransport(handle)


def _client(transport: httpx.MockTransport, retries: int = 3) -> Client:
    return Client("http://core.test", retries=retries, transport=transport)


def _unavailable(retry_after: str | None = "0") -> httpx.Response:
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    return httpx.Response(503, json=UNAVAILABLE, headers=headers)


def test_a_read_is_sent_again_after_a_503_and_a_refused_connection() -> None:
    seen, transport = _answers(_unavailable(), httpx.ConnectError, httpx.Response(200, json=TASK))
    with _client(transport) as client:
        assert client.get_task(TASK["id"]).name == "t"
    assert len(seen) == 3


def test_a_create_is_not_sent_again_after_a_503() -> None:
    """It may have been written: sending it again could create the task twice."""
    seen, transport = _answers(_unavailable(), httpx.Response(201, json=TASK))
    with _client(transport) as client, pytest.raises(ServiceUnavailable) as error:
        client.create_task({"name": "t", "schedule": {"every": "1h"}, "handler": "echo"})
    assert seen == ["POST /api/tasks"] and error.value.code == "kafka_unavailable"
    assert isinstance(error.value, TaskstreamError)


def test_a_create_is_sent_again_after_a_refused_connection() -> None:
    """A refused connection sent nothing, so nothing was written."""
    seen, transport = _answers(httpx.ConnectError, httpx.Response(201, json=TASK))
    with _client(transport) as client:
        created = client.create_task({"name": "t", "schedule": {"every": "1h"}, "handler": "echo"})
    assert created.id == TASK["id"] and len(seen) == 2


def test_a_timeout_of_a_create_is_not_sent_again() -> None:
    seen, transport = _answers(httpx.ReadTimeout, httpx.Response(201, json=TASK))
    with _client(transport) as client, pytest.raises(ServiceUnreachable) as error:
        client.run_task(TASK["id"])
    assert len(seen) == 1 and error.value.sent


def test_retries_stop_after_the_limit_with_the_last_error() -> None:
    seen, transport = _answers(*[_unavailable() for _ in range(3)])
    with _client(transport, retries=2) as client, pytest.raises(ServiceUnavailable):
        client.list_tasks()
    assert len(seen) == 3


def test_a_4xx_is_never_sent_again() -> None:
    body = {
        "error": "validation_failed",
        "message": "size: at most 1000",
        "errors": [{"field": "size", "message": "at most 1000", "type": "less_than_equal"}],
    }
    seen, transport = _answers(httpx.Response(422, json=body))
    with _client(transport) as client, pytest.raises(ValidationFailed) as error:
        client.list_tasks(size=5000)
    assert len(seen) == 1 and [e.field for e in error.value.errors] == ["size"]


def test_retry_after_is_waited() -> None:
    seen, transport = _answers(_unavailable("1"), httpx.Response(200, json=TASK))
    started = time.monotonic()
    with _client(transport) as client:
        client.get_task(TASK["id"])
    assert time.monotonic() - started >= 0.95 and len(seen) == 2


def test_the_async_client_retries_the_same_way() -> None:
    seen: list[str] = []
    answers: list[Callable[[], httpx.Response]] = [
        lambda: _unavailable(),
        lambda: httpx.Response(200, json=TASK),
    ]

    async def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        return answers.pop(0)()

    async def scenario() -> str:
        transport = httpx.MockTransport(handle)
        async with AsyncClient("http://core.test", transport=transport) as client:
            return (await client.get_task(TASK["id"])).name

    assert asyncio.run(scenario()) == "t" and len(seen) == 2
