"""Each service's /metrics, after real executions: promtool-clean, documented, with samples."""

from __future__ import annotations

import shutil
import subprocess
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from tests.e2e.stack import Stack
from tests.metrics_docs import documented_metrics, exposed_name, is_created_series
from tests.support import eventually

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]

SERVICES = ("core", "executor", "monitor")


def _create(stack: Stack, body: dict[str, Any]) -> str:
    response = httpx.post(f"{stack.core}/api/tasks", json=body, timeout=30)
    assert response.status_code == 201, response.text
    task_id: str = response.json()["id"]
    return task_id


def _statuses(stack: Stack, task_id: str) -> list[str]:
    url = f"{stack.monitor}/api/monitor/tasks/{task_id}/executions"
    response = httpx.get(url, timeout=10)
    assert response.status_code == 200, response.text
    return [item["status"] for item in response.json()["items"]]


def _scrape(stack: Stack, service: str) -> str:
    response = httpx.get(f"{stack.urls[service]}/metrics", timeout=10)
    assert response.status_code == 200, response.text
    return response.text


def _samples(text: str) -> dict[str, list[Sample]]:
    samples: dict[str, list[Sample]] = defaultdict(list)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[sample.name].append(sample)
    return samples


def _value(samples: dict[str, list[Sample]], name: str, **labels: str) -> float:
    """The sum of ``name``'s samples that carry ``labels``; fails if there is none."""
    matching = [s for s in samples.get(name, []) if labels.items() <= s.labels.items()]
    assert matching, f"no sample {name}{labels or ''}"
    return sum(s.value for s in matching)


@pytest.fixture(scope="module")
def executed(stack: Stack) -> Stack:
    """A task that succeeds every second and a one-shot that fails, retries, dead-letters."""
    echo = _create(stack, {"name": "metrics-echo", "schedule": {"every": "1s"}, "handler": "echo"})
    at = (datetime.now(UTC) + timedelta(seconds=3)).isoformat()
    failing = _create(
        stack,
        {
            "name": "metrics-fail",
            "schedule": {"at": at},
            "handler": "fail",
            "retry": {"max_attempts": 2, "initial_delay": "1s"},
        },
    )
    eventually(
        lambda: _statuses(stack, echo).count("succeeded") >= 2,
        timeout=60,
        what="two succeeded executions of the echo task",
    )
    eventually(
        lambda: "dead_lettered" in _statuses(stack, failing),
        timeout=60,
        what="the failing task's dead letter",
    )
    return stack


@pytest.mark.parametrize("service", SERVICES)
def test_promtool_finds_no_problem(executed: Stack, service: str) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: run `bash scripts/system-packages.sh`"
    text = _scrape(executed, service)
    assert "taskstream_" in text
    result = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
    )
    problems = (result.stdout + result.stderr).strip()
    assert result.returncode == 0 and not problems, f"{service}: {problems}"


@pytest.mark.parametrize("service", SERVICES)
def test_every_served_metric_is_documented_for_its_service(executed: Stack, service: str) -> None:
    documented = documented_metrics()
    served = [
        family
        for family in text_string_to_metric_families(_scrape(executed, service))
        if family.name.startswith("taskstream_") and not is_created_series(family.name, documented)
    ]
    assert served
    for family in served:
        name = exposed_name(family.name, family.type)
        assert name in documented, f"{name} ({service}) is missing from docs/metrics.md"
        doc = documented[name]
        assert doc.service in (service, "shared") and doc.type == family.type, name
        labels = {label for s in family.samples for label in s.labels} - {"le"}
        assert labels <= doc.labels, f"{name}: labels {labels} not as documented"


def test_the_issue_metrics_have_samples(executed: Stack) -> None:
    def core() -> bool:
        samples = _samples(_scrape(executed, "core"))
        assert _value(samples, "taskstream_task_submissions_total") >= 2
        assert _value(samples, "taskstream_scheduler_fires_total", trigger="retry") >= 1
        lag = {"queue": "default", "priority": "medium"}
        assert _value(samples, "taskstream_schedule_lag_seconds_count", **lag) >= 3
        assert _value(samples, "taskstream_schedule_lag_seconds_bucket", le="+Inf", **lag) >= 3
        assert _value(samples, "taskstream_projection_lag_records") >= 0
        return True

    def executor() -> bool:
        samples = _samples(_scrape(executed, "executor"))
        echo = {"handler": "echo", "queue": "default"}
        assert _value(samples, "taskstream_executions_total", outcome="succeeded", **echo) >= 2
        assert _value(samples, "taskstream_executions_total", outcome="failed", handler="fail") == 2
        assert _value(samples, "taskstream_execution_duration_seconds_count", **echo) >= 2
        lane = {"queue": "default", "priority": "medium"}
        assert _value(samples, "taskstream_dispatch_latency_seconds_count", **lane) >= 3
        assert _value(samples, "taskstream_retries_scheduled_total", queue="default") == 1
        assert _value(samples, "taskstream_dead_letters_total", reason="max_attempts") == 1
        assert _value(samples, "taskstream_executions_in_flight") >= 0
        assert _value(samples, "taskstream_executor_consumer_lag", queue="default") >= 0
        return True

    def monitor() -> bool:
        samples = _samples(_scrape(executed, "monitor"))
        succeeded = _value(samples, "taskstream_monitor_events_total", type="ExecutionSucceeded")
        assert succeeded >= 2
        return True

    for probe in (core, executor, monitor):
        eventually(probe, timeout=30, what=f"the {probe.__name__}'s samples")
