"""JSON on the wire: encode and decode events and work orders, with their headers.

The event type and version travel twice: in the JSON body and as Kafka headers
(``event-type``, ``event-version``), so a consumer in any language can filter without
parsing the body. Decoding never builds a type that is not registered, and a failure
raises :class:`~taskstream.schemas.errors.EventDecodeError` carrying the original bytes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import orjson
from pydantic import ValidationError

from taskstream.schemas.errors import EventDecodeError, UnknownEventTypeError
from taskstream.schemas.events import EVENT_TYPES, Event
from taskstream.schemas.recorded import recorded
from taskstream.schemas.work_order import WorkOrder

__all__ = [
    "CONTENT_TYPE",
    "HEADER_CONTENT_TYPE",
    "HEADER_EVENT_TYPE",
    "HEADER_EVENT_VERSION",
    "Headers",
    "decode_event",
    "decode_work_order",
    "encode_event",
    "encode_work_order",
    "event_from_document",
    "event_headers",
    "header_value",
    "work_order_headers",
    "work_order_version",
]

Headers = list[tuple[str, str | bytes | None]]

CONTENT_TYPE = b"application/json"
HEADER_CONTENT_TYPE = "content-type"
HEADER_EVENT_TYPE = "event-type"
HEADER_EVENT_VERSION = "event-version"


def encode_event(event: Event) -> bytes:
    return event.model_dump_json().encode()


def event_headers(event: Event) -> Headers:
    return [
        (HEADER_EVENT_TYPE, event.type.encode()),
        (HEADER_EVENT_VERSION, str(event.version).encode()),
        (HEADER_CONTENT_TYPE, CONTENT_TYPE),
    ]


def header_value(
    headers: Sequence[tuple[str, str | bytes | None]] | Mapping[str, str | bytes | None] | None,
    name: str,
) -> str | None:
    """The first value of header ``name`` as text, or None."""
    pairs = headers.items() if isinstance(headers, Mapping) else headers or ()
    for key, value in pairs:
        if key == name and value is not None:
            return value.decode(errors="replace") if isinstance(value, bytes) else value
    return None


def decode_event(raw: bytes | None) -> Event:
    """Decode one ``task-events`` record value; raise ``EventDecodeError`` on bad input.

    An event of an older version comes back in its type's current version
    (:meth:`~taskstream.schemas.events.EventData.upgraded`), its envelope's ``version`` with it.
    """
    if raw is None:
        raise EventDecodeError("empty record (a tombstone?) where an event was expected", b"")
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise EventDecodeError(f"event is not valid JSON: {exc}", raw) from exc
    return event_from_document(document, raw)


def event_from_document(document: object, raw: bytes) -> Event:
    """:func:`decode_event` for a value already parsed (``document``) from ``raw``."""
    if not isinstance(document, dict):
        raise EventDecodeError("event is not a JSON object", raw)
    key = (document.get("type"), document.get("version"))
    data_type = EVENT_TYPES.get(key)  # type: ignore[arg-type]
    if data_type is None:
        known = ", ".join(sorted(f"{t} v{v}" for t, v in EVENT_TYPES))
        raise EventDecodeError(
            str(
                UnknownEventTypeError(f"unknown event type {key[0]!r} v{key[1]!r}; known: {known}")
            ),
            raw,
        )
    try:
        with recorded():
            data = data_type.model_validate(document.get("data")).upgraded()
            return Event.model_validate({**document, "version": data.VERSION, "data": data})
    except ValidationError as exc:
        raise EventDecodeError(f"invalid {key[0]} v{key[1]} event: {exc}", raw) from exc


def encode_work_order(order: WorkOrder) -> bytes:
    """The order's JSON; without ``run_key`` when it has none (then it reads as v1)."""
    if order.run_key is None:
        return order.model_dump_json(exclude={"run_key"}).encode()
    return order.model_dump_json().encode()


def work_order_version(order: WorkOrder) -> int:
    """The version an order is written as: 1 without a ``run_key`` (the same bytes)."""
    return 1 if order.run_key is None else WorkOrder.VERSION


def work_order_headers(order: WorkOrder) -> Headers:
    """The headers of an order's record (one list per version, shared: do not change it)."""
    return _ORDER_HEADERS[work_order_version(order)]


_ORDER_HEADERS: dict[int, Headers] = {
    version: [
        (HEADER_EVENT_TYPE, WorkOrder.TYPE.encode()),
        (HEADER_EVENT_VERSION, str(version).encode()),
        (HEADER_CONTENT_TYPE, CONTENT_TYPE),
    ]
    for version in (1, WorkOrder.VERSION)
}


def decode_work_order(raw: bytes | None) -> WorkOrder:
    """Decode one execution-topic record; raise ``EventDecodeError`` on bad input."""
    if raw is None:
        raise EventDecodeError("empty record where a work order was expected", b"")
    try:
        with recorded():
            return WorkOrder.model_validate_json(raw)
    except ValidationError as exc:
        raise EventDecodeError(f"invalid work order: {exc}", raw) from exc
