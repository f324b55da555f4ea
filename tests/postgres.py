"""Pytest plugin: a real PostgreSQL server, and a fresh database for each test that asks.

The server is ``TASKSTREAM_TEST_POSTGRES_URL`` if set, else the one ``scripts/postgres.sh``
installs and starts (Debian's package, role and database ``taskstream``). A test that
needs PostgreSQL never skips: if there is no server, the fixture errors.

Loaded from ``tests/conftest.py`` with ``pytest_plugins = ["tests.postgres"]``.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url
from tenacity import retry, retry_if_exception_type, stop_after_delay, wait_fixed

__all__ = ["new_postgres_database", "postgres_admin_url", "postgres_url"]

ENV_URL = "TASKSTREAM_TEST_POSTGRES_URL"
SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "postgres.sh"


def _libpq(url: str, database: str | None = None) -> str:
    """The libpq connection string of a SQLAlchemy URL (``postgresql+psycopg://...``)."""
    parsed = make_url(url)
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


def _start_server() -> str:
    try:
        result = subprocess.run(
            ["bash", str(SCRIPT)],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"{SCRIPT} did not finish in {exc.timeout:.0f}s") from exc
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        raise RuntimeError(
            f"{SCRIPT} failed (exit {result.returncode}), so there is no PostgreSQL for the "
            f"tests; set {ENV_URL} to use another server.\n"
            f"stderr:\n{result.stderr.strip()}\nstdout:\n{result.stdout.strip()}"
        )
    return lines[-1].strip()


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    """A SQLAlchemy URL of a role that may create databases (never skips)."""
    url = os.environ.get(ENV_URL) or _start_server()
    try:
        with psycopg.connect(_libpq(url), connect_timeout=10) as connection:
            connection.execute("SELECT 1")
    except psycopg.Error as exc:
        raise RuntimeError(
            f"cannot connect to the test PostgreSQL at "
            f"{make_url(url).render_as_string(hide_password=True)}: {exc}"
        ) from exc
    return url


@pytest.fixture
def new_postgres_database(postgres_admin_url: str) -> Iterator[Callable[[], str]]:
    """A factory of new, empty databases (``test_<hex>``); each is dropped after the test."""
    admin = _libpq(postgres_admin_url)
    created: list[str] = []

    def create() -> str:
        name = f"test_{uuid.uuid4().hex}"
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        created.append(name)
        return make_url(postgres_admin_url).set(database=name).render_as_string(hide_password=False)

    yield create
    for name in created:
        _drop(admin, name)


@retry(
    # FORCE cannot terminate a backend of another role: an autovacuum worker (superuser)
    # that just started on the new database; it ends within moments, so try again.
    retry=retry_if_exception_type(psycopg.errors.InsufficientPrivilege),
    wait=wait_fixed(0.5),
    stop=stop_after_delay(30),
    reraise=True,
)
def _drop(admin: str, name: str) -> None:
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.fixture
def postgres_url(new_postgres_database: Callable[[], str]) -> str:
    """The URL of a new, empty database, dropped after the test."""
    return new_postgres_database()
