"""Where the services are and how to talk to them: URLs, tokens, timeout, retries."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = [
    "DEFAULT_API_URL",
    "DEFAULT_MONITOR_URL",
    "ENV_API_TOKEN",
    "ENV_API_URL",
    "ENV_MONITOR_TOKEN",
    "ENV_MONITOR_URL",
    "Connection",
]

DEFAULT_API_URL = "http://127.0.0.1:8080"
DEFAULT_MONITOR_URL = "http://127.0.0.1:6066"
ENV_API_URL = "TASKSTREAM_API_URL"
ENV_API_TOKEN = "TASKSTREAM_API_TOKEN"
ENV_MONITOR_URL = "TASKSTREAM_MONITOR_API_URL"
ENV_MONITOR_TOKEN = "TASKSTREAM_MONITOR_API_TOKEN"


def _base_url(url: str) -> str:
    return (url if "://" in url else f"http://{url}").rstrip("/")


@dataclass(frozen=True)
class Connection:
    """The core's and the monitor's URLs and bearer tokens; the timeout of one request;
    how many times a call is sent again after a 503 or a refused connection."""

    api_url: str = DEFAULT_API_URL
    api_token: str | None = field(default=None, repr=False)
    monitor_url: str = DEFAULT_MONITOR_URL
    monitor_token: str | None = field(default=None, repr=False)
    timeout: float = 30.0
    retries: int = 3

    def __post_init__(self) -> None:
        object.__setattr__(self, "api_url", _base_url(self.api_url))
        object.__setattr__(self, "monitor_url", _base_url(self.monitor_url))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Connection:
        """From ``TASKSTREAM_API_URL``, ``TASKSTREAM_API_TOKEN``,
        ``TASKSTREAM_MONITOR_API_URL`` and ``TASKSTREAM_MONITOR_API_TOKEN``."""
        env = os.environ if environ is None else environ
        return cls(
            api_url=env.get(ENV_API_URL) or DEFAULT_API_URL,
            api_token=env.get(ENV_API_TOKEN) or None,
            monitor_url=env.get(ENV_MONITOR_URL) or DEFAULT_MONITOR_URL,
            monitor_token=env.get(ENV_MONITOR_TOKEN) or None,
        )

    def headers(self, service: str) -> dict[str, str]:
        token = self.api_token if service == "core" else self.monitor_token
        headers = {"Accept": "application/json", "User-Agent": "taskstream-client"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return headers

    def url(self, service: str) -> str:
        return self.api_url if service == "core" else self.monitor_url
