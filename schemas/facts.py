"""The one fast decoder of ``task-events``, for the hot paths: no pydantic per record.

Three of the four records of an execution are lifecycle events (``ExecutionScheduled``,
``ExecutionStarted`` and the four terminal ones). :func:`decode_fast` reads them into an
:class:`ExecutionFact` (the ids, the attempt, the times, the trigger) after checks of the
envelope, of the payload's keys (no unknown one, no required one missing) and of the
type of every field it reads. Anything unusual (another version, a time that pydantic
parses and :meth:`datetime.fromisoformat` does not...) goes to the full decoder,
:func:`taskstream.schemas.decode_event`, like every other type, so the answer is always
the full decoder's, in another form: ``tests/unit/test_store_decode.py`` checks that
``decode_fast(raw) == as_fact(decode_event(raw))`` for generated events of every type,
version and field. Fields it does not read (``worker_id``, ``output``...) are not
validated. Every record is parsed once, with orjson.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from taskstream.schemas.codec import decode_event, event_from_document
from taskstream.schemas.events import (
    EVENT_TYPES,
    Event,
    EventData,
    ExecutionCancelled,
    ExecutionFailed,
    ExecutionScheduled,
    ExecutionStarted,
    ExecutionSucceeded,
    ExecutionTimedOut,
    Trigger,
)

__all__ = ["LIFECYCLE_TYPES", "ExecutionFact", "as_fact", "decode_fast"]

_LIFECYCLE: dict[str, type[EventData]] = {
    model.TYPE: model
    for model in (
        ExecutionScheduled,
        ExecutionStarted,
        ExecutionSucceeded,
        ExecutionFailed,
        ExecutionTimedOut,
        ExecutionCancelled,
    )
}
_VERSIONS = {
    name: frozenset(version for kind, version in EVENT_TYPES if kind == name) for name in _LIFECYCLE
}
"""The versions of each fast type the fast path reads: every registered one, as an older
version's fields are a subset of its current model's (v1 outcomes lack ``started_at``
and ``handler``, which the store does not read)."""
_ENVELOPE = frozenset({"id", "type", "version", "task_id", "occurred_at", "data"})
_FIELDS = {name: frozenset(model.model_fields) for name, model in _LIFECYCLE.items()}
_REQUIRED = {
    name: frozenset(key for key, info in model.model_fields.items() if info.is_required())
    for name, model in _LIFECYCLE.items()
}
_TRIGGERS = {trigger.value: trigger for trigger in Trigger}


@dataclass(slots=True)
class ExecutionFact:
    """What the store reads from an execution lifecycle event.

    Treat it as frozen: it is not declared so because a frozen dataclass takes three
    times as long to build, and there is one per record.
    """

    id: str
    type: str
    task_id: str
    occurred_at: datetime
    """UTC, like every time here."""
    execution_id: str
    attempt: int
    scheduled_for: datetime
    trigger: Trigger
    """``ExecutionScheduled``'s; ``schedule`` for the others (they do not carry one)."""


def decode_fast(
    value: bytes | None, skipped: frozenset[str] = frozenset()
) -> Event | ExecutionFact | None:
    """One ``task-events`` record: an :class:`ExecutionFact` for an execution lifecycle
    event, an :class:`Event` for any other, None for one of the ``skipped`` types.

    Raises :class:`taskstream.schemas.EventDecodeError` for a record
    :func:`taskstream.schemas.decode_event` rejects (poison): the same records, with the
    same messages.
    """
    if value is None:
        return decode_event(value)  # raises
    try:
        document = orjson.loads(value)
    except orjson.JSONDecodeError:
        return decode_event(value)  # raises, with orjson's message
    if type(document) is dict and document.keys() == _ENVELOPE:
        kind = document["type"]
        if kind in _LIFECYCLE:
            fact = _fact(kind, document)
            if fact is not None:
                return fact
        elif kind in skipped:
            return None
    return event_from_document(document, value)


def _fact(kind: str, document: dict[str, Any]) -> ExecutionFact | None:
    """The fact, or None to leave the record to the full decoder."""
    data = document["data"]
    if document["version"] not in _VERSIONS[kind] or type(data) is not dict:
        return None
    keys = data.keys()
    if not (keys <= _FIELDS[kind] and keys >= _REQUIRED[kind]):
        return None
    event_id, task_id = document["id"], document["task_id"]
    execution_id, attempt = data["execution_id"], data["attempt"]
    occurred_at, scheduled_for = document["occurred_at"], data["scheduled_for"]
    trigger = _TRIGGERS.get(data.get("trigger", "schedule"))
    if trigger is Trigger.BACKFILL and document["version"] < 2:  # v1 knew no backfill
        return None
    if (
        type(event_id) is not str
        or type(task_id) is not str
        or type(execution_id) is not str
        or type(attempt) is not int
        or attempt < 1
        or type(occurred_at) is not str
        or type(scheduled_for) is not str
        or trigger is None
    ):
        return None
    try:
        occurred = datetime.fromisoformat(occurred_at)
        scheduled = datetime.fromisoformat(scheduled_for)
    except ValueError:
        return None
    if occurred.tzinfo is None or scheduled.tzinfo is None:
        return None
    if occurred.tzinfo is not UTC:
        occurred = occurred.astimezone(UTC)
    if scheduled.tzinfo is not UTC:
        scheduled = scheduled.astimezone(UTC)
    return ExecutionFact(
        event_id, kind, task_id, occurred, execution_id, attempt, scheduled, trigger
    )


def as_fact(event: Event) -> Event | ExecutionFact:
    """An already decoded event in the form :func:`decode_fast` gives."""
    data = event.data
    if event.type not in _LIFECYCLE or event.version not in _VERSIONS[event.type]:
        return event
    assert isinstance(
        data,
        ExecutionScheduled
        | ExecutionStarted
        | ExecutionSucceeded
        | ExecutionFailed
        | ExecutionTimedOut
        | ExecutionCancelled,
    )
    return ExecutionFact(
        event.id,
        event.type,
        event.task_id,
        event.occurred_at.astimezone(UTC),
        data.execution_id,
        data.attempt,
        data.scheduled_for.astimezone(UTC),
        data.trigger if isinstance(data, ExecutionScheduled) else Trigger.SCHEDULE,
    )


LIFECYCLE_TYPES = frozenset(_LIFECYCLE)
"""The event types :func:`decode_fast` reads as an :class:`ExecutionFact`."""
