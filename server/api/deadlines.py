"""Connection-level deadlines against slowloris: a request head must arrive complete and in time.

Why not in ASGI middleware: the application is only called once a request's headers are complete,
so a client that opens connections and dribbles header bytes (or sends none) is invisible to it.
uvicorn's ``timeout_keep_alive`` starts only *after* a response and is cancelled by any byte
received, so it does not cover a head that never finishes either. The protocol classes here
subclass uvicorn's own HTTP protocol (httptools when installed, else h11) and add, at the socket
level:

* a **head deadline**: armed when a connection opens and again after every response (the next
  request on a keep-alive connection); disarmed when the parser has a complete head (a request
  cycle exists) or the connection was upgraded to a WebSocket. When it fires the connection gets
  ``408`` and is closed; nothing was handed to the app.
* a **head size cap**: bytes received while the head is incomplete beyond ``max_header_bytes`` →
  ``431`` and close (h11 has ``h11_max_incomplete_event_size``; httptools has no limit of its own).
* a request answered before its body was read (413, 429) must finish sending that body within the
  same deadline (those bytes are not counted as head); then the next head's deadline starts.

It also turns uvicorn's own ``X-Forwarded-For`` handling off (see ``uvicorn_options``).

``uvicorn_options(settings)`` returns the keyword arguments for ``uvicorn.Config``/``uvicorn.run``;
the CLI passes them, and so do the hostile tests (tests/integration/test_hostile_*.py).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.auto import AutoHTTPProtocol

from server.settings import Settings

_TIMEOUT = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
_TOO_LARGE = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"


def head_guarded_protocol(
    header_timeout_s: float, max_header_bytes: int, base: type[asyncio.Protocol] = AutoHTTPProtocol
) -> type[asyncio.Protocol]:
    """A subclass of uvicorn's HTTP protocol ``base`` with the head deadline and size cap."""

    class HeadGuardedProtocol(base):  # type: ignore[misc, valid-type]
        _deadline: asyncio.TimerHandle | None = None
        _armed_cycle: Any = None
        _head_bytes = 0
        _arm_when_read = False  # answered before its body was read (a 429): arm after the body

        def _arm(self) -> None:
            self._disarm()
            self._armed_cycle = self.cycle
            self._head_bytes = 0
            self._deadline = self.loop.call_later(header_timeout_s, self._expire)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _refuse(self, response: bytes) -> None:
            self._disarm()
            transport = self.transport
            if not transport.is_closing():
                transport.write(response)
                transport.close()

        def _expire(self) -> None:
            self._deadline = None
            if self._arm_when_read:  # its answer was sent already: just close
                self.transport.close()
                return
            self._refuse(_TIMEOUT)

        def connection_made(self, transport: asyncio.Transport) -> None:
            super().connection_made(transport)
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            cycle = self.cycle
            if self._arm_when_read:
                if cycle is not None and cycle.response_complete and not cycle.more_body:
                    self._arm_when_read = False  # the rest of that body is in: a new head is next
                    if not self.transport.is_closing():
                        self._arm()
                elif cycle is not self._armed_cycle:  # pipelined: a new request's head completed
                    self._arm_when_read = False
                    self._disarm()
                return
            if self._deadline is None:
                return
            upgraded = self.transport.get_protocol() is not self
            if upgraded or (cycle is not None and cycle is not self._armed_cycle):
                self._disarm()  # the head is complete: the app (or the WebSocket) owns it now
                return
            self._head_bytes += len(data)
            if self._head_bytes > max_header_bytes:
                self._refuse(_TOO_LARGE)

        def on_response_complete(self) -> None:
            super().on_response_complete()
            cycle = self.cycle
            if self.transport.is_closing() or (cycle is not None and not cycle.response_complete):
                return  # closing, or a pipelined request is already being handled
            if cycle is not None and cycle.more_body:
                self._arm()  # the unread rest of the body must arrive within the deadline too,
                self._arm_when_read = True  # but its bytes are no head: not counted
                return
            self._arm()  # the next request on this keep-alive connection has the same deadline

    HeadGuardedProtocol.__name__ = f"HeadGuarded{base.__name__}"
    return HeadGuardedProtocol


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """``uvicorn.Config`` keyword arguments that bound idle and incomplete connections."""
    return {
        "http": head_guarded_protocol(settings.header_timeout_s, settings.max_header_bytes),
        "timeout_keep_alive": max(1, round(settings.keep_alive_timeout_s)),
        "h11_max_incomplete_event_size": settings.max_header_bytes,
        # uvicorn would otherwise rewrite the client address from X-Forwarded-For for any peer in
        # its forwarded_allow_ips (127.0.0.1 by default): every local process could pick its
        # address. server.api.ratelimit.ProxyResolver believes only settings.trusted_proxies.
        "proxy_headers": False,
    }
