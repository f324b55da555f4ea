"""Alerts: rules over the monitor's view of tasks and executors, and their notices.

- :mod:`~taskstream.monitor.alerts.rules`: the rule models (validated, one per kind)
- :mod:`~taskstream.monitor.alerts.facts`: what the rules know of a task, folded from task-events
- :mod:`~taskstream.monitor.alerts.conditions`: whether a rule's condition holds (pure)
- :mod:`~taskstream.monitor.alerts.engine`: dedup, throttle, resolve: conditions to notices (pure)
- :mod:`~taskstream.monitor.alerts.channels`: webhook, e-mail (SMTP) and the alerts topic
- :mod:`~taskstream.monitor.alerts.config`: the rules file and the channels the settings turn on
- :mod:`~taskstream.monitor.alerts.book`: the tables, and the calls that join the parts
- :mod:`~taskstream.monitor.alerts.install`: :func:`install_alerts`, the one entry point
"""

from taskstream.monitor.alerts.install import install_alerts
from taskstream.monitor.alerts.rules import (
    Channel,
    ConsecutiveFailuresRule,
    DeadLetterRule,
    ExecutorLostRule,
    FailureRateRule,
    LongRunRule,
    MissedScheduleRule,
    Rule,
    RuleError,
    parse_rule,
    parse_rules,
)

__all__ = [
    "Channel",
    "ConsecutiveFailuresRule",
    "DeadLetterRule",
    "ExecutorLostRule",
    "FailureRateRule",
    "LongRunRule",
    "MissedScheduleRule",
    "Rule",
    "RuleError",
    "install_alerts",
    "parse_rule",
    "parse_rules",
]
