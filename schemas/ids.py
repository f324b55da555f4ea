"""Deterministic identifiers, so every consumer can deduplicate redelivered work."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

__all__ = ["execution_id"]

_EXECUTION_NAMESPACE = uuid.UUID("6f1c1e52-8f44-4a8e-9a4c-2b8f3e0c7d15")


def execution_id(task_id: str, slot: datetime, attempt: int) -> str:
    """The id of attempt ``attempt`` of the run of ``task_id`` due at ``slot``.

    The same inputs give the same id on every machine: ``uuid5`` over the task id, the
    slot in UTC with microseconds, and the attempt number.
    """
    if slot.tzinfo is None:
        raise ValueError("slot must be timezone-aware")
    stamp = slot.astimezone(UTC).isoformat(timespec="microseconds")
    return str(uuid.uuid5(_EXECUTION_NAMESPACE, f"{task_id}|{stamp}|{attempt}"))
