"""Every error the monitor answers has the one shape ``{"error", "message", ...}``.

On a real monitor (its own topic prefix, the session's broker): aiohttp's own answers
(404 for an unknown route, 405 with an ``Allow`` header, 413 for a body too large) and
the monitor's (strict JSON bodies, out-of-range query parameters), without and with tokens.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.stack import Stack, running_stack
from tests.support import eventually

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]

TOKEN = "monitor-errors-token"


@pytest.fixture(scope="module")
def monitor(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    prefix = f"monitor-errors-{uuid.uuid4().hex[:8]}."
    workdir = tmp_path_factory.mktemp("monitor-errors")
    with running_stack(kafka_bootstrap, prefix, workdir, names=("monitor",)) as stack:
        eventually(
            lambda: httpx.get(f"{stack.monitor}/ready", timeout=5).status_code == 200,
            timeout=60,
            interval=0.5,
            what=lambda: f"the monitor to be ready\n{stack.logs()}",
        )
        yield stack


def _shaped(response: httpx.Response, status: int, error: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, (response.request.url, response.text)
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body: dict[str, Any] = response.json()
    assert isinstance(body.get("error"), str) and body["error"], body
    assert isinstance(body.get("message"), str) and body["message"], body
    if error is not None:
        assert body["error"] == error, body
    return body


def test_unknown_routes_and_wrong_methods_answer_in_the_one_shape(monitor: Stack) -> None:
    url = monitor.monitor
    body = _shaped(httpx.get(f"{url}/api/monitor/nope", timeout=10), 404, "not_found")
    assert "/openapi.json" in body["message"], body
    _shaped(httpx.get(f"{url}/nope/deeper?x=1", timeout=10), 404, "not_found")

    wrong = httpx.post(f"{url}/api/alerts/rules", json={}, timeout=10)
    body = _shaped(wrong, 405, "method_not_allowed")
    assert set(wrong.headers["allow"].replace(" ", "").split(",")) == {"GET", "HEAD"}
    assert "GET" in body["message"], body

    wrong = httpx.post(f"{url}/api/alerts/rules/some-rule", json={}, timeout=10)
    _shaped(wrong, 405, "method_not_allowed")
    allowed = set(wrong.headers["allow"].replace(" ", "").split(","))
    assert allowed == {"GET", "HEAD", "PUT", "DELETE"}, wrong.headers
    _shaped(httpx.request("OPTIONS", f"{url}/health", timeout=10), 405, "method_not_allowed")


@pytest.mark.parametrize(
    ("raw", "status", "error"),
    [
        (b'{"kind": "failure_rate", "threshold": NaN}', 400, "malformed_json"),
        (b'{"kind": "failure_rate", "threshold": Infinity}', 400, "malformed_json"),
        (b'{"kind": "dead_letter"', 400, "malformed_json"),
        (b"\xff\xfe", 400, "malformed_json"),
        (b'{"kind": "dead_letter", "description": "a\\u0000b"}', 422, "validation_failed"),
    ],
)
def test_bodies_are_read_strictly(monitor: Stack, raw: bytes, status: int, error: str) -> None:
    url = f"{monitor.monitor}/api/alerts/rules/strict-body"
    headers = {"Content-Type": "application/json"}
    response = eventually(
        lambda: (
            (r := httpx.put(url, content=raw, headers=headers, timeout=10)).status_code != 503 and r
        ),
        what="the monitor to accept rule writes",
    )
    body = _shaped(response, status, error)
    if status == 422:
        assert body["errors"][0]["field"] == "description", body
    assert httpx.get(url, timeout=10).status_code == 404, "nothing was written"


def test_a_body_too_large_is_413(monitor: Stack) -> None:
    url = f"{monitor.monitor}/api/alerts/rules/too-large"
    raw = b'{"kind": "dead_letter", "description": "' + b"x" * 2_000_000 + b'"}'
    response = httpx.put(url, content=raw, headers={"Content-Type": "application/json"})
    body = _shaped(response, 413, "payload_too_large")
    assert "bytes" in body["message"], body


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/api/monitor/metrics?minutes=0", "query.minutes"),
        ("/api/monitor/metrics?minutes=1441", "query.minutes"),
        ("/api/monitor/metrics?minutes=99999999999999999999", "query.minutes"),
        ("/api/monitor/executions?limit=501", "query.limit"),
        ("/api/monitor/executions?limit=many", "query.limit"),
        ("/api/monitor/executions?status=running", "query.status"),
        ("/api/monitor/tasks/t/executions?page=-1", "query.page"),
        ("/api/monitor/tasks/t/executions?size=1001", "query.size"),
        ("/api/monitor/tasks/t/executions?page=99999999999999999999", "query.page"),
        ("/api/workers?live=maybe", "query.live"),
    ],
)
def test_query_parameters_out_of_range_are_422_naming_the_parameter(
    monitor: Stack, path: str, field: str
) -> None:
    body = _shaped(httpx.get(f"{monitor.monitor}{path}", timeout=10), 422, "validation_failed")
    assert [error["field"] for error in body["errors"]] == [field], body


def test_with_tokens_an_unknown_path_is_401_before_404(kafka_bootstrap: str, tmp_path: Any) -> None:
    prefix = f"monitor-errors-auth-{uuid.uuid4().hex[:8]}."
    with running_stack(
        kafka_bootstrap, prefix, tmp_path, names=("monitor",), TASKSTREAM_MONITOR_TOKENS=TOKEN
    ) as stack:
        url = stack.monitor
        refused = httpx.get(f"{url}/api/monitor/nope", timeout=10)
        _shaped(refused, 401, "unauthorized")
        assert refused.headers["www-authenticate"].startswith("Bearer")
        with httpx.Client(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10) as client:
            _shaped(client.get(f"{url}/api/monitor/nope"), 404, "not_found")
            _shaped(client.post(f"{url}/api/alerts"), 405, "method_not_allowed")
            _shaped(client.get(f"{url}/api/monitor/metrics?minutes=0"), 422, "validation_failed")
        # the probes and the document stay open, and answer errors in the shape too
        _shaped(httpx.post(f"{url}/health", timeout=10), 405, "method_not_allowed")
