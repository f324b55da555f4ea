"""Outcome events v2 (``started_at`` and ``handler`` on the outcome, ``ExecutionStarted``
only for long runs) beside the v1 streams already on logs: every fold reads both alike.

A v1 outcome decodes as the v2 model with both new fields null; a recorded v1 stream
(``ExecutionStarted`` then a v1 outcome) and the v2 stream of the same run (its outcome
alone) leave the monitor's record, statistics and totals, the alert facts and the
store's facts the same.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import orjson
import pytest

from taskstream.core.store_fold import decode_record
from taskstream.monitor.alerts.facts import fold as fold_facts
from taskstream.monitor.batch import unwrap
from taskstream.monitor.records import public_record
from taskstream.schemas import (
    EVENT_TYPES,
    Event,
    EventDecodeError,
    ExecutionCancelled,
    ExecutionFailed,
    ExecutionSucceeded,
    ExecutionTimedOut,
    decode_event,
    encode_event,
)
from taskstream.schemas.facts import ExecutionFact
from tests.unit.monitor_events import T0, Run
from tests.unit.test_monitor_projection import apply_all, projection

OUTCOMES = ["succeeded", "failed", "timed_out", "cancelled"]


def as_v1(event: Event) -> bytes:
    """``event`` as a v1 writer put it on the log (no ``started_at``, no ``handler``)."""
    document = orjson.loads(encode_event(event))
    document["version"] = 1
    document["data"].pop("started_at")
    document["data"].pop("handler")
    return orjson.dumps(document)


def v2_outcome(run: Run, outcome: str, started: Event) -> Event:
    ended = run.ended(outcome, 1.0)
    data = ended.data.model_copy(
        update={"started_at": started.occurred_at, "handler": "echo"}  # type: ignore[attr-defined]
    )
    return ended.model_copy(update={"data": data})


def test_the_outcomes_are_v2_and_their_v1_is_still_registered() -> None:
    for model in (ExecutionSucceeded, ExecutionFailed, ExecutionTimedOut, ExecutionCancelled):
        assert model.VERSION == 2
        assert (model.TYPE, 1) in EVENT_TYPES and (model.TYPE, 2) in EVENT_TYPES


@pytest.mark.parametrize("outcome", OUTCOMES)
def test_a_v1_outcome_reads_as_v2_with_the_new_fields_null(outcome: str) -> None:
    run = Run("t", T0)
    recorded = as_v1(run.ended(outcome, 1.0))
    event = decode_event(recorded)
    assert event.version == 2 and type(event.data).VERSION == 2
    assert event.data.started_at is None and event.data.handler is None  # type: ignore[attr-defined]
    assert decode_event(encode_event(event)) == event


def test_a_v1_document_with_v2_fields_is_refused() -> None:
    run = Run("t", T0)
    document = orjson.loads(encode_event(run.ended("succeeded", 1.0)))
    document["version"] = 1
    with pytest.raises(EventDecodeError, match=r"started_at|handler"):
        decode_event(orjson.dumps(document))


def _streams(outcome: str) -> tuple[list[Event], list[Event]]:
    """(the recorded v1 stream, the v2 stream) of one run that ended ``outcome``."""
    run = Run("t", T0)
    scheduled, started = run.scheduled(), run.started()
    v2 = v2_outcome(run, outcome, started)
    v1 = [scheduled, started, decode_event(as_v1(v2))]
    return v1, [scheduled, v2]


def _monitor(events: list[Event]) -> dict[str, Any]:
    p = projection()
    apply_all(p, events)
    t = p.tables
    [record] = t.executions.values()
    return {
        "record": {k: v for k, v in public_record(record).items()},
        "stats": t.task_part("t", "stats"),
        "totals": unwrap(t.totals["0"]),
        "windows": sorted((k, unwrap(v)) for k, v in t.windows.items()),
    }


@pytest.mark.parametrize("outcome", OUTCOMES)
def test_the_monitor_folds_a_v1_stream_and_its_v2_stream_alike(outcome: str) -> None:
    v1, v2 = _streams(outcome)
    old, new = _monitor(v1), _monitor(v2)
    assert new["record"]["started_at"] == v1[1].occurred_at.isoformat()
    assert new["record"]["handler"] == "echo"
    assert old == new


@pytest.mark.parametrize("outcome", OUTCOMES)
def test_the_alert_facts_of_a_v1_stream_and_its_v2_stream_agree(outcome: str) -> None:
    v1, v2 = _streams(outcome)

    def facts(events: list[Event]) -> dict[str, Any]:
        current = None
        for event in events:
            current = fold_facts(current, event) or current
        assert current is not None
        return current.model_dump(exclude={"event_ids"})

    assert facts(v1) == facts(v2)


@pytest.mark.parametrize("outcome", OUTCOMES)
def test_the_store_reads_v1_and_v2_outcomes_on_its_fast_path(outcome: str) -> None:
    run = Run("t", T0)
    started = run.started()
    v2 = v2_outcome(run, outcome, started)
    new, old = decode_record(encode_event(v2)), decode_record(as_v1(v2))
    assert isinstance(new, ExecutionFact) and isinstance(old, ExecutionFact)
    assert new == old
    assert new.occurred_at == T0 + timedelta(seconds=1.1)
