"""Stopping a service's components in order, each even if one before it failed to stop.

A service stops its components one after another (the consumer groups first, so their
partitions move at once; the producers and the store last). One that raises while it
stops (a fenced producer refuses to flush, a broker gone mid-close) must not leave the
ones after it open: :func:`stop_in_order` logs the failure and goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

__all__ = ["stop_in_order"]

logger = logging.getLogger(__name__)


def stop_in_order(steps: Iterable[tuple[str, Callable[[], object]]]) -> list[str]:
    """Call each ``(name, stop)`` in order; the names of those that raised."""
    failed: list[str] = []
    for name, stop in steps:
        try:
            stop()
        except Exception:
            failed.append(name)
            logger.exception("stopping the %s failed; stopping the rest", name)
    return failed
