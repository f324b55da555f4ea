"""Producing records and knowing when they are on the broker.

One idempotent producer (``acks=all``, the Java client's ``murmur2_random`` partitioner,
so a task's events land where every other writer puts them) shared by the executions.
:meth:`Publisher.send` answers a future that completes when the broker has the record
(:meth:`Publisher.send_then` calls back instead, without a future);
a record the client gives up on (delivery timeout) is produced again until it is
delivered or the publisher closes, because a work order's offset is only committed
after its records are on the broker.

The thread that serves the delivery callbacks is a
:class:`taskstream.infra.consumer_loop.ConsumerLoop` (``publisher``, essential: without it
no outcome is confirmed, so no offset is committed). A caller may cancel a future it no
longer waits for; its delivery is then dropped quietly, and a callback that raises for any
other reason is logged and counted, never the end of the thread.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from taskstream.infra.consumer_loop import ConsumerLoop, OnLoop
from taskstream.infra.kafka import producer_config
from taskstream.infra.settings import CommonSettings
from taskstream.schemas.codec import Headers
from taskstream.schemas.errors import TaskstreamError

__all__ = ["Publisher", "PublisherClosedError"]

logger = logging.getLogger(__name__)


class PublisherClosedError(TaskstreamError, RuntimeError):
    """The publisher closed before the record reached the broker."""


class Publisher(OnLoop):
    """A shared producer with delivery futures and a thread serving its callbacks."""

    def __init__(self, settings: CommonSettings, **overrides: Any) -> None:
        self._producer = Producer(
            producer_config(settings, partitioner="murmur2_random", **overrides)
        )
        self._closed = threading.Event()
        self._loop = ConsumerLoop(
            "publisher",
            tick=self._serve,
            isolate_ticks=True,
            stall_after=settings.loop_stall_after,
        )
        self._loop.start()

    name = "publisher"
    essential = True
    """Every outcome, retry and heartbeat goes through it; offsets wait for its deliveries."""

    def send(
        self, topic: str, key: bytes | None, value: bytes | None, headers: Headers | None = None
    ) -> Future[None]:
        """Produce one record; the future completes once the broker acknowledged it."""
        future: Future[None] = Future()

        def answer(error: Exception | None) -> None:
            try:
                if error is None:
                    future.set_result(None)
                else:
                    future.set_exception(error)
            except InvalidStateError:
                pass  # cancelled between the check and the answer

        self._produce(answer, future.done, topic, key, value, headers)
        return future

    def send_then(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Headers | None,
        then: Callable[[Exception | None], None],
    ) -> None:
        """Produce one record and call ``then(None)`` once the broker has it, or
        ``then(error)`` if it never will (the publisher closed, the client refused it).

        No future: the executor's hot path (one call per outcome record). ``then`` runs on
        the publisher's thread and must not block.
        """
        self._produce(then, None, topic, key, value, headers)

    def close(self, timeout: float = 10.0) -> None:
        """Deliver what is queued (up to ``timeout``), then stop."""
        remaining = self._producer.flush(timeout)
        if remaining:
            logger.warning("%d record(s) not delivered at close", remaining)
        self._closed.set()
        self._loop.stop(timeout)

    def _produce(
        self,
        then: Callable[[Exception | None], None],
        abandoned: Callable[[], bool] | None,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Headers | None,
    ) -> None:
        def delivered(error: KafkaError | None, _: Message) -> None:
            if abandoned is not None and abandoned():
                return  # its caller cancelled it: nobody waits for this record
            if error is None:
                then(None)
            elif self._closed.is_set():
                then(PublisherClosedError(error.str()))
            else:
                logger.warning("delivery to %s failed (%s); producing again", topic, error.str())
                try:
                    self._produce(then, abandoned, topic, key, value, headers)
                except KafkaException as exc:  # producing again was refused: say so
                    then(exc)

        while True:
            if self._closed.is_set():
                then(PublisherClosedError("the publisher is closed"))
                return
            try:
                self._producer.produce(
                    topic, key=key, value=value, headers=headers, on_delivery=delivered
                )
                return
            except BufferError:  # the local queue is full: let deliveries drain it
                self._producer.poll(0.1)

    def _serve(self) -> None:
        if not self._closed.is_set():
            self._producer.poll(0.1)
        else:
            self._loop.stopping.wait(0.1)
