"""Alerts: rules over the monitor's view of tasks and executors, and their notices.

- :mod:`~monitor.alerts.rules`: the rule models (validated, one per kind)
- :mod:`~monitor.alerts.facts`: what the rules know of a task, folded from task-events
- :mod:`~monitor.alerts.conditions`: whether a rule's condition holds (pure)
- :mod:`~monitor.alerts.engine`: dedup, throttle, resolve: conditions to notices (pure)
- :mod:`~monitor.alerts.channels`: webhook, e-mail (SMTP) and the alerts topic
- :mod:`~monitor.alerts.config`: the rules file and the channels the settings turn on
- :mod:`~monitor.alerts.book`: the tables, and the calls that join the parts
- :mod:`~monitor.alerts.install`: :func:`install_alerts`, the one entry point
"""

from monitor.alerts.install import install_alerts
from monitor.alerts.rules import (
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
