"""A faust table whose changelog records can be waited for.

A faust table write changes the local table at once and queues its changelog record;
with the broker gone, the record waits in the producer and would be lost with the
process. :class:`ConfirmedTable` keeps the future of its last changelog record (and, when
asked, of every record until taken), so that a writer can wait for Kafka to have them:

- the ``alert-rules`` API waits for its one write (:func:`confirm_write`) and answers 503
  ``kafka_unavailable`` after ``TASKSTREAM_KAFKA_WRITE_TIMEOUT`` instead of a success the
  log never saw;
- the projection agent's tables are ``batched``: a write keeps its changelog record, and
  :meth:`ConfirmedTable.send_pending` sends a phase's records as one producer batch per
  changelog partition, whose futures the agent waits for before the next phase
  (:mod:`taskstream.monitor.projection`). faust's own path makes a ``FutureMessage``, a producer
  buffer entry and an aiokafka future per record: measured, that cost more than the
  fold itself.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

import faust
from faust.types import FutureMessage
from faust.utils import json as faust_json

from taskstream.schemas.errors import TaskstreamError

__all__ = ["ConfirmedTable", "WriteUnconfirmed", "confirm_write", "confirmed_table"]


class WriteUnconfirmed(TaskstreamError):
    """Kafka did not confirm a table write in time (or refused it)."""


class ConfirmedTable(faust.Table[Any, Any]):
    """A :class:`faust.Table` that remembers its last changelog record, or, ``batched``,
    keeps its changelog records until :meth:`send_pending` sends them in batches."""

    last_write: FutureMessage | None = None

    def __init__(self, *args: Any, batched: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pending: list[tuple[int, bytes | None, bytes | None]] | None = [] if batched else None

    def send_changelog(self, *args: Any, **kwargs: Any) -> FutureMessage:
        fut: FutureMessage = super().send_changelog(*args, **kwargs)
        self.last_write = fut
        return fut

    # -- batched: one producer batch (and one future) per changelog partition ----------

    def on_key_set(self, key: Any, value: Any) -> None:
        if self._pending is None:
            super().on_key_set(key, value)
            return
        self._pending.append((self._partition_of(key), self._raw_key(key), self._raw_value(value)))

    def on_key_del(self, key: Any) -> None:
        if self._pending is None:
            super().on_key_del(key)
            return
        self._pending.append((self._partition_of(key), self._raw_key(key), None))

    def _raw_key(self, key: Any) -> bytes | None:
        if self.key_serializer == "json":  # faust's json codec is this call, bytes for bytes
            return faust_json.dumps(key)  # type: ignore[return-value]
        raw, _ = self.changelog_topic.prepare_key(key, self.key_serializer)
        return raw  # type: ignore[no-any-return]

    def _raw_value(self, value: Any) -> bytes | None:
        if self.value_serializer == "json":
            return faust_json.dumps(value)  # type: ignore[return-value]
        raw, _ = self.changelog_topic.prepare_value(value, self.value_serializer)
        return raw  # type: ignore[no-any-return]

    def _partition_of(self, key: Any) -> int:
        partition = self.partition_for_key(key)
        if partition is None:
            raise RuntimeError(f"table {self.name}: batched writes need a partition per key")
        return partition

    async def send_pending(self) -> list[asyncio.Future[Any]]:
        """Send the changelog records written since the last call, in order, as producer
        batches (one future each, not one per record: faust's per-record path costs more
        than the fold); wait for the futures to know Kafka has them."""
        pending = self._pending
        if not pending:
            return []
        self._pending = []
        producer = cast(Any, self.app.producer)._ensure_producer()  # the aiokafka one
        topic = self.changelog_topic.get_topic_name()
        futures: list[asyncio.Future[Any]] = []
        by_partition: dict[int, list[tuple[bytes | None, bytes | None]]] = {}
        for partition, key, value in pending:
            by_partition.setdefault(partition, []).append((key, value))
        for partition, records in by_partition.items():
            batch = producer.create_batch()
            count = 0
            for key, value in records:
                if batch.append(key=key, value=value, timestamp=None) is None:
                    batch.close()
                    futures.append(await self._send(producer, batch, topic, partition, count))
                    batch = producer.create_batch()
                    count = 0
                    if batch.append(key=key, value=value, timestamp=None) is None:
                        raise ValueError(f"table {self.name}: a record larger than a batch")
                count += 1
            batch.close()
            futures.append(await self._send(producer, batch, topic, partition, count))
        return futures

    async def _send(
        self, producer: Any, batch: Any, topic: str, partition: int, count: int
    ) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = await producer.send_batch(batch, topic, partition=partition)

        def persisted(done: asyncio.Future[Any]) -> None:
            # what faust's _on_changelog_sent does per record: a RocksDB store's offset
            if not done.cancelled() and done.exception() is None:
                metadata = done.result()
                self.data.set_persisted_offset(
                    metadata.topic_partition, metadata.offset + count - 1
                )

        future.add_done_callback(persisted)
        return future


def confirmed_table(
    app: faust.App, name: str, *, batched: bool = False, **options: Any
) -> ConfirmedTable:
    """A :class:`ConfirmedTable` of ``app`` (as ``app.Table(name, **options)`` makes one)."""
    table = ConfirmedTable(app, name=name, beacon=app.tables.beacon, batched=batched, **options)
    app.tables.add(table)
    return table


async def confirm_write(fut: FutureMessage | None, timeout: float) -> None:
    """Wait until Kafka has the write ``fut`` (a table's :attr:`~ConfirmedTable.last_write`
    taken right after it); :class:`WriteUnconfirmed` after ``timeout`` seconds or if the
    producer gave it up. None: nothing was written."""
    if fut is None:
        return
    try:
        await asyncio.wait_for(asyncio.shield(fut), timeout)
    except TimeoutError:
        raise WriteUnconfirmed(f"Kafka did not confirm the write within {timeout:g}s") from None
    except Exception as exc:
        raise WriteUnconfirmed(f"Kafka refused the write ({exc})") from None
