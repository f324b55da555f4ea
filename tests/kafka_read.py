"""Reading a topic back from the start, as any non-Python consumer would."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import orjson
from confluent_kafka import Consumer, KafkaError


@dataclass(frozen=True)
class RawRecord:
    partition: int
    offset: int
    key: bytes | None
    value: dict[str, object]
    headers: dict[str, bytes]


def read_topic(bootstrap: str, topic: str, *, timeout: float = 60.0) -> list[RawRecord]:
    """Every committed record of ``topic`` up to its end now, values parsed as JSON."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
        }
    )
    partitions = set(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
    consumer.subscribe([topic])
    records: list[RawRecord] = []
    at_end: set[int] = set()
    deadline = time.monotonic() + timeout
    try:
        while at_end != partitions:
            assert time.monotonic() < deadline, f"{topic}: no end reached in {timeout}s"
            message = consumer.poll(0.2)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                assert error.code() == KafkaError._PARTITION_EOF, error.str()
                at_end.add(message.partition() or 0)
                continue
            records.append(
                RawRecord(
                    message.partition() or 0,
                    message.offset() or 0,
                    message.key(),
                    orjson.loads(message.value() or b"null"),
                    {k: v for k, v in (message.headers() or []) if v is not None},
                )
            )
    finally:
        consumer.close()
    return records
