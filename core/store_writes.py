"""Writing a folded batch into the task store: a few queries in, one executemany per table out.

:func:`read_tasks` reads the batch's tasks as plain dicts (times in UTC) and
:func:`read_held` which of its executions the tables hold, for the fold
(:mod:`taskstream.core.store_fold`). :func:`write` then upserts the changed tasks and the
unfinished executions (``INSERT ... ON CONFLICT DO UPDATE``) and deletes the finished
ones and the fired pending runs by id, inside the caller's transaction, which also
advances the offsets.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import UTC
from typing import Any

from sqlalchemy import Table, bindparam, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from taskstream.core.store_fold import Fold

__all__ = ["read_held", "read_tasks", "write"]

_TIMES = ("created_at", "updated_at", "anchor", "last_slot")


def read_held(connection: Connection, table: Table, ids: Iterable[str]) -> set[str]:
    """Those of ``ids`` that ``table`` holds (its key is ``execution_id``): the batch's
    open executions in ``active_executions``, its undecided ones in ``undecided_failures``."""
    ordered = sorted(ids)
    found: set[str] = set()
    column = table.c.execution_id
    for start in range(0, len(ordered), 500):
        query = select(column).where(column.in_(ordered[start : start + 500]))
        found.update(connection.execute(query).scalars())
    return found


def read_tasks(
    connection: Connection, tasks: Table, ids: Iterable[str]
) -> dict[str, dict[str, Any]]:
    """The rows of ``ids`` that exist, as dicts with UTC times, in a few queries."""
    ordered = sorted(ids)
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(ordered), 500):
        query = select(tasks).where(tasks.c.id.in_(ordered[start : start + 500]))
        for mapping in connection.execute(query).mappings():
            row = dict(mapping)
            for name in _TIMES:
                value = row[name]
                if value is not None:
                    row[name] = (
                        value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
                    )
            found[row["id"]] = row
    return found


_MUTABLE = (
    "status",
    "version",
    "updated_at",
    "anchor",
    "last_slot",
    "last_change_event_id",
    "last_execution_id",
    "last_status",
    "executions_scheduled",
    "executions_succeeded",
    "executions_failed",
    "executions_skipped",
    "quarantine",
    "backfill",
)
"""The columns of a task that change while its spec does not."""


def write(
    connection: Connection,
    fold: Fold,
    tasks: Table,
    active: Table,
    runs: Table,
    undecided: Table,
) -> None:
    """The batch's changes; deletes before upserts, so an id finished and re-scheduled
    ends scheduled."""
    _upsert(connection, tasks, [fold.tasks[task_id] for task_id in sorted(fold.whole)])
    if fold.changed - fold.whole:
        rows = [
            {"b_id": task_id, **{name: fold.tasks[task_id][name] for name in _MUTABLE}}
            for task_id in sorted(fold.changed - fold.whole)
        ]
        connection.execute(_statement(connection, tasks, "update"), rows)
    _delete(connection, active, fold.finished - set(fold.active))
    _upsert(connection, active, list(fold.active.values()))
    if fold.status:
        # SET status, updated_at (the other keys of each dict) WHERE the id matches
        connection.execute(_statement(connection, active, "update"), list(fold.status.values()))
    _delete(connection, runs, fold.fired)
    if fold.dropped_run_keys:  # ended backfills: their next step will not fire
        keys = sorted(fold.dropped_run_keys)
        connection.execute(delete(runs).where(runs.c.run_key.in_(keys)))
    _upsert(connection, runs, list(fold.runs.values()))
    _delete(connection, undecided, fold.decided - set(fold.undecided))
    _upsert(connection, undecided, list(fold.undecided.values()))


_STATEMENTS: dict[tuple[str, str, str], Any] = {}


def _statement(connection: Connection, table: Table, kind: str) -> Any:
    """The statements :func:`write` runs, built once per dialect and table.

    ``upsert``: insert, or replace the row with that primary key. ``update`` and
    ``delete``: the row whose (one-column) primary key is the parameter ``b_<column>``;
    an update sets the other parameters.
    """
    dialect = connection.dialect.name
    key = (dialect, table.name, kind)
    statement = _STATEMENTS.get(key)
    if statement is None:
        keys = [column.name for column in table.primary_key.columns]
        if kind == "upsert":
            insert = postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)
            updates = {
                column.name: insert.excluded[column.name]
                for column in table.columns
                if column.name not in keys
            }
            statement = insert.on_conflict_do_update(index_elements=keys, set_=updates)
        else:
            (name,) = keys
            match = table.c[name] == bindparam(f"b_{name}")
            statement = (update if kind == "update" else delete)(table).where(match)
        statement = _STATEMENTS[key] = statement
    return statement


def _upsert(connection: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert ``rows``, replacing those whose primary key exists (idempotent replays)."""
    if not rows:
        return
    if connection.dialect.name == "postgresql":
        # One statement whatever the number of rows: an array per column, unnested.
        sql, names, json_columns = _unnest_upsert(connection, table)
        columns: dict[str, list[Any]] = {name: [] for name in names}
        for row in rows:
            for name in names:
                columns[name].append(row[name])
        for name in json_columns:
            columns[name] = [None if v is None else json.dumps(v) for v in columns[name]]
        connection.exec_driver_sql(sql, columns)
        return
    # One statement, the rows as its parameters: compiled once and cached, and sqlite3
    # loops over them in C.
    connection.execute(_statement(connection, table, "upsert"), rows)


_UNNEST: dict[str, tuple[str, list[str], list[str]]] = {}


def _unnest_upsert(connection: Connection, table: Table) -> tuple[str, list[str], list[str]]:
    """PostgreSQL's ``INSERT ... SELECT FROM unnest(<one array per column>) ON CONFLICT``.

    Returns the SQL (``%(column)s`` parameters), the columns, and those holding JSON
    (sent as text: psycopg has no array of JSON adapter).
    """
    cached = _UNNEST.get(table.name)
    if cached is None:
        dialect = connection.dialect
        quote = dialect.identifier_preparer.quote
        names = [column.name for column in table.columns]
        keys = [column.name for column in table.primary_key.columns]
        arrays = ", ".join(
            f"%({column.name})s::{column.type.compile(dialect=dialect)}[]"
            for column in table.columns
        )
        updates = ", ".join(f"{quote(n)} = EXCLUDED.{quote(n)}" for n in names if n not in keys)
        sql = (
            f"INSERT INTO {quote(table.name)} ({', '.join(quote(n) for n in names)}) "
            f"SELECT * FROM unnest({arrays}) "
            f"ON CONFLICT ({', '.join(quote(k) for k in keys)}) DO UPDATE SET {updates}"
        )
        json_columns = [c.name for c in table.columns if c.type.compile(dialect=dialect) == "JSON"]
        cached = _UNNEST[table.name] = (sql, names, json_columns)
    return cached


def _delete(connection: Connection, table: Table, ids: set[str]) -> None:
    if not ids:
        return
    if connection.dialect.name == "postgresql":
        sql = f"DELETE FROM {table.name} WHERE execution_id = ANY(%(ids)s::varchar[])"
        connection.exec_driver_sql(sql, {"ids": list(ids)})
    else:
        parameters = [{"b_execution_id": value} for value in ids]
        connection.execute(_statement(connection, table, "delete"), parameters)
