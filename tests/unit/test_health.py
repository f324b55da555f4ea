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


def test_health_answer_names_each_broken_component_in_the_error_shape() -> None:
    from taskstream.infra.health import health_answer, ready_answer

    board = HealthBoard(
        "core",
        [
            _Source("kafka", ComponentStatus(State.UNAVAILABLE, "unreachable since 10:00")),
            _Source("tables", ComponentStatus(State.RECOVERING, "restoring")),
            _Source("scheduler", ComponentStatus.ok()),
        ],
    )
    status, body = health_answer(board.snapshot(), instance="i-1")
    assert status == 503 and body["error"] == "unhealthy"
    assert body["message"] == "core: kafka: unreachable since 10:00"
    assert body["instance"] == "i-1" and body["components"]["scheduler"] == {"state": "ok"}
    status, body = ready_answer(board.snapshot())
    assert (status, body["error"]) == (503, "unavailable")
    assert body["message"] == "core: kafka: unreachable since 10:00; tables: restoring"


def test_ready_answer_tells_recovering_from_broken_and_200_when_all_ok() -> None:
    from taskstream.infra.health import health_answer, ready_answer

    recovering = HealthBoard("monitor", [_Source("tables", ComponentStatus(State.RECOVERING))])
    assert health_answer(recovering.snapshot())[0] == 200  # live while it restores
    status, body = ready_answer(recovering.snapshot())
    assert (status, body["error"], body["message"]) == (
        503,
        "recovering",
        "monitor: tables: recovering",
    )
    ok = HealthBoard("monitor", [_Source("tables", ComponentStatus.ok())])
    assert ready_answer(ok.snapshot()) == (200, ok.snapshot().as_json())


def test_thread_health_and_watchdog_fire_once_on_an_essential_death() -> None:
    from taskstream.infra.thread_health import ThreadHealth, Watchdog

    class Loop:
        alive = True
        error: BaseException | None = None

    loop = Loop()
    fired: list[tuple[str, ...]] = []
    watchdog = Watchdog(
        HealthBoard("executor", [ThreadHealth("consumer", loop)]),
        lambda snapshot: fired.append(snapshot.fatal),
        linger=0.0,
    )
    assert watchdog.check() is None and fired == []
    loop.alive, loop.error = False, RuntimeError("fenced")
    snapshot = watchdog.check()
    assert snapshot is not None
    assert snapshot.components["consumer"].reason == "stopped: RuntimeError('fenced')"
    watchdog.check()
    assert fired == [("consumer",)]


def test_dev_backoff_doubles_caps_and_resets_after_a_stable_run() -> None:
    from taskstream.cli.dev import Backoff

    backoff = Backoff(first=1, cap=8, stable=60)
    assert [backoff.next_delay(uptime=1) for _ in range(5)] == [1, 2, 4, 8, 8]
    assert backoff.next_delay(uptime=120) == 1
    assert backoff.restarts == 6
