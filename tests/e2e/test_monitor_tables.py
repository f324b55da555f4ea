"""The monitor's tables, metrics API and Prometheus counters agree with ``task-events``.

A known mix of 1,000 executions' events goes to ``task-events`` directly; the monitor runs
as a process, with each table store (memory: restored from the changelogs; RocksDB: kept
on disk, the changelogs' tail replayed). Everything it shows (per-task stats and history,
totals and per-minute windows, the recent list, ``/metrics``) must agree with itself and
with a count read straight from the topic; again after a restart, and again after a batch
of already-delivered events is delivered a second time.
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from taskstream.cli.dev import start_service
from tests.e2e.monitor_workload import (
    COUNTED,
    WINDOW_COUNTS,
    EventProducer,
    Expected,
    expected_from_log,
    generate,
    nearest_rank,
)
from tests.e2e.stack import Stack, running_stack
from tests.kafka_read import read_topic
from tests.support import eventually

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]

HISTORY_SIZE = 25  # 50 executions per task: half of them leave the history
RECENT_SIZE = 100  # per partition: most finished executions are evicted
ERROR = 0.01 * (1 + 1e-9)  # the histogram's relative error
TERMINAL = ("succeeded", "failed", "timed_out", "cancelled", "dead_lettered")


def _get(stack: Stack, path: str) -> Any:
    response = httpx.get(f"{stack.monitor}{path}", timeout=10)
    assert response.status_code == 200, (path, response.status_code, response.text)
    return response.json() if path != "/metrics" else response.text


def _prometheus(text: str) -> dict[str, float]:
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}"] = sample.value
    return samples


_PROCESS_METRICS = (
    "taskstream_monitor_events_",
    "taskstream_monitor_undecodable",
    "taskstream_monitor_task_errors",  # what this process met, not a fold of the log
    "taskstream_component_",  # the process's health now
)


def snapshot(stack: Stack, task_ids: list[str]) -> dict[str, Any]:
    """Everything the monitor shows, minus what depends on the clock or the process."""
    metrics = _get(stack, "/api/monitor/metrics?minutes=60")
    prometheus = {
        name: value
        for name, value in _prometheus(_get(stack, "/metrics")).items()
        if not name.startswith(_PROCESS_METRICS)
        and not name.split("{")[0].endswith("_created")  # when the process made the counter
    }
    return {
        "totals": metrics["totals"],
        "lag": metrics["lag"]["task_events_records"],
        "windows": {
            w["start"]: w for w in metrics["windows"] if w["finished"] or w["dead_lettered"]
        },
        "stats": {t: _get(stack, f"/api/monitor/tasks/{t}/stats") for t in task_ids},
        "history": {
            t: _get(stack, f"/api/monitor/tasks/{t}/executions?size=1000") for t in task_ids
        },
        "recent": {
            s: _get(stack, f"/api/monitor/executions?limit=500&status={s}")["items"]
            for s in TERMINAL
        },
        "prometheus": prometheus,
    }


def caught_up(stack: Stack, expected: Expected) -> bool:
    """Whether the monitor shows the expected totals and has no lag (one cheap request)."""
    metrics = _get(stack, "/api/monitor/metrics?minutes=1")
    assert metrics["totals"] == expected.totals, metrics["totals"]
    assert metrics["lag"]["task_events_records"] == 0, metrics["lag"]
    return True


def settled(stack: Stack, expected: Expected, task_ids: list[str], what: str) -> dict[str, Any]:
    """A snapshot once the monitor has caught up."""
    eventually(lambda: caught_up(stack, expected), timeout=90, interval=0.5, what=what)
    return snapshot(stack, task_ids)


def close(shown: float | None, exact: float) -> bool:
    return shown is not None and abs(shown - exact) <= ERROR * exact


def check_agreement(shown: dict[str, Any], expected: Expected, task_ids: list[str]) -> None:
    totals = shown["totals"]
    # per-task statistics: the log's counts, durations within the histogram's error
    for task_id in task_ids:
        stats, wanted = shown["stats"][task_id], expected.tasks[task_id]
        assert stats["counts"] == wanted["counts"], task_id
        durations = wanted["durations"]
        assert stats["duration_seconds"]["count"] == len(durations)
        assert stats["duration_seconds"]["max"] == max(durations)
        for name, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99)):
            assert close(stats["duration_seconds"][name], nearest_rank(durations, q)), name
        finished_at, last_id = wanted["last"]
        assert datetime.fromisoformat(stats["last_finished_at"]) == finished_at
        assert stats["last_status"] == expected.executions[last_id].status
    for name in COUNTED:
        assert sum(s["counts"][name] for s in shown["stats"].values()) == totals[name], name
    # per-minute windows: the log's minutes, and their sum is the totals
    windows = {datetime.fromisoformat(start): w for start, w in shown["windows"].items()}
    assert set(windows) == set(expected.windows)
    for minute, wanted in expected.windows.items():
        window = windows[minute]
        assert {n: window[n] for n in WINDOW_COUNTS} == {n: wanted[n] for n in WINDOW_COUNTS}
        assert window["finished"] == sum(wanted[n] for n in WINDOW_COUNTS[:4])
        if wanted["durations"]:
            assert window["duration_seconds"]["max"] == max(wanted["durations"])
            for name, q in (("p50", 0.5), ("p95", 0.95)):
                exact = nearest_rank(wanted["durations"], q)
                assert close(window["duration_seconds"][name], exact), (minute, name)
        else:
            assert window["duration_seconds"] is None
    for name in WINDOW_COUNTS:
        assert sum(w[name] for w in windows.values()) == totals[name], name
    # Prometheus: the same numbers
    prometheus = shown["prometheus"]
    for name in TERMINAL:
        assert prometheus[f"taskstream_monitor_executions_total{{outcome={name}}}"] == totals[name]
    assert prometheus["taskstream_monitor_skipped_slots_total{}"] == totals["skipped"]
    for name in ("scheduled", "running"):
        gauge = f"taskstream_monitor_executions_unfinished{{status={name}}}"
        assert prometheus[gauge] == totals[name]
    finished = sum(totals[name] for name in TERMINAL[:4])
    assert prometheus["taskstream_monitor_execution_duration_seconds_count{}"] == finished
    assert prometheus["taskstream_monitor_execution_duration_seconds_sum{}"] == pytest.approx(
        sum(expected.finished_durations)
    )
    assert prometheus["taskstream_monitor_consumer_lag_records{}"] == 0
    # histories and the recent list: the right executions, with their statuses
    for task_id in task_ids:
        history = shown["history"][task_id]
        ids = [item["execution_id"] for item in history["items"]]
        assert ids == expected.history(task_id, HISTORY_SIZE)
        assert history["total"] == HISTORY_SIZE
        for item in history["items"]:
            assert item["status"] == expected.executions[item["execution_id"]].status
    for status in TERMINAL:
        items = shown["recent"][status]
        assert [item["execution_id"] for item in items] == expected.recent(status, RECENT_SIZE)
        assert all(item["status"] == status for item in items)


def check_contract(stack: Stack) -> None:
    """The shapes the dashboard relies on, and the 4xx answers."""
    metrics = _get(stack, "/api/monitor/metrics?minutes=1440")
    assert set(metrics) == {"generated_at", "totals", "windows", "lag"}
    assert len(metrics["windows"]) == 1440
    starts = [datetime.fromisoformat(w["start"]) for w in metrics["windows"]]
    assert starts == sorted(starts) and starts[-1] <= datetime.fromisoformat(
        metrics["generated_at"]
    )
    for path, status, error in [
        ("/api/monitor/metrics?minutes=0", 422, "validation_failed"),
        ("/api/monitor/metrics?minutes=1441", 422, "validation_failed"),
        ("/api/monitor/executions?limit=501", 422, "validation_failed"),
        ("/api/monitor/executions?limit=many", 422, "validation_failed"),
        ("/api/monitor/executions?status=running", 422, "validation_failed"),
        ("/api/monitor/tasks/no-such-task/stats", 404, "unknown_task"),
    ]:
        response = httpx.get(f"{stack.monitor}{path}", timeout=10)
        assert response.status_code == status, path
        assert response.json()["error"] == error and response.json()["message"], path


def _events_read(stack: Stack) -> float:
    samples = _prometheus(_get(stack, "/metrics"))
    return sum(v for k, v in samples.items() if k.startswith("taskstream_monitor_events_total"))


WAITING = ("starting", "recovering")
LAG_GAUGE = "taskstream_monitor_consumer_lag_records{}"


def _without_lag(shown: dict[str, Any]) -> dict[str, Any]:
    prometheus = {k: v for k, v in shown["prometheus"].items() if k != LAG_GAUGE}
    return {**shown, "lag": None, "prometheus": prometheus}


def _restart_watching(stack: Stack, workdir: Path, expected: Expected) -> list[tuple[int, Any]]:
    """Restart the monitor and ask ``/ready`` and a data page as fast as it answers, from
    its first answer until it is ready; return what the data page said before that."""
    stack.services.pop("monitor").stop()
    service = start_service("monitor", stack.env, f"{stack.monitor}/health", workdir / "m-2.log")
    stack.services["monitor"] = service
    before_ready: list[tuple[int, Any]] = []

    def ready() -> bool:
        assert service.process.poll() is None, service.log_tail()
        try:
            answer = httpx.get(f"{stack.monitor}/ready", timeout=5)
            data = httpx.get(f"{stack.monitor}/api/monitor/metrics?minutes=1", timeout=5)
        except httpx.TransportError:
            return False  # not listening yet
        if answer.status_code == 200:
            return True
        assert answer.status_code == 503, answer.text
        assert answer.json()["error"] in WAITING, answer.text  # waiting, not broken
        before_ready.append((data.status_code, data.json()))
        return False

    eventually(ready, timeout=90, interval=0.05, what=lambda: f"the monitor ready\n{stack.logs()}")
    return before_ready


@pytest.mark.parametrize("store", ["memory://", "rocksdb://"])
def test_the_monitor_agrees_with_the_log_after_a_restart_and_a_redelivery(
    kafka_bootstrap: str, tmp_path: Path, store: str
) -> None:
    prefix = f"mon-{uuid.uuid4().hex[:8]}."
    workload = generate(seed=5, now=datetime.now(UTC))
    with running_stack(
        kafka_bootstrap,
        prefix,
        tmp_path,
        names=("monitor",),
        TASKSTREAM_MONITOR_HISTORY_SIZE=str(HISTORY_SIZE),
        TASKSTREAM_MONITOR_RECENT_SIZE=str(RECENT_SIZE),
        TASKSTREAM_MONITOR_STORE=store,
    ) as stack:
        topic = f"{prefix}task-events"
        producer = EventProducer(kafka_bootstrap, topic)
        producer.send(workload.events)
        expected = expected_from_log(read_topic(kafka_bootstrap, topic))
        assert len(expected.executions) == workload.executions == 1000
        assert expected.totals["dead_lettered"] > 0 and expected.totals["skipped"] > 0
        assert expected.totals["scheduled"] > 0 and expected.totals["running"] > 0
        tasks = workload.task_ids

        first = settled(stack, expected, tasks, "the monitor to catch up")
        check_agreement(first, expected, tasks)
        check_contract(stack)

        # while it restores its tables, /ready says so and the data pages refuse (503
        # in the one error shape): never the zeros of the empty tables as data
        seen = _restart_watching(stack, tmp_path, expected)
        refused = [body for status, body in seen if status == 503]
        assert refused, f"no data page was refused before /ready said ready: {seen}"
        for status, body in seen:
            if status == 503:
                assert body["error"] in WAITING and body["message"], body
            else:
                assert status == 200 and body["totals"] == expected.totals, (status, body)
        at_ready = snapshot(stack, tasks)  # no settling: ready means caught up
        assert _without_lag(at_ready) == _without_lag(first)  # the lag is measured later
        restored = settled(stack, expected, tasks, "the lag to be measured")
        assert restored == first

        again = random.Random(7).sample(workload.events, 600)
        read_before = _events_read(stack)
        producer.send(again)
        eventually(
            lambda: _events_read(stack) >= read_before + len(again),
            timeout=60,
            interval=0.5,
            what="the monitor to read the redelivered events",
        )
        after = settled(stack, expected, tasks, "no lag")
        assert after == first
