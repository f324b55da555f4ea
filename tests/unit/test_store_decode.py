"""`schemas.facts.decode_fast`, as the store uses it, reads what the full decoder reads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest

from taskstream.core.store_fold import decode_record
from taskstream.schemas import (
    CancelRequested,
    Event,
    EventDecodeError,
    ExecutionCancelled,
    ExecutionDeadLettered,
    ExecutionFailed,
    ExecutionScheduled,
    ExecutionStarted,
    ExecutionSucceeded,
    ExecutionTimedOut,
    Priority,
    RetryScheduled,
    Schedule,
    TaskCreated,
    TaskSpec,
    Trigger,
    decode_event,
    encode_event,
)
from taskstream.schemas.facts import ExecutionFact, as_fact

SLOT = datetime(2030, 1, 1, 9, tzinfo=UTC)
COMMON: dict[str, Any] = {"execution_id": "e1", "attempt": 2, "scheduled_for": SLOT}
RUN: dict[str, Any] = {**COMMON, "worker_id": "w", "duration_seconds": 0.5}
EXECUTION_EVENTS = [
    ExecutionScheduled(topic="x", queue="q", priority=Priority.HIGH, **COMMON),
    ExecutionScheduled(
        topic="x", queue="q", priority=Priority.HIGH, trigger=Trigger.RETRY, **COMMON
    ),
    ExecutionStarted(worker_id="w", handler="h", **COMMON),
    ExecutionSucceeded(output={"a": [1, 2]}, **RUN),
    ExecutionFailed(error_type="E", error_message="m", retryable=False, **RUN),
    ExecutionTimedOut(timeout_seconds=1.0, **RUN),
    ExecutionCancelled(reason="asked", **RUN),
]


def _event(data: Any) -> Event:
    return Event.create("t1", data, occurred_at=SLOT + timedelta(seconds=1, microseconds=5))


@pytest.mark.parametrize("data", EXECUTION_EVENTS, ids=lambda d: type(d).__name__)
def test_execution_events_become_the_facts_the_full_decoder_gives(data: Any) -> None:
    raw = encode_event(_event(data))
    fact = decode_record(raw)
    assert isinstance(fact, ExecutionFact)
    assert fact == as_fact(decode_event(raw))
    assert fact.occurred_at.tzinfo is UTC and fact.scheduled_for == SLOT


def test_other_events_are_decoded_in_full() -> None:
    spec = TaskSpec(name="n", schedule=Schedule(every=timedelta(minutes=1)), handler="h")
    for data in (
        TaskCreated(task=spec),
        RetryScheduled(
            execution_id="e2", failed_execution_id="e1", attempt=2, scheduled_for=SLOT, due_at=SLOT
        ),
    ):
        event = _event(data)
        assert decode_record(encode_event(event)) == event


def test_events_the_store_does_not_use_are_skipped_undecoded() -> None:
    assert decode_record(encode_event(_event(CancelRequested(execution_id="e1")))) is None


def test_a_dead_letter_is_read_as_a_failure_s_decision() -> None:
    event = _event(ExecutionDeadLettered(reason="max_attempts", **COMMON))
    assert decode_record(encode_event(event)) == event


def _document(data: Any) -> dict[str, Any]:
    document: dict[str, Any] = orjson.loads(encode_event(_event(data)))
    return document


def test_unusual_values_the_full_decoder_accepts_take_its_path() -> None:
    """A time pydantic parses and fromisoformat does not, another zone: same fact."""
    document = _document(EXECUTION_EVENTS[3])
    document["occurred_at"] = int(SLOT.timestamp())  # a Unix time: pydantic takes it
    document["data"]["scheduled_for"] = SLOT.astimezone(timezone(timedelta(hours=2))).isoformat()
    raw = orjson.dumps(document)
    decoded = decode_record(raw)
    assert isinstance(decoded, Event)
    fact = as_fact(decoded)
    assert isinstance(fact, ExecutionFact)
    assert (fact.occurred_at, fact.scheduled_for) == (SLOT, SLOT)


def _broken(change: Any) -> bytes:
    document = _document(EXECUTION_EVENTS[3])
    change(document)
    return orjson.dumps(document)


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        None,
        b"[1]",
        _broken(lambda d: d["data"].pop("execution_id")),
        _broken(lambda d: d["data"].update(surprise=1)),
        _broken(lambda d: d.update(version=9)),
        _broken(lambda d: d.update(type="Nope")),
        _broken(lambda d: d["data"].update(attempt=0)),
        _broken(lambda d: d["data"].update(attempt="1x")),
        _broken(lambda d: d.update(occurred_at="2030-01-01T09:00:00")),  # no zone
        _broken(lambda d: d.update(task_id=None)),
        _broken(lambda d: d.pop("id")),
    ],
    ids=lambda raw: repr(raw)[:40],
)
def test_records_the_full_decoder_rejects_are_poison(raw: bytes | None) -> None:
    with pytest.raises(EventDecodeError):
        decode_event(raw)
    with pytest.raises(EventDecodeError):
        decode_record(raw)
