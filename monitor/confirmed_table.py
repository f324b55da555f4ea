"""A faust table whose changelog records can be waited for.

A faust table write changes the local table at once and queues its changelog record;
with the broker gone, the record waits in the producer and would be lost with the
process. :class:`ConfirmedTable` keeps the future of its last changelog record (and, when
asked, of every record until taken), so that a writer can wait for Kafka to have them:

- the ``alert-rules`` API waits for its one write (:func:`confirm_write`) and answers 503
  ``kafka_unavailable`` after ``TASKSTREAM_KAFKA_WRITE_TIMEOUT`` instead of a success the
  log never saw;
- the projection agent waits for one phase of a batch's writes before it starts the next
  (:meth:`ConfirmedTable.take_sent`, :mod:`monitor.projection`).
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
    """A :class:`faust.Table` that remembers its last changelog record, and with
    ``track_all`` every record sent since :meth:`take_sent` was last called."""

    last_write: FutureMessage | None = None

    def __init__(self, *args: Any, track_all: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sent: list[FutureMessage] | None = [] if track_all else None

    def send_changelog(self, *args: Any, **kwargs: Any) -> FutureMessage:
        fut: FutureMessage = super().send_changelog(*args, **kwargs)
        self.last_write = fut
        if self._sent is not None:
            self._sent.append(fut)
        return fut

    def take_sent(self) -> list[FutureMessage]:
        """The changelog records sent since the last call (none unless ``track_all``)."""
        sent, self._sent = self._sent or [], [] if self._sent is not None else None
        return sent


def confirmed_table(
    app: faust.App, name: str, *, track_all: bool = False, **options: Any
) -> ConfirmedTable:
    """A :class:`ConfirmedTable` of ``app`` (as ``app.Table(name, **options)`` makes one)."""
    table = ConfirmedTable(app, name=name, beacon=app.tables.beacon, track_all=track_all, **options)
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
