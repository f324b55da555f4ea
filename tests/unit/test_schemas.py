from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import TypeAdapter, ValidationError

from taskstream import schemas
from taskstream.schemas import (
    Event,
    EventDecodeError,
    ExecutionFailed,
    Priority,
    Schedule,
    TaskCreated,
    TaskSpec,
    WorkerHeartbeat,
    WorkOrder,
    decode_event,
    decode_work_order,
    encode_event,
    encode_work_order,
    event_headers,
    execution_id,
    format_duration,
    parse_duration,
    recorded,
)
from taskstream.schemas.durations import MAX_DURATION
from taskstream.schemas.ids import _EXECUTION_NAMESPACE
from taskstream.schemas.jsonschema import SCHEMA_DIR, build_schemas, render


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30),
        ("15m", 900),
        ("1h", 3600),
        ("1h30m", 5400),
        ("250ms", 0.25),
        ("2d", 172800),
        ("45", 45),
        ("1.5s", 1.5),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "5q", "s", "1h 5x", "-3s"])
def test_parse_duration_rejects_garbage_with_a_hint(text: str) -> None:
    with pytest.raises(schemas.DurationError, match="30s"):
        parse_duration(text)


@pytest.mark.parametrize(
    "value",
    [
        "99999999999999999h",
        "100000000d",
        "36526d",
        "1e400",
        "nan",
        "inf",
        -5,
        1e300,
        pytest.param(10**400, id="10**400"),
    ],
)
def test_durations_beyond_100_years_negative_or_not_finite_are_duration_errors(
    value: object,
) -> None:
    with pytest.raises(ValidationError, match="out of range"):
        TypeAdapter(schemas.Duration).validate_python(value)


def test_the_longest_duration_is_100_years() -> None:
    assert parse_duration("36525d") == MAX_DURATION


@pytest.mark.parametrize("text", ["30s", "1h30m", "250ms", "2d", "1m1s"])
def test_format_duration_round_trips(text: str) -> None:
    assert format_duration(parse_duration(text)) == text


def test_memoised_durations_answer_the_same_and_errors_every_time() -> None:
    for _ in range(3):  # the first call fills the cache, the others read it
        assert parse_duration(" 1H30M ") == timedelta(minutes=90)
        assert format_duration(timedelta(minutes=90)) == "1h30m"
        with pytest.raises(schemas.DurationError, match="30s"):
            parse_duration("5q")


def _spec(**schedule: object) -> TaskSpec:
    return TaskSpec(name="report", schedule=Schedule.model_validate(schedule), handler="echo")


def test_schedule_accepts_five_and_six_field_cron_and_intervals() -> None:
    assert _spec(cron="*/5 * * * *").schedule.kind == "cron"
    assert _spec(cron="*/5 * * * * *").schedule.kind == "cron"
    assert _spec(every="30s").schedule.every == timedelta(seconds=30)
    at = datetime(2030, 1, 1, tzinfo=UTC)
    assert _spec(at=at.isoformat()).schedule.at == at


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        ({"cron": "61 * * * *"}, "invalid cron"),
        ({"cron": "* * *"}, "3 fields"),
        ({"cron": "* * * * *", "every": "5s"}, "exactly one"),
        ({}, "exactly one"),
        ({"cron": "* * * * *", "timezone": "Mars/Olympus"}, "unknown time zone"),
        ({"at": "2030-01-01T00:00:00"}, "timezone"),
        ({"every": "0s"}, "at least"),
    ],
)
def test_schedule_rejections_say_what_is_wrong(schedule: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Schedule.model_validate(schedule)


def test_event_round_trip_keeps_type_and_headers() -> None:
    event = Event.create("task-1", TaskCreated(task=_spec(cron="*/5 * * * * *")))
    decoded = decode_event(encode_event(event))
    assert decoded == event
    assert isinstance(decoded.data, TaskCreated)
    assert dict(event_headers(event))["event-type"] == b"TaskCreated"
    assert dict(event_headers(event))["event-version"] == b"1"


def test_events_are_frozen() -> None:
    event = Event.create("task-1", TaskCreated(task=_spec(every="1s")))
    with pytest.raises(ValidationError):
        event.task_id = "other"  # type: ignore[misc]


def test_naive_datetimes_are_rejected() -> None:
    with pytest.raises(ValidationError, match="timezone"):
        ExecutionFailed(
            execution_id="e",
            attempt=1,
            scheduled_for=datetime(2030, 1, 1),
            worker_id="w",
            duration_seconds=1.0,
            error_type="E",
            error_message="m",
        )


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"\xff\xfe not json", "not valid JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"type": "Nope", "version": 1}', "unknown event type"),
        (
            b'{"id": "x", "type": "TaskCreated", "version": 1, "task_id": "t", '
            b'"occurred_at": "2030-01-01T00:00:00Z", "data": {}}',
            "invalid TaskCreated",
        ),
    ],
)
def test_decode_errors_keep_the_bytes(raw: bytes, message: str) -> None:
    with pytest.raises(EventDecodeError, match=message) as caught:
        decode_event(raw)
    assert caught.value.raw == raw


def test_work_order_round_trip() -> None:
    slot = datetime(2030, 1, 1, tzinfo=UTC)
    order = WorkOrder(
        execution_id=execution_id("t", slot, 1),
        task_id="t",
        task_name="n",
        handler="noop",
        attempt=1,
        scheduled_for=slot,
        priority=Priority.HIGH,
        queue="default",
        timeout=timedelta(seconds=5),
    )
    assert decode_work_order(encode_work_order(order)) == order


def test_execution_ids_are_deterministic() -> None:
    slot = datetime(2030, 1, 1, 12, tzinfo=UTC)
    same_instant = slot.astimezone(datetime.now().astimezone().tzinfo)
    assert execution_id("t", slot, 1) == execution_id("t", same_instant, 1)
    assert execution_id("t", slot, 1) != execution_id("t", slot, 2)
    assert execution_id("t", slot, 1) != execution_id("t", slot + timedelta(seconds=1), 1)


def test_checked_in_json_schemas_match_the_models() -> None:
    generated = build_schemas()
    on_disk = {
        path.relative_to(SCHEMA_DIR).as_posix(): path.read_text()
        for path in SCHEMA_DIR.rglob("*.json")
    }
    assert set(on_disk) == set(generated), "run `taskstream schemas` to regenerate"
    for name, schema in generated.items():
        assert on_disk[name] == render(schema), f"{name} drifted: run `taskstream schemas`"


def test_json_schema_validates_a_real_event() -> None:
    import jsonschema
    import orjson

    event = Event.create(
        "task-1", TaskCreated(task=_spec(cron="0 3 * * *", timezone="Europe/Berlin"))
    )
    schema = build_schemas()["events/TaskCreated.v1.json"]
    jsonschema.validate(orjson.loads(encode_event(event)), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**orjson.loads(encode_event(event)), "type": "Other"}, schema)


def test_public_surface_is_pinned() -> None:
    assert sorted(schemas.__all__) == [
        "AlertNotification",
        "AlertSeverity",
        "AlertStatus",
        "AlertSubject",
        "BackfillFinished",
        "BackfillOverlap",
        "BackfillRequested",
        "BackfillState",
        "BackfillStep",
        "CancelRequested",
        "CronError",
        "DEFAULT_QUEUE",
        "DeadLetterReplayed",
        "Duration",
        "DurationError",
        "EVENT_TYPES",
        "Event",
        "EventData",
        "EventDecodeError",
        "ExecutionCancelled",
        "ExecutionDeadLettered",
        "ExecutionFailed",
        "ExecutionLogChunk",
        "ExecutionScheduled",
        "ExecutionSkipped",
        "ExecutionStarted",
        "ExecutionSucceeded",
        "ExecutionTimedOut",
        "LogLine",
        "LogStream",
        "MisfirePolicy",
        "OverlapPolicy",
        "Priority",
        "RetryPolicy",
        "RetryScheduled",
        "RunRequested",
        "Schedule",
        "ScheduleError",
        "ScheduleKind",
        "SchemaError",
        "SkipReason",
        "TERMINAL_EVENT_TYPES",
        "TaskCreated",
        "TaskDeleted",
        "TaskPaused",
        "TaskQuarantined",
        "TaskResumed",
        "TaskSpec",
        "TaskUpdated",
        "TaskstreamError",
        "Trigger",
        "UnknownEventTypeError",
        "WorkOrder",
        "WorkerHeartbeat",
        "decode_event",
        "decode_work_order",
        "encode_event",
        "encode_work_order",
        "event_headers",
        "execution_id",
        "format_duration",
        "parse_duration",
        "quarantine_event_id",
        "recorded",
        "work_order_headers",
    ]
    for name in schemas.__all__:
        assert hasattr(schemas, name), name


def test_a_bad_worker_heartbeat_keeps_its_bytes() -> None:
    raw = b'{"executor_id": "e1"}'
    with pytest.raises(EventDecodeError, match="invalid worker heartbeat") as caught:
        WorkerHeartbeat.decode(raw)
    assert caught.value.raw == raw


def test_an_alert_notification_round_trips_and_validates_against_its_schema() -> None:
    import jsonschema
    import orjson

    from taskstream.schemas import AlertNotification, AlertSeverity, AlertStatus, AlertSubject

    now = datetime.now(UTC)
    notice = AlertNotification(
        id="n-1",
        key="fails|task-1",
        rule_id="fails",
        kind="consecutive_failures",
        status=AlertStatus.FIRING,
        severity=AlertSeverity.CRITICAL,
        subject_type=AlertSubject.TASK,
        subject="task-1",
        summary="3 failures in a row",
        details={"count": 3},
        started_at=now,
        sent_at=now,
    )
    assert AlertNotification.decode(notice.encode()) == notice
    schema = build_schemas()["alert-notification.v1.json"]
    jsonschema.validate(orjson.loads(notice.encode()), schema)
    with pytest.raises(EventDecodeError, match="invalid alert notification") as caught:
        AlertNotification.decode(b'{"id": "x"}')
    assert caught.value.raw == b'{"id": "x"}'


def test_execution_ids_are_the_uuid5_of_task_slot_and_attempt() -> None:
    """The fast uuid5 gives exactly what ``uuid.uuid5`` gives (ids are on the wire)."""
    base = datetime(2030, 1, 1, 12, tzinfo=UTC)
    for n in range(500):
        task_id = f"task-{n}-é" if n % 7 == 0 else str(uuid.UUID(int=n * 7919))
        slot = base + timedelta(seconds=n, microseconds=n * 13)
        attempt = 1 + n % 4
        stamp = slot.isoformat(timespec="microseconds")
        expected = uuid.uuid5(_EXECUTION_NAMESPACE, f"{task_id}|{stamp}|{attempt}")
        assert execution_id(task_id, slot, attempt) == str(expected)


def test_a_recorded_event_the_grammar_now_refuses_still_decodes() -> None:
    """What the log holds was accepted when written: it decodes, and is quarantined where
    it is evaluated, rather than vanishing as undecodable (schemas.recorded)."""
    import pydantic

    from taskstream.schemas import TaskCreated, TaskSpec, decode_event, encode_event

    fields = {"cron": "0 0 30 2 *", "end": "9999-01-01T00:00:00+00:00"}
    with pytest.raises(pydantic.ValidationError, match="never fires"):
        Schedule.model_validate(fields)
    with pytest.raises(pydantic.ValidationError, match="out of range"):
        Schedule.model_validate({"every": "100000000d"})
    with recorded():
        poison = Schedule.model_validate(fields)
        huge = Schedule.model_validate({"every": "100000000d"})
    assert huge.every is not None and huge.every.days == 100_000_000
    event = Event.create("t", TaskCreated(task=TaskSpec(name="n", handler="noop", schedule=poison)))
    decoded = decode_event(encode_event(event))
    assert isinstance(decoded.data, TaskCreated)
    assert decoded.data.task.schedule == poison
    with pytest.raises(pydantic.ValidationError):  # and outside, strict again
        Schedule.model_validate(fields)
    with recorded(), pytest.raises(pydantic.ValidationError):  # not a time span at all
        Schedule.model_validate({"every": "99999999999999999h"})
