"""The health report the dashboard's banner is drawn from (pure: no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime

from taskstream.infra.health import ComponentStatus, HealthBoard, State
from taskstream.monitor.peer_health import Peer, PeerHealth, health_report

NOW = datetime(2030, 1, 1, tzinfo=UTC)


class _Fixed:
    essential = False

    def __init__(self, name: str, status: ComponentStatus) -> None:
        self.name = name
        self._status = status

    def health(self) -> ComponentStatus:
        return self._status


def _core(state: str, **components: dict[str, str]) -> PeerHealth:
    return PeerHealth(
        Peer("core", "http://core:8080"),
        {"status": "ok", "state": state, "service": "core", "components": components},
    )


def test_all_ok_is_ok_and_no_banner() -> None:
    own = HealthBoard("monitor", [_Fixed("kafka", ComponentStatus.ok())]).snapshot()
    report = health_report(own, [_core("ok", scheduler={"state": "ok"})], NOW)
    assert report["state"] == "ok" and report["problems"] == [] and report["waiting"] == []
    assert report["generated_at"] == NOW.isoformat()
    assert report["services"][1] == {
        "service": "core",
        "url": "http://core:8080",
        "state": "ok",
        "components": {"scheduler": {"state": "ok"}},
    }


def test_a_component_that_is_unavailable_is_a_problem_with_its_reason() -> None:
    own = HealthBoard(
        "monitor", [_Fixed("kafka", ComponentStatus(State.UNAVAILABLE, "broker gone 7s"))]
    ).snapshot()
    report = health_report(own, [_core("starting", scheduler={"state": "starting"})], NOW)
    assert report["state"] == "failing"
    assert report["problems"] == [
        {
            "service": "monitor",
            "component": "kafka",
            "state": "unavailable",
            "reason": "broker gone 7s",
        }
    ]
    assert report["waiting"] == [
        {"service": "core", "component": "scheduler", "state": "starting", "reason": None}
    ]


def test_an_unreachable_service_is_a_problem_of_the_service() -> None:
    own = HealthBoard("monitor").snapshot()
    gone = PeerHealth(Peer("executor", "http://e:8081"), None, "no answer within 1s")
    report = health_report(own, [gone], NOW)
    assert report["problems"] == [
        {
            "service": "executor",
            "component": None,
            "state": "unreachable",
            "reason": "no answer within 1s",
        }
    ]
    assert report["services"][1]["components"] == {}
