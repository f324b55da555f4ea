"""The ``alert-rules`` table, whose API writes wait (bounded) for the broker.

A faust table write changes the local table at once and queues its changelog record;
with the broker gone, the record waits in the producer and would be lost with the
process. :class:`ConfirmedTable` keeps the changelog record of its last write, so the
API can wait for Kafka to take it (:func:`confirm_write`) and answer 503
``kafka_unavailable`` after ``TASKSTREAM_KAFKA_WRITE_TIMEOUT`` instead of a success the
log never saw.
"""

from __future__ import annotations

import asyncio
from typing import Any

import faust
from faust.types import FutureMessage

__all__ = ["ConfirmedTable", "WriteUnconfirmed", "confirm_write", "confirmed_table"]


class WriteUnconfirmed(Exception):
    """Kafka did not confirm a table write in time (or refused it)."""


class ConfirmedTable(faust.Table[Any, Any]):
    """A :class:`faust.Table` that remembers its last changelog record."""

    last_write: FutureMessage | None = None

    def send_changelog(self, *args: Any, **kwargs: Any) -> FutureMessage:
        fut: FutureMessage = super().send_changelog(*args, **kwargs)
        self.last_write = fut
        return fut


def confirmed_table(app: faust.App, name: str, **options: Any) -> ConfirmedTable:
    """A :class:`ConfirmedTable` of ``app`` (as ``app.Table(name, **options)`` makes one)."""
    table = ConfirmedTable(app, name=name, beacon=app.tables.beacon, **options)
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
