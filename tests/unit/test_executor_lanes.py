"""Priority lanes and back-pressure: high before medium before low; pause only the backlog."""

from __future__ import annotations

import threading

from taskstream.executor.backpressure import lane_share, paused_lanes
from taskstream.executor.lanes import Lanes
from taskstream.schemas import Priority

HIGH, MEDIUM, LOW = Priority.HIGH, Priority.MEDIUM, Priority.LOW


def test_a_free_slot_takes_high_then_medium_then_low_fifo_within_a_lane() -> None:
    lanes: Lanes[str] = Lanes()
    for item, priority in [("l1", LOW), ("m1", MEDIUM), ("l2", LOW), ("h1", HIGH), ("m2", MEDIUM)]:
        lanes.put(priority, item)
    lanes.put(HIGH, "h2")
    assert [lanes.take(0) for _ in range(6)] == ["h1", "h2", "m1", "m2", "l1", "l2"]
    assert lanes.take(0) is None


def test_a_high_order_put_behind_a_low_backlog_is_taken_next() -> None:
    lanes: Lanes[int] = Lanes()
    for n in range(5000):
        lanes.put(LOW, n)
    assert lanes.take(0) == 0
    lanes.put(HIGH, -1)
    assert lanes.take(0) == -1
    assert lanes.waiting(LOW) == 4999 and lanes.waiting() == 4999


def test_take_waits_for_an_item_and_close_wakes_takers() -> None:
    lanes: Lanes[str] = Lanes()
    got: list[str | None] = []
    taker = threading.Thread(target=lambda: got.append(lanes.take(10)))
    taker.start()
    lanes.put(MEDIUM, "m")
    taker.join(5)
    assert got == ["m"]
    waiting = threading.Thread(target=lambda: got.append(lanes.take(None)))
    waiting.start()
    lanes.close()
    waiting.join(5)
    assert got == ["m", None] and not waiting.is_alive()


def test_remove_takes_out_what_a_revoke_no_longer_owns() -> None:
    lanes: Lanes[tuple[int, int]] = Lanes()
    for partition in range(3):
        for offset in range(3):
            lanes.put(LOW if offset else HIGH, (partition, offset))
    removed = lanes.remove(lambda item: item[0] == 1)
    assert sorted(removed) == [(1, 0), (1, 1), (1, 2)]
    assert lanes.waiting() == 6
    assert all(lanes.take(0)[0] != 1 for _ in range(6))  # type: ignore[index]


def test_a_low_backlog_pauses_only_the_low_lane() -> None:
    limit = 16
    assert paused_lanes({LOW: 15}, set(), limit) == set()
    assert paused_lanes({LOW: 16}, set(), limit) == {LOW}
    # the buffer is full of low orders: high and medium are still fetched
    assert paused_lanes({LOW: 16, HIGH: 1}, {LOW}, limit) == {LOW}
    # high is paused too only once it holds its own share
    assert paused_lanes({LOW: 16, HIGH: lane_share(limit)}, {LOW}, limit) == {LOW, HIGH}


def test_a_paused_lane_resumes_below_half() -> None:
    limit = 16
    paused = {LOW}
    assert paused_lanes({LOW: 9}, paused, limit) == {LOW}, "hysteresis: still above half"
    assert paused_lanes({LOW: 8}, paused, limit) == {LOW}
    assert paused_lanes({LOW: 7}, paused, limit) == set()


def test_the_buffer_stays_bounded_whatever_arrives() -> None:
    """Simulate fetching one order at a time into whichever lanes are not paused."""
    limit = 32
    buffered = {HIGH: 0, MEDIUM: 0, LOW: 0}
    paused: set[Priority] = set()
    for _ in range(10_000):
        paused = paused_lanes(buffered, paused, limit)
        open_lanes = [p for p in (HIGH, MEDIUM, LOW) if p not in paused]
        if not open_lanes:
            break
        buffered[open_lanes[-1]] += 1  # a backlog in every lane: take the lowest open one
    assert paused == {HIGH, MEDIUM, LOW}
    assert sum(buffered.values()) <= limit + 2 * lane_share(limit)
    assert buffered[HIGH] >= lane_share(limit), "high always gets its share"


def test_tiny_limits_still_work() -> None:
    assert lane_share(1) == 1
    assert paused_lanes({LOW: 1}, set(), 1) == {LOW}
    assert paused_lanes({LOW: 0}, {LOW}, 1) == set()
