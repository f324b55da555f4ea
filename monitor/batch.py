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

from collections.abc import Iterable
from typing import Any

__all__ = ["FOLDED_THROUGH", "FoldedCopy", "WorkingCopy", "unwrap"]


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

    __slots__ = ("_extra", "_stored", "_stored_extra", "_through", "offset")

    def __init__(self, table: Any) -> None:
        super().__init__(table)
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
            raw = self.table.get(key)
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
