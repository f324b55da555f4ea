"""Which offset of each partition is safe to commit, when work finishes out of order.

Work orders of one partition run concurrently and finish in any order. The committed
offset of a partition must never pass a record that has not finished, or a crash would
lose it; so the offset to commit is the *lowest unfinished* received offset, or one past
the highest received offset when everything received has finished. Offsets need not be
contiguous (transaction markers take offsets too).

A partition whose assignment is *lost* (the group session expired: a broker outage, a
long pause) is *held*, not forgotten: its orders still running finish and their outcomes
reach the broker when it is back, but their offsets could not be committed. If the
partition comes back to this consumer, :meth:`OffsetTracker.take_over` says where to go
on (past everything finished since the last commit) and which orders are still running,
so nothing finished runs again and nothing running runs twice.

Pure bookkeeping, no I/O and no locks: the consumer thread owns a tracker.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["OffsetTracker", "PartitionOffsets", "TakeOver", "TopicPartitionKey"]

TopicPartitionKey = tuple[str, int]
"""``(topic, partition)``."""


class PartitionOffsets:
    """Received and finished offsets of one partition."""

    __slots__ = ("_heap", "_next", "_redo", "_unfinished")

    def __init__(self) -> None:
        self._unfinished: set[int] = set()
        self._heap: list[int] = []  # the unfinished offsets, with finished ones removed lazily
        self._next: int | None = None  # one past the highest offset received
        self._redo: set[int] = set()  # see redo()

    def received(self, offset: int) -> bool:
        """Track a received record; False for a redelivery of one already known."""
        if offset in self._redo:
            self._redo.discard(offset)
            return True  # still unfinished: tracked since its first delivery
        if offset in self._unfinished or (self._next is not None and offset < self._next):
            return False
        self._unfinished.add(offset)
        heapq.heappush(self._heap, offset)
        self._next = offset + 1
        return True

    def redo(self, offsets: Iterable[int]) -> None:
        """Unfinished ``offsets`` that never ran (taken out of the lanes): their next
        delivery is received again, once."""
        self._redo.update(o for o in offsets if o in self._unfinished)

    def finished(self, offset: int) -> bool:
        """Mark ``offset`` done; False if it was not unfinished here."""
        if offset not in self._unfinished:
            return False
        self._unfinished.discard(offset)
        while self._heap and self._heap[0] not in self._unfinished:
            heapq.heappop(self._heap)
        return True

    @property
    def unfinished(self) -> int:
        return len(self._unfinished)

    def unfinished_offsets(self) -> list[int]:
        return sorted(self._unfinished)

    def committable(self) -> int | None:
        """The offset to commit: everything below it has finished. None before any record."""
        if self._heap:
            return self._heap[0]
        return self._next


@dataclass(frozen=True, slots=True)
class TakeOver:
    """A held partition assigned again: where to go on, and what still runs."""

    start: int | None
    """Everything below has finished (None: nothing was received)."""
    running: frozenset[int]
    """Offsets of orders still running, under the lost assignment's ``generation``: their
    redelivery is ignored and their completion counts."""
    generation: int


@dataclass(slots=True)
class _Held:
    generation: int
    offsets: PartitionOffsets
    dropped: set[int]
    """Orders that were waiting when the partition was lost: never run, run them again."""


class OffsetTracker:
    """:class:`PartitionOffsets` for every assigned partition, and what was committed."""

    def __init__(self) -> None:
        self._partitions: dict[TopicPartitionKey, PartitionOffsets] = {}
        self._committed: dict[TopicPartitionKey, int] = {}
        self._held: dict[TopicPartitionKey, _Held] = {}

    def hold(self, key: TopicPartitionKey, generation: int, dropped: Iterable[int] = ()) -> None:
        """The partition's assignment was lost: keep its offsets for a :meth:`take_over`.

        ``dropped``: orders taken out of the lanes before they ran."""
        offsets = self._partitions.pop(key, None)
        self._committed.pop(key, None)
        if offsets is not None:
            self._held[key] = _Held(generation, offsets, set(dropped))

    def finished_held(self, key: TopicPartitionKey, offset: int, generation: int) -> bool:
        """An order of a held partition finished; False if it was not held so."""
        held = self._held.get(key)
        return held is not None and held.generation == generation and held.offsets.finished(offset)

    def take_over(self, key: TopicPartitionKey) -> TakeOver | None:
        """The held partition is assigned again: track it on from what was held (what
        finished is not received again, what never ran is), or None if it was not held."""
        held = self._held.pop(key, None)
        if held is None:
            return None
        partition = self._partitions[key] = held.offsets
        partition.redo(held.dropped)
        running = frozenset(set(partition.unfinished_offsets()) - held.dropped)
        return TakeOver(partition.committable(), running, held.generation)

    def assign(self, partitions: Iterable[TopicPartitionKey]) -> None:
        for key in partitions:
            self._partitions.setdefault(key, PartitionOffsets())

    def forget(self, partitions: Iterable[TopicPartitionKey]) -> None:
        """Stop tracking revoked or lost partitions."""
        for key in partitions:
            self._partitions.pop(key, None)
            self._committed.pop(key, None)

    def received(self, key: TopicPartitionKey, offset: int) -> bool:
        """Track a received record; False for a redelivery of one already known."""
        return self._partitions.setdefault(key, PartitionOffsets()).received(offset)

    def finished(self, key: TopicPartitionKey, offset: int) -> bool:
        """Mark a record done; False if its partition or offset is not tracked (stale)."""
        partition = self._partitions.get(key)
        return partition is not None and partition.finished(offset)

    def unfinished(self, partitions: Iterable[TopicPartitionKey] | None = None) -> int:
        keys = self._partitions if partitions is None else partitions
        return sum(self._partitions[k].unfinished for k in keys if k in self._partitions)

    def unfinished_offsets(self, key: TopicPartitionKey) -> list[int]:
        partition = self._partitions.get(key)
        return partition.unfinished_offsets() if partition else []

    def committable(self, key: TopicPartitionKey) -> int | None:
        partition = self._partitions.get(key)
        return partition.committable() if partition else None

    def pending_commits(
        self, partitions: Iterable[TopicPartitionKey] | None = None
    ) -> dict[TopicPartitionKey, int]:
        """Offsets that moved since they were last committed (all partitions by default)."""
        keys = list(self._partitions) if partitions is None else list(partitions)
        pending = {}
        for key in keys:
            offset = self.committable(key)
            if offset is not None and offset != self._committed.get(key):
                pending[key] = offset
        return pending

    def committed(self, offsets: dict[TopicPartitionKey, int]) -> None:
        """Record that ``offsets`` are on the broker (never moving one back).

        Commit acknowledgements may come late and out of order (an asynchronous commit's
        after a later synchronous one's): the highest offset known committed wins.
        """
        for key, offset in offsets.items():
            if key in self._partitions:
                self._committed[key] = max(offset, self._committed.get(key, offset))
