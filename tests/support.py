"""Helpers for tests: polling with a deadline (never a bare sleep), recorded poison input."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from schemas import Schedule, recorded

T = TypeVar("T")


def eventually(
    probe: Callable[[], T | None],
    *,
    timeout: float = 30.0,
    interval: float = 0.1,
    what: str = "condition",
) -> T:
    """Call ``probe`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            result = probe()
            if result:
                return result
        except AssertionError as exc:
            last_error = exc
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"timed out after {timeout:.0f}s waiting for {what}"
                + (f": {last_error}" if last_error else "")
            )
        time.sleep(interval)  # poll interval of a deadline-bounded wait


def recorded_schedule(**fields: object) -> Schedule:
    """A schedule as an earlier version accepted it, which today's API refuses.

    Poison records of the fault-isolation tests: put on the log directly, read back as
    recorded (:mod:`schemas.recorded`), evaluated (and quarantined) where they fire.
    """
    with recorded():
        return Schedule.model_validate(fields)
