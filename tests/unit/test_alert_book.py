"""The alert book over plain dicts standing in for the faust tables: rules from the file
and the API, evaluation, what it queues for delivery, and what the API shows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge

from taskstream.monitor.alerts.book import AlertBook, ReadOnlyRuleError
from taskstream.monitor.alerts.channels import Dispatcher
from taskstream.monitor.alerts.facts import TaskFacts, fold
from taskstream.monitor.alerts.rules import Channel, parse_rule
from taskstream.monitor.workers import WorkerBook
from taskstream.schemas import (
    AlertNotification,
    Event,
    ExecutionDeadLettered,
    ExecutionFailed,
    ExecutionStarted,
    ExecutionSucceeded,
    WorkerHeartbeat,
)

T0 = datetime(2030, 1, 1, tzinfo=UTC)


class Sink:
    """A channel that keeps what it is given (the dispatcher's queue is read directly)."""

    def __init__(self) -> None:
        self.sent: list[AlertNotification] = []

    async def send(self, notice: AlertNotification) -> None:
        self.sent.append(notice)


def make_book(**tables: dict[str, Any]) -> tuple[AlertBook, Gauge, dict[str, dict[str, Any]]]:
    registry = CollectorRegistry()
    stores: dict[str, dict[str, Any]] = {
        name: tables.get(name, {}) for name in ("rules", "states", "recent", "facts", "workers")
    }
    active = Gauge("active", "", registry=registry)
    book = AlertBook(
        file_rules=[parse_rule({"id": "slow", "kind": "long_run", "limit": "1m"})],
        rules_table=stores["rules"],
        states_table=stores["states"],
        recent_table=stores["recent"],
        facts_table=stores["facts"],
        workers=WorkerBook(stores["workers"], timedelta(seconds=20)),
        dispatcher=Dispatcher(
            {Channel.TOPIC: Sink()},
            fired=Counter("fired", "", ["rule", "channel"], registry=registry),
            failed=Counter("failed", "", ["channel"], registry=registry),
        ),
        active=active,
        recent_size=3,
    )
    return book, active, stores


def gauge(metric: Gauge) -> float:
    return metric.collect()[0].samples[0].value


def feed(book: AlertBook, stores: dict[str, dict[str, Any]], event: Event) -> None:
    raw = stores["facts"].get(event.task_id)
    facts = fold(None if raw is None else TaskFacts.model_validate(raw), event)
    assert facts is not None
    stores["facts"][event.task_id] = facts.to_json()
    book.on_task(facts, event.occurred_at)


def test_file_rules_are_read_only_and_api_rules_are_stored_as_json() -> None:
    book, _, stores = make_book()
    with pytest.raises(ReadOnlyRuleError):
        book.put_rule(parse_rule({"id": "slow", "kind": "dead_letter"}))
    with pytest.raises(ReadOnlyRuleError):
        book.delete_rule("slow")
    assert book.put_rule(parse_rule({"id": "dl", "kind": "dead_letter", "throttle": "1h"}))
    assert not book.put_rule(parse_rule({"id": "dl", "kind": "dead_letter"}))  # replaced
    assert stores["rules"]["dl"]["throttle"] == "15m"
    assert [(r["id"], r["source"]) for r in book.rule_listing()] == [
        ("dl", "api"),
        ("slow", "file"),
    ]
    assert book.delete_rule("dl") and not book.delete_rule("dl")


def test_a_stored_rule_shadowed_by_the_file_is_shown_as_such() -> None:
    book, _, _ = make_book(rules={"slow": {"id": "slow", "kind": "dead_letter"}})
    [listed] = book.rule_listing()
    assert listed["kind"] == "long_run" and listed["shadows_api_rule"] is True


def test_events_and_checks_fire_resolve_and_fill_recent_newest_first() -> None:
    book, active, stores = make_book()
    book.put_rule(parse_rule({"id": "dl", "kind": "dead_letter"}))
    letter = ExecutionDeadLettered(execution_id="e1", attempt=1, scheduled_for=T0, reason="x")
    feed(book, stores, Event.create("t1", letter, occurred_at=T0))
    start = ExecutionStarted(
        execution_id="e2", attempt=1, scheduled_for=T0, worker_id="w", handler="echo"
    )
    feed(book, stores, Event.create("t2", start, occurred_at=T0))
    assert book.check(T0 + timedelta(seconds=30)) == 0
    assert book.check(T0 + timedelta(minutes=2)) == 1  # the long run
    assert {a["key"] for a in book.active()} == {"dl|t1", "slow|t2"}
    assert gauge(active) == 2
    done = ExecutionSucceeded(
        execution_id="e2", attempt=1, scheduled_for=T0, worker_id="w", duration_seconds=1
    )
    feed(book, stores, Event.create("t2", done, occurred_at=T0 + timedelta(minutes=3)))
    assert [n["key"] for n in book.recent()] == ["slow|t2", "slow|t2", "dl|t1"]
    assert [n["status"] for n in book.recent()] == ["resolved", "firing", "firing"]
    assert gauge(active) == 1
    book.put_rule(parse_rule({"id": "dl2", "kind": "dead_letter", "tasks": ["t1"]}))
    book.on_task(
        fold(None, Event.create("t1", letter, occurred_at=T0)),  # type: ignore[arg-type]
        T0 + timedelta(minutes=4),
    )
    assert len(book.recent()) == 3  # a ring of recent_size
    assert book.recent()[0]["rule_id"] == "dl2"
    assert book.delete_rule("dl")  # forgets its alerts, silently
    assert {a["key"] for a in book.active()} == {"dl2|t1"}


def test_lost_executors_are_checked_and_a_departed_one_resolves() -> None:
    book, _, stores = make_book()
    book.put_rule(parse_rule({"id": "lost", "kind": "executor_lost", "timeout": "10s"}))
    beat = WorkerHeartbeat(
        executor_id="ex",
        host="h",
        pid=1,
        queues=["default"],
        handlers=[],
        capacity=1,
        in_flight=0,
        cpu_percent=0,
        memory_rss_bytes=0,
        started_at=T0,
        sent_at=T0,
    )
    stores["workers"]["ex"] = beat.model_dump(mode="json")
    book.check(T0 + timedelta(seconds=5))
    assert book.active() == []
    book.check(T0 + timedelta(seconds=11))
    assert [a["key"] for a in book.active()] == ["lost|ex"]
    del stores["workers"]["ex"]  # a tombstone
    book.check(T0 + timedelta(seconds=12))
    assert book.active() == []
    assert [n["status"] for n in book.recent()] == ["resolved", "firing"]


class CountingFacts(dict[str, Any]):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def __setitem__(self, key: str, value: Any) -> None:
        self.writes += 1
        super().__setitem__(key, value)


def test_a_batch_writes_each_task_once_and_evaluates_every_change() -> None:
    def ended(n: int, ok: bool) -> Event:
        common = {"execution_id": f"e{n}", "attempt": 1, "scheduled_for": T0, "worker_id": "w"}
        data: Any = (
            ExecutionSucceeded(**common, duration_seconds=1)
            if ok
            else ExecutionFailed(**common, duration_seconds=1, error_type="E", error_message="x")
        )
        return Event.create("t1", data, occurred_at=T0 + timedelta(minutes=n))

    events = [ended(1, False), ended(2, False), ended(3, True), ended(4, True)]
    one_by_one, _, stores = make_book()
    batched, _, batch_stores = make_book(facts=CountingFacts())
    for book in (one_by_one, batched):
        book.put_rule(parse_rule({"id": "cf", "kind": "consecutive_failures", "threshold": 2}))
    for event in events:
        one_by_one.fold_events([event], T0, evaluate=True)
    assert batched.fold_events([*events, events[1], events[0]], T0, evaluate=True) == 1
    assert batch_stores["facts"] == stores["facts"]
    assert batch_stores["facts"].writes == 1  # type: ignore[attr-defined]
    # the alert fired and resolved inside the batch: both notices, as one by one
    assert [n["status"] for n in batched.recent()] == ["resolved", "firing"]

    def shown(book: AlertBook) -> list[tuple[str, str, str]]:
        return [(n["key"], n["status"], n["summary"]) for n in book.recent()]  # ids differ

    assert shown(batched) == shown(one_by_one)
    assert batched.fold_events(events, T0, evaluate=True) == 0  # redelivered: nothing
    assert batch_stores["facts"].writes == 1  # type: ignore[attr-defined]
