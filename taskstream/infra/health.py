"""Health of a service's components: what ``/health`` and ``/ready`` answer, and why.

Every long-lived part of a service (a consumer loop, the broker connection, a producer,
the monitor's tables) is a :class:`HealthSource` that reports a :class:`ComponentStatus`.
A :class:`HealthBoard` gathers them for the service:

- **live** (``/health``): true unless a component is ``failed`` (its thread died, it was
  fenced) or ``unavailable`` (the broker is unreachable, a consumer stopped advancing
  while its lag grows). The 503 names each such component with its reason.
- **ready** (``/ready``): true only when every component is ``ok``; otherwise it tells
  ``starting`` or ``recovering`` (the monitor restoring its tables) from broken.
- **fatal**: an *essential* component that ``failed`` will not come back by itself; the
  service exits non-zero so that its supervisor (``taskstream dev``, systemd, Kubernetes)
  restarts it. ``unavailable`` is not fatal: the component resumes when its dependency
  returns.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector, CollectorRegistry

__all__ = [
    "ComponentStatus",
    "HealthBoard",
    "HealthSnapshot",
    "HealthSource",
    "State",
    "health_answer",
    "ready_answer",
]


class State(StrEnum):
    STARTING = "starting"
    """Not serving yet (joining its group, catching up); expected to become ``ok``."""
    RECOVERING = "recovering"
    """Restoring state after a restart (the monitor's tables); serving would mislead."""
    OK = "ok"
    UNAVAILABLE = "unavailable"
    """A dependency is gone (the broker) or it stopped advancing; resumes by itself."""
    FAILED = "failed"
    """Dead: it will not come back without a restart of the process."""


_LIVE_STATES = frozenset({State.STARTING, State.RECOVERING, State.OK})


@dataclass(frozen=True, slots=True)
class ComponentStatus:
    state: State
    reason: str | None = None
    """Why it is not ``ok``, in words a user acts on (the task, the error, the broker)."""
    details: Mapping[str, Any] = field(default_factory=dict)
    """Anything else worth showing (lag, last progress, owned partitions)."""

    @classmethod
    def ok(cls, **details: Any) -> ComponentStatus:
        return cls(State.OK, None, details)

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"state": self.state.value}
        if self.reason is not None:
            body["reason"] = self.reason
        body.update(self.details)
        return body


class HealthSource(Protocol):
    """A component that reports its health. ``essential``: the service is dead without it."""

    @property
    def name(self) -> str: ...

    @property
    def essential(self) -> bool: ...

    def health(self) -> ComponentStatus: ...


@dataclass(frozen=True, slots=True)
class HealthSnapshot:
    service: str
    components: Mapping[str, ComponentStatus]
    fatal: tuple[str, ...]
    """Essential components that failed: the process should exit non-zero."""

    @property
    def live(self) -> bool:
        return all(status.state in _LIVE_STATES for status in self.components.values())

    @property
    def ready(self) -> bool:
        return all(status.state is State.OK for status in self.components.values())

    @property
    def state(self) -> State:
        """The worst state of any component (failed > unavailable > recovering > starting)."""
        order = (State.FAILED, State.UNAVAILABLE, State.RECOVERING, State.STARTING)
        states = {status.state for status in self.components.values()}
        return next((state for state in order if state in states), State.OK)

    def as_json(self, **extra: Any) -> dict[str, Any]:
        return {
            "status": "ok" if self.live else "failing",
            "state": self.state.value,
            "service": self.service,
            **extra,
            "components": {name: s.as_json() for name, s in self.components.items()},
        }


def _problems(snapshot: HealthSnapshot, states: frozenset[State]) -> str:
    return "; ".join(
        f"{name}: {status.reason or status.state.value}"
        for name, status in snapshot.components.items()
        if status.state in states
    )


def health_answer(snapshot: HealthSnapshot, **extra: Any) -> tuple[int, dict[str, Any]]:
    """What ``/health`` answers: 200 while live, else 503 ``unhealthy`` naming each
    failed or unavailable component with its reason (the one error shape)."""
    body = snapshot.as_json(**extra)
    if snapshot.live:
        return 200, body
    message = _problems(snapshot, frozenset({State.FAILED, State.UNAVAILABLE}))
    return 503, {"error": "unhealthy", "message": f"{snapshot.service}: {message}", **body}


def ready_answer(snapshot: HealthSnapshot, **extra: Any) -> tuple[int, dict[str, Any]]:
    """What ``/ready`` answers: 200 when every component is ok, else 503 whose ``error``
    is the worst state (``starting``/``recovering``: wait; ``unavailable``/``failed``:
    broken) and whose ``message`` names the components that are not ok."""
    body = snapshot.as_json(**extra)
    if snapshot.ready:
        return 200, body
    message = _problems(snapshot, frozenset(State) - {State.OK})
    return 503, {"error": snapshot.state.value, "message": f"{snapshot.service}: {message}", **body}


class HealthBoard:
    """The components of one service, asked on every ``/health``, ``/ready`` and scrape."""

    def __init__(self, service: str, sources: Iterable[HealthSource] = ()) -> None:
        self.service = service
        self._sources: list[HealthSource] = list(sources)

    def add(self, source: HealthSource) -> None:
        self._sources.append(source)

    def snapshot(self) -> HealthSnapshot:
        components: dict[str, ComponentStatus] = {}
        fatal: list[str] = []
        for source in self._sources:
            try:
                status = source.health()
            except Exception as exc:  # a health check that raises is itself a failure
                status = ComponentStatus(State.FAILED, f"health check raised {exc!r}")
            components[source.name] = status
            if status.state is State.FAILED and source.essential:
                fatal.append(source.name)
        return HealthSnapshot(self.service, components, tuple(fatal))

    def register_metrics(self, registry: CollectorRegistry = REGISTRY) -> None:
        """Export ``taskstream_component_up`` (1 ok, 0 not) and ``_state`` per component."""
        registry.register(_HealthCollector(self))


class _HealthCollector(Collector):
    def __init__(self, board: HealthBoard) -> None:
        self._board = board

    def collect(self) -> Iterator[GaugeMetricFamily]:
        snapshot = self._board.snapshot()
        up = GaugeMetricFamily(
            "taskstream_component_up",
            "1 if the component is ok, else 0 (see taskstream_component_state)",
            labels=["service", "component"],
        )
        state = GaugeMetricFamily(
            "taskstream_component_state",
            "1 for the component's current state",
            labels=["service", "component", "state"],
        )
        for name, status in snapshot.components.items():
            up.add_metric([snapshot.service, name], 1.0 if status.state is State.OK else 0.0)
            state.add_metric([snapshot.service, name, status.state.value], 1.0)
        yield up
        yield state
