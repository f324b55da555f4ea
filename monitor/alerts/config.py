"""Alert configuration: the rules file, and the channels the settings turn on.

The rules file (``TASKSTREAM_MONITOR_ALERT_RULES_FILE``) is TOML, or JSON when its name
ends in ``.json``: a list ``rules`` of rule tables. A bad file stops the monitor at
start-up with every bad field named::

    [[rules]]
    id = "payments-failing"
    kind = "consecutive_failures"
    threshold = 3
    tasks = ["payments-sync"]
    throttle = "30m"
"""

from __future__ import annotations

import json
import logging
import tomllib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from taskstream.monitor.alerts.channels import EmailChannel, Sender, TopicChannel, WebhookChannel
from taskstream.monitor.alerts.rules import Channel, Rule, RuleError, field_error, parse_rules
from taskstream.monitor.settings import MonitorSettings
from taskstream.schemas.errors import TaskstreamError

__all__ = ["AlertConfigError", "build_channels", "load_rules_file", "unconfigured"]

logger = logging.getLogger(__name__)


def load_rules_file(path: Path) -> list[Rule]:
    """The rules of a TOML or JSON file; raise :class:`RuleError` naming what is wrong."""
    where = f"alert rules file {path}"
    try:
        text = path.read_text()
    except OSError as exc:
        message = f"cannot read it: {exc.strerror}"
        raise RuleError([field_error("file", message, "io")], where) from None
    try:
        document: Any = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        message = f"not valid {'JSON' if path.suffix == '.json' else 'TOML'}: {exc}"
        raise RuleError([field_error("file", message, "syntax")], where) from None
    if not isinstance(document, dict) or set(document) - {"rules"}:
        message = "the file holds one list, 'rules' ([[rules]] tables in TOML)"
        raise RuleError([field_error("file", message)], where)
    rules = document.get("rules", [])
    if not isinstance(rules, list):
        raise RuleError([field_error("rules", "'rules' is a list of rules", "type")], where)
    return parse_rules(rules, where)


class AlertConfigError(TaskstreamError, ValueError):
    """The alert channels' settings do not fit together (said with how to fix them)."""


def build_channels(
    settings: MonitorSettings, publish: Callable[[bytes, bytes], Awaitable[None]]
) -> dict[Channel, Sender]:
    """The channels the settings configure; ``publish`` writes to the alerts topic.

    Raise :class:`AlertConfigError` for settings that cannot work (e-mail without
    recipients, a user without a password, an unreadable password file).
    """
    channels: dict[Channel, Sender] = {}
    if settings.monitor_alert_webhook_url:
        channels[Channel.WEBHOOK] = WebhookChannel(
            settings.monitor_alert_webhook_url,
            timeout=settings.monitor_alert_webhook_timeout.total_seconds(),
            attempts=settings.monitor_alert_webhook_attempts,
        )
    if settings.monitor_alert_smtp_host:
        channels[Channel.EMAIL] = _email(settings, settings.monitor_alert_smtp_host)
    if settings.monitor_alert_topic_enabled:
        channels[Channel.TOPIC] = TopicChannel(publish)
    names = ", ".join(c.value for c in channels) or "none (alerts only in the API)"
    logger.info("alert channels: %s", names)
    return channels


def _email(settings: MonitorSettings, host: str) -> EmailChannel:
    try:
        password = settings.smtp_password()
    except OSError as exc:
        raise AlertConfigError(
            f"cannot read TASKSTREAM_MONITOR_ALERT_SMTP_PASSWORD_FILE: {exc.strerror}"
        ) from None
    try:
        return EmailChannel(
            host=host,
            port=settings.monitor_alert_smtp_port,
            sender=settings.monitor_alert_email_from,
            to=settings.monitor_alert_email_to,
            timeout=settings.monitor_alert_smtp_timeout.total_seconds(),
            attempts=settings.monitor_alert_smtp_attempts,
            starttls=settings.monitor_alert_smtp_starttls,
            username=settings.monitor_alert_smtp_username,
            password=password,
        )
    except ValueError as exc:
        raise AlertConfigError(str(exc)) from None


def unconfigured(rules: list[Rule], channels: dict[Channel, Sender]) -> list[str]:
    """A warning per rule that names a channel the settings do not configure."""
    return [
        f"alert rule {rule.id!r} names channel {channel.value!r}, which is not configured"
        for rule in rules
        for channel in rule.channels
        if channel not in channels
    ]
