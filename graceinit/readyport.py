"""--ready-port: graceinit answers the kubelet's readiness probe itself.

An HTTP probe that needs nothing in the image (no `test` binary, no shell: distroless images
have neither) and that never touches the app's port, so the drain (--stop-delay auto) and the
ledger never count it as the app's traffic. It says what the ready file says: 200 while the
app should get traffic, 503 from the stop signal on. `/live` answers 200 while graceinit runs.

It lives in graceinit's event loop, so it must never block it: every socket is non-blocking,
at most MAX_OPEN connections are served at once, each for at most TIMEOUT seconds, and a
request is read only up to the end of its headers. Nothing here can raise into the loop.
Loaded only when the option is given; `_socket` rather than `socket`, which imports enum.
"""

from __future__ import annotations

import errno
import os
import select

import _socket

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs every container start: annotations only
    from typing import Dict, List, Optional, Tuple

MAX_OPEN = 16  # connections served at once; more wait in the backlog
TIMEOUT = 5.0  # seconds a connection may take to send its request (a slow client, or none)
REQUEST_LIMIT = 8192  # bytes of request headers read at most
BACKLOG = 64

_RETRY = (errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR)


class ReadyPortError(Exception):
    """The port cannot be bound (start-up turns this into a usage error)."""


def _response(status: str, body: str, head_only: bool) -> bytes:
    payload = body.encode()
    head = (f"HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\n"
            f"Content-Length: {len(payload)}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n")
    return head.encode() + (b"" if head_only else payload)


class _Request:
    __slots__ = ("data", "deadline")

    def __init__(self, deadline: float) -> None:
        self.data = b""
        self.deadline = deadline


class ReadyPort:
    """The listening socket and the connections being answered, all in graceinit's poll set."""

    def __init__(self, host: str, port: int) -> None:
        family = _socket.AF_INET6 if ":" in host else _socket.AF_INET
        sock = _socket.socket(family, _socket.SOCK_STREAM)
        try:
            sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1)
            if family == _socket.AF_INET6 and host == "::":
                sock.setsockopt(_socket.IPPROTO_IPV6, _socket.IPV6_V6ONLY, 0)  # [::] means all
            sock.bind((host, port))
            sock.listen(BACKLOG)
            sock.setblocking(False)
        except OSError as error:
            sock.close()
            raise ReadyPortError(error.strerror or str(error)) from None
        self._listener = sock
        self.ready = False
        self._open: Dict[int, _Request] = {}
        self._poller: Optional[select.poll] = None

    @property
    def port(self) -> int:
        return int(self._listener.getsockname()[1])

    def fileno(self) -> int:
        return self._listener.fileno()

    def attach(self, poller: select.poll) -> None:
        self._poller = poller
        poller.register(self.fileno(), select.POLLIN)

    def owns(self, fd: int) -> bool:
        return fd == self._listener.fileno() or fd in self._open

    def next_deadline(self) -> Optional[float]:
        """When the oldest open connection times out; None while none is open (idle means idle)."""
        if not self._open:
            return None
        return min(request.deadline for request in self._open.values())

    def handle(self, fd: int, now: float) -> None:
        """The listener or a connection is readable. Never raises: a probe must not cost the
        PID-1 promise."""
        try:
            if fd == self._listener.fileno():
                self._accept(now)
            else:
                self._read(fd)
        except Exception:  # noqa: BLE001 - whatever went wrong, that connection is dropped
            if fd != self._listener.fileno():
                self._close(fd)

    def expire(self, now: float) -> None:
        for fd in [fd for fd, request in self._open.items() if request.deadline <= now]:
            self._answer(fd, "408 Request Timeout", "request timeout\n", False)

    def close(self) -> None:
        for fd in list(self._open):
            self._close(fd)
        if self._poller is not None:
            try:
                self._poller.unregister(self._listener.fileno())
            except (KeyError, ValueError):
                pass
        self._listener.close()

    # --- connections ---------------------------------------------------------------------

    def _accept(self, now: float) -> None:
        while len(self._open) < MAX_OPEN:
            try:
                fd, _ = self._listener._accept()
            except OSError as error:
                if error.errno in _RETRY or error.errno == errno.ECONNABORTED:
                    return
                raise
            os.set_blocking(fd, False)
            self._open[fd] = _Request(now + TIMEOUT)
            if self._poller is not None:
                self._poller.register(fd, select.POLLIN)
        # Full: the listener stays readable and is served again as connections finish.

    def _read(self, fd: int) -> None:
        request = self._open.get(fd)
        if request is None:
            return
        try:
            chunk = os.read(fd, REQUEST_LIMIT)
        except OSError as error:
            if error.errno in _RETRY:
                return
            self._close(fd)
            return
        request.data += chunk
        ended = not chunk or b"\r\n\r\n" in request.data or b"\n\n" in request.data
        if not ended and len(request.data) < REQUEST_LIMIT:
            return
        method, path = _request_line(request.data)
        head_only = method == b"HEAD"
        if path is None:
            self._answer(fd, "400 Bad Request", "bad request\n", head_only)
        elif path in (b"/live", b"/livez"):
            self._answer(fd, "200 OK", "alive\n", head_only)
        elif self.ready:
            self._answer(fd, "200 OK", "ready\n", head_only)
        else:
            self._answer(fd, "503 Service Unavailable", "not ready\n", head_only)

    def _answer(self, fd: int, status: str, body: str, head_only: bool) -> None:
        try:
            os.write(fd, _response(status, body, head_only))  # a fresh socket's buffer holds it
        except OSError:
            pass
        self._close(fd)

    def _close(self, fd: int) -> None:
        self._open.pop(fd, None)
        if self._poller is not None:
            try:
                self._poller.unregister(fd)
            except (KeyError, ValueError):
                pass
        try:
            os.close(fd)
        except OSError:
            pass


def _request_line(data: bytes) -> Tuple[Optional[bytes], Optional[bytes]]:
    """`GET /ready?x HTTP/1.1` -> (b"GET", b"/ready"); (None, None) when it is not HTTP."""
    line = data.split(b"\n", 1)[0].rstrip(b"\r")
    parts: List[bytes] = line.split(b" ")
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/") or not parts[1].startswith(b"/"):
        return None, None
    return parts[0], parts[1].split(b"?", 1)[0]
