"""What :class:`~taskstream.Client` and :class:`~taskstream.AsyncClient` share: how they are
made (URLs, tokens, timeout, retries, an httpx transport and event hooks), one httpx client
per service, and :meth:`from_env`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Generic, Self, TypeVar, cast

import httpx

from taskstream.client.connection import DEFAULT_API_URL, DEFAULT_MONITOR_URL, Connection
from taskstream.client.operations import Service

__all__ = ["ClientBase"]

HttpT = TypeVar("HttpT", httpx.Client, httpx.AsyncClient)
TransportT = TypeVar("TransportT", httpx.BaseTransport, httpx.AsyncBaseTransport)
_SERVICES: tuple[Service, ...] = ("core", "monitor")


class ClientBase(Generic[HttpT, TransportT]):
    """The connection and the httpx clients; the subclass says which httpx client class."""

    HTTP: ClassVar[type[httpx.Client] | type[httpx.AsyncClient]]

    def __init__(
        self,
        api_url: str = DEFAULT_API_URL,
        *,
        token: str | None = None,
        monitor_url: str = DEFAULT_MONITOR_URL,
        monitor_token: str | None = None,
        timeout: float = 30.0,
        retries: int = 3,
        transport: TransportT | None = None,
        event_hooks: Mapping[str, list[Callable[..., Any]]] | None = None,
    ) -> None:
        self.connection = Connection(
            api_url, token, monitor_url, monitor_token, timeout=timeout, retries=retries
        )
        self._http: dict[Service, HttpT] = {
            service: cast(
                HttpT,
                self.HTTP(
                    base_url=self.connection.url(service),
                    headers=self.connection.headers(service),
                    timeout=timeout,
                    transport=transport,  # type: ignore[arg-type]
                    event_hooks=dict(event_hooks or {}),
                ),
            )
            for service in _SERVICES
        }

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **options: Any) -> Self:
        """A client of the URLs and tokens in the environment (:meth:`Connection.from_env`)."""
        c = Connection.from_env(environ)
        return cls(
            c.api_url, token=c.api_token, monitor_url=c.monitor_url,
            monitor_token=c.monitor_token, **options,
        )  # fmt: skip
