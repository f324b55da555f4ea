"""The health board: live, ready and fatal from the components' states."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from taskstream.infra.health import ComponentStatus, HealthBoard, State


@dataclass
class _Source:
    name: str
    status: ComponentStatus
    essential: bool = True

    def health(self) -> ComponentStatus:
        return self.status


class _Raising:
    name = "broken-check"
    essential = False

    def health(self) -> ComponentStatus:
        raise RuntimeError("boom")


def test_all_ok_is_live_and_ready() -> None:
    board = HealthBoard(
        "core", [_Source("a", ComponentStatus.ok()), _Source("b", ComponentStatus.ok())]
    )
    snapshot = board.snapshot()
    assert (snapshot.live, snapshot.ready, snapshot.fatal) == (True, True, ())
    assert snapshot.as_json()["status"] == "ok"


def test_starting_and_recovering_are_live_but_not_ready() -> None:
    board = HealthBoard(
        "monitor", [_Source("tables", ComponentStatus(State.RECOVERING, "restoring"))]
    )
    snapshot = board.snapshot()
    assert snapshot.live and not snapshot.ready
    assert snapshot.state is State.RECOVERING
    assert snapshot.as_json()["components"]["tables"] == {
        "state": "recovering",
        "reason": "restoring",
    }


def test_unavailable_is_not_live_and_not_fatal() -> None:
    board = HealthBoard("core", [_Source("kafka", ComponentStatus(State.UNAVAILABLE, "no broker"))])
    snapshot = board.snapshot()
    assert not snapshot.live and snapshot.fatal == ()
    assert snapshot.as_json()["status"] == "failing"


def test_failed_essential_is_fatal_and_optional_is_not() -> None:
    board = HealthBoard(
        "executor",
        [
            _Source("consumer", ComponentStatus(State.FAILED, "died")),
            _Source("extra", ComponentStatus(State.FAILED, "died"), essential=False),
        ],
    )
    snapshot = board.snapshot()
    assert snapshot.fatal == ("consumer",)
    assert snapshot.state is State.FAILED


def test_a_raising_check_is_a_failure() -> None:
    snapshot = HealthBoard("core", [_Raising()]).snapshot()
    assert snapshot.components["broken-check"].state is State.FAILED
    assert "boom" in (snapshot.components["broken-check"].reason or "")


def test_metrics_export_up_and_state() -> None:
    registry = CollectorRegistry()
    board = HealthBoard("core", [_Source("kafka", ComponentStatus(State.UNAVAILABLE, "gone"))])
    board.register_metrics(registry)
    labels = {"service": "core", "component": "kafka"}
    assert registry.get_sample_value("taskstream_component_up", labels) == 0.0
    assert (
        registry.get_sample_value("taskstream_component_state", {**labels, "state": "unavailable"})
        == 1.0
    )
