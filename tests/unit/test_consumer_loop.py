"""The consumer loop block without a broker: its step mode, faults and health."""

from __future__ import annotations

import threading

import pytest

from taskstream.infra.consumer_loop import ConsumerLoop, LoopFault
from taskstream.infra.health import State
from tests.support import eventually


def test_a_step_that_raises_stops_the_loop_and_health_turns_failed_naming_the_error() -> None:
    def step() -> None:
        raise LoopFault("the producer was fenced by a newer instance")

    loop = ConsumerLoop("publisher", tick=step)
    loop.start()
    eventually(lambda: not loop.alive, timeout=10, what="the loop to stop")
    status = loop.health()
    assert status.state is State.FAILED
    assert status.reason is not None
    assert "publisher" in status.reason and "fenced by a newer instance" in status.reason
    assert isinstance(loop.error, LoopFault)


def test_a_loop_is_starting_until_its_component_is_ready_then_ok() -> None:
    ready = threading.Event()
    ticks = threading.Event()

    def step() -> None:
        ticks.set()
        loop.stopping.wait(0.01)

    loop = ConsumerLoop("heartbeat", tick=step, ready=ready.is_set, essential=False)
    assert loop.health().state is State.STARTING  # not started
    loop.start()
    try:
        eventually(ticks.is_set, timeout=10, what="a step")
        assert loop.health().state is State.STARTING
        ready.set()
        assert loop.health().state is State.OK
        assert (loop.name, loop.essential) == ("heartbeat", False)
    finally:
        loop.stop()
    assert not loop.alive and loop.error is None


def test_a_step_that_does_not_return_turns_the_loop_unavailable() -> None:
    release = threading.Event()

    def step() -> None:
        release.wait(30)

    loop = ConsumerLoop("log-shipper", tick=step, stall_after=0.2)
    loop.start()
    try:
        status = eventually(
            lambda: (s := loop.health()).state is State.UNAVAILABLE and s,
            timeout=10,
            what="the stuck loop to be reported",
        )
        assert status.reason is not None and "stuck" in status.reason
    finally:
        release.set()
        loop.stop()
    assert loop.error is None


def test_a_loop_needs_something_to_do() -> None:
    with pytest.raises(ValueError, match="tick is the step"):
        ConsumerLoop("nothing")
