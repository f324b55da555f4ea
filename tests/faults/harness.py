"""Fault injection on the whole stack: a 3-node cluster, the services as processes, a
steady load of interval tasks, faults, and the time each takes to recover.

Used by ``tests/faults/test_fault_rounds.py`` (one short round in ``make test``) and
``bench/soak.py`` (the same for half an hour). The verdict on what happened is the
independent :mod:`tests.faults.ledger`; this module only drives and times.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from confluent_kafka import OFFSET_END, Consumer, TopicPartition

from taskstream.cli.dev import start_service, wait_healthy
from taskstream.dev_broker.local_kafka_cluster import LocalKafkaCluster
from tests.e2e.stack import Stack, running_stack

FAULT_KINDS = ("broker", "cluster", "core", "executor", "monitor")
"""kill -9 one broker; kill -9 every broker; kill -9 the core, the executor, the monitor."""

RECOVERY_TIMEOUT = 120.0
"""Seconds after a restart within which a fault must have recovered. The monitor takes the
longest: 30-40 s after a kill -9 on an idle 2-core machine, 57 s in a loaded CI run (it
restores its changelogs, then catches up with what arrived meanwhile at a rate little
above the load's: docs/faults.md)."""

SERVICE_SETTINGS = {
    "TASKSTREAM_REPLICATION_FACTOR": "3",
    "TASKSTREAM_MIN_INSYNC_REPLICAS": "2",
    # A killed core's or executor's partitions move to its restarted self sooner.
    "TASKSTREAM_SCHEDULER_SESSION_TIMEOUT_MS": "6000",
    "TASKSTREAM_SCHEDULER_TRANSACTION_TIMEOUT_MS": "6000",
    "TASKSTREAM_EXECUTOR_SESSION_TIMEOUT": "6s",
    "TASKSTREAM_EXECUTOR_ID": "faults-executor",
    "TASKSTREAM_LOG_LEVEL": "INFO",
}


# --------------------------------------------------------------------------- #
# Watching the flow of fires and outcomes
# --------------------------------------------------------------------------- #


class FlowWatch:
    """Tails ``task-events`` (read_committed, from its end now) in a thread and counts,
    per second of arrival, the fires (``ExecutionScheduled``) and the outcomes
    (``ExecutionSucceeded``/``Failed``/...). Survives broker outages (the client
    reconnects by itself)."""

    _OUTCOMES = frozenset(
        {"ExecutionSucceeded", "ExecutionFailed", "ExecutionTimedOut", "ExecutionCancelled"}
    )

    def __init__(self, bootstrap: str, topic: str) -> None:
        self._bootstrap, self._topic = bootstrap, topic
        self._lock = threading.Lock()
        self.fires: Counter[int] = Counter()
        self.outcomes: Counter[int] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="flow-watch", daemon=True)
        self._ready = threading.Event()

    def start(self) -> FlowWatch:
        self._thread.start()
        if not self._ready.wait(60):
            raise AssertionError("the flow watch did not start in 60 s")
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        consumer = Consumer(
            {
                "bootstrap.servers": self._bootstrap,
                "group.id": f"flow-watch-{uuid.uuid4().hex}",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
            }
        )
        try:
            partitions = consumer.list_topics(self._topic, timeout=30).topics[self._topic]
            consumer.assign(
                [TopicPartition(self._topic, p, OFFSET_END) for p in partitions.partitions]
            )
            self._ready.set()
            while not self._stop.is_set():
                for message in consumer.consume(500, timeout=0.2):
                    if message.error() is not None:
                        continue
                    kind = dict(message.headers() or []).get("event-type", b"").decode()
                    second = int(time.monotonic())
                    with self._lock:
                        if kind == "ExecutionScheduled":
                            self.fires[second] += 1
                        elif kind in self._OUTCOMES:
                            self.outcomes[second] += 1
        finally:
            consumer.close()

    def flowing_since(self, since: float, rate: float, *, outcomes: bool = True) -> float | None:
        """The end of the first whole second at or after ``since`` in which fires (and,
        with ``outcomes``, outcomes) arrived at ``rate`` per second or more (monotonic
        time), or None."""
        with self._lock:
            for second in sorted(s for s in self.fires if s >= since):
                if self.fires[second] >= rate and (not outcomes or self.outcomes[second] >= rate):
                    return float(second + 1)
        return None

    def totals(self) -> tuple[int, int]:
        with self._lock:
            return sum(self.fires.values()), sum(self.outcomes.values())


# --------------------------------------------------------------------------- #
# The load
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class Load:
    task_ids: list[str]
    created_at: datetime
    ends_at: datetime | None


def stop_load(api: str, load: Load) -> datetime:
    """Delete the load's tasks (no more slots); returns when the last delete answered."""
    with httpx.Client(timeout=60) as client:
        for task_id in load.task_ids:
            response = client.delete(f"{api}/api/tasks/{task_id}")
            assert response.status_code == 204, response.text
    return datetime.now(UTC)


def create_load(
    api: str, tasks: int, duration: timedelta | None, *, failing_every: int = 10
) -> Load:
    """``tasks`` interval tasks every second until now + ``duration`` (None: until
    :func:`stop_load` deletes them): noop, and every
    ``failing_every``-th fails its first attempt and succeeds on the retry; half keep the
    default misfire policy (fire_once after 5 s), half fire late slots within a minute."""
    ends_at = datetime.now(UTC) + duration if duration is not None else None
    schedule: dict[str, str] = {"every": "1s"}
    if ends_at is not None:
        schedule["end"] = ends_at.isoformat()
    bodies: list[dict[str, Any]] = []
    for n in range(tasks):
        body: dict[str, Any] = {"name": f"load-{n}", "schedule": schedule, "handler": "noop"}
        if failing_every and n % failing_every == 0:
            body["handler"] = "fail"
            body["params"] = {"until_attempt": 2}
            body["retry"] = {"max_attempts": 3, "initial_delay": "1s", "jitter": "0s"}
        if n % 2:
            body["misfireGrace"] = "60s"
        bodies.append(body)
    ids: list[str] = []
    for start in range(0, len(bodies), 500):
        response = httpx.post(
            f"{api}/api/tasks/batch", json=bodies[start : start + 500], timeout=60
        )
        assert response.status_code == 201, response.text
        ids += [item["id"] for item in response.json()["items"]]
    return Load(ids, datetime.now(UTC), ends_at)


# --------------------------------------------------------------------------- #
# Faults
# --------------------------------------------------------------------------- #


@dataclass
class Recovery:
    fault: str
    started_at: str
    outage_seconds: float  # how long the component was down (imposed)
    restart_seconds: float  # from the restart command until it served (process level)
    health_seconds: float | None  # from the kill until every /health answered 200 again
    flow_seconds: float | None  # from the kill until fires and outcomes flowed at half rate
    monitor_seconds: float | None  # from the kill until the monitor's totals moved on
    notes: list[str] = field(default_factory=list)

    @property
    def recovered(self) -> bool:
        return None not in (self.health_seconds, self.flow_seconds, self.monitor_seconds)


@dataclass
class FaultRig:
    cluster: LocalKafkaCluster
    stack: Stack
    watch: FlowWatch
    rate: float  # fires expected per second
    workdir: Path
    recoveries: list[Recovery] = field(default_factory=list)

    def healthy(self) -> bool:
        for name, service in self.stack.services.items():
            if service.process.poll() is not None:
                return False
            try:
                if httpx.get(service.health_url, timeout=2).status_code != 200:
                    return False
            except httpx.HTTPError:
                return False
            del name
        return True

    def monitor_succeeded(self) -> int | None:
        try:
            response = httpx.get(f"{self.stack.monitor}/api/monitor/metrics?minutes=1", timeout=5)
        except httpx.HTTPError:
            return None
        if response.status_code != 200:
            return None
        return int(response.json()["totals"]["succeeded"])

    def restart_service(self, name: str) -> None:
        old = self.stack.services[name]
        old.stop(timeout=5)  # reaps the killed process, closes its log
        service = start_service(name, self.stack.env, old.health_url, old.log_path)
        self.stack.services[name] = service
        wait_healthy(service, timeout=120)

    def inject(
        self, fault: str, outage: float = 3.0, timeout: float = RECOVERY_TIMEOUT
    ) -> Recovery:
        """kill -9 ``fault`` (one of :data:`FAULT_KINDS`), leave it down ``outage`` s,
        bring it back and time the recovery (at most ``timeout`` s after the restart)."""
        before = self.monitor_succeeded() or 0
        started = time.monotonic()
        wall = datetime.now(UTC).isoformat()
        if fault == "broker":
            victim = self.cluster.node_ids[len(self.recoveries) % len(self.cluster.node_ids)]
            self.cluster.kill(victim)
        elif fault == "cluster":
            self.cluster.kill()
        else:
            self.stack.services[fault].process.kill()  # SIGKILL
            self.stack.services[fault].process.wait(10)
        _pause_until(started + outage)
        restarted = time.monotonic()
        notes: list[str] = []
        try:
            if fault in ("broker", "cluster"):
                self.cluster.restart()
            else:
                self.restart_service(fault)
        except Exception as exc:  # recorded, and the test fails on the recovery
            notes.append(f"restart failed: {exc}")
        restart_seconds = time.monotonic() - restarted
        deadline = time.monotonic() + timeout
        health = flow = monitor = None
        while time.monotonic() < deadline and None in (health, flow, monitor):
            now = time.monotonic()
            if health is None and self.healthy():
                health = now - started
            if flow is None and (at := self.watch.flowing_since(started, self.rate / 2)):
                flow = at - started
            if monitor is None and (self.monitor_succeeded() or 0) > before:
                monitor = now - started
            _pause_until(now + 0.5)
        for name, service in self.stack.services.items():
            if service.process.poll() is not None:
                notes.append(f"{name} exited with {service.process.returncode}")
        recovery = Recovery(
            fault,
            wall,
            round(restarted - started, 2),
            round(restart_seconds, 2),
            _round(health),
            _round(flow),
            _round(monitor),
            notes,
        )
        self.recoveries.append(recovery)
        print(f"fault {fault}: {json.dumps(asdict(recovery))}", flush=True)
        return recovery

    def steady(self, seconds: float) -> None:
        """Let the load run ``seconds`` with no fault."""
        _pause_until(time.monotonic() + seconds)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _pause_until(deadline: float) -> None:
    """Wait until a monotonic deadline (the run's own pacing, not a test's wait for a
    condition)."""
    remaining = deadline - time.monotonic()
    if remaining > 0:
        threading.Event().wait(remaining)


@contextmanager
def fault_rig(workdir: Path, rate: float, prefix: str | None = None) -> Iterator[FaultRig]:
    """A 3-node cluster and the three services on it (replication 3, min ISR 2)."""
    cluster = LocalKafkaCluster(3, workdir / "kafka")
    started = time.monotonic()
    cluster.start(timeout=180)
    print(f"3-node cluster up in {time.monotonic() - started:.1f}s", flush=True)
    prefix = prefix or f"faults-{uuid.uuid4().hex[:8]}."
    try:
        with running_stack(cluster.bootstrap_servers, prefix, workdir, **SERVICE_SETTINGS) as stack:
            watch = FlowWatch(cluster.bootstrap_servers, f"{prefix}task-events").start()
            try:
                yield FaultRig(cluster, stack, watch, rate, workdir)
            finally:
                watch.stop()
    finally:
        cluster.stop()


def wait_for(probe: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``probe`` until it returns something truthy (deadline-bounded)."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        _pause_until(time.monotonic() + 0.5)
