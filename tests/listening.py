"""Which local addresses a TCP port is listening on, read from ``/proc/net/tcp{,6}`` (Linux).

A test of a bind address must look at the socket itself: a request to 127.0.0.1 succeeds
whether the server bound 127.0.0.1 or 0.0.0.0.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

__all__ = ["listening_addresses"]

_LISTEN = "0A"


def _address(hex_address: str) -> str:
    raw = bytes.fromhex(hex_address)
    # /proc writes each 32-bit word in host (little-endian) order
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    return str(ipaddress.ip_address(words))


def listening_addresses(port: int) -> set[str]:
    """The addresses with a socket in LISTEN on ``port``, e.g. ``{"127.0.0.1"}``."""
    found: set[str] = set()
    for table in (Path("/proc/net/tcp"), Path("/proc/net/tcp6")):
        if not table.exists():
            continue
        for line in table.read_text().splitlines()[1:]:
            fields = line.split()
            local, state = fields[1], fields[3]
            address, _, hex_port = local.partition(":")
            if state == _LISTEN and int(hex_port, 16) == port:
                found.add(_address(address))
    return found
