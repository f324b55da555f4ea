"""The fault ledger's expectations of a deleted task (the ledger is itself a test tool)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.faults.ledger import DELETE_MARGIN, Ledger, TaskLedger, _account_slots

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


def test_a_rerun_of_what_finished_just_before_an_executor_kill_is_its_commit_window() -> None:
    from tests.faults.ledger import COMMIT_WINDOW, Execution, _account_outcomes

    def rerun(ended: datetime) -> Execution:
        execution = Execution("e", "t", 1, "schedule", T0)
        execution.starts = [1, 3]
        execution.ends = [(2, "succeeded"), (4, "succeeded")]
        execution.first_end_time = ended
        return execution

    kill = T0 + 10 * SECOND
    ledger = Ledger({}, {"e": rerun(kill - COMMIT_WINDOW / 2)}, executor_kills=[kill])
    _account_outcomes(ledger)
    assert (ledger.reran_at_kill, ledger.reran_after_finish) == (1, [])
    ledger = Ledger({}, {"e": rerun(kill - 2 * COMMIT_WINDOW)}, executor_kills=[kill])
    _account_outcomes(ledger)
    assert ledger.reran_at_kill == 0 and len(ledger.reran_after_finish) == 1
