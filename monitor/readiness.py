"""Is the monitor's data whole? The ``tables`` :class:`~taskstream.infra.health.HealthSource`.

After a (re)start or a rebalance faust restores its tables from their changelogs; until
then they are empty and the API would serve zeros. The tables count as ``recovering``
while faust's recovery runs (``app.tables.recovery.completed`` not set, ``app.rebalancing``
or ``app.in_recovery``), then until the agent has processed ``task-events`` up to the end
offsets seen when the recovery completed (the log position it had, and what arrived while
it was down), and ``ok`` from then on. :meth:`TablesReadiness.refresh` runs on a timer
(it asks the consumer for positions); :meth:`health` returns its last finding.
"""

from __future__ import annotations

import logging
from typing import Any, cast

import faust

from taskstream.infra.health import ComponentStatus, State
from taskstream.monitor.http_errors import Refusal
from taskstream.monitor.lag import ConsumerLag

__all__ = ["TablesReadiness", "refuse_until_serving"]

logger = logging.getLogger(__name__)


class TablesReadiness:
    name = "tables"
    essential = False

    def __init__(self, app: faust.App, lag: ConsumerLag) -> None:
        self._app = app
        self._lag = lag
        self._status = ComponentStatus(State.STARTING, "starting")
        self._targets: dict[int, int] | None = None
        """End offsets of task-events when the last recovery completed, per partition."""

    @property
    def serving(self) -> bool:
        """True when the tables show everything the log had when the monitor came up."""
        return self._status.state is State.OK

    def health(self) -> ComponentStatus:
        return self._status

    async def refresh(self) -> None:
        try:
            self._status = await self._assess()
        except Exception as exc:  # starting, stopping or rebalancing: ask again next time
            logger.debug("tables readiness unknown: %s", exc)

    async def _assess(self) -> ComponentStatus:
        app = self._app
        recovery = cast(Any, app.tables).recovery
        if not recovery.completed.is_set() or app.rebalancing or app.in_recovery:
            self._targets = None
            remaining = recovery.active_remaining_total()
            return ComponentStatus(
                State.RECOVERING,
                "restoring its tables from their changelogs"
                + (f" ({remaining} records left)" if remaining else ""),
                {"changelog_records_left": remaining},
            )
        if self._status.state is State.OK:
            return self._status
        consumer = app.consumer
        partitions = [tp for tp in consumer.assignment() if tp.topic == self._lag.topic]
        if not partitions:
            return ComponentStatus(State.STARTING, "no task-events partition assigned yet")
        if self._targets is None:
            targets = {tp.partition: consumer.highwater(tp) for tp in partitions}
            if any(end is None for end in targets.values()):
                return ComponentStatus(State.RECOVERING, "reading the end of task-events")
            self._targets = {p: end for p, end in targets.items() if end is not None}
        behind = 0
        for tp in partitions:
            target = self._targets.get(tp.partition)
            if target is None:
                continue
            position = self._lag.next_offset(tp.partition)
            if position is None:
                position = await consumer.position(tp)
            behind += max(0, target - (position or 0))
        if behind:
            return ComponentStatus(
                State.RECOVERING,
                f"catching up with task-events ({behind} records to where it was)",
                {"records_behind": behind},
            )
        logger.info("tables restored and caught up: serving")
        return ComponentStatus.ok()


def refuse_until_serving(readiness: TablesReadiness) -> None:
    """Raise 503 ``starting``/``recovering`` while the tables are restored (never zeros)."""
    if readiness.serving:
        return
    status = readiness.health()
    raise Refusal(
        503,
        status.state.value,
        f"the monitor is {status.state.value} ({status.reason}); its data is "
        "incomplete until it is ready: retry in a few seconds (GET /ready says when)",
    )
