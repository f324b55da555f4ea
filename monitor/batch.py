"""Working copies of table keys while a batch of events is folded: each key written once.

A faust table assignment sends one changelog record, so folding a batch straight into
the tables would write a key as many times as the batch changes it (a partition's
totals and recent list at every execution). :class:`WorkingCopy` reads a key from its
table the first time, keeps what the fold makes of it, and :meth:`WorkingCopy.write`
puts each changed key back once. Values are never mutated in place: the fold's pure
functions return new ones, and the tables never hold None, which stands for a deleted
key here. :class:`FoldedCopy` also remembers the offset each key was folded through, and
:class:`PartitionBatch` holds one partition's copies and writes them in the three
phases :mod:`taskstream.monitor.projection` explains.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from taskstream.monitor.tables import MonitorTables

__all__ = [
    "FOLDED_THROUGH",
    "TASK_PARTS",
    "FoldedCopy",
    "PartitionBatch",
    "RecentList",
    "TaskPart",
    "WorkingCopy",
    "unwrap",
]


class WorkingCopy:
    """One table's keys as a batch left them, until :meth:`write`."""

    __slots__ = ("_dirty", "_values", "table")

    def __init__(self, table: Any) -> None:
        self.table = table
        self._values: dict[Any, Any] = {}
        self._dirty: dict[Any, None] = {}  # insertion-ordered set

    def get(self, key: Any) -> Any:
        try:
            return self._values[key]
        except KeyError:
            value = self._values[key] = self.table.get(key)
            return value

    def __setitem__(self, key: Any, value: Any) -> None:
        self._values[key] = value
        self._dirty[key] = None

    def __delitem__(self, key: Any) -> None:
        self[key] = None

    def write(self) -> int:
        """Write every changed key to the table once; return how many were written."""
        table = self.table
        written = 0
        for key in self._dirty:
            value = self._values[key]
            if value is not None:
                table[key] = self._to_store(key, value)
                written += 1
            elif key in table:
                del table[key]
                written += 1
        self._dirty.clear()
        return written

    def _to_store(self, key: Any, value: Any) -> Any:
        """What the table holds for ``value``."""
        return value


FOLDED_THROUGH = "folded_through"
"""The key, beside ``value``, of a stored value that remembers the offset it was folded
through (see :class:`FoldedCopy`)."""


def unwrap(stored: Any) -> Any:
    """The value of a key a :class:`FoldedCopy` wrote (a value stored before it, as is)."""
    if isinstance(stored, dict) and FOLDED_THROUGH in stored and "value" in stored:
        return stored["value"]
    return stored


def _through_of(stored: Any) -> int:
    if isinstance(stored, dict) and FOLDED_THROUGH in stored and "value" in stored:
        return int(stored[FOLDED_THROUGH])
    return -1


class FoldedCopy(WorkingCopy):
    """A :class:`WorkingCopy` whose keys remember the offset they were folded through.

    Each stored value is ``{"folded_through": offset, "value": value}``: the offset of the
    last event that changed it. A kill -9 can leave any part of a batch's writes (its
    tables' changelogs are separate topics); when the batch comes again, :meth:`ahead`
    says which keys have the event already, so it is applied to the others only.
    """

    __slots__ = ("_extra", "_read", "_stored", "_stored_extra", "_through", "offset")

    def __init__(self, table: Any, read: Callable[[Any], Any] | None = None) -> None:
        """``read``: how a stored key is read (default: ``table.get``)."""
        super().__init__(table)
        self._read = read or table.get
        self._stored: dict[Any, int] = {}
        self._through: dict[Any, int] = {}
        self._extra: dict[Any, dict[str, list[Any]]] = {}
        self._stored_extra: dict[Any, dict[str, Any]] = {}
        self.offset: int | None = None
        """The offset of the event being folded (None: not known, nothing is ahead)."""

    def get(self, key: Any) -> Any:
        try:
            return self._values[key]
        except KeyError:
            raw = self._read(key)
            self._stored[key] = _through_of(raw)
            if isinstance(raw, dict) and FOLDED_THROUGH in raw:
                self._stored_extra[key] = raw
            value = self._values[key] = unwrap(raw)
            return value

    def ahead(self, key: Any) -> bool:
        """Whether the stored key has folded the current event already."""
        if self.offset is None:
            return False
        self.get(key)
        return self._stored[key] >= self.offset

    def __setitem__(self, key: Any, value: Any) -> None:
        super().__setitem__(key, value)
        self._through[key] = -1 if self.offset is None else self.offset

    def remember(self, key: Any, name: str, items: Iterable[Any]) -> None:
        """Store ``items`` under ``name`` beside the key's next value: what this batch
        did besides the value (the ids a history pushed out), for :meth:`remembered`."""
        self._extra.setdefault(key, {}).setdefault(name, []).extend(items)

    def remembered(self, key: Any, name: str) -> list[Any]:
        """What the stored key's last batch remembered under ``name``."""
        self.get(key)
        return list(self._stored_extra.get(key, {}).get(name, ()))

    def _to_store(self, key: Any, value: Any) -> Any:
        return {FOLDED_THROUGH: self._through[key], "value": value, **self._extra.get(key, {})}

    def write(self) -> int:
        written = super().write()
        self._extra.clear()
        return written


class TaskPart:
    """One part of the tasks' records (``history``, ``evicted`` or ``stats``), read and
    written like a table of its own.

    A task's parts are one record of the ``tasks`` table (a :class:`FoldedCopy`), so a
    batch writes each changed task once, whatever parts it changed, and a kill -9
    leaves a task's parts together: all of a batch's changes or none.
    """

    __slots__ = ("_part", "_tasks")

    def __init__(self, tasks: FoldedCopy, part: str) -> None:
        self._tasks = tasks
        self._part = part

    def get(self, key: Any) -> Any:
        record = self._tasks.get(key)
        return None if record is None else record.get(self._part)

    def ahead(self, key: Any) -> bool:
        return self._tasks.ahead(key)

    def __setitem__(self, key: Any, value: Any) -> None:
        self._tasks[key] = {**(self._tasks.get(key) or {}), self._part: value}

    def remember(self, key: Any, name: str, items: Iterable[Any]) -> None:
        self._tasks.remember(key, name, items)

    def remembered(self, key: Any, name: str) -> list[Any]:
        return self._tasks.remembered(key, name)


TASK_PARTS = ("history", "evicted", "stats")
"""The parts of a ``tasks`` record: the task's last N execution ids (newest first), its
last N evicted ids, and its statistics (:mod:`taskstream.monitor.stats`)."""


class RecentList:
    """A partition's recent list during a batch, with its ids at hand."""

    __slots__ = (
        "changed",
        "dropped",
        "entries",
        "ids",
        "offset",
        "stored_dropped",
        "stored_through",
        "through",
    )

    def __init__(self, stored: Any) -> None:
        self.entries: list[list[Any]] = list(unwrap(stored) or [])
        self.ids = {entry[1] for entry in self.entries}
        self.changed = False
        folded = isinstance(stored, dict)
        self.stored_through = int(stored[FOLDED_THROUGH]) if folded else -1
        """The offset the stored list was folded through (see :class:`FoldedCopy`)."""
        self.offset: int | None = None
        self.through = -1
        self.stored_dropped: list[str] = list(stored.get("dropped", ())) if folded else []
        """The ids the stored list's last batch pushed out."""
        self.dropped: list[str] = []

    def ahead(self) -> bool:
        return self.offset is not None and self.stored_through >= self.offset

    def stored(self) -> dict[str, Any]:
        return {FOLDED_THROUGH: self.through, "value": self.entries, "dropped": self.dropped}

    def push(self, ended_at: float, execution_id: str, size: int) -> list[str]:
        """Add one as :func:`taskstream.monitor.records.push_recent` does; return the ids it pushed
        out.

        The list is newest first: the new entry goes after those that ended at the same
        time or later.
        """
        if execution_id in self.ids:
            return []
        entries = self.entries
        at = bisect_right(entries, -ended_at, key=lambda entry: -entry[0])
        entries.insert(at, [ended_at, execution_id])
        self.ids.add(execution_id)
        self.changed = True
        self.through = -1 if self.offset is None else self.offset
        if len(entries) <= size:
            return []
        dropped = [entry[1] for entry in entries[size:]]
        del entries[size:]
        self.ids.difference_update(dropped)
        self.dropped += dropped
        return [dropped_id for dropped_id in dropped if dropped_id != execution_id]


class PartitionBatch:
    """Working copies of the tables while one partition's batch is folded."""

    __slots__ = (
        "evicted",
        "executions",
        "history",
        "marker",
        "partition",
        "recent",
        "replayed",
        "stats",
        "tables",
        "tasks",
        "totals",
        "windows",
    )

    def __init__(self, tables: MonitorTables, partition: int) -> None:
        self.partition = partition
        self.tables = tables
        self.executions = WorkingCopy(tables.executions)
        self.tasks = FoldedCopy(tables.tasks, read=tables.stored_task)
        self.history = TaskPart(self.tasks, "history")
        self.evicted = TaskPart(self.tasks, "evicted")
        self.stats = TaskPart(self.tasks, "stats")
        self.totals = FoldedCopy(tables.totals)
        self.marker = WorkingCopy(tables.totals)
        """The partition's :func:`~taskstream.monitor.stats.marker_key`: the offset folded
        through."""
        self.windows = FoldedCopy(tables.windows)
        self.recent = RecentList(tables.recent.get(str(partition)))
        self.replayed: dict[str, list[str]] = {}
        """The evictions to redo once the batch is folded, by task (``""``: the recent
        list): of keys stored ahead by a batch a kill -9 cut short, whose deletes of
        the records they pushed out may be lost."""

    def at_offset(self, offset: int | None) -> None:
        """The offset of the event folded next (for the keys that remember theirs)."""
        self.tasks.offset = self.windows.offset = self.recent.offset = offset
        self.totals.offset = offset

    def write(self) -> int:
        """Write every key the batch changed, once, phase after phase; return how many."""
        return self.write_tasks() + self.write_executions() + self.write_marker()

    def write_tasks(self) -> int:
        """Phase 1: the keys that remember the offset they were folded through."""
        written = sum(copy.write() for copy in (self.tasks, self.windows, self.totals))
        if self.recent.changed:
            self.tables.recent[str(self.partition)] = self.recent.stored()
            self.recent.changed = False
            written += 1
        return written

    def write_executions(self) -> int:
        """Phase 2, once phase 1 is on the broker: an execution record ahead of the
        offsets then implies every phase-1 key of its batch is too."""
        return self.executions.write()

    def write_marker(self) -> int:
        """Phase 3, last: the offset the partition is folded through."""
        return self.marker.write()
