"""Deterministic identifiers, so every consumer can deduplicate redelivered work."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime

__all__ = ["execution_id", "quarantine_event_id"]

_EXECUTION_NAMESPACE = uuid.UUID("6f1c1e52-8f44-4a8e-9a4c-2b8f3e0c7d15")
_NAMESPACE_BYTES = _EXECUTION_NAMESPACE.bytes
_QUARANTINE_NAMESPACE = uuid.UUID("5f0c7f4e-8a53-4c39-9d63-2f3f8f1d7a10")


def execution_id(task_id: str, slot: datetime, attempt: int, run_key: str | None = None) -> str:
    """The id of attempt ``attempt`` of the run of ``task_id`` due at ``slot``.

    The same inputs give the same id on every machine: ``uuid5`` over the task id, the
    slot in UTC with microseconds, and the attempt number. ``run_key`` names another run
    of the same slot than the schedule's (``backfill:<id>``): its attempts have ids of
    their own, which no attempt of the schedule's run shares.
    """
    if slot.tzinfo is None:
        raise ValueError("slot must be timezone-aware: pass a datetime with tzinfo, e.g. UTC")
    stamp = slot.astimezone(UTC).isoformat(timespec="microseconds")
    if run_key is None:
        return _uuid5(f"{task_id}|{stamp}|{attempt}")
    return _uuid5(f"{task_id}|{run_key}|{stamp}|{attempt}")


def _uuid5(name: str) -> str:
    """``str(uuid.uuid5(_EXECUTION_NAMESPACE, name))`` without building a ``UUID`` (a tenth
    of the time: the scheduler computes one per fire)."""
    digest = bytearray(
        hashlib.sha1(_NAMESPACE_BYTES + name.encode(), usedforsecurity=False).digest()[:16]
    )
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # the RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def quarantine_event_id(task_id: str, change_event_id: str, component: str) -> str:
    """The id of the one ``TaskQuarantined`` ``component`` writes for a task's change.

    A component that meets the same record again (after a restart) quarantines with the
    same id, so consumers that deduplicate by event id count it once.
    """
    return str(uuid.uuid5(_QUARANTINE_NAMESPACE, f"{task_id}|{change_event_id}|{component}"))
