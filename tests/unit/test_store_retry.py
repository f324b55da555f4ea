"""A transient database error (a lock, a dropped connection) is retried, others are not."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import IntegrityError, OperationalError

from taskstream.core.store import retrying_transient


def test_a_locked_database_is_retried_until_the_write_goes_through() -> None:
    calls = []

    def write(value: int) -> int:
        calls.append(value)
        if len(calls) < 3:
            raise OperationalError("INSERT", {}, Exception("database is locked"))
        return value * 2

    assert retrying_transient("a write")(write, 21) == 42
    assert calls == [21, 21, 21]


def test_other_database_errors_are_not_retried() -> None:
    calls = []

    def write() -> None:
        calls.append(1)
        raise IntegrityError("INSERT", {}, Exception("duplicate key"))

    with pytest.raises(IntegrityError):
        retrying_transient("a write")(write)
    assert calls == [1]
