"""The alert book: the rules, the alerts' states and recent notices, kept in faust tables.

:class:`AlertBook` joins the pure parts (rules, facts, engine) to storage and delivery.
It is called by the agents (a batch of task events, a heartbeat), by the timer
(time-based conditions) and by the web API (rules), all on the worker's event loop, so
no two calls interleave: none awaits between reading a state and writing it.

Tables (changelogged, so they survive a restart and nothing fires twice):
``alert-rules`` (rule id -> rule JSON, the rules made through the API),
``alert-state`` (alert key -> :class:`AlertState`), ``alert-recent`` (a ring of the
last notices), ``alert-task-facts`` (task id -> :class:`TaskFacts`). The rules file's
rules are not stored: the file is read at every start.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from prometheus_client import Gauge

from taskstream.monitor.alerts.channels import Dispatcher
from taskstream.monitor.alerts.engine import (
    AlertState,
    Transition,
    evaluate_executor,
    evaluate_task,
    expired,
)
from taskstream.monitor.alerts.facts import TaskFacts, fold
from taskstream.monitor.alerts.quarantine import QuarantinedTasks
from taskstream.monitor.alerts.rules import (
    ExecutorLostRule,
    Rule,
    RuleError,
    TaskRule,
    parse_rule,
    rule_as_dict,
)
from taskstream.monitor.task_faults import TaskFaults
from taskstream.monitor.workers import WorkerBook
from taskstream.schemas import AlertNotification, AlertStatus, AlertSubject, Event, recorded
from taskstream.schemas.errors import TaskstreamError

__all__ = ["AlertBook", "ReadOnlyRuleError"]

logger = logging.getLogger(__name__)

_NEXT = "next"


class ReadOnlyRuleError(TaskstreamError):
    """The rule comes from the rules file: change the file, not the API."""


class _States(Mapping[str, AlertState]):
    def __init__(self, table: Any) -> None:
        self._table = table

    def __getitem__(self, key: str) -> AlertState:
        raw = self._table[key]
        return AlertState.model_validate(raw)

    def get(self, key: str, default: Any = None) -> Any:
        raw = self._table.get(key)
        return default if raw is None else AlertState.model_validate(raw)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._table.keys()))

    def __len__(self) -> int:
        return len(self._table)


class AlertBook:
    def __init__(
        self,
        *,
        file_rules: list[Rule],
        rules_table: Any,
        states_table: Any,
        recent_table: Any,
        facts_table: Any,
        workers: WorkerBook,
        dispatcher: Dispatcher,
        active: Gauge,
        recent_size: int,
        faults: TaskFaults | None = None,
        quarantined: QuarantinedTasks | None = None,
    ) -> None:
        """``faults``: where an exception raised for one task is logged and counted (the
        task's facts or rules are skipped and the others go on); ``quarantined``: told of
        every task whose facts changed."""
        self.file_rules = {rule.id: rule for rule in file_rules}
        self._rules_table = rules_table
        self._states_table = states_table
        self._states = _States(states_table)
        self._recent = recent_table
        self._facts = facts_table
        self.workers = workers
        self.dispatcher = dispatcher
        self._active = active
        self._recent_size = recent_size
        self._parsed: dict[str, tuple[Any, Rule | None]] = {}
        self._facts_parsed: dict[str, tuple[Any, TaskFacts]] = {}
        self._faults = faults
        self.quarantined = quarantined

    def _fault(self, stage: str, task_id: str, exc: Exception, event_id: str | None = None) -> None:
        if self._faults is None:
            logger.exception("skipping task %s in %s", task_id, stage)
        else:
            self._faults.record(stage, task_id, exc, event_id)

    # -- rules ---------------------------------------------------------------------------

    def api_rules(self) -> dict[str, Rule]:
        rules = {}
        for rule_id, raw in list(self._rules_table.items()):
            cached = self._parsed.get(rule_id)
            if cached is None or cached[0] != raw:
                try:
                    cached = (raw, parse_rule(raw))
                except RuleError as exc:
                    logger.error("ignoring stored alert rule %s: %s", rule_id, exc)
                    cached = (raw, None)
                self._parsed[rule_id] = cached
            if cached[1] is not None:
                rules[rule_id] = cached[1]
        return rules

    def rules(self) -> dict[str, Rule]:
        """Every rule by id; the file's win over stored ones of the same id."""
        return {**self.api_rules(), **self.file_rules}

    def rule_listing(self) -> list[dict[str, Any]]:
        api = self.api_rules()
        return [
            {
                **rule_as_dict(rule),
                "source": "file" if rule_id in self.file_rules else "api",
                "shadows_api_rule": rule_id in self.file_rules and rule_id in api,
            }
            for rule_id, rule in sorted(self.rules().items())
        ]

    def put_rule(self, rule: Rule) -> bool:
        """Create or replace an API rule; True if it was new. File rules are read-only."""
        if rule.id in self.file_rules:
            raise ReadOnlyRuleError(rule.id)
        created = rule.id not in self._rules_table
        self._rules_table[rule.id] = rule_as_dict(rule)
        return created

    def delete_rule(self, rule_id: str) -> bool:
        """Delete an API rule and forget its alerts (no resolved notices); False if unknown."""
        if rule_id in self.file_rules:
            raise ReadOnlyRuleError(rule_id)
        if rule_id not in self._rules_table:
            return False
        del self._rules_table[rule_id]
        for key in [k for k in self._states if k.startswith(f"{rule_id}|")]:
            del self._states_table[key]
        self._set_active()
        return True

    # -- evaluation ----------------------------------------------------------------------

    def on_task(self, facts: TaskFacts, now: datetime) -> None:
        """A task's facts changed: evaluate the task rules for it."""
        rules = [r for r in self.rules().values() if isinstance(r, TaskRule)]
        if rules:
            try:
                changes = evaluate_task(rules, facts, self._states, now)
            except Exception as exc:  # one task's rules: the others are evaluated
                self._fault("alert_rules", facts.task_id, exc)
                return
            self._apply(changes)

    def on_executor(self, executor_id: str, now: datetime) -> None:
        """An executor heartbeated or left: evaluate the executor rules for it."""
        rules = [r for r in self.rules().values() if isinstance(r, ExecutorLostRule)]
        if rules:
            heartbeat = self.workers.get(executor_id)
            self._apply(
                evaluate_executor(
                    rules, executor_id, heartbeat, self._states, now, self.workers.timeout
                )
            )

    def check(self, now: datetime) -> int:
        """Evaluate every rule for every subject (the timer); return the changes made."""
        rules = self.rules()
        task_rules = [r for r in rules.values() if isinstance(r, TaskRule) and r.enabled]
        executor_rules = [r for r in rules.values() if isinstance(r, ExecutorLostRule)]
        changes: list[Transition] = []
        if task_rules:
            for task_id, raw in list(self._facts.items()):
                try:
                    facts = self._task_facts(task_id, raw)
                    changes += evaluate_task(task_rules, facts, self._states, now)
                except Exception as exc:  # one task's rules: the others are evaluated
                    self._fault("alert_rules", task_id, exc)
        if executor_rules:
            heartbeats = self.workers.all()
            subjects = set(heartbeats) | {
                state.subject
                for state in self._states.values()
                if state.subject_type is AlertSubject.EXECUTOR
            }
            for executor_id in sorted(subjects):
                changes += evaluate_executor(
                    executor_rules,
                    executor_id,
                    heartbeats.get(executor_id),
                    self._states,
                    now,
                    self.workers.timeout,
                )
        self._apply(changes)
        for key, state in list(self._states.items()):
            if expired(state, rules.get(state.rule_id), now):
                del self._states_table[key]
        self._set_active()
        return len(changes)

    def fold_events(self, events: Sequence[Event], now: datetime, *, evaluate: bool) -> int:
        """Fold a batch of ``task-events`` into the tasks' facts; return the tasks written.

        Each changed task's facts are written once, at the end (on faust tables, with
        faust's current event in the events' partition); with ``evaluate``, the task rules
        are evaluated for every change of a task's facts, in order, as if the events had
        come one by one. A duplicate (by event id) changes nothing.
        """
        working: dict[str, TaskFacts | None] = {}
        changed: dict[str, TaskFacts] = {}
        for event in events:
            task_id = event.task_id
            try:
                facts = working[task_id] if task_id in working else self._stored_facts(task_id)
                after = fold(facts, event)
            except Exception as exc:  # this task's facts skip the event; the others go on
                self._fault("alert_facts", task_id, exc, event.id)
                continue
            if after is None:
                working[task_id] = facts
                continue
            working[task_id] = changed[task_id] = after
            if evaluate:
                self.on_task(after, now)
        for task_id, facts in changed.items():
            raw = facts.to_json()
            self._facts[task_id] = raw
            self._facts_parsed[task_id] = (raw, facts)
            if self.quarantined is not None:
                self.quarantined.note(facts)
        return len(changed)

    def _stored_facts(self, task_id: str) -> TaskFacts | None:
        raw = self._facts.get(task_id)
        return None if raw is None else self._task_facts(task_id, raw)

    def _task_facts(self, task_id: str, raw: Any) -> TaskFacts:
        """The parsed facts of a table value; parsed again only when the value changed."""
        cached = self._facts_parsed.get(task_id)
        if cached is not None and cached[0] is raw:  # the cache holds raw: its id is not reused
            return cached[1]
        with recorded():
            facts = TaskFacts.model_validate(raw)
        self._facts_parsed[task_id] = (raw, facts)
        return facts

    def _apply(self, changes: list[Transition]) -> None:
        if not changes:
            return
        rules = self.rules()
        for change in changes:
            self._states_table[change.key] = change.state.to_json()
            notice = change.notice
            if notice is None:
                continue
            self._remember(notice)
            rule = rules.get(notice.rule_id)
            if rule is not None:
                self.dispatcher.submit(notice, rule.channels)
            logger.warning("alert %s %s: %s", notice.key, notice.status.value, notice.summary)
        self._set_active()

    def _set_active(self) -> None:
        self._active.set(sum(1 for s in self._states.values() if s.status is AlertStatus.FIRING))

    # -- what the API shows --------------------------------------------------------------

    def _remember(self, notice: AlertNotification) -> None:
        sequence = int(self._recent.get(_NEXT) or 0)
        self._recent[str(sequence % self._recent_size)] = {
            "sequence": sequence,
            "notice": notice.model_dump(mode="json"),
        }
        self._recent[_NEXT] = sequence + 1

    def recent(self) -> list[dict[str, Any]]:
        """The last notices, newest first."""
        entries = [v for k, v in list(self._recent.items()) if k != _NEXT and isinstance(v, dict)]
        entries.sort(key=lambda entry: entry["sequence"], reverse=True)
        return [entry["notice"] for entry in entries[: self._recent_size]]

    def active(self) -> list[dict[str, Any]]:
        """The alerts firing now, the latest first."""
        firing = [s for s in self._states.values() if s.status is AlertStatus.FIRING]
        firing.sort(key=lambda s: s.started_at, reverse=True)
        return [
            {key: value for key, value in state.to_json().items() if key not in ("resolved_at",)}
            for state in firing
        ]
