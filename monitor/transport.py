"""faust's Kafka transport, reading ``read_committed``.

The scheduler fires in Kafka transactions; when one aborts (a broker lost mid-fire, a
fenced zombie) it fires again, with new event ids for its ``ExecutionSkipped`` events. A
``read_uncommitted`` reader sees both attempts: the monitor counted such skips twice and
kept executions that were never fired as scheduled. faust reads ``read_committed`` only
under ``processing_guarantee="exactly_once"``, whose transactional changelogs lose and
duplicate table updates on a kill -9 (faust #340, faust-streaming #323), so this transport
keeps at-least-once processing and only sets the consumer's isolation level (aiokafka
takes it from the attribute when the consumer starts; faust-streaming and aiokafka are
pinned). The changelogs are written without transactions, so their restore reads the same
records either way.
"""

from __future__ import annotations

from typing import Any, ClassVar

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka

__all__ = ["ReadCommittedTransport", "use_read_committed"]

ISOLATION_LEVEL = "read_committed"


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:  # an aiokafka.AIOKafkaConsumer
        consumer = super()._create_worker_consumer(transport)
        consumer._isolation_level = ISOLATION_LEVEL  # read by start(), for its fetcher
        return consumer


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class ReadCommittedTransport(faust_aiokafka.Transport):
    Consumer: ClassVar[Any] = _Consumer


def use_read_committed(app: faust.App) -> None:
    """Make ``app`` consume through :class:`ReadCommittedTransport` (before it starts)."""
    app.transport = ReadCommittedTransport(app.conf.broker_consumer, app)
