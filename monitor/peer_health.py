"""The health of every service, as the dashboard shows it: the monitor's own board and the
``/health`` of the core and the executors, asked with a short timeout.

:func:`ask_peers` asks each configured service's ``/health`` at once (``GET``, no
credentials: ``/health`` is open on every service, and the monitor's tokens are never
sent elsewhere); a service that does not answer in time, refuses the connection or
answers something that is not a health answer is ``unreachable``, with the reason. The
whole round is bounded by the timeout, so a hanging service never holds up the page.

:func:`health_report` joins them into one answer: every service with its state and
components, and ``problems``: each service or component that is ``failed``,
``unavailable`` or ``unreachable`` (the dashboard's red banner), and ``waiting``: those
``starting`` or ``recovering``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from taskstream.infra.health import HealthSnapshot, State

__all__ = ["UNREACHABLE", "Peer", "PeerHealth", "ask_peers", "health_report"]

UNREACHABLE = "unreachable"
"""The state of a service whose ``/health`` did not answer (not one of :class:`State`)."""

_PROBLEMS = frozenset({State.FAILED.value, State.UNAVAILABLE.value, UNREACHABLE})
_WAITING = frozenset({State.STARTING.value, State.RECOVERING.value})
_KNOWN_STATES = frozenset(state.value for state in State)


@dataclass(frozen=True, slots=True)
class Peer:
    """Another service whose health the monitor shows: ``core`` or ``executor``."""

    service: str
    url: str
    """Its base URL (``http://host:port``); ``/health`` is appended."""


@dataclass(frozen=True, slots=True)
class PeerHealth:
    peer: Peer
    body: dict[str, Any] | None
    """Its ``/health`` answer (200 or 503), or None when it gave none."""
    reason: str | None = None
    """Why there is no answer."""

    def as_json(self) -> dict[str, Any]:
        base = {"service": self.peer.service, "url": self.peer.url}
        if self.body is None:
            return {**base, "state": UNREACHABLE, "reason": self.reason, "components": {}}
        components = self.body.get("components")
        return {
            **base,
            "state": self.body["state"],
            **({"reason": self.body["message"]} if "message" in self.body else {}),
            "components": components if isinstance(components, dict) else {},
        }


def _health_body(response: httpx.Response) -> dict[str, Any] | str:
    """The answer if it is a health answer, else why not."""
    if response.status_code not in (200, 503):
        return f"/health answered HTTP {response.status_code}"
    try:
        body = response.json()
    except ValueError:
        return f"/health answered HTTP {response.status_code} that is not JSON"
    if not isinstance(body, dict) or body.get("state") not in _KNOWN_STATES:
        return f"/health answered HTTP {response.status_code} without a health state"
    return body


async def _ask(client: httpx.AsyncClient, peer: Peer, timeout: float) -> PeerHealth:
    url = f"{peer.url}/health"
    try:
        async with asyncio.timeout(timeout):
            response = await client.get(url)
    except TimeoutError:
        return PeerHealth(peer, None, f"no answer from {url} within {timeout:g}s")
    except httpx.HTTPError as exc:
        return PeerHealth(peer, None, f"{url}: {type(exc).__name__}: {exc or 'no answer'}")
    found = _health_body(response)
    if isinstance(found, str):
        return PeerHealth(peer, None, f"{url}: {found}")
    return PeerHealth(peer, found)


async def ask_peers(peers: Sequence[Peer], timeout: float) -> list[PeerHealth]:
    """Every peer's ``/health``, asked at once; the whole takes at most about ``timeout``."""
    if not peers:
        return []
    async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as client:
        return list(await asyncio.gather(*(_ask(client, peer, timeout) for peer in peers)))


def _findings(service: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    problems, waiting = [], []
    name = service["service"]
    if service["state"] == UNREACHABLE:
        problems.append(
            {"service": name, "component": None, "state": UNREACHABLE, "reason": service["reason"]}
        )
    for component, status in service["components"].items():
        state = status.get("state") if isinstance(status, dict) else None
        finding = {
            "service": name,
            "component": component,
            "state": state,
            "reason": status.get("reason") if isinstance(status, dict) else None,
        }
        if state in _PROBLEMS:
            problems.append(finding)
        elif state in _WAITING:
            waiting.append(finding)
    return problems, waiting


def health_report(
    own: HealthSnapshot, peers: Sequence[PeerHealth], now: datetime
) -> dict[str, Any]:
    """What ``GET /api/monitor/health`` answers: each service, and what is wrong."""
    mine = own.as_json()
    services = [
        {
            "service": own.service,
            "url": None,
            "state": mine["state"],
            "components": mine["components"],
        },
        *(peer.as_json() for peer in peers),
    ]
    problems: list[dict[str, Any]] = []
    waiting: list[dict[str, Any]] = []
    for service in services:
        found, pending = _findings(service)
        problems += found
        waiting += pending
    state = "failing" if problems else "waiting" if waiting else "ok"
    return {
        "generated_at": now.isoformat(),
        "state": state,
        "services": services,
        "problems": problems,
        "waiting": waiting,
    }
