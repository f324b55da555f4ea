"""Appending events to ``task-events`` from the API, with delivery confirmed.

The producer is idempotent with ``acks=all``; :meth:`EventPublisher.publish` returns a
future that resolves to the record's partition and offset once the broker has it, so
the API can wait for the projection to reach exactly that offset (read-your-writes).

A write is bounded: the client gives a record up after ``kafka_write_timeout``
(``message.timeout.ms``) and :func:`confirmed` stops waiting a moment later, so a dead
broker gets the API a :class:`PublishError` (503 ``kafka_unavailable``), never a hang.

The thread that serves the delivery callbacks is a
:class:`taskstream.infra.consumer_loop.ConsumerLoop` (``event-publisher``, essential:
without it no write of the API is ever confirmed). A caller that stopped waiting may
cancel its future (:func:`confirmed` does when it gives up, through
``asyncio.wrap_future``); its delivery is then dropped quietly, and a callback that
raises for any other reason is logged and counted, never the end of the thread.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from taskstream.infra.consumer_loop import ConsumerLoop, OnLoop
from taskstream.infra.kafka import producer_config
from taskstream.infra.settings import CommonSettings
from taskstream.schemas import Event, encode_event, event_headers
from taskstream.schemas.errors import TaskstreamError

__all__ = ["EventPublisher", "PublishError", "RecordPosition", "confirmed"]

_MARGIN = 1.0
"""Seconds :func:`confirmed` waits beyond the client's own message timeout."""


class PublishError(TaskstreamError, RuntimeError):
    """The broker did not take an event; nothing was written."""


@dataclass(frozen=True, slots=True)
class RecordPosition:
    topic: str
    partition: int
    offset: int


class EventPublisher(OnLoop):
    def __init__(self, settings: CommonSettings) -> None:
        self.topic = settings.topics.task_events
        self.timeout = settings.kafka_write_timeout.total_seconds()
        self._producer = Producer(
            producer_config(
                settings,
                partitioner="murmur2_random",
                **{"message.timeout.ms": int(self.timeout * 1000)},
            )
        )
        self._loop = ConsumerLoop(
            "event-publisher",
            tick=self._poll,
            isolate_ticks=True,
            stall_after=settings.loop_stall_after,
        )
        self._loop.start()

    name = "event-publisher"
    essential = True
    """Every write of the API waits for its delivery callback."""

    def _poll(self) -> None:
        self._producer.poll(0.05)

    def publish(self, event: Event) -> Future[RecordPosition]:
        result: Future[RecordPosition] = Future()

        def delivered(error: KafkaError | None, message: Message) -> None:
            if result.done():
                return  # its caller cancelled it: nobody waits for this answer
            try:
                if error is not None:
                    result.set_exception(
                        PublishError(f"event {event.id} not written: {error.str()}")
                    )
                else:
                    result.set_result(
                        RecordPosition(self.topic, message.partition() or 0, message.offset() or 0)
                    )
            except InvalidStateError:
                pass  # cancelled between the check and the answer

        self._producer.produce(
            self.topic,
            key=event.task_id.encode(),
            value=encode_event(event),
            headers=event_headers(event),
            on_delivery=delivered,
        )
        return result

    def close(self, timeout: float = 10.0) -> Any:
        self._loop.stop(timeout)
        return self._producer.flush(timeout)


async def confirmed(future: Future[RecordPosition], timeout: float) -> RecordPosition:
    """Wait for ``future`` at most ``timeout`` (+ a margin) seconds; :class:`PublishError`
    if the broker did not confirm the record by then."""
    try:
        return await asyncio.wait_for(asyncio.wrap_future(future), timeout + _MARGIN)
    except TimeoutError:
        raise PublishError(f"the broker did not confirm the write within {timeout:g}s") from None
