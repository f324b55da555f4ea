"""Who may call a service: bind addresses and bearer tokens, shared by every listener.

A service with tokens configured wants ``Authorization: Bearer <token>`` on every data
call; probes (``/health``, ``/ready``, ``/metrics``) stay open. A listener on an address
other machines can reach refuses to start without tokens unless its ``..._INSECURE``
setting says that is intended. Each service names its own settings (``TASKSTREAM_API_*``
for the core, ``TASKSTREAM_MONITOR_*`` for the monitor), so :class:`Exposure` carries
them into the messages.

InsecureConfigurationError   tokens unreadable, or a public listener without tokens
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from taskstream.schemas.errors import TaskstreamError

__all__ = [
    "Exposure",
    "InsecureConfigurationError",
    "TokenChecker",
    "check_exposure",
    "is_loopback",
    "load_tokens",
]


class InsecureConfigurationError(TaskstreamError, RuntimeError):
    """A listener would be reachable from other machines without authentication."""


@dataclass(frozen=True, slots=True)
class Exposure:
    """One listener's security settings, and the names they have in the environment."""

    service: str
    """What listens, for messages: ``"the core API"``, ``"the monitor"``."""
    prefix: str
    """Its settings' prefix: ``TASKSTREAM_API`` gives ``TASKSTREAM_API_TOKENS`` etc."""
    host: str
    tokens: tuple[str, ...]
    insecure: bool


def load_tokens(inline: Sequence[str], file: Path | None, prefix: str) -> list[str]:
    """Tokens given inline plus those of ``file`` (one per line, ``#`` comments)."""
    tokens = [token.strip() for token in inline if token.strip()]
    if file is not None:
        try:
            lines = file.read_text().splitlines()
        except OSError as exc:
            raise InsecureConfigurationError(
                f"cannot read {prefix}_TOKENS_FILE {file}: {exc.strerror}"
            ) from exc
        tokens += [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    return tokens


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_exposure(exposure: Exposure) -> None:
    """Refuse an unauthenticated listener on an address other machines can reach."""
    if exposure.tokens or exposure.insecure or is_loopback(exposure.host):
        return
    p = exposure.prefix
    raise InsecureConfigurationError(
        f"{exposure.service} would listen on {exposure.host} without authentication. Set "
        f"{p}_TOKENS (or {p}_TOKENS_FILE), bind to 127.0.0.1 with {p}_HOST, or set "
        f"{p}_INSECURE=true if that is really intended"
    )


class TokenChecker:
    """Compares an ``Authorization`` header with the known tokens, in constant time."""

    def __init__(self, tokens: Sequence[str], prefix: str) -> None:
        self._tokens = [token.encode() for token in tokens]
        self._prefix = prefix

    @property
    def enabled(self) -> bool:
        return bool(self._tokens)

    def allows(self, authorization: bytes | str | None) -> bool:
        """True if no tokens are configured or the header carries one of them."""
        if not self._tokens:
            return True
        if isinstance(authorization, str):
            authorization = authorization.encode("latin-1", "replace")
        scheme, _, token = (authorization or b"").partition(b" ")
        token = token.strip()
        # every token is compared, so the time taken does not tell which one was close
        matches = [hmac.compare_digest(token, known) for known in self._tokens]
        return scheme.lower() == b"bearer" and any(matches)

    def refusal(self) -> dict[str, Any]:
        """The 401 body."""
        return {
            "error": "unauthorized",
            "message": "missing or invalid bearer token: send 'Authorization: Bearer <token>' "
            f"with a token from {self._prefix}_TOKENS",
        }

    CHALLENGE = 'Bearer realm="taskstream"'
    """The ``WWW-Authenticate`` header of a 401."""
