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


def test_an_isolating_loop_counts_a_step_that_raises_and_runs_the_next() -> None:
    calls: list[int] = []

    def step() -> None:
        calls.append(len(calls))
        if len(calls) <= 2:
            raise ValueError(f"snapshot {len(calls)} could not be built")

    loop = ConsumerLoop(
        "heartbeat", tick=step, interval=0.01, isolate_ticks=True, stall_after=30, essential=False
    )
    loop.start()
    try:
        eventually(lambda: len(calls) >= 4, timeout=10, what="steps after the failing ones")
        status = loop.health()
        assert status.state is State.OK
        assert status.details["tick_errors"] == 2
        assert status.details["last_tick_error"] == "ValueError: snapshot 2 could not be built"
        assert loop.alive and loop.error is None
    finally:
        loop.stop()


def test_an_isolating_loop_whose_every_step_raises_turns_unavailable_then_ok_again() -> None:
    healed = threading.Event()

    def step() -> None:
        if not healed.is_set():
            raise OSError("the workers topic is gone")

    loop = ConsumerLoop("heartbeat", tick=step, interval=0.01, isolate_ticks=True, stall_after=0.2)
    loop.start()
    try:
        status = eventually(
            lambda: (s := loop.health()).state is State.UNAVAILABLE and s,
            timeout=10,
            what="a loop failing every step to be reported",
        )
        assert status.reason is not None
        assert "heartbeat" in status.reason
        assert "OSError: the workers topic is gone" in status.reason
        healed.set()
        eventually(lambda: loop.health().state is State.OK, timeout=10, what="ok once it heals")
    finally:
        loop.stop()


def test_a_loop_fault_stops_even_an_isolating_loop() -> None:
    def step() -> None:
        raise LoopFault("the producer is fenced")

    loop = ConsumerLoop("publisher", tick=step, isolate_ticks=True)
    loop.start()
    eventually(lambda: not loop.alive, timeout=10, what="the loop to stop")
    assert loop.health().state is State.FAILED and isinstance(loop.error, LoopFault)


def test_the_interval_spaces_the_steps_and_stop_cuts_the_wait_short() -> None:
    steps: list[float] = []
    loop = ConsumerLoop("heartbeat", tick=lambda: steps.append(0), interval=60)
    loop.start()
    eventually(lambda: steps, timeout=10, what="the first step")
    stopped = threading.Event()
    stopper = threading.Thread(target=lambda: (loop.stop(), stopped.set()))
    stopper.start()
    assert stopped.wait(5), "stop waits for the interval to pass"
    assert steps == [0]


def test_run_until_steps_in_the_calling_thread_and_times_out() -> None:
    steps: list[str] = []
    loop = ConsumerLoop("replay", tick=lambda: steps.append(threading.current_thread().name))
    loop.run_until(lambda: len(steps) >= 3, timeout=10)
    assert steps == [threading.current_thread().name] * 3
    with pytest.raises(TimeoutError, match="replay: not done in 0s"):
        loop.run_until(lambda: False, timeout=0.05)
