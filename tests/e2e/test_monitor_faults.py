"""The monitor agrees with the committed log across the faults of a fault round.

The monitor runs as a process on the test broker; the events go to ``task-events``
directly, as the scheduler and the executor write them (the scheduler in Kafka
transactions). What the monitor counts is compared with what a ``read_committed`` reader
of the topic sees:

- a transaction the scheduler aborted (a broker lost mid-fire, a fenced zombie) and then
  redid with new event ids is counted once, as the committed log has it;
- after a kill -9 the monitor counts new events again within seconds, not after the dead
  member's session ran out, and its counts (the unfinished ones included) are the log's;
- records delivered again to the restored tables (the group's offsets behind the folded
  records, as a kill -9 leaves them) change no count, however many they are.
"""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from taskstream.cli.dev import start_service, wait_healthy
from taskstream.infra.kafka import topic_config
from taskstream.infra.settings import CommonSettings
from taskstream.monitor.service import CHANGELOG_CONFIG
from taskstream.schemas import (
    Event,
    ExecutionScheduled,
    ExecutionSkipped,
    ExecutionStarted,
    ExecutionSucceeded,
    Priority,
    SkipReason,
    encode_event,
    event_headers,
    execution_id,
)
from tests.e2e.monitor_workload import EventProducer, expected_from_log, generate
from tests.e2e.stack import Stack, running_stack
from tests.kafka_read import read_topic
from tests.support import eventually

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]

RECOVERY_BUDGET = 45.0
"""Seconds from a restart after kill -9 to new events counted. It measures ~10 s on an idle
machine (TASKSTREAM_MONITOR_SESSION_TIMEOUT); the budget leaves room for a loaded CI
machine and still fails the old behaviour, which waited out faust's 60 s session."""


def _get(stack: Stack, path: str) -> Any:
    response = httpx.get(f"{stack.monitor}{path}", timeout=10)
    assert response.status_code == 200, (path, response.status_code, response.text)
    return response.json()


def _totals(stack: Stack) -> dict[str, int]:
    return dict(_get(stack, "/api/monitor/metrics?minutes=1")["totals"])


class Run:
    """The events of one execution, as the scheduler and an executor write them."""

    def __init__(self, task_id: str, slot: datetime) -> None:
        self.task_id = task_id
        self.slot = slot
        self.id = execution_id(task_id, slot, 1)
        self._common: dict[str, Any] = {
            "execution_id": self.id,
            "attempt": 1,
            "scheduled_for": slot,
        }

    def scheduled(self) -> Event:
        data = ExecutionScheduled(
            **self._common, topic="t", queue="default", priority=Priority.MEDIUM
        )
        return Event.create(self.task_id, data, occurred_at=self.slot)

    def started(self) -> Event:
        data = ExecutionStarted(**self._common, worker_id="w", handler="echo")
        return Event.create(self.task_id, data, occurred_at=self.slot + timedelta(seconds=0.1))

    def succeeded(self) -> Event:
        data = ExecutionSucceeded(**self._common, worker_id="w", duration_seconds=0.2)
        return Event.create(self.task_id, data, occurred_at=self.slot + timedelta(seconds=0.3))


def _skipped(task_id: str, slot: datetime, count: int) -> Event:
    data = ExecutionSkipped(scheduled_for=slot, reason=SkipReason.MISFIRE, count=count)
    return Event.create(task_id, data, occurred_at=slot)


class Scheduler:
    """Writes events in Kafka transactions, as the core's scheduler fires."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self._producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "partitioner": "murmur2_random",
                "transactional.id": f"test-scheduler-{uuid.uuid4().hex}",
            }
        )
        self._producer.init_transactions(30)

    def transaction(self, events: Iterable[Event], *, commit: bool) -> None:
        self._producer.begin_transaction()
        for event in events:
            self._producer.produce(
                self.topic,
                key=event.task_id.encode(),
                value=encode_event(event),
                headers=event_headers(event),
            )
        self._producer.flush(30)
        if commit:
            self._producer.commit_transaction(30)
        else:
            self._producer.abort_transaction(30)


def test_an_aborted_transaction_is_not_counted(kafka_bootstrap: str, tmp_path: Path) -> None:
    """A fire the scheduler aborted and redid (new event ids) counts once, as committed."""
    prefix = f"monab-{uuid.uuid4().hex[:8]}."
    topic = f"{prefix}task-events"
    now = datetime.now(UTC).replace(microsecond=0)
    tasks = [str(uuid.uuid4()) for _ in range(6)]
    with running_stack(kafka_bootstrap, prefix, tmp_path, names=("monitor",)) as stack:
        scheduler = Scheduler(kafka_bootstrap, topic)
        for i, task_id in enumerate(tasks):
            slot = now - timedelta(minutes=5, seconds=i)
            lost = Run(task_id, slot - timedelta(seconds=30))  # fired only in the aborted one
            fired = Run(task_id, slot)
            attempt = [_skipped(task_id, slot - timedelta(seconds=10), 3), lost.scheduled()]
            scheduler.transaction([*attempt, fired.scheduled()], commit=False)
            redo = [_skipped(task_id, slot - timedelta(seconds=10), 3), fired.scheduled()]
            scheduler.transaction(redo, commit=True)
            EventProducer(kafka_bootstrap, topic).send([fired.started(), fired.succeeded()])
        expected = expected_from_log(read_topic(kafka_bootstrap, topic))
        assert expected.totals["skipped"] == 3 * len(tasks)
        assert expected.totals["succeeded"] == len(tasks)
        assert expected.totals["scheduled"] == 0

        def counted() -> bool:
            metrics = _get(stack, "/api/monitor/metrics?minutes=1")
            assert metrics["lag"]["task_events_records"] == 0, metrics["lag"]
            assert metrics["totals"]["succeeded"] == len(tasks), metrics["totals"]
            return True

        eventually(counted, timeout=60, interval=0.5, what="the monitor to read the log")
        assert _totals(stack) == expected.totals
        for task_id in tasks:
            stats = _get(stack, f"/api/monitor/tasks/{task_id}/stats")
            assert stats["counts"] == expected.tasks[task_id]["counts"], task_id


def _kill_monitor(stack: Stack) -> None:
    service = stack.services.pop("monitor")
    service.process.send_signal(signal.SIGKILL)
    service.process.wait(10)
    service.stop()  # closes its log


def _start_monitor(stack: Stack, workdir: Path, name: str) -> None:
    service = start_service("monitor", stack.env, f"{stack.monitor}/health", workdir / name)
    stack.services["monitor"] = service
    wait_healthy(service)


def _runs(tasks: list[str], start: datetime, per_task: int) -> Iterator[Run]:
    for n in range(per_task):
        for task_id in tasks:
            yield Run(task_id, start + timedelta(seconds=n))


def test_after_a_kill_the_monitor_counts_again_within_seconds(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """kill -9, restart at once: new events counted within the budget, unfinished ones too."""
    prefix = f"monkl-{uuid.uuid4().hex[:8]}."
    topic = f"{prefix}task-events"
    tasks = [str(uuid.uuid4()) for _ in range(5)]
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=3)
    runs = list(_runs(tasks, start, 20))
    producer = EventProducer(kafka_bootstrap, topic)
    with running_stack(kafka_bootstrap, prefix, tmp_path, names=("monitor",)) as stack:
        finished, running, scheduled = runs[:80], runs[80:90], runs[90:]
        producer.send(e for r in finished for e in (r.scheduled(), r.started(), r.succeeded()))
        producer.send(e for r in running for e in (r.scheduled(), r.started()))
        producer.send(r.scheduled() for r in scheduled)
        expected = expected_from_log(read_topic(kafka_bootstrap, topic)).totals
        assert (expected["succeeded"], expected["running"], expected["scheduled"]) == (80, 10, 10)
        eventually(
            lambda: _totals(stack) == expected, timeout=60, interval=0.5, what="first counts"
        )

        _kill_monitor(stack)
        restarted = time.monotonic()
        _start_monitor(stack, tmp_path, "monitor-2.log")
        producer.send(e for r in running for e in (r.succeeded(),))
        after = expected_from_log(read_topic(kafka_bootstrap, topic)).totals
        assert (after["succeeded"], after["running"], after["scheduled"]) == (90, 0, 10)

        def counting() -> bool:
            response = httpx.get(f"{stack.monitor}/api/monitor/metrics?minutes=1", timeout=10)
            if response.status_code == 503:  # recovering: never zeros in place of data
                return False
            assert response.status_code == 200, response.text
            return response.json()["totals"] == after

        eventually(counting, timeout=120, interval=0.25, what="the monitor to count again")
        took = time.monotonic() - restarted
        print(f"the monitor counted again {took:.1f}s after its restart")  # for the docs' table
        assert took <= RECOVERY_BUDGET, f"counting again {took:.1f}s after the restart"


def _rewind(bootstrap: str, group: str, topic: str) -> int:
    """Set the group's committed offsets on ``topic`` back to 0; return how many records
    that redelivers."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    partitions = admin.list_topics(topic, timeout=10).topics[topic].partitions
    probe = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        committed = probe.committed([TopicPartition(topic, p) for p in partitions], timeout=10)
    finally:
        probe.close()
    redelivered = sum(max(tp.offset, 0) for tp in committed)
    request = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p, 0) for p in partitions])
    for future in admin.alter_consumer_group_offsets([request]).values():
        future.result(30)
    return redelivered


def test_a_redelivery_to_restored_tables_changes_no_count(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """Every record delivered a second time after the tables have folded it: no count moves.

    More executions per task than the monitor remembers evicted ids of, and more skip
    events per task than it remembers skip ids of: only the log's order can tell a
    redelivery then.
    """
    prefix = f"monrd-{uuid.uuid4().hex[:8]}."
    topic = f"{prefix}task-events"
    workload = generate(seed=11, now=datetime.now(UTC), tasks=6, per_task=60)
    tasks = workload.task_ids
    skips = [
        _skipped(task_id, datetime.now(UTC) - timedelta(hours=2, seconds=n), 1)
        for task_id in tasks
        for n in range(80)
    ]
    with running_stack(
        kafka_bootstrap,
        prefix,
        tmp_path,
        names=("monitor",),
        TASKSTREAM_MONITOR_HISTORY_SIZE="10",
        TASKSTREAM_MONITOR_RECENT_SIZE="20",
    ) as stack:
        producer = EventProducer(kafka_bootstrap, topic)
        producer.send([*workload.events, *skips])
        expected = expected_from_log(read_topic(kafka_bootstrap, topic))

        def caught_up() -> bool:
            metrics = _get(stack, "/api/monitor/metrics?minutes=1")
            assert metrics["lag"]["task_events_records"] == 0, metrics["lag"]
            assert metrics["totals"] == expected.totals, metrics["totals"]
            return True

        eventually(caught_up, timeout=90, interval=0.5, what="the monitor to fold the log")
        stack.services.pop("monitor").stop()  # a clean stop: offsets committed, tables whole
        group = f"{prefix}monitor"
        assert _rewind(kafka_bootstrap, group, topic) == sum(
            1 for _ in read_topic(kafka_bootstrap, topic)
        )
        _start_monitor(stack, tmp_path, "monitor-2.log")
        redelivered = len(workload.events) + len(skips)
        seen = [0.0]

        def read_again() -> bool:
            text = httpx.get(f"{stack.monitor}/metrics", timeout=10).text
            seen[0] = sum(
                float(line.rsplit(" ", 1)[1])
                for line in text.splitlines()
                if line.startswith("taskstream_monitor_events_total{")
            )
            return seen[0] >= redelivered

        eventually(
            read_again,
            timeout=90,
            interval=0.5,
            what=lambda: (
                f"the redelivery to be read ({seen[0]:.0f} of {redelivered} events read)\n"
                f"{stack.logs()}"
            ),
        )
        eventually(caught_up, timeout=30, interval=0.5, what="no lag")
        for task_id in tasks:
            stats = _get(stack, f"/api/monitor/tasks/{task_id}/stats")
            assert stats["counts"] == expected.tasks[task_id]["counts"], task_id


def _behind(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    """Per partition, how far the group's committed offset is behind the end of ``topic``
    (the last record of a transactional topic is a marker a commit need not pass)."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    partitions = sorted(admin.list_topics(topic, timeout=10).topics[topic].partitions)
    probe = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        tps = [TopicPartition(topic, p) for p in partitions]
        committed = probe.committed(tps, timeout=10)
        ends = [probe.get_watermark_offsets(tp, timeout=10)[1] for tp in tps]
    finally:
        probe.close()
    return {
        tp.partition: end - max(tp.offset, 0)
        for tp, end in zip(committed, ends, strict=True)
        if end - max(tp.offset, 0) > 1
    }


def test_the_monitor_commits_past_the_transactions_markers(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """Many small transactions, as the scheduler fires: once the monitor has folded them,
    its group's committed offsets reach the end of every partition within a few commit
    intervals, so that a restart reads again only what the last seconds wrote.

    faust's own gap bookkeeping went past one transaction marker per commit (one commit
    every 2.8 s): the committed offsets fell ever further behind (``monitor.transport``).
    """
    prefix = f"moncm-{uuid.uuid4().hex[:8]}."
    topic = f"{prefix}task-events"
    tasks = [str(uuid.uuid4()) for _ in range(30)]
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    with running_stack(kafka_bootstrap, prefix, tmp_path, names=("monitor",)) as stack:
        scheduler = Scheduler(kafka_bootstrap, topic)
        runs = list(_runs(tasks, start, 10))
        for n in range(0, len(runs), 2):  # 150 transactions of two fires each
            scheduler.transaction([r.scheduled() for r in runs[n : n + 2]], commit=True)
        EventProducer(kafka_bootstrap, topic).send(
            e for r in runs for e in (r.started(), r.succeeded())
        )
        eventually(
            lambda: _totals(stack)["succeeded"] == len(runs),
            timeout=60,
            interval=0.5,
            what="the monitor to fold the log",
        )
        group = f"{prefix}monitor"

        def committed_to_the_end() -> bool:
            behind = _behind(kafka_bootstrap, group, topic)
            assert not behind, f"records behind, by partition: {behind}"
            return True

        eventually(
            committed_to_the_end,
            timeout=20,
            interval=1.0,
            what="the committed offsets to reach the end",
        )
        # and its changelogs are compacted soon, so that a restore reads about one record
        # per key (monitor.service.CHANGELOG_CONFIG)
        settings = CommonSettings(kafka_bootstrap_servers=kafka_bootstrap)
        changelogs = [
            name
            for name in AdminClient({"bootstrap.servers": kafka_bootstrap})
            .list_topics(timeout=10)
            .topics
            if name.startswith(prefix) and name.endswith("-changelog")
        ]
        assert len(changelogs) >= 7, changelogs
        for name in changelogs:
            for key, value in CHANGELOG_CONFIG.items():
                assert topic_config(settings, name, key) == value, (name, key)
