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

A ``read_committed`` reader never sees the transactions' markers (nor an aborted
transaction's records), so the offsets it reads have gaps. faust records each gap so that
its commits can step over it, but its gap took in the offset of the record after it too
(``_add_gap(tp, last + 1, offset)`` kept ``last + 1 .. offset`` inclusive). That record was
then acked twice, the run of consecutive offsets that faust commits ended there, and every
commit (one each ``broker_commit_interval``) went past one marker only: with a transaction
or more a second per partition, the group's committed offset fell further behind all the
time (a tenth of the rate, measured), and each restart read all of that again.
:class:`_Consumer` records only the missing offsets.
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
    async def _add_gap(self, tp: Any, offset_from: int, offset_to: int) -> None:
        # faust calls this with the offset of the record after the gap as ``offset_to``
        # and keeps the interval inclusive: the gap is the offsets before that record
        await super()._add_gap(tp, offset_from, offset_to - 1)

    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class ReadCommittedTransport(faust_aiokafka.Transport):
    Consumer: ClassVar[Any] = _Consumer


def use_read_committed(app: faust.App) -> None:
    """Make ``app`` consume through :class:`ReadCommittedTransport` (before it starts)."""
    app.transport = ReadCommittedTransport(app.conf.broker_consumer, app)
