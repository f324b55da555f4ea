from __future__ import annotations

import logging

import pytest

from taskstream.infra.shutdown import stop_in_order


def test_every_component_stops_even_when_one_before_it_raises(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stopped: list[str] = []

    def fenced() -> None:
        stopped.append("scheduler")
        raise RuntimeError("fenced by a newer instance")

    failed = stop_in_order(
        [
            ("scheduler", fenced),
            ("publisher", lambda: stopped.append("publisher")),
            ("store", lambda: stopped.append("store")),
        ]
    )
    assert stopped == ["scheduler", "publisher", "store"]
    assert failed == ["scheduler"]
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "stopping the scheduler failed" in record.getMessage()
    assert record.exc_info is not None and "fenced" in str(record.exc_info[1])
