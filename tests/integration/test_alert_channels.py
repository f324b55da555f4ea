"""The alert channels against real receivers started here: an HTTP server, an SMTP server
(aiosmtpd, with AUTH), and what the dispatcher counts."""

from __future__ import annotations

import asyncio
import logging
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter

from taskstream.infra.processes import free_port
from taskstream.monitor.alerts.channels import (
    ChannelError,
    Dispatcher,
    EmailChannel,
    WebhookChannel,
)
from taskstream.monitor.alerts.rules import Channel
from taskstream.schemas import AlertNotification, AlertSeverity, AlertStatus, AlertSubject
from tests.alert_receivers import Mailbox, Webhook

PASSWORD = "s3cret-Pa55word"


def notice(status: AlertStatus = AlertStatus.FIRING) -> AlertNotification:
    now = datetime.now(UTC)
    return AlertNotification(
        id="n-1",
        key="fails|task-1",
        rule_id="fails",
        kind="consecutive_failures",
        status=status,
        severity=AlertSeverity.CRITICAL,
        subject_type=AlertSubject.TASK,
        subject="task-1",
        summary="task job: 3 failed attempts in a row",
        details={"count": 3},
        started_at=now,
        sent_at=now,
    )


def test_the_webhook_is_retried_on_503_and_receives_the_notice_once() -> None:
    webhook = Webhook(fail_first=2).start()
    try:
        channel = WebhookChannel(webhook.url, timeout=5, attempts=3)
        asyncio.run(_send_and_close(channel, notice()))
        assert webhook.requests == 3
        [received] = webhook.notices()
        assert received.key == "fails|task-1" and received.details == {"count": 3}
    finally:
        webhook.stop()


async def _send_and_close(channel: WebhookChannel, item: AlertNotification) -> None:
    try:
        await channel.send(item)
    finally:
        await channel.close()


class _Refusing(BaseHTTPRequestHandler):
    calls = 0

    def do_POST(self) -> None:
        type(self).calls += 1
        self.send_response(400)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_a_4xx_is_not_retried_and_the_url_token_is_not_told() -> None:
    port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), _Refusing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        channel = WebhookChannel(
            f"http://user:pw@127.0.0.1:{port}/hook?token=TOPSECRET", timeout=5, attempts=3
        )
        with pytest.raises(ChannelError, match="refused the notice with 400") as caught:
            asyncio.run(_send_and_close(channel, notice()))
        assert _Refusing.calls == 1
        assert "TOPSECRET" not in str(caught.value) and "pw@" not in str(caught.value)
    finally:
        server.shutdown()
        server.server_close()


def test_email_with_auth_reaches_the_smtp_server_and_the_password_is_never_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    mailbox = Mailbox(credentials=("alerts", PASSWORD)).start()
    try:
        channel = EmailChannel(
            host="127.0.0.1",
            port=mailbox.port,
            sender="taskstream@example.com",
            to=["ops@example.com", "oncall@example.com"],
            timeout=5,
            attempts=2,
            username="alerts",
            password=PASSWORD,
        )
        assert PASSWORD not in repr(channel)
        with caplog.at_level(logging.DEBUG):
            asyncio.run(channel.send(notice(AlertStatus.RESOLVED)))
            wrong = EmailChannel(
                host="127.0.0.1",
                port=mailbox.port,
                sender="taskstream@example.com",
                to=["ops@example.com"],
                timeout=5,
                attempts=3,
                username="alerts",
                password="wrong-" + PASSWORD,
            )
            with pytest.raises(ChannelError, match="SMTPAuthenticationError") as caught:
                asyncio.run(wrong.send(notice()))
        # smtplib tries PLAIN, then LOGIN, in one conversation; a refused login is not
        # tried again (three attempts would make six)
        assert mailbox.logins[0] == ("alerts", True)
        assert mailbox.logins[1:] in ([("alerts", False)], [("alerts", False)] * 2)
        assert PASSWORD not in caplog.text and PASSWORD not in str(caught.value)
        [message] = mailbox.messages
        assert message["Subject"] == "[taskstream RESOLVED] task job: 3 failed attempts in a row"
        assert message["To"] == "ops@example.com, oncall@example.com"
        assert message["X-Taskstream-Alert-Key"] == "fails|task-1"
        [received] = mailbox.notices()
        assert received.status is AlertStatus.RESOLVED
    finally:
        mailbox.stop()


def test_the_dispatcher_counts_firing_deliveries_and_failures() -> None:
    registry = CollectorRegistry()
    fired = Counter("fired", "", ["rule", "channel"], registry=registry)
    failed = Counter("failed", "", ["channel"], registry=registry)
    webhook = Webhook().start()
    unreachable = EmailChannel(
        host="127.0.0.1",
        port=free_port(),
        sender="a@b",
        to=["c@d"],
        timeout=1,
        attempts=2,
    )

    async def scenario() -> None:
        channel = WebhookChannel(webhook.url, timeout=5, attempts=1)
        dispatcher = Dispatcher(
            {Channel.WEBHOOK: channel, Channel.EMAIL: unreachable}, fired=fired, failed=failed
        )
        await dispatcher.deliver(notice(), [Channel.WEBHOOK, Channel.EMAIL, Channel.TOPIC])
        await dispatcher.deliver(notice(AlertStatus.RESOLVED), [Channel.WEBHOOK])
        await channel.close()

    try:
        asyncio.run(scenario())
    finally:
        webhook.stop()
    assert registry.get_sample_value("fired_total", {"rule": "fails", "channel": "webhook"}) == 1
    assert registry.get_sample_value("fired_total", {"rule": "fails", "channel": "email"}) is None
    assert registry.get_sample_value("failed_total", {"channel": "email"}) == 1
    assert [n.status for n in webhook.notices()] == [AlertStatus.FIRING, AlertStatus.RESOLVED]
