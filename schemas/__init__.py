"""taskstream's event and API contract: frozen, versioned models, JSON on the wire.

This package imports nothing else of taskstream's, so any consumer can depend on it.
"""

from schemas.codec import (
    decode_event,
    decode_work_order,
    encode_event,
    encode_work_order,
    event_headers,
    work_order_headers,
)
from schemas.durations import Duration, format_duration, parse_duration
from schemas.errors import DurationError, EventDecodeError, SchemaError, UnknownEventTypeError
from schemas.events import (
    EVENT_TYPES,
    CancelRequested,
    Event,
    EventData,
    ExecutionFailed,
    ExecutionScheduled,
    ExecutionSkipped,
    ExecutionStarted,
    ExecutionSucceeded,
    RetryScheduled,
    RunRequested,
    SkipReason,
    TaskCreated,
    TaskDeleted,
    TaskPaused,
    TaskResumed,
    TaskUpdated,
    Trigger,
)
from schemas.ids import execution_id
from schemas.task import (
    DEFAULT_QUEUE,
    MisfirePolicy,
    OverlapPolicy,
    Priority,
    RetryPolicy,
    Schedule,
    ScheduleKind,
    TaskSpec,
)
from schemas.work_order import WorkOrder

__all__ = [
    "DEFAULT_QUEUE",
    "EVENT_TYPES",
    "CancelRequested",
    "Duration",
    "DurationError",
    "Event",
    "EventData",
    "EventDecodeError",
    "ExecutionFailed",
    "ExecutionScheduled",
    "ExecutionSkipped",
    "ExecutionStarted",
    "ExecutionSucceeded",
    "MisfirePolicy",
    "OverlapPolicy",
    "Priority",
    "RetryPolicy",
    "RetryScheduled",
    "RunRequested",
    "Schedule",
    "ScheduleKind",
    "SchemaError",
    "SkipReason",
    "TaskCreated",
    "TaskDeleted",
    "TaskPaused",
    "TaskResumed",
    "TaskSpec",
    "TaskUpdated",
    "Trigger",
    "UnknownEventTypeError",
    "WorkOrder",
    "decode_event",
    "decode_work_order",
    "encode_event",
    "encode_work_order",
    "event_headers",
    "execution_id",
    "format_duration",
    "parse_duration",
    "work_order_headers",
]
