"""The monitor's own consumer lag on ``task-events``, in records.

Lag is, over the partitions assigned to this worker, the high watermark the consumer
last fetched minus the next offset the agent will process. The agent reports each
offset it has processed; a partition it has processed nothing of since it started counts
from the consumer's position (its committed offset until records are fetched). The high
watermarks are the ones faust's consumer (aiokafka) keeps from its fetches, so reading
them costs no request; :meth:`ConsumerLag.refresh` runs on a timer and the API and the
Prometheus gauge show its last result, or null when the consumer cannot tell (not
started, no partition assigned yet, or no fetch answered yet).
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["ConsumerLag"]

logger = logging.getLogger(__name__)


class ConsumerLag:
    def __init__(self, topic: str) -> None:
        self.topic = topic
        self.records: int | None = None
        self._next: dict[int, int] = {}

    def processed(self, partition: int, offset: int) -> None:
        self._next[partition] = offset + 1

    def next_offset(self, partition: int) -> int | None:
        """The next offset the agent will process there (None: none processed yet)."""
        return self._next.get(partition)

    async def refresh(self, consumer: Any) -> None:
        """Recompute :attr:`records` from faust's consumer (``app.consumer``)."""
        try:
            self.records = await self._measure(consumer)
        except Exception as exc:  # the consumer is starting, stopping or rebalancing
            logger.debug("consumer lag unknown: %s", exc)
            self.records = None

    async def _measure(self, consumer: Any) -> int | None:
        partitions = [tp for tp in consumer.assignment() if tp.topic == self.topic]
        if not partitions:
            return None
        assigned = {tp.partition for tp in partitions}
        for partition in set(self._next) - assigned:  # moved to another worker
            del self._next[partition]
        lag = 0
        for tp in partitions:
            highwater = consumer.highwater(tp)
            next_offset = self._next.get(tp.partition)
            if next_offset is None:
                next_offset = await consumer.position(tp)
            if highwater is None or next_offset is None:
                return None
            lag += max(0, highwater - next_offset)
        return lag
