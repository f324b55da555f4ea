"""The producers' delivery polls on a real broker: a caller that gave up stops nothing.

A caller may cancel the future of a record it no longer waits for (the API's bounded
wait does, through ``asyncio.wrap_future``). The delivery callback then meets a cancelled
future; that must not end the thread that serves every later delivery.
"""

from __future__ import annotations

import pytest

from taskstream.core.publisher import EventPublisher
from taskstream.core.settings import CoreSettings
from taskstream.executor.publisher import Publisher, PublisherClosedError
from taskstream.infra.health import State
from taskstream.infra.kafka import ensure_topics, standard_topics
from taskstream.schemas import Event, TaskPaused
from tests.support import eventually

pytestmark = pytest.mark.kafka


@pytest.fixture
def settings(kafka_bootstrap: str, topic_prefix: str) -> CoreSettings:
    settings = CoreSettings(kafka_bootstrap_servers=kafka_bootstrap, topic_prefix=topic_prefix)
    ensure_topics(settings, standard_topics(settings, settings.queues))
    return settings


def test_the_event_publisher_delivers_after_a_caller_cancelled_its_future(
    settings: CoreSettings,
) -> None:
    publisher = EventPublisher(settings)
    try:
        abandoned = publisher.publish(Event.create("t1", TaskPaused()))
        assert abandoned.cancel()
        later = publisher.publish(Event.create("t2", TaskPaused()))
        position = later.result(timeout=20)
        assert position.topic == settings.topics.task_events
        assert publisher.alive and publisher.error is None
        eventually(lambda: publisher.health().state is State.OK, timeout=10, what="health ok")
        assert (publisher.name, publisher.essential) == ("event-publisher", True)
    finally:
        publisher.close()


def test_the_executor_publisher_delivers_after_a_caller_cancelled_its_future(
    settings: CoreSettings,
) -> None:
    publisher = Publisher(settings)
    try:
        abandoned = publisher.send(settings.topics.workers, b"w1", b"{}")
        assert abandoned.cancel()
        later = publisher.send(settings.topics.workers, b"w2", b"{}")
        assert later.result(timeout=20) is None
        assert publisher.alive and publisher.error is None
        eventually(lambda: publisher.health().state is State.OK, timeout=10, what="health ok")
        assert (publisher.name, publisher.essential) == ("publisher", True)
    finally:
        publisher.close()


def test_the_executor_publishers_send_then_calls_back_once_delivered_or_refused(
    settings: CoreSettings,
) -> None:
    publisher = Publisher(settings)
    answers: list[Exception | None] = []
    try:
        for n in range(3):
            publisher.send_then(
                settings.topics.workers, f"w{n}".encode(), b"{}", None, answers.append
            )
        eventually(lambda: len(answers) == 3, timeout=20, what="three deliveries")
        assert answers == [None, None, None]
    finally:
        publisher.close()
    publisher.send_then(settings.topics.workers, b"late", b"{}", None, answers.append)
    assert len(answers) == 4 and isinstance(answers[3], PublisherClosedError), (
        "a record sent after close is refused at once, to the callback"
    )
