"""A call that keeps its caller waiting past a deadline is given up on, not waited for."""

from __future__ import annotations

import threading
import time

import pytest

from taskstream.infra.bounded_call import BoundedCaller, CallTimedOut
from tests.support import eventually


def test_a_call_that_returns_in_time_gives_its_result_or_its_exception() -> None:
    caller = BoundedCaller("test")
    try:
        assert caller.call(lambda: 41 + 1, timeout=5) == 42

        def refuse() -> None:
            raise ValueError("refused by the broker")

        with pytest.raises(ValueError, match="refused by the broker"):
            caller.call(refuse, timeout=5)
        assert caller.abandoned == 0
    finally:
        caller.close()


def test_a_call_that_blocks_past_its_deadline_is_given_up_and_the_next_call_still_runs() -> None:
    caller = BoundedCaller("test")
    release = threading.Event()
    try:
        began = time.monotonic()
        with pytest.raises(CallTimedOut, match=r"did not return within 0\.3s"):
            caller.call(release.wait, timeout=0.3)
        assert time.monotonic() - began < 2.0, "the caller waited no longer than its deadline"
        assert caller.abandoned == 1

        # the stuck worker does not hold up the calls after it
        assert caller.call(lambda: "fresh worker", timeout=5) == "fresh worker"

        release.set()  # the client finally returns: the given-up call's thread ends
        eventually(lambda: caller.abandoned == 0, timeout=10, what="the given-up call to end")
        assert caller.call(lambda: "still usable", timeout=5) == "still usable"
    finally:
        release.set()
        caller.close()


def test_given_up_calls_are_counted_until_each_returns() -> None:
    caller = BoundedCaller("test")
    gates = [threading.Event() for _ in range(3)]
    try:
        for gate in gates:
            with pytest.raises(CallTimedOut):
                caller.call(gate.wait, timeout=0.1)
        assert caller.abandoned == 3
        gates[1].set()
        eventually(lambda: caller.abandoned == 2, timeout=10, what="one given-up call to end")
    finally:
        for gate in gates:
            gate.set()
        caller.close()
