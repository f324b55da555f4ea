"""The largest event the broker takes on ``task-events``, checked before an event is sent.

The limit is read once at start-up from the broker (the topic's ``max.message.bytes``,
through the AdminClient) and capped by the producer's own ``message.max.bytes``. An
event whose encoded key, value and headers exceed it is refused with 413 before anything
is produced; the check is on the uncompressed size, so what passes is never refused by
the broker, whatever the compression.
"""

from __future__ import annotations

from dataclasses import dataclass

from taskstream.infra.kafka import producer_config, topic_config
from taskstream.infra.settings import CommonSettings
from taskstream.schemas import Event, encode_event, event_headers
from taskstream.schemas.errors import TaskstreamError

__all__ = ["EventSizeLimit", "EventTooLarge"]

PRODUCER_DEFAULT_MAX_BYTES = 1_000_000
"""librdkafka's default ``message.max.bytes``, when the producer config sets none."""
_BATCH_OVERHEAD = 128
"""A record batch's header (61 bytes) and one record's framing, with room to spare."""


class EventTooLarge(TaskstreamError, ValueError):
    """An event larger than the broker takes on its topic."""

    def __init__(self, size: int, limit: EventSizeLimit) -> None:
        super().__init__(
            f"the task's event would be {size:,} bytes, and {limit.topic} takes at most "
            f"{limit.max_bytes:,} ({limit.source}); send smaller params"
        )
        self.size = size


@dataclass(frozen=True, slots=True)
class EventSizeLimit:
    topic: str
    max_bytes: int
    """The most bytes of key, value and headers one event may have."""
    source: str
    """Where the limit comes from, for the error message."""

    @classmethod
    def from_broker(cls, settings: CommonSettings) -> EventSizeLimit:
        """The limit of ``task-events`` as the broker is configured now (one admin call)."""
        topic = settings.topics.task_events
        producer = int(
            producer_config(settings).get("message.max.bytes", PRODUCER_DEFAULT_MAX_BYTES)
        )
        configured = topic_config(settings, topic, "max.message.bytes")
        broker = int(configured) - _BATCH_OVERHEAD if configured else producer
        if broker < producer:
            return cls(topic, broker, f"the topic's max.message.bytes is {configured}")
        return cls(topic, producer, f"the producer's message.max.bytes is {producer}")

    def check(self, event: Event) -> None:
        """Raise :class:`EventTooLarge` if the broker would refuse ``event``."""
        size = len(encode_event(event)) + len(event.task_id.encode())
        for name, value in event_headers(event):
            size += len(name) + len(value or b"")
        if size > self.max_bytes:
            raise EventTooLarge(size, self)
