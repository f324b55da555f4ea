"""The executor's cancellation listener on a real broker: a bad record never stops it.

Records that say ``event-type: CancelRequested`` but are not one go on ``cancellations``
(where the core's scheduler copies the requests for the executors) while an execution
runs: one that is not JSON, and one whose ``type`` is a list (decoding it raises
``TypeError``, not a decode error). A valid cancel after them must still stop the
execution, and the listener's health says it isolated the record.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from confluent_kafka import Producer

from taskstream.executor.settings import ExecutorSettings
from taskstream.infra.health import State
from taskstream.infra.kafka import ensure_topics, standard_topics
from taskstream.schemas import (
    CancelRequested,
    Event,
    EventDecodeError,
    ExecutionCancelled,
    decode_event,
)
from taskstream.schemas.codec import HEADER_EVENT_TYPE
from tests.integration.executor_support import (
    EventLog,
    Writer,
    executor_settings,
    read_raw,
    running_executor,
    work_order,
)
from tests.support import eventually

pytestmark = pytest.mark.kafka


@pytest.fixture
def settings(kafka_bootstrap: str, topic_prefix: str) -> ExecutorSettings:
    settings = executor_settings(kafka_bootstrap, topic_prefix, executor_concurrency=2)
    ensure_topics(settings, standard_topics(settings, settings.executor_queues))
    return settings


@pytest.fixture
def log(settings: ExecutorSettings) -> Iterator[EventLog]:
    events = EventLog(settings.kafka_bootstrap_servers, settings.topics.task_events)
    yield events
    events.close()


def _cancel_lookalikes(settings: ExecutorSettings, task_id: str) -> None:
    """Two records headed as CancelRequested that are not one, on the task's partition."""
    producer = Producer(
        {"bootstrap.servers": settings.kafka_bootstrap_servers, "partitioner": "murmur2_random"}
    )
    headers = [(HEADER_EVENT_TYPE, CancelRequested.TYPE.encode())]
    for value in (
        b"not json",
        b'{"type": ["CancelRequested"], "version": 1, "data": {"reason": "x"}}',
    ):
        producer.produce(
            settings.topics.cancellations, key=task_id.encode(), value=value, headers=headers
        )
    assert producer.flush(30) == 0


def _decodable(settings: ExecutorSettings) -> list[Event]:
    """The events of ``task-events`` now, the records that are not events left out."""
    events = []
    for _, value, _ in read_raw(settings.kafka_bootstrap_servers, settings.topics.task_events):
        try:
            events.append(decode_event(value))
        except (EventDecodeError, TypeError):
            continue
    return events


def _cancelled(settings: ExecutorSettings, execution_id: str) -> list[ExecutionCancelled]:
    return [
        e.data
        for e in _decodable(settings)
        if isinstance(e.data, ExecutionCancelled) and e.data.execution_id == execution_id
    ]


def test_a_record_that_raises_is_isolated_and_the_next_cancel_still_works(
    settings: ExecutorSettings, log: EventLog
) -> None:
    writer = Writer(settings)
    long = work_order("sleep", {"seconds": 30})
    writer.orders(long)
    with running_executor(settings) as executor:
        eventually(lambda: log.of("ExecutionStarted", long.execution_id), what="the start")
        _cancel_lookalikes(settings, long.task_id)
        writer.event(long.task_id, CancelRequested(execution_id=long.execution_id, reason="ops"))
        [cancelled] = eventually(
            lambda: _cancelled(settings, long.execution_id),
            timeout=10,
            what="ExecutionCancelled after the bad records",
        )
        assert cancelled.reason == "ops"
        listener = executor.cancel_listener
        assert listener.alive and listener.error is None and executor.alive
        status = listener.health()
        assert status.state is State.OK, status
        assert (listener.name, listener.essential) == ("cancellations", True)
        assert status.details["record_errors"] == 1  # the TypeError; "not json" is a decode error
        assert "TypeError" in status.details["last_record_error"]
