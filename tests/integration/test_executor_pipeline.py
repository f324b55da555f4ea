"""The executor in-process against real topics: runs, retries, dead letters, poison,
cancellation, timeouts and heartbeats. Work orders are produced here as the core would."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import orjson
import pytest

from taskstream.executor.backpressure import lane_share
from taskstream.executor.outcomes import backoff_seconds
from taskstream.executor.settings import ExecutorSettings
from taskstream.infra.kafka import ensure_topics, standard_topics
from taskstream.schemas import CancelRequested, Priority, RetryPolicy, WorkerHeartbeat
from tests.integration.executor_support import (
    EventLog,
    Writer,
    committed_offsets,
    end_offsets,
    executor_settings,
    read_raw,
    running_executor,
    work_order,
)
from tests.kafka_read import read_topic
from tests.support import eventually

pytestmark = pytest.mark.kafka


@pytest.fixture
def settings(kafka_bootstrap: str, topic_prefix: str) -> ExecutorSettings:
    settings = executor_settings(kafka_bootstrap, topic_prefix, executor_concurrency=20)
    ensure_topics(settings, standard_topics(settings, settings.executor_queues))
    return settings


@pytest.fixture
def log(settings: ExecutorSettings) -> Iterator[EventLog]:
    events = EventLog(settings.kafka_bootstrap_servers, settings.topics.task_events)
    yield events
    events.close()


@pytest.fixture
def writer(settings: ExecutorSettings) -> Writer:
    return Writer(settings)


def test_a_hundred_sleeps_with_twenty_slots_all_complete_and_commit(
    settings: ExecutorSettings, log: EventLog, writer: Writer
) -> None:
    orders = [work_order("sleep", {"seconds": 2}) for _ in range(100)]
    writer.orders(*orders)
    ids = {o.execution_id for o in orders}
    with running_executor(settings) as executor:
        succeeded = eventually(
            lambda: ids <= {e.execution_id for e in log.of("ExecutionSucceeded")} or None,
            timeout=60,
            what="100 sleeps to succeed",
        )
        assert succeeded
        started = log.of("ExecutionStarted")
        assert {s.worker_id for s in started} == {settings.executor_id}
        # never more than 20 at once: 100 x 2 s with 20 slots takes at least ~10 s
        stamps = sorted(e.occurred_at for e in log.envelopes("ExecutionStarted"))
        assert (stamps[-1] - stamps[0]).total_seconds() >= 7.5
        ends = {k: v for k, v in end_offsets(settings).items() if v > 0}
        eventually(
            lambda: {k: committed_offsets(settings)[k] for k in ends} == ends,
            timeout=10,
            what="offsets committed to the end",
        )
        healthy, health = executor.health()
        assert healthy and health["last_commit"] and health["in_flight"] == 0
    for event in log.poll():
        assert event.type in {"ExecutionStarted", "ExecutionSucceeded"}


def test_a_failing_order_schedules_its_retry_within_the_backoff_window(
    settings: ExecutorSettings, log: EventLog, writer: Writer
) -> None:
    """The core fires retries; here the test plays the core, firing each RetryScheduled."""
    policy = RetryPolicy(
        max_attempts=4,
        initial_delay=timedelta(seconds=1),
        multiplier=2,
        max_delay=timedelta(seconds=30),
        jitter=timedelta(milliseconds=500),
    )
    first = work_order("fail", {"until_attempt": 3}, retry=policy)
    writer.orders(first)
    with running_executor(settings):
        current = first
        for attempt in (1, 2):
            [failed] = eventually(
                lambda eid=current.execution_id: log.envelopes("ExecutionFailed", eid),
                what=f"attempt {attempt} to fail",
            )
            [retry] = eventually(
                lambda eid=current.execution_id: [
                    r for r in log.of("RetryScheduled") if r.failed_execution_id == eid
                ],
                what=f"the retry after attempt {attempt}",
            )
            assert failed.data.retryable and failed.data.error_type == "RetryableError"
            assert retry.attempt == attempt + 1
            wait = (retry.due_at - failed.occurred_at).total_seconds()
            low = backoff_seconds(policy.model_copy(update={"jitter": timedelta(0)}), attempt)
            assert low - 0.05 <= wait <= low + 0.5 + 0.05, (attempt, wait)
            current = work_order(
                "fail",
                {"until_attempt": 3},
                retry=policy,
                attempt=retry.attempt,
                task_id=first.task_id,
                slot=first.scheduled_for,
            )
            assert current.execution_id == retry.execution_id
            writer.orders(current)
        [done] = eventually(
            lambda: log.of("ExecutionSucceeded", current.execution_id), what="attempt 3"
        )
        assert done.output == {"attempt": 3}


def test_retries_run_out_into_a_dead_letter_and_a_permanent_error_goes_at_once(
    settings: ExecutorSettings, log: EventLog, writer: Writer
) -> None:
    policy = RetryPolicy(max_attempts=2, initial_delay=timedelta(milliseconds=100))
    first = work_order("fail", {"message": "always"}, retry=policy)
    permanent = work_order("fail", {"permanent": True, "message": "bad input"}, retry=policy)
    writer.orders(first, permanent)
    with running_executor(settings):
        [retry] = eventually(
            lambda: [
                r for r in log.of("RetryScheduled") if r.failed_execution_id == first.execution_id
            ],
            what="a retry of the first attempt",
        )
        assert retry.attempt == 2
        last = work_order(
            "fail",
            {"message": "always"},
            retry=policy,
            attempt=2,
            task_id=first.task_id,
            slot=first.scheduled_for,
        )
        writer.orders(last)
        [exhausted] = eventually(
            lambda: log.of("ExecutionDeadLettered", last.execution_id), what="dead letter"
        )
        assert exhausted.reason == "max_attempts" and exhausted.error_message == "always"
        [refused] = eventually(
            lambda: log.of("ExecutionDeadLettered", permanent.execution_id),
            what="the permanent failure's dead letter",
        )
        assert refused.reason == "permanent" and refused.error_type == "PermanentError"
        [failed] = log.of("ExecutionFailed", permanent.execution_id)
        assert failed.retryable is False
        assert not [
            r for r in log.of("RetryScheduled") if r.failed_execution_id == permanent.execution_id
        ]
    letters = eventually(
        lambda: {
            r.headers["execution-id"].decode(): r
            for r in read_topic(settings.kafka_bootstrap_servers, settings.topics.dead_letter)
        },
        what="dead-letter records",
    )
    assert letters[last.execution_id].headers["dead-letter-reason"] == b"max_attempts"
    assert letters[permanent.execution_id].headers["dead-letter-reason"] == b"permanent"
    assert letters[last.execution_id].key == first.task_id.encode()
    assert letters[last.execution_id].value["attempt"] == 2, "the work order itself"


def test_a_poison_record_is_dead_lettered_and_the_next_order_runs(
    settings: ExecutorSettings, log: EventLog, writer: Writer
) -> None:
    after = work_order("echo", {"after": "poison"})
    topic = settings.topics.execution("default", "medium")
    writer.raw(topic, after.task_id.encode(), b"\xff not json")  # the same partition
    writer.orders(after)
    with running_executor(settings):
        [done] = eventually(
            lambda: log.of("ExecutionSucceeded", after.execution_id), what="the next order"
        )
        assert done.output == {"after": "poison"}
        [(key, value, headers)] = eventually(
            lambda: read_raw(settings.kafka_bootstrap_servers, settings.topics.dead_letter),
            what="the poison record on the dead-letter topic",
        )
        assert value == b"\xff not json" and key == after.task_id.encode()
        assert headers["dead-letter-reason"] == b"undecodable"
        assert headers["source-topic"] == topic.encode()
        ends = {k: v for k, v in end_offsets(settings).items() if v > 0}
        assert sum(ends.values()) == 2
        eventually(
            lambda: {k: committed_offsets(settings)[k] for k in ends} == ends,
            what="the poison record's offset committed too",
        )


def test_a_cancel_request_stops_a_running_execution(
    settings: ExecutorSettings, log: EventLog, writer: Writer
) -> None:
    long = work_order("sleep", {"seconds": 30})
    writer.orders(long)
    with running_executor(settings):
        eventually(lambda: log.of("ExecutionStarted", long.execution_id), what="the start")
        writer.event(long.task_id, CancelRequested(execution_id=long.execution_id, reason="ops"))
        [cancelled] = eventually(
            lambda: log.of("ExecutionCancelled", long.execution_id),
            timeout=5,
            what="ExecutionCancelled within a few seconds",
        )
        assert cancelled.reason == "ops" and cancelled.duration_seconds < 10
        assert not log.of("ExecutionSucceeded", long.execution_id)
        assert not log.of("RetryScheduled"), "a cancelled execution is not retried"

        # a task-wide cancel that arrives before its work order (the order waited somewhere)
        late = work_order("sleep", {"seconds": 30})
        writer.event(late.task_id, CancelRequested(reason="whole task"))
        requests = EventLog(settings.kafka_bootstrap_servers, settings.topics.cancellations)
        try:
            eventually(lambda: requests.of("CancelRequested"), what="the request to be there")
        finally:
            requests.close()
        writer.orders(late)
        [early] = eventually(
            lambda: log.of("ExecutionCancelled", late.execution_id), what="the late order"
        )
        assert early.reason == "whole task"
        assert not log.of("ExecutionStarted", late.execution_id), "it never started"


def test_a_handler_past_its_timeout_times_out(
    settings: ExecutorSettings, log: EventLog, writer: Writer
) -> None:
    slow = work_order("sleep", {"seconds": 10}, timeout=1)
    writer.orders(slow)
    with running_executor(settings):
        [timed_out] = eventually(
            lambda: log.of("ExecutionTimedOut", slow.execution_id), timeout=15, what="timeout"
        )
        assert timed_out.timeout_seconds == 1 and 0.9 <= timed_out.duration_seconds < 3
        [letter] = eventually(
            lambda: log.of("ExecutionDeadLettered", slow.execution_id), what="no attempts left"
        )
        assert letter.reason == "max_attempts" and letter.error_type == "TimeoutError"


def test_heartbeats_announce_the_executor_and_a_clean_stop_leaves_a_tombstone(
    settings: ExecutorSettings, writer: Writer
) -> None:
    settings = settings.model_copy(update={"executor_heartbeat_interval": timedelta(seconds=0.3)})
    writer.orders(work_order("sleep", {"seconds": 2}, priority=Priority.HIGH))

    def busy_beat() -> WorkerHeartbeat | None:
        for _, value, _ in read_raw(settings.kafka_bootstrap_servers, settings.topics.workers):
            beat = WorkerHeartbeat.decode(value) if value else None
            if beat is not None and beat.in_flight == 1:
                return beat
        return None

    with running_executor(settings) as executor:
        beat = eventually(busy_beat, what="a heartbeat with one execution in flight")
        assert beat.executor_id == settings.executor_id
        assert beat.queues == ["default"] and "sleep" in beat.handlers
        assert "shell" not in beat.handlers
        assert beat.capacity == 20 and beat.memory_rss_bytes > 0 and beat.version == 1
        assert executor.health()[1]["last_heartbeat"]
    key, value, _ = read_raw(settings.kafka_bootstrap_servers, settings.topics.workers)[-1]
    assert key == settings.executor_id.encode()
    assert value is None, "a tombstone after a clean stop"


def test_the_buffer_limit_pauses_partitions_and_health_shows_it(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    settings = executor_settings(
        kafka_bootstrap, topic_prefix, executor_concurrency=2, executor_max_buffered=8
    )
    ensure_topics(settings, standard_topics(settings, settings.executor_queues))
    writer = Writer(settings)
    writer.orders(
        *(work_order("sleep", {"seconds": 0.2}, priority=Priority.LOW) for _ in range(60))
    )
    with running_executor(settings) as executor:

        def paused() -> dict[str, object] | None:
            _, health = executor.health()
            return health if health["paused_partitions"] else None

        health = eventually(paused, what="low partitions paused")
        [consumer] = health["consumers"]  # type: ignore[misc]
        assert consumer["paused_lanes"] == ["low"]
        limit = settings.max_buffered
        assert sum(consumer["buffered"].values()) <= limit + 2 * lane_share(limit) + 100
        eventually(
            lambda: executor.health()[1]["paused_partitions"] == 0,
            timeout=30,
            what="resumed once the backlog drained",
        )


def test_a_run_that_says_nothing_ships_no_log_chunk(
    settings: ExecutorSettings, log: EventLog, writer: Writer
) -> None:
    silent = [work_order("noop") for _ in range(5)]
    talking = work_order("fail", {"message": "disk full", "permanent": True})  # a traceback
    writer.orders(*silent, talking)
    with running_executor(settings):
        eventually(
            lambda: (
                {o.execution_id for o in silent}
                <= {e.execution_id for e in log.of("ExecutionSucceeded")}
                and log.of("ExecutionFailed", talking.execution_id)
            ),
            timeout=60,
            what="the runs to end",
        )
        ends = {k: v for k, v in end_offsets(settings).items() if v > 0}
        eventually(
            lambda: {k: committed_offsets(settings)[k] for k in ends} == ends,
            timeout=30,
            what="every order committed, the silent ones too",
        )
    records = read_raw(settings.kafka_bootstrap_servers, settings.topics.execution_logs)
    chunks = [orjson.loads(value or b"null") for _, value, _ in records]
    assert [chunk["execution_id"] for chunk in chunks] == [talking.execution_id]
    [chunk] = chunks
    assert chunk["final"] is True
    assert any("PermanentError: disk full" in line["message"] for line in chunk["lines"])


def test_a_quick_run_is_one_outcome_event_and_a_long_one_is_started_first(
    settings: ExecutorSettings, log: EventLog, writer: Writer
) -> None:
    """Outcome events v2: a run that ends before ``executor_started_event_after`` writes
    only its outcome, which says when and what started; a longer one gets its
    ``ExecutionStarted`` while it runs (stamped with its start), before the outcome."""
    quick = work_order("noop")
    long = work_order("sleep", {"seconds": 3})
    writer.orders(quick, long)
    with running_executor(settings):
        [started] = eventually(
            lambda: log.envelopes("ExecutionStarted", long.execution_id),
            timeout=20,
            what="the long run's ExecutionStarted",
        )
        assert not log.of("ExecutionSucceeded", long.execution_id, poll=False), "while it runs"
        [outcome] = eventually(
            lambda: log.envelopes("ExecutionSucceeded", long.execution_id),
            timeout=20,
            what="the long run's outcome",
        )
    assert outcome.version == 2 and outcome.data.started_at == started.occurred_at
    assert outcome.data.handler == "sleep" and started.data.handler == "sleep"
    assert (outcome.occurred_at - started.occurred_at).total_seconds() >= 3
    [quick_outcome] = log.envelopes("ExecutionSucceeded", quick.execution_id, poll=False)
    assert quick_outcome.data.handler == "noop"
    assert quick_outcome.data.started_at is not None
    assert quick_outcome.data.started_at <= quick_outcome.occurred_at
    assert not log.of("ExecutionStarted", quick.execution_id, poll=False)
    order = [e for e in log.events if getattr(e.data, "execution_id", None) == long.execution_id]
    assert [e.type for e in order] == ["ExecutionStarted", "ExecutionSucceeded"]
