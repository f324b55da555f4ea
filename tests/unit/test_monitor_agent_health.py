"""The monitor agent's health and its per-task fault isolation, without a broker."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry

from taskstream.infra.health import State
from taskstream.monitor.agent_health import AgentHealth
from taskstream.monitor.alerts.conditions import task_condition
from taskstream.monitor.alerts.facts import TaskFacts
from taskstream.monitor.alerts.rules import MissedScheduleRule
from taskstream.monitor.task_faults import TaskFaults
from tests.support import eventually, recorded_schedule


class _Lag:
    def __init__(self, records: int | None) -> None:
        self.records = records


def test_an_agent_that_died_is_failed_with_its_error() -> None:
    health = AgentHealth(_Lag(0), stall_after=10)
    assert health.health().state is State.STARTING
    health.started()
    assert health.health().state is State.OK
    health.died(ValueError("Bad day-of-month"))
    status = health.health()
    assert status.state is State.FAILED
    assert status.reason == "the task-events agent died: ValueError: Bad day-of-month"
    assert (health.name, health.essential) == ("agent", True)


def test_an_agent_that_does_not_advance_while_records_wait_is_unavailable() -> None:
    lag = _Lag(0)
    health = AgentHealth(lag, stall_after=0.05)
    health.started()
    eventually(lambda: health.health().state is State.OK, timeout=5, what="ok while idle")
    lag.records = 25
    status = eventually(
        lambda: (s := health.health()).state is State.UNAVAILABLE and s,
        timeout=5,
        what="the stalled agent",
    )
    assert status.reason is not None and "25 records wait" in status.reason
    health.advanced()
    assert health.health().state is State.OK


def test_a_fault_is_counted_once_per_task_and_error() -> None:
    faults = TaskFaults(CollectorRegistry())
    for _ in range(3):  # the alert timer meets it at every check
        faults.record("alert_rules", "poison", ValueError("Bad day-of-month"))
    faults.record("alert_rules", "other", ValueError("Bad day-of-month"))
    assert faults.count("alert_rules") == 2
    assert faults.count("projection") == 0


def test_a_quarantined_task_is_not_evaluated_for_missed_slots() -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    facts = TaskFacts(
        task_id="poison",
        name="poison",
        status="active",
        version=1,
        schedule=recorded_schedule(cron="0 0 30 2 *"),
        anchor=now - timedelta(days=1),
    )
    rule = MissedScheduleRule(id="missed", kind="missed_schedule")
    with pytest.raises(Exception, match="never fires"):  # what the book isolates
        task_condition(rule, facts, now)
    quarantined = facts.model_copy(update={"status": "quarantined"})
    assert task_condition(rule, quarantined, now) is None
