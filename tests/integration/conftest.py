"""Fixtures of the integration tests: a core in-process on the test broker, and its API."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from taskstream.core.api import CoreRuntime
from tests.integration.core_api import core_runtime, served


@pytest.fixture
def core(kafka_bootstrap: str, topic_prefix: str, tmp_path: Path) -> Iterator[CoreRuntime]:
    """A core runtime (noop and echo handlers, SQLite in ``tmp_path``), scheduler included."""
    with core_runtime(kafka_bootstrap, topic_prefix, tmp_path) as runtime:
        yield runtime


@pytest.fixture
def api(core: CoreRuntime) -> Iterator[httpx.Client]:
    """A client of ``core``'s API, served on a free port."""
    with served(core) as client:
        yield client
