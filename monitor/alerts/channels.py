"""Where notices go: a webhook, e-mail over SMTP, and the ``alerts`` topic.

Each channel sends one :class:`~taskstream.schemas.AlertNotification` and raises
:class:`ChannelError` when it could not, after its retries (tenacity: exponential wait).
The :class:`Dispatcher` sends each notice through the channels its rule names, in the
order the notices were made, one at a time, and counts what was sent and what failed.
Delivery is at most once per channel: a notice that failed every try is logged and
counted, not kept.

Secrets stay out of logs: the SMTP password is never formatted, and a webhook URL is
logged as its scheme and host only (its path or query may hold a token).
"""

from __future__ import annotations

import asyncio
import json
import logging
import smtplib
import ssl
from collections.abc import Awaitable, Callable, Iterable, Mapping
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Protocol
from urllib.parse import urlsplit

import httpx
from prometheus_client import Counter
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from taskstream.monitor.alerts.rules import Channel
from taskstream.schemas import AlertNotification, AlertStatus
from taskstream.schemas.errors import TaskstreamError

__all__ = [
    "ChannelError",
    "Dispatcher",
    "EmailChannel",
    "Sender",
    "TopicChannel",
    "WebhookChannel",
    "email_message",
]

logger = logging.getLogger(__name__)

_QUEUE_SIZE = 10_000


class ChannelError(TaskstreamError):
    """A notice could not be delivered through one channel."""


class _Retryable(ChannelError):
    pass


class Sender(Protocol):
    async def send(self, notice: AlertNotification) -> None: ...


def _wait() -> wait_exponential:
    return wait_exponential(multiplier=0.2, min=0.2, max=5)


class WebhookChannel:
    """POSTs the notice as JSON; 5xx, 429 and transport errors are tried again."""

    def __init__(self, url: str, *, timeout: float, attempts: int) -> None:
        self.url = url
        self.attempts = attempts
        self._client = httpx.AsyncClient(timeout=timeout, follow_redirects=False)
        parts = urlsplit(url)
        self.where = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"

    async def send(self, notice: AlertNotification) -> None:
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.attempts),
            wait=_wait(),
            retry=retry_if_exception(lambda exc: isinstance(exc, _Retryable)),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                await self._post(notice)

    async def _post(self, notice: AlertNotification) -> None:
        try:
            response = await self._client.post(
                self.url,
                content=notice.encode(),
                headers={
                    "Content-Type": "application/json",
                    "User-Agent": "taskstream-monitor",
                    "X-Taskstream-Alert-Key": notice.key,
                    "X-Taskstream-Alert-Status": notice.status.value,
                },
            )
        except httpx.HTTPError as exc:
            raise _Retryable(f"webhook {self.where}: {type(exc).__name__}") from None
        status = response.status_code
        if status >= 500 or status == 429:
            raise _Retryable(f"webhook {self.where} answered {status}")
        if status >= 400:
            raise ChannelError(
                f"webhook {self.where} refused the notice with {status}: check the receiver "
                "and TASKSTREAM_MONITOR_ALERT_WEBHOOK_URL (a 4xx is not retried)"
            )

    async def close(self) -> None:
        await self._client.aclose()


def email_message(notice: AlertNotification, sender: str, to: list[str]) -> EmailMessage:
    """The e-mail of a notice: the summary as subject, the JSON document as body."""
    message = EmailMessage()
    label = "RESOLVED" if notice.status is AlertStatus.RESOLVED else notice.severity.value.upper()
    subject = f"[taskstream {label}] {notice.summary}"
    message["Subject"] = subject if len(subject) <= 200 else subject[:197] + "..."
    message["From"] = sender
    message["To"] = ", ".join(to)
    message["Message-ID"] = make_msgid(domain="taskstream")
    message["X-Taskstream-Alert-Key"] = notice.key
    message["X-Taskstream-Alert-Status"] = notice.status.value
    document = json.dumps(notice.model_dump(mode="json"), indent=2, sort_keys=True)
    message.set_content(f"{notice.summary}\n\n{document}\n")
    return message


def _retry_smtp(exc: BaseException) -> bool:
    permanent = (smtplib.SMTPAuthenticationError, smtplib.SMTPNotSupportedError)
    return isinstance(exc, OSError) and not isinstance(exc, permanent)


class EmailChannel:
    """Sends the notice over SMTP (stdlib ``smtplib`` on a thread), STARTTLS and AUTH optional."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        sender: str,
        to: list[str],
        timeout: float,
        attempts: int,
        starttls: bool = False,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        if not to:
            raise ValueError("e-mail alerts need recipients: set TASKSTREAM_MONITOR_ALERT_EMAIL_TO")
        if username is not None and password is None:
            raise ValueError(
                "TASKSTREAM_MONITOR_ALERT_SMTP_USERNAME is set without a password: set "
                "TASKSTREAM_MONITOR_ALERT_SMTP_PASSWORD or _PASSWORD_FILE"
            )
        self.host, self.port, self.sender, self.to = host, port, sender, list(to)
        self.timeout, self.attempts, self.starttls = timeout, attempts, starttls
        self._username = username
        self._password = password

    def __repr__(self) -> str:  # never the password
        return f"EmailChannel({self.host}:{self.port}, to={self.to})"

    async def send(self, notice: AlertNotification) -> None:
        message = email_message(notice, self.sender, self.to)
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.attempts),
            wait=_wait(),
            retry=retry_if_exception(_retry_smtp),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    await asyncio.to_thread(self._send, message)
        except OSError as exc:
            raise ChannelError(
                f"SMTP {self.host}:{self.port}: {type(exc).__name__}: {exc}; check that the "
                "server runs there (TASKSTREAM_MONITOR_ALERT_SMTP_HOST, _PORT) and the login "
                "(_USERNAME, _PASSWORD)"
            ) from None

    def _send(self, message: EmailMessage) -> None:
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
            smtp.ehlo()
            if self.starttls:
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
            if self._username is not None and self._password is not None:
                smtp.login(self._username, self._password)
            smtp.send_message(message)


class TopicChannel:
    """Writes the notice to the ``alerts`` topic: key = rule id, value = its JSON."""

    def __init__(self, publish: Callable[[bytes, bytes], Awaitable[None]]) -> None:
        self._publish = publish

    async def send(self, notice: AlertNotification) -> None:
        try:
            await self._publish(notice.rule_id.encode(), notice.encode())
        except Exception as exc:
            raise ChannelError(
                f"alerts topic: {exc}; the monitor's /health says whether Kafka is reachable"
            ) from exc


class Dispatcher:
    """A queue of notices, sent in order by :meth:`run` through each notice's channels."""

    def __init__(
        self, channels: Mapping[Channel, Sender], *, fired: Counter, failed: Counter
    ) -> None:
        self.channels = dict(channels)
        self._fired = fired
        self._failed = failed
        self._queue: asyncio.Queue[tuple[AlertNotification, tuple[Channel, ...]]] = asyncio.Queue(
            _QUEUE_SIZE
        )

    def submit(self, notice: AlertNotification, channels: Iterable[Channel]) -> None:
        chosen = tuple(c for c in channels if c in self.channels)
        try:
            self._queue.put_nowait((notice, chosen))
        except asyncio.QueueFull:
            logger.error("alert queue full: dropping notice %s of %s", notice.id, notice.key)
            for channel in chosen:
                self._failed.labels(channel.value).inc()

    async def run(self) -> None:
        """Send queued notices until cancelled."""
        while True:
            notice, channels = await self._queue.get()
            try:
                await self.deliver(notice, channels)
            finally:
                self._queue.task_done()

    async def deliver(self, notice: AlertNotification, channels: Iterable[Channel]) -> None:
        chosen = [c for c in channels if c in self.channels]
        await asyncio.gather(*(self._one(channel, notice) for channel in chosen))

    async def _one(self, channel: Channel, notice: AlertNotification) -> None:
        try:
            await self.channels[channel].send(notice)
        except Exception as exc:
            self._failed.labels(channel.value).inc()
            logger.error(
                "alert %s (%s) not delivered by %s: %s",
                notice.key,
                notice.status.value,
                channel.value,
                exc,
            )
            return
        if notice.status is AlertStatus.FIRING:
            self._fired.labels(notice.rule_id, channel.value).inc()
        logger.info("alert %s %s sent by %s", notice.key, notice.status.value, channel.value)
