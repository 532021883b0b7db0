"""Opt-in loopback host candidates for aioice (tests and single-host development only).

aioice never gathers 127.0.0.1 (``aioice.ice.get_host_addresses`` skips it), so a browser and the
server on one host can only pair over a non-loopback interface address. Inside a network namespace
whose only interface is ``lo`` (how the browser tests run) they would not pair at all. With
``webrtc_allow_loopback`` the gateway wraps that one function so 127.0.0.1 is gathered too.

Why a process-wide wrap: aioice looks the function up in its module on every gather and offers no
per-connection hook. The wrap only adds an address; it is installed once, only when a gateway is
configured for loopback, and never by default, so production gathering is untouched.
"""

from __future__ import annotations

from typing import Protocol

import aioice.ice

LOOPBACK_V4 = "127.0.0.1"

class _HostAddresses(Protocol):
    """aioice's ``get_host_addresses(use_ipv4, use_ipv6)``."""

    def __call__(self, use_ipv4: bool, use_ipv6: bool) -> list[str]: ...


def with_loopback(gather: _HostAddresses) -> _HostAddresses:
    """``gather`` plus 127.0.0.1 (first, when IPv4 is used and it is missing)."""

    def host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        addresses = list(gather(use_ipv4, use_ipv6))
        if use_ipv4 and LOOPBACK_V4 not in addresses:
            addresses.insert(0, LOOPBACK_V4)
        return addresses

    host_addresses.facestream_loopback = True  # type: ignore[attr-defined]
    return host_addresses


def install_loopback_host_candidates() -> None:
    """Make every aioice connection in this process gather 127.0.0.1 as well; idempotent."""
    current = aioice.ice.get_host_addresses
    if not getattr(current, "facestream_loopback", False):
        aioice.ice.get_host_addresses = with_loopback(current)


def loopback_host_candidates_installed() -> bool:
    return bool(getattr(aioice.ice.get_host_addresses, "facestream_loopback", False))
