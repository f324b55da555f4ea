"""Every alert rule kind through a monitor process to real receivers started here.

Events go to ``task-events`` and heartbeats to ``workers`` as the core and executors
write them; the monitor (a process) notifies an aiosmtpd SMTP server, an HTTP server
and the ``alerts`` topic. Each rule fires exactly once per channel, is not repeated
within its throttle, resolves with a notice when its condition clears, and a restarted
monitor neither forgets its API rules nor fires again.
"""

from __future__ import annotations

import os
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import Producer

from taskstream.cli.dev import start_service, wait_healthy
from taskstream.schemas import (
    AlertNotification,
    Event,
    EventData,
    ExecutionDeadLettered,
    ExecutionFailed,
    ExecutionStarted,
    ExecutionSucceeded,
    Schedule,
    TaskCreated,
    TaskSpec,
    WorkerHeartbeat,
    encode_event,
    event_headers,
    execution_id,
)
from tests.alert_receivers import AlertsTopic, Mailbox, Webhook
from tests.e2e.stack import Stack, running_stack
from tests.support import eventually

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]

CHECK_INTERVAL = 0.3
QUIET_PERIOD = 4.0  # > ten checks and more than the lost executor's timeout
SUFFIX = uuid.uuid4().hex[:6]
TASKS = {
    "fail": f"t-fail-{SUFFIX}",
    "rate": f"t-rate-{SUFFIX}",
    "long": f"t-long-{SUFFIX}",
    "missed": f"t-missed-{SUFFIX}",
    "dead": f"t-dead-{SUFFIX}",
}
EXECUTOR = f"exec-{SUFFIX}"

RULES_FILE = f"""
[[rules]]
id = "fails"
kind = "consecutive_failures"
threshold = 2
tasks = ["{TASKS["fail"]}"]
throttle = "1h"
severity = "critical"

[[rules]]
id = "rate"
kind = "failure_rate"
threshold = 0.5
window = "10m"
min_executions = 4
tasks = ["{TASKS["rate"]}"]
throttle = "1h"

[[rules]]
id = "slow"
kind = "long_run"
limit = "1s"
tasks = ["{TASKS["long"]}"]
throttle = "1h"

[[rules]]
id = "missed"
kind = "missed_schedule"
grace = "1s"
tasks = ["{TASKS["missed"]}"]
throttle = "1h"

[[rules]]
id = "lost"
kind = "executor_lost"
timeout = "2s"
executors = ["{EXECUTOR}"]
throttle = "1h"
"""
API_RULE = {"kind": "dead_letter", "tasks": [TASKS["dead"]], "throttle": "1h"}
ALL_RULES = ("fails", "rate", "slow", "missed", "lost", "dead")
CHANNELS = ("webhook", "email", "topic")


class Log:
    """Writes task-events and heartbeats as the core and the executors do."""

    def __init__(self, bootstrap: str, prefix: str) -> None:
        self.prefix = prefix
        self._producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "partitioner": "murmur2_random",
                "enable.idempotence": True,
                "linger.ms": 2,
            }
        )

    def event(self, task_id: str, data: EventData) -> None:
        event = Event.create(task_id, data)
        self._producer.produce(
            f"{self.prefix}task-events",
            key=task_id.encode(),
            value=encode_event(event),
            headers=event_headers(event),
        )
        self.flush()

    def heartbeat(self, executor_id: str) -> None:
        now = datetime.now(UTC)
        beat = WorkerHeartbeat(
            executor_id=executor_id,
            host="test-host",
            pid=os.getpid(),
            queues=["default"],
            handlers=["echo"],
            capacity=4,
            in_flight=0,
            cpu_percent=0.0,
            memory_rss_bytes=1,
            started_at=now - timedelta(minutes=1),
            sent_at=now,
        )
        self._producer.produce(
            f"{self.prefix}workers", key=executor_id.encode(), value=beat.encode()
        )
        self.flush()

    def flush(self) -> None:
        assert self._producer.flush(30) == 0, "records not delivered"


class Receivers:
    def __init__(self, bootstrap: str, prefix: str) -> None:
        self.mailbox = Mailbox().start()
        self.webhook = Webhook(fail_first=1).start()
        self.topic = AlertsTopic(bootstrap, f"{prefix}alerts")

    def by_channel(self) -> dict[str, list[AlertNotification]]:
        return {
            "webhook": self.webhook.notices(),
            "email": self.mailbox.notices(),
            "topic": self.topic.notices(),
        }

    def counts(self) -> dict[str, Counter[tuple[str, str]]]:
        """Per channel: how many notices of each (rule, status)."""
        return {
            channel: Counter((n.rule_id, n.status.value) for n in notices)
            for channel, notices in self.by_channel().items()
        }

    def stop(self) -> None:
        self.mailbox.stop()
        self.webhook.stop()
        self.topic.close()


def _spec(name: str, every: str = "1h") -> TaskSpec:
    return TaskSpec(name=name, schedule=Schedule(every=every), handler="echo")  # type: ignore[arg-type]


def _stays(probe: Callable[[], bool], seconds: float, what: str) -> None:
    """Poll ``probe`` until a deadline: it must hold every time (the opposite of eventually)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert probe(), what
        time.sleep(0.2)  # poll interval of a deadline-bounded check
    assert probe(), what


def _get(url: str) -> Any:
    response = httpx.get(url, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture
def receivers(kafka_bootstrap: str, topic_prefix: str) -> Iterator[Receivers]:
    running = Receivers(kafka_bootstrap, topic_prefix)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def monitor(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path, receivers: Receivers
) -> Iterator[Stack]:
    rules = tmp_path / "alert-rules.toml"
    rules.write_text(RULES_FILE)
    with running_stack(
        kafka_bootstrap,
        topic_prefix,
        tmp_path,
        names=("monitor",),
        TASKSTREAM_MONITOR_ALERT_RULES_FILE=str(rules),
        TASKSTREAM_MONITOR_ALERT_CHECK_INTERVAL=f"{CHECK_INTERVAL}s",
        TASKSTREAM_MONITOR_ALERT_WEBHOOK_URL=receivers.webhook.url,
        TASKSTREAM_MONITOR_ALERT_SMTP_HOST="127.0.0.1",
        TASKSTREAM_MONITOR_ALERT_SMTP_PORT=str(receivers.mailbox.port),
        TASKSTREAM_MONITOR_ALERT_EMAIL_TO='["ops@example.com"]',
        TASKSTREAM_MONITOR_WORKER_TIMEOUT="2s",
        TASKSTREAM_LOG_LEVEL="INFO",
    ) as stack:
        yield stack


def _put_rule(stack: Stack, rule_id: str, body: dict[str, Any]) -> httpx.Response:
    def probe() -> httpx.Response | None:
        response = httpx.put(f"{stack.monitor}/api/alerts/rules/{rule_id}", json=body, timeout=10)
        return None if response.status_code == 503 else response

    return eventually(probe, timeout=60, what="the monitor to accept rule changes")


def _firing_everywhere(receivers: Receivers, rules: tuple[str, ...]) -> bool:
    counts = receivers.counts()
    return all(counts[c][(rule, "firing")] >= 1 for c in CHANNELS for rule in rules)


def test_each_rule_fires_once_per_channel_throttles_resolves_and_survives_a_restart(
    kafka_bootstrap: str, topic_prefix: str, monitor: Stack, receivers: Receivers
) -> None:
    stack = monitor
    # the API: a rule of its own, a bad one (422 naming the field), a file rule (409)
    created = _put_rule(stack, "dead", API_RULE)
    assert created.status_code == 201, created.text
    assert created.json()["source"] == "api"
    bad = _put_rule(stack, "bad", {"kind": "long_run", "limit": "soon"})
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "limit"
    assert "invalid duration 'soon'" in bad.json()["errors"][0]["message"]
    assert _put_rule(stack, "slow", {"kind": "long_run", "limit": "5s"}).status_code == 409
    rules_url = f"{stack.monitor}/api/alerts/rules"
    assert _get(f"{rules_url}/dead")["kind"] == "dead_letter"
    assert httpx.get(f"{rules_url}/nope", timeout=10).status_code == 404
    assert _put_rule(stack, "scratch", {"kind": "dead_letter"}).status_code == 201
    assert httpx.delete(f"{rules_url}/scratch", timeout=10).status_code == 204
    assert httpx.delete(f"{rules_url}/scratch", timeout=10).status_code == 404
    assert httpx.delete(f"{rules_url}/slow", timeout=10).status_code == 409
    listed = {r["id"]: r["source"] for r in _get(rules_url)["items"]}
    assert listed == {**{rule: "file" for rule in ALL_RULES if rule != "dead"}, "dead": "api"}

    log = Log(kafka_bootstrap, topic_prefix)
    for key, task_id in TASKS.items():
        log.event(task_id, TaskCreated(task=_spec(key, every="1s" if key == "missed" else "1h")))
    slot = datetime.now(UTC).replace(microsecond=0)

    def ended(task_id: str, attempt: int, ok: bool) -> None:
        common: dict[str, Any] = {
            "execution_id": execution_id(task_id, slot, attempt),
            "attempt": attempt,
            "scheduled_for": slot,
            "worker_id": EXECUTOR,
            "duration_seconds": 0.1,
        }
        if ok:
            log.event(task_id, ExecutionSucceeded(**common))
        else:
            log.event(task_id, ExecutionFailed(**common, error_type="IOError", error_message="x"))

    for attempt in (1, 2):
        ended(TASKS["fail"], attempt, ok=False)
    for attempt, ok in enumerate((False, True, False, True), start=1):
        ended(TASKS["rate"], attempt, ok)
    long_execution = execution_id(TASKS["long"], slot, 1)
    log.event(
        TASKS["long"],
        ExecutionStarted(
            execution_id=long_execution,
            attempt=1,
            scheduled_for=slot,
            worker_id=EXECUTOR,
            handler="sleep",
        ),
    )
    log.event(
        TASKS["dead"],
        ExecutionDeadLettered(
            execution_id=execution_id(TASKS["dead"], slot, 3),
            attempt=3,
            scheduled_for=slot,
            reason="max_attempts",
        ),
    )
    log.heartbeat(EXECUTOR)

    eventually(
        lambda: _firing_everywhere(receivers, ALL_RULES),
        timeout=60,
        what=lambda: f"every rule firing through every channel; got {receivers.counts()}",
    )
    assert receivers.webhook.requests > len(receivers.webhook.notices()), "a retried webhook"
    workers = _get(f"{stack.monitor}/api/workers")["items"]
    assert [(w["executor_id"], w["live"]) for w in workers] == [(EXECUTOR, False)]
    assert _get(f"{stack.monitor}/api/workers?live=true")["items"] == []

    # the lost executor comes back and the long run ends: both resolve, once per channel
    log.heartbeat(EXECUTOR)
    ended(TASKS["long"], 1, ok=True)
    eventually(
        lambda: all(
            receivers.counts()[c][(rule, "resolved")] == 1
            for c in CHANNELS
            for rule in ("lost", "slow")
        ),
        timeout=30,
        what=lambda: f"resolved notices; got {receivers.counts()}",
    )
    [worker] = _get(f"{stack.monitor}/api/workers")["items"]
    assert worker["executor_id"] == EXECUTOR and worker["host"] == "test-host"
    assert 0 <= worker["last_seen_seconds"] < 30

    # within the throttle nothing repeats: the missed schedule stays missed, the failures
    # stay failed, and the executor, silent again, is lost again without a second notice
    expected = {(rule, "firing"): 1 for rule in ALL_RULES} | {
        ("lost", "resolved"): 1,
        ("slow", "resolved"): 1,
    }

    def exactly_once() -> bool:
        return all(dict(counts) == expected for counts in receivers.counts().values())

    _stays(exactly_once, QUIET_PERIOD, f"each notice once per channel; got {receivers.counts()}")
    for notices in receivers.by_channel().values():
        assert len({n.id for n in notices}) == len(notices)
    topic_keys = {key for key, _ in receivers.topic.records}
    assert topic_keys == {rule.encode() for rule in ALL_RULES}
    mail = receivers.mailbox.messages[0]
    # a long subject is folded onto the next line; unfolding leaves its leading space
    assert mail["To"] == "ops@example.com" and mail["Subject"].lstrip().startswith("[taskstream ")

    alerts = _get(f"{stack.monitor}/api/alerts")
    active = {a["rule_id"] for a in alerts["active"]}
    assert active >= {"fails", "rate", "missed", "dead"} and "slow" not in active
    recent = alerts["recent"]
    assert len(recent) == len(expected)
    assert [n["sent_at"] for n in recent] == sorted((n["sent_at"] for n in recent), reverse=True)
    metrics = httpx.get(f"{stack.monitor}/metrics", timeout=10).text
    assert 'taskstream_monitor_alerts_fired_total{channel="email",rule="missed"} 1.0' in metrics
    assert "taskstream_monitor_alert_notifications_failed_total{" not in metrics
    assert f"taskstream_monitor_alerts_active {len(active)}.0" in metrics

    # a restart restores rules and states from the changelogs: nothing fires again
    service = stack.services["monitor"]
    service.stop()
    restarted = start_service(
        "monitor", stack.env, service.health_url, service.log_path.with_suffix(".2.log")
    )
    stack.services["monitor"] = restarted
    wait_healthy(restarted)
    eventually(
        lambda: (
            {a["rule_id"] for a in _get(f"{stack.monitor}/api/alerts")["active"]} >= active
            and any(r["id"] == "dead" for r in _get(f"{stack.monitor}/api/alerts/rules")["items"])
        ),
        timeout=60,
        what="the restarted monitor's tables",
    )
    _stays(exactly_once, QUIET_PERIOD, f"no notice after the restart; got {receivers.counts()}")
