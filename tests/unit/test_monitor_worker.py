"""The monitor's faust worker keeps the log level it is given (no spinner forcing DEBUG)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskstream.monitor.app import create_app
from taskstream.monitor.service import make_worker
from taskstream.monitor.settings import MonitorSettings


@pytest.fixture
def root_logging() -> Iterator[logging.Logger]:
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield root
    root.setLevel(level)
    root.handlers[:] = handlers


def test_at_warning_the_root_logger_stays_at_warning(
    root_logging: logging.Logger, tmp_path: Path
) -> None:
    settings = MonitorSettings(
        kafka_bootstrap_servers="nowhere:1", log_level="WARNING", monitor_data_dir=tmp_path
    )
    worker = make_worker(create_app(settings), settings)
    assert worker.spinner is None
    try:
        worker._setup_logging()  # what execute_from_commandline does first
        assert root_logging.level == logging.WARNING
        assert not logging.getLogger("aiokafka").isEnabledFor(logging.DEBUG)
    finally:
        # _setup_logging redirected sys.stdout and sys.stderr; left to the garbage
        # collector, the undo puts back this test's streams in the middle of a later test
        # (whose capsys then sees nothing)
        worker.exit_stack.close()
