"""Offsets: commit only below the lowest unfinished record, whatever order work ends in."""

from __future__ import annotations

from taskstream.executor.offsets import OffsetTracker, PartitionOffsets

TP = ("t", 0)


def test_nothing_to_commit_before_any_record() -> None:
    assert PartitionOffsets().committable() is None
    assert OffsetTracker().pending_commits() == {}


def test_out_of_order_completions_commit_the_lowest_unfinished() -> None:
    offsets = PartitionOffsets()
    for n in range(5):
        offsets.received(n)
    assert offsets.committable() == 0
    offsets.finished(3)
    offsets.finished(1)
    assert offsets.committable() == 0, "0 is still running"
    offsets.finished(0)
    assert offsets.committable() == 2
    offsets.finished(2)
    assert offsets.committable() == 4
    offsets.finished(4)
    assert offsets.committable() == 5, "all done: one past the highest received"
    assert offsets.unfinished == 0


def test_gaps_from_transaction_markers_are_fine() -> None:
    offsets = PartitionOffsets()
    for n in (10, 11, 13, 20):  # 12, 14..19: markers and aborted records never arrive
        offsets.received(n)
    offsets.finished(10)
    offsets.finished(13)
    assert offsets.committable() == 11
    offsets.finished(11)
    assert offsets.committable() == 20
    offsets.finished(20)
    assert offsets.committable() == 21


def test_redeliveries_and_unknown_completions_are_ignored() -> None:
    offsets = PartitionOffsets()
    assert offsets.received(0) and offsets.received(1)
    assert not offsets.received(1)
    offsets.finished(0)
    assert not offsets.received(0), "already finished"
    assert not offsets.finished(0)
    assert not offsets.finished(99)
    assert offsets.committable() == 1


def test_tracker_reports_only_moved_offsets_and_forgets_revoked_partitions() -> None:
    tracker = OffsetTracker()
    other = ("t", 1)
    tracker.assign([TP, other])
    tracker.received(TP, 0)
    tracker.received(TP, 1)
    tracker.received(other, 7)
    assert tracker.pending_commits() == {TP: 0, other: 7}
    tracker.committed({TP: 0, other: 7})
    assert tracker.pending_commits() == {}
    tracker.finished(TP, 1)
    assert tracker.pending_commits() == {}, "0 still runs: the offset did not move"
    tracker.finished(TP, 0)
    assert tracker.pending_commits() == {TP: 2}
    assert tracker.unfinished() == 1 and tracker.unfinished_offsets(other) == [7]
    tracker.forget([other])
    assert not tracker.finished(other, 7), "a stale completion after a revoke"
    assert tracker.pending_commits([other]) == {}
    assert tracker.pending_commits() == {TP: 2}


def test_many_records_finishing_in_reverse() -> None:
    offsets = PartitionOffsets()
    for n in range(10_000):
        offsets.received(n)
    for n in reversed(range(1, 10_000)):
        offsets.finished(n)
        assert offsets.committable() == 0
    offsets.finished(0)
    assert offsets.committable() == 10_000


def test_a_late_acknowledgement_never_moves_the_committed_offset_back() -> None:
    """An asynchronous commit's callback can come after a later synchronous commit's."""
    tracker = OffsetTracker()
    tracker.assign([TP])
    for n in range(4):
        tracker.received(TP, n)
        tracker.finished(TP, n)
    tracker.committed({TP: 4})  # the synchronous commit of a revoke
    tracker.committed({TP: 2})  # the earlier asynchronous one, acknowledged after it
    assert tracker.pending_commits() == {}, "4 is committed: nothing to send again"


def test_a_lost_partition_taken_back_goes_on_past_what_finished() -> None:
    """Lost (the session expired in an outage) while 0..5 were received: 1 and 3 were
    waiting (dropped from the lanes, never ran), 2 still runs, the others finished."""
    tracker = OffsetTracker()
    tracker.assign([TP])
    for n in range(6):
        tracker.received(TP, n)
    for n in (0, 4, 5):
        tracker.finished(TP, n)
    tracker.hold(TP, generation=7, dropped=[1, 3])
    assert tracker.pending_commits() == {}, "a held partition is not committed"
    assert not tracker.finished_held(TP, 2, generation=6), "another assignment's completion"
    take = tracker.take_over(TP)
    assert take is not None
    assert (take.start, take.running, take.generation) == (1, frozenset({2}), 7)
    # redelivered from 1: what never ran is received again, once; what runs or ran is not
    assert [n for n in range(6) if tracker.received(TP, n)] == [1, 3]
    assert not tracker.received(TP, 1)
    tracker.finished(TP, 1)
    tracker.finished(TP, 3)
    assert tracker.committable(TP) == 2, "2 still runs"
    tracker.finished(TP, 2)
    assert tracker.committable(TP) == 6
    assert tracker.take_over(TP) is None, "taken once"


def test_completions_while_held_count_for_the_take_over() -> None:
    tracker = OffsetTracker()
    tracker.assign([TP])
    for n in range(3):
        tracker.received(TP, n)
    tracker.hold(TP, generation=1)
    assert tracker.finished_held(TP, 0, generation=1)
    assert tracker.finished_held(TP, 1, generation=1)
    take = tracker.take_over(TP)
    assert take is not None and (take.start, take.running) == (2, frozenset({2}))
