"""Who can reach each service: loopback by default, bearer tokens on the monitor's API.

Every listener binds 127.0.0.1 unless configured (checked on the listening socket, since
a request to 127.0.0.1 succeeds on a 0.0.0.0 bind too); a monitor on another address
without tokens refuses to start; with tokens, every ``/api/`` call of the monitor needs
one, and a refused call changes nothing. Probes (``/health``, ``/metrics``) and the
dashboard's static page stay open.
"""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from taskstream.cli.dev import service_env
from taskstream.infra.processes import free_port
from tests.e2e.stack import Stack, running_stack
from tests.e2e.test_dashboard import _browse, _Dom
from tests.listening import listening_addresses
from tests.support import eventually

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]

TOKEN = "monitor-token-for-tests"
RULE = {"kind": "dead_letter", "severity": "warning"}

READS = [
    "/api/monitor/metrics",
    "/api/monitor/executions",
    "/api/monitor/tasks/some-task/executions",
    "/api/workers",
    "/api/alerts",
    "/api/alerts/rules",
]


def test_every_service_listens_on_loopback_by_default(kafka_bootstrap: str, tmp_path: Path) -> None:
    prefix = f"exposure-{uuid.uuid4().hex[:8]}."
    with running_stack(kafka_bootstrap, prefix, tmp_path) as stack:
        for name, url in stack.urls.items():
            port = urlsplit(url).port
            assert port is not None
            assert listening_addresses(port) == {"127.0.0.1"}, (name, stack.logs())


def test_a_public_monitor_without_tokens_refuses_to_start(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """(The core's twin is in test_task_changes.py.)"""
    env = service_env(
        TASKSTREAM_MONITOR_HOST="0.0.0.0",
        TASKSTREAM_MONITOR_PORT=str(free_port()),
        TASKSTREAM_MONITOR_DATA_DIR=str(tmp_path / "monitor"),
        TASKSTREAM_TOPIC_PREFIX=f"refused-{uuid.uuid4().hex[:8]}.",
        KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap,
        TASKSTREAM_KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap,
    )
    for name in ("TASKSTREAM_MONITOR_TOKENS", "TASKSTREAM_MONITOR_TOKENS_FILE"):
        env.pop(name, None)
    result = subprocess.run(
        [sys.executable, "-m", "taskstream", "monitor"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert "TASKSTREAM_MONITOR_TOKENS" in result.stderr and "0.0.0.0" in result.stderr


@pytest.fixture(scope="module")
def monitor(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    prefix = f"secured-monitor-{uuid.uuid4().hex[:8]}."
    with running_stack(
        kafka_bootstrap,
        prefix,
        tmp_path_factory.mktemp("monitor"),
        names=("monitor",),
        TASKSTREAM_MONITOR_HOST="0.0.0.0",  # allowed: it has tokens
        TASKSTREAM_MONITOR_TOKENS=TOKEN,
    ) as stack:
        yield stack


def _client(stack: Stack, token: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=stack.monitor, headers=headers, timeout=30)


@pytest.mark.parametrize("token", [None, "wrong-token"])
def test_the_monitor_api_refuses_a_missing_or_wrong_token(
    monitor: Stack, token: str | None
) -> None:
    with _client(monitor, token) as client:
        for path in READS:
            response = client.get(path)
            assert response.status_code == 401, (path, response.text)
            body = response.json()
            assert body["error"] == "unauthorized" and "Bearer" in body["message"]
            assert response.headers["www-authenticate"].startswith("Bearer")
        assert client.put("/api/alerts/rules/intruder", json=RULE).status_code == 401
        assert client.delete("/api/alerts/rules/kept").status_code == 401
    with _client(monitor, TOKEN) as client:
        ids = {rule["id"] for rule in client.get("/api/alerts/rules").json()["items"]}
    assert "intruder" not in ids, "a refused request wrote nothing"


def test_the_monitor_api_answers_the_right_token(monitor: Stack) -> None:
    with _client(monitor, TOKEN) as client:
        for path in READS:
            response = client.get(path)
            assert response.status_code == 200, (path, response.text)
        created = eventually(
            lambda: (r := client.put("/api/alerts/rules/kept", json=RULE)).status_code != 503 and r,
            what="the monitor to accept rule writes (tables restored)",
        )
        assert created.status_code == 201, created.text
        with _client(monitor, "wrong-token") as intruder:
            assert intruder.delete("/api/alerts/rules/kept").status_code == 401
        assert client.get("/api/alerts/rules/kept").status_code == 200
        assert client.delete("/api/alerts/rules/kept").status_code in (200, 204)


def test_probes_and_the_dashboard_page_stay_open(monitor: Stack) -> None:
    port = urlsplit(monitor.monitor).port
    assert port is not None and listening_addresses(port) == {"0.0.0.0"}, "as configured"
    with _client(monitor, None) as client:
        for path in ("/health", "/metrics", "/dashboard", "/dashboard/dashboard.js"):
            assert client.get(path).status_code == 200, path


def test_the_dashboard_asks_for_the_token_it_needs(monitor: Stack, tmp_path: Path) -> None:
    dom = _browse(tmp_path / "profile", f"{monitor.monitor}/dashboard", "--dump-dom").stdout
    parsed = _Dom()
    parsed.feed(dom)
    for panel in ("totals", "executions", "workers"):
        assert parsed.panels[panel] == "unavailable", parsed.panels
    assert "a valid bearer token is needed (401)" in dom
    form = re.search(r'<form id="token-form"[^>]*>', dom)
    assert form is not None and "hidden" not in form.group(0), "the token form is shown"
