"""``taskstream dlq``: inspect and replay the dead-letter topic.

    taskstream dlq list [--all] [--json]     what is dead-lettered, and why
    taskstream dlq replay EXECUTION_ID       run it again as a new attempt

A dead-lettered execution's record holds its work order and the reason in headers.
``replay`` appends ``DeadLetterReplayed`` (attempt + 1, due now) to ``task-events``, so the
core that owns the task fires the new attempt like any retry; it then marks the record
replayed on the dead-letter topic (a record with header ``dead-letter-replayed``), so a
second replay of the same record is refused and ``list`` hides it (``--all`` shows it).
Reads and writes Kafka directly (``TASKSTREAM_KAFKA_BOOTSTRAP_SERVERS``).
"""

from __future__ import annotations

import sys
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
import typer
from confluent_kafka import Consumer, KafkaError, Producer

from taskstream.cli.output import as_help
from taskstream.infra.kafka import consumer_config, producer_config
from taskstream.infra.settings import CommonSettings
from taskstream.schemas import (
    DeadLetterReplayed,
    Event,
    EventDecodeError,
    decode_work_order,
    encode_event,
    event_headers,
    execution_id,
)
from taskstream.schemas.codec import header_value

__all__ = ["DeadLetter", "app", "read_dead_letters"]

_REPLAYED = "dead-letter-replayed"


@dataclass(frozen=True)
class DeadLetter:
    partition: int
    offset: int
    key: str
    value: bytes
    reason: str
    detail: str
    execution_id: str
    replayed: bool = False


def read_dead_letters(
    settings: CommonSettings, topic: str, timeout: float = 30.0
) -> list[DeadLetter]:
    """Every dead letter up to the end of the topic, with replays folded in."""
    consumer = Consumer(
        consumer_config(
            settings, f"taskstream-dlq-{uuid.uuid4().hex}", **{"enable.partition.eof": True}
        )
    )
    metadata = consumer.list_topics(topic, timeout=10).topics.get(topic)
    if metadata is None or metadata.error is not None:
        consumer.close()
        raise SystemExit(f"taskstream: no topic {topic}: check TASKSTREAM_TOPIC_PREFIX")
    partitions = set(metadata.partitions)
    consumer.subscribe([topic])
    letters: list[DeadLetter] = []
    replayed: set[str] = set()
    at_end: set[int] = set()
    deadline = datetime.now(UTC).timestamp() + timeout
    try:
        while at_end != partitions and datetime.now(UTC).timestamp() < deadline:
            message = consumer.poll(0.2)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    at_end.add(message.partition() or 0)
                continue
            headers = message.headers()
            exec_id = header_value(headers, "execution-id") or ""
            if header_value(headers, _REPLAYED):
                replayed.add(exec_id)
                continue
            letters.append(
                DeadLetter(
                    partition=message.partition() or 0,
                    offset=message.offset() or 0,
                    key=(message.key() or b"").decode(errors="replace"),
                    value=message.value() or b"",
                    reason=header_value(headers, "dead-letter-reason") or "",
                    detail=header_value(headers, "dead-letter-detail") or "",
                    execution_id=exec_id,
                )
            )
    finally:
        consumer.close()
    return [
        DeadLetter(**{**letter.__dict__, "replayed": letter.execution_id in replayed})
        for letter in letters
    ]


def _settings() -> Any:
    from taskstream.core.settings import CoreSettings

    return CoreSettings()


app = typer.Typer(
    name="dlq",
    help=as_help(__doc__),
    no_args_is_help=True,
    rich_markup_mode=None,
    add_completion=False,
)


@app.command("list")
def list_dead_letters(
    include_replayed: Annotated[bool, typer.Option("--all", help="include replayed ones")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """List dead letters."""
    raise typer.Exit(_list(include_replayed, as_json))


@app.command("replay")
def replay(execution_id: Annotated[str, typer.Argument()]) -> None:
    """Run a dead-lettered execution again."""
    raise typer.Exit(_replay(execution_id))


def _list(include_replayed: bool, as_json: bool) -> int:
    settings = _settings()
    letters = read_dead_letters(settings, settings.topics.dead_letter)
    shown = [letter for letter in letters if include_replayed or not letter.replayed]
    if as_json:
        print(
            orjson.dumps(
                [
                    {**letter.__dict__, "value": letter.value.decode(errors="replace")}
                    for letter in shown
                ]
            ).decode()
        )
        return 0
    for letter in shown:
        flag = " (replayed)" if letter.replayed else ""
        print(
            f"{letter.execution_id or '-':36}  task {letter.key:36}  {letter.reason:13}"
            f"  {letter.detail[:80]}{flag}"
        )
    print(f"{len(shown)} dead letter(s)", file=sys.stderr)
    return 0


def _replay(wanted: str) -> int:
    settings = _settings()
    letters = read_dead_letters(settings, settings.topics.dead_letter)
    matches = [letter for letter in letters if letter.execution_id == wanted]
    if not matches:
        print(
            f"taskstream: no dead letter for execution {wanted}; see `taskstream dlq list`",
            file=sys.stderr,
        )
        return 1
    letter = matches[-1]
    if letter.replayed:
        print(f"taskstream: execution {wanted} was already replayed", file=sys.stderr)
        return 1
    try:
        order = decode_work_order(letter.value)
    except EventDecodeError as exc:
        print(
            f"taskstream: this dead letter holds no work order ({exc}); it cannot be replayed",
            file=sys.stderr,
        )
        return 1
    attempt = order.attempt + 1
    event = Event.create(
        order.task_id,
        DeadLetterReplayed(
            execution_id=execution_id(order.task_id, order.scheduled_for, attempt, order.run_key),
            dead_lettered_execution_id=order.execution_id,
            attempt=attempt,
            scheduled_for=order.scheduled_for,
            due_at=datetime.now(UTC),
            run_key=order.run_key,
        ),
    )
    producer = Producer(producer_config(settings, partitioner="murmur2_random"))
    producer.produce(
        settings.topics.task_events,
        key=order.task_id.encode(),
        value=encode_event(event),
        headers=event_headers(event),
    )
    producer.produce(
        settings.topics.dead_letter,
        key=order.task_id.encode(),
        value=b"",
        headers=[(_REPLAYED, event.id.encode()), ("execution-id", order.execution_id.encode())],
    )
    if producer.flush(30):
        print("taskstream: Kafka did not confirm the replay; run it again", file=sys.stderr)
        return 1
    print(event.data.execution_id)  # type: ignore[attr-defined]
    return 0
