from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.e2e.stack import Stack, running_stack


@pytest.fixture(scope="module")
def stack(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """core, executor and monitor as processes, with their own topic prefix."""
    prefix = f"e2e-{uuid.uuid4().hex[:8]}."
    with running_stack(kafka_bootstrap, prefix, tmp_path_factory.mktemp("stack")) as running:
        yield running
