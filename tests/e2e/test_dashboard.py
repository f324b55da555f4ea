"""The dashboard in a real browser: Debian's headless Chromium renders it from the monitor.

The test creates a task through the core, waits for its executions in the monitor's
history API, then loads ``/dashboard?task=<id>`` in Chromium and reads the DOM the page's
script built: the task's history panel lists those executions. A screenshot is saved to
``$TASKSTREAM_TEST_ARTIFACTS`` (default ``.taskstream/test-artifacts/``).
"""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.browser import artifacts as _artifacts
from tests.e2e.browser import browse as _browse
from tests.e2e.browser import chromium as _chromium
from tests.e2e.stack import Stack
from tests.support import eventually

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]

PANELS = (
    "totals",
    "throughput",
    "failures",
    "durations",
    "history",
    "executions",
    "workers",
    "services",
    "quarantined",
)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class _Dom(HTMLParser):
    """The parts of the dumped DOM the test reads: panels, rows, the refresh line."""

    def __init__(self) -> None:
        super().__init__()
        self.panels: dict[str, str] = {}
        self.rows: dict[str, list[dict[str, str]]] = {}
        self.refresh_state = ""
        self._table: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        element_id = attributes.get("id", "")
        if tag == "section" and element_id.startswith("panel-"):
            self.panels[element_id.removeprefix("panel-")] = attributes.get("data-state", "")
        elif tag == "table":
            self._table = element_id
        elif tag == "tr" and self._table and "data-execution-id" in attributes:
            self.rows.setdefault(self._table, []).append(attributes)
        elif element_id == "refresh-status":
            self.refresh_state = attributes.get("data-state", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._table = None


def _history(stack: Stack, task_id: str) -> list[dict[str, Any]]:
    response = httpx.get(
        f"{stack.monitor}/api/monitor/tasks/{task_id}/executions", params={"size": 50}, timeout=10
    )
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def test_the_page_and_its_assets_are_served_with_strict_headers(stack: Stack) -> None:
    page = httpx.get(f"{stack.monitor}/dashboard", timeout=10)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["cache-control"] == "no-store"
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src 'self'" in policy
    assert "connect-src 'self'" in policy and "'unsafe-inline'" not in policy
    assert page.headers["x-content-type-options"] == "nosniff"
    assert 'src="/dashboard/dashboard.js"' in page.text

    for name in ("dashboard.js", "charts.js"):  # modules: the type must be JavaScript
        script = httpx.get(f"{stack.monitor}/dashboard/{name}", timeout=10)
        assert script.status_code == 200, name
        assert script.headers["content-type"].startswith("text/javascript"), name
        again = httpx.get(
            f"{stack.monitor}/dashboard/{name}",
            headers={"If-None-Match": script.headers["etag"]},
            timeout=10,
        )
        assert again.status_code == 304, name
    assert (
        httpx.get(f"{stack.monitor}/dashboard/dashboard.css")
        .headers["content-type"]
        .startswith("text/css")
    )
    assert httpx.get(f"{stack.monitor}/dashboard/..%2Fapp.py").status_code == 404

    root = httpx.get(f"{stack.monitor}/", timeout=10)
    assert root.status_code == 302 and root.headers["location"] == "/dashboard"


def test_chromium_shows_the_recent_executions_of_a_task(stack: Stack, tmp_path: Path) -> None:
    chromium = _chromium()  # fail early, before the stack's work, when it is missing
    response = httpx.post(
        f"{stack.core}/api/tasks",
        json={
            "name": "dashboard-demo",
            "schedule": {"every": "1s"},
            "handler": "echo",
            "params": {"hello": "dashboard"},
        },
        timeout=30,
    )
    assert response.status_code == 201, response.text
    task_id = response.json()["id"]

    def three_succeeded() -> list[str] | None:
        done = [e["execution_id"] for e in _history(stack, task_id) if e["status"] == "succeeded"]
        return done if len(done) >= 3 else None

    succeeded = eventually(three_succeeded, timeout=90, what="3 succeeded executions")

    url = f"{stack.monitor}/dashboard?task={task_id}"
    artifacts = _artifacts()
    dom = _browse(tmp_path / "profile-dom", url, "--dump-dom").stdout
    (artifacts / "dashboard.html").write_text(dom)
    parsed = _Dom()
    parsed.feed(dom)

    history = {
        row["data-execution-id"]: row["data-status"] for row in parsed.rows.get("history", [])
    }
    for execution_id in succeeded:
        assert history.get(execution_id) == "succeeded", (
            f"{execution_id} is not in the history panel as succeeded: {history}"
        )
    assert parsed.refresh_state == "live", parsed.refresh_state
    assert parsed.panels["history"] == "ok"
    for panel in PANELS:  # each endpoint answered or is shown as not available
        assert parsed.panels.get(panel) in {"ok", "unavailable"}, (panel, parsed.panels)
    served = httpx.get(f"{stack.monitor}/api/monitor/executions", params={"limit": 50}, timeout=10)
    if served.status_code == 200:  # the endpoint lands with issue 5's tables
        recent = {row["data-task-id"] for row in parsed.rows.get("executions", [])}
        assert task_id in recent, recent

    screenshot = artifacts / "dashboard.png"
    screenshot.unlink(missing_ok=True)
    _browse(tmp_path / "profile-png", url, f"--screenshot={screenshot}", "--window-size=1400,1000")
    assert screenshot.is_file(), f"{chromium} wrote no screenshot"
    image = screenshot.read_bytes()
    assert image.startswith(PNG_MAGIC)
    assert len(image) > 20_000, f"the screenshot is suspiciously small: {len(image)} bytes"
