"""The scheduler's loop without a broker: firing yields to reading the log."""

from __future__ import annotations

from typing import Any

import pytest

from taskstream.core import scheduler as scheduler_module
from taskstream.core.scheduler import Scheduler
from taskstream.core.settings import CoreSettings
from taskstream.core.shard import Plan
from taskstream.schemas import Event, RunRequested


class _AlwaysDue:
    """A shard with more due than can ever be fired."""

    def __init__(self) -> None:
        self.plans = 0

    def due(self, now: Any, limit: int) -> Plan:
        self.plans += 1
        return Plan(events=[Event.create("task", RunRequested())])

    def __len__(self) -> int:
        return 1


def test_firing_stops_after_a_second_to_read_the_log(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [0.0]
    monkeypatch.setattr(scheduler_module.time, "monotonic", lambda: clock[0])
    scheduler = Scheduler(CoreSettings(kafka_bootstrap_servers="127.0.0.1:1"), store=None)  # type: ignore[arg-type]
    shard = _AlwaysDue()
    scheduler._shard = shard  # type: ignore[assignment]

    def commit(plan: Plan) -> bool:
        clock[0] += 0.3  # a transaction of a loaded machine
        return True

    monkeypatch.setattr(scheduler, "_commit", commit)
    scheduler._fire_due()  # returns although something is still due
    assert shard.plans == 4  # 0.3, 0.6, 0.9, 1.2 s: the fourth ran past the second
