"""The fault ledger's expectations of a deleted task (the ledger is itself a test tool)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.faults.ledger import (
    COMMIT_WINDOW,
    DELETE_MARGIN,
    Commits,
    CommitTimes,
    Execution,
    Ledger,
    TaskLedger,
    _account_outcomes,
    _account_slots,
    _offset_commit,
)

T0 = datetime(2030, 1, 1, tzinfo=UTC)
SECOND = timedelta(seconds=1)


def _deleted_at_ten() -> TaskLedger:
    return TaskLedger("t", created=T0, every=SECOND, deleted=T0 + 10 * SECOND)


def test_slots_near_a_delete_may_or_may_not_fire() -> None:
    expected, optional = _deleted_at_ten().expected_slots(T0 + 60 * SECOND)
    assert DELETE_MARGIN == 2 * SECOND
    assert expected == [T0 + n * SECOND for n in range(1, 8)]
    assert optional == {T0 + n * SECOND for n in range(8, 13)}


def test_a_slot_fired_long_after_the_delete_is_a_disagreement() -> None:
    task = _deleted_at_ten()
    for n in range(1, 8):
        task.fired[T0 + n * SECOND].append(f"e{n}")
    task.fired[T0 + 11 * SECOND].append("overtaken")  # the delete not read yet: fine
    ledger = Ledger({"t": task}, {})
    _account_slots(ledger, T0 + 60 * SECOND)
    assert (ledger.lost, ledger.disagreements) == ([], [])
    task.fired[T0 + 13 * SECOND].append("late")
    ledger = Ledger({"t": task}, {})
    _account_slots(ledger, T0 + 60 * SECOND)
    assert ledger.disagreements == [f"task t: fired {T0 + 13 * SECOND}, after {T0 + 10 * SECOND}"]


def _rerun(ended: datetime, again: datetime) -> Execution:
    execution = Execution("e", "t", 1, "schedule", T0)
    execution.order_at = ("orders", 0, 41)
    execution.starts = [1, 3]
    execution.start_times = [(ended - SECOND / 100).isoformat(), again.isoformat()]
    execution.ends = [(2, "succeeded"), (4, "succeeded")]
    execution.first_end_time = ended
    return execution


def _classify(execution: Execution, kill: datetime, commits: Commits) -> Ledger:
    ledger = Ledger({}, {"e": execution}, executor_kills=[kill])
    _account_outcomes(ledger, CommitTimes(commits))
    return ledger


def test_a_rerun_of_what_finished_just_before_an_executor_kill_is_its_commit_window() -> None:
    kill = T0 + 10 * SECOND
    again = kill + 5 * SECOND
    ledger = _classify(_rerun(kill - COMMIT_WINDOW / 2, again), kill, {})
    assert (ledger.reran_at_kill, ledger.reran_after_finish) == (1, [])
    # committed only by the executor that ran it again: still the window
    late = {("orders", 0): [(again + SECOND, 42)]}
    ledger = _classify(_rerun(kill - COMMIT_WINDOW / 2, again), kill, late)
    assert (ledger.reran_at_kill, ledger.reran_after_finish) == (1, [])
    assert ledger.summary()["commit_latency_ms"]["max"] > 5000


def test_a_rerun_long_after_its_end_or_after_its_commit_fails() -> None:
    kill = T0 + 10 * SECOND
    again = kill + 5 * SECOND
    ledger = _classify(_rerun(kill - 2 * COMMIT_WINDOW, again), kill, {})
    assert ledger.reran_at_kill == 0 and len(ledger.reran_after_finish) == 1
    assert "never committed" in ledger.reran_after_finish[0]
    # its offset was committed before the kill: a rerun however close to the kill is a bug
    ended = kill - COMMIT_WINDOW / 2
    before = {("orders", 0): [(ended - SECOND, 10), (ended + SECOND / 100, 42)]}
    ledger = _classify(_rerun(ended, again), kill, before)
    assert ledger.reran_at_kill == 0 and len(ledger.reran_after_finish) == 1
    assert ledger.summary()["commit_latency_ms"] == {"p50": 10.0, "p99": 10.0, "max": 10.0}


def _string(text: str) -> bytes:
    return len(text).to_bytes(2, "big") + text.encode()


def test_offset_commit_records_are_read_as_kafka_documents_them() -> None:
    key = (
        (1).to_bytes(2, "big")
        + _string("p.executor-default")
        + _string("t")
        + (3).to_bytes(4, "big")
    )
    millis = int(T0.timestamp() * 1000)
    v3 = (
        (3).to_bytes(2, "big")
        + (42).to_bytes(8, "big")
        + (-1).to_bytes(4, "big", signed=True)
        + _string("")
        + millis.to_bytes(8, "big")
    )
    v4 = (
        (4).to_bytes(2, "big")
        + (43).to_bytes(8, "big")
        + (5).to_bytes(4, "big")
        + bytes([3])
        + b"ab"  # compact string: length + 1
        + millis.to_bytes(8, "big")
        + bytes([0])  # no tagged fields
    )
    v1 = (
        (1).to_bytes(2, "big")
        + (44).to_bytes(8, "big")
        + _string("meta")
        + millis.to_bytes(8, "big")
        + (-1).to_bytes(8, "big", signed=True)
    )
    for value, offset in ((v3, 42), (v4, 43), (v1, 44)):
        assert _offset_commit(key, value) == ("p.executor-default", "t", 3, offset, T0)
    group_metadata = (2).to_bytes(2, "big") + _string("g")
    assert _offset_commit(group_metadata, b"\x00\x03") is None
    assert _offset_commit(key, None) is None  # a tombstone (an expired offset)
