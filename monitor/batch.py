"""Working copies of table keys while a batch of events is folded: each key written once.

A faust table assignment sends one changelog record, so folding a batch straight into
the tables would write a key as many times as the batch changes it (a partition's
totals and recent list at every execution). :class:`WorkingCopy` reads a key from its
table the first time, keeps what the fold makes of it, and :meth:`WorkingCopy.write`
puts each changed key back once. Values are never mutated in place: the fold's pure
functions return new ones, and the tables never hold None, which stands for a deleted
key here.
"""

from __future__ import annotations

from typing import Any

__all__ = ["WorkingCopy"]


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
                table[key] = value
                written += 1
            elif key in table:
                del table[key]
                written += 1
        self._dirty.clear()
        return written
