"""Sockets graceinit owns for the child: listeners handed over with the systemd
socket-activation protocol, and the sd_notify datagram socket.

Because graceinit, not the app, holds the listening sockets, a new copy of the app can
accept on the same port before the old one stops, and the kernel queues connections in
the backlog while no copy is accepting: a restart never closes the port.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
import tempfile
from dataclasses import dataclass

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs every container start: annotations only
    from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from graceinit.config import ConfigError, Listen

BACKLOG = 4096  # the kernel caps it at net.core.somaxconn


@dataclass(frozen=True)
class Listeners:
    """Bound, listening sockets, in the order the child receives them (fd 3, 4, ...)."""

    sockets: Tuple[socket.socket, ...] = ()
    names: Tuple[str, ...] = ()

    @property
    def fds(self) -> Tuple[int, ...]:
        return tuple(sock.fileno() for sock in self.sockets)

    def environ(self) -> Dict[bytes, bytes]:
        """LISTEN_FDS and LISTEN_FDNAMES; LISTEN_PID is only known after fork (spawn.py)."""
        if not self.sockets:
            return {}
        return {
            b"LISTEN_FDS": str(len(self.sockets)).encode(),
            b"LISTEN_FDNAMES": ":".join(self.names).encode(),
        }


def bind(listen: Sequence[Listen]) -> Listeners:
    """Bind every --listen address now, so a port in use fails before anything starts."""
    sockets = []
    try:
        for spec in listen:
            sockets.append(_bind(spec))
    except ConfigError:
        for sock in sockets:
            sock.close()
        raise
    return Listeners(tuple(sockets), tuple(spec.name for spec in listen))


def _bind(spec: Listen) -> socket.socket:
    try:
        if spec.kind == "unix":
            if _is_socket(spec.path):
                _remove_if_stale(spec)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.bind(spec.path)
        else:
            family, _, _, _, address = socket.getaddrinfo(
                spec.host, spec.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
            )[0]
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6 and spec.host == "::":
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)  # [::] means all
            sock.bind(address)
        sock.listen(BACKLOG)
    except OSError as error:
        reason = error.strerror or str(error)
        raise ConfigError(f"--listen {spec}: cannot listen: {reason}") from None
    return sock


def _is_socket(path: str) -> bool:
    import stat

    try:
        return stat.S_ISSOCK(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False


def _remove_if_stale(spec: Listen) -> None:
    """A socket file left over from an earlier run is removed; one a live server listens on
    is not graceinit's to take (it would leave that server unreachable)."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
    try:
        probe.connect(spec.path)
    except ConnectionRefusedError:
        os.unlink(spec.path)  # nobody listens: stale
        return
    except FileNotFoundError:
        return  # gone meanwhile
    except BlockingIOError:
        pass  # its backlog is full: very much alive
    except OSError as error:
        if error.errno != errno.EPROTOTYPE:  # EPROTOTYPE: a live socket of another type
            raise ConfigError(f"--listen {spec}: cannot tell whether the socket is in use: {error.strerror}") from None
    finally:
        probe.close()
    raise ConfigError(f"--listen {spec}: in use by another process (remove it only if that process is gone)")


def describe(listeners: Listeners) -> List[str]:
    described = []
    for fd, (name, sock) in enumerate(zip(listeners.names, listeners.sockets), start=3):
        address = sock.getsockname()
        if isinstance(address, str):
            shown = f"unix:{address}"
        elif ":" in address[0]:
            shown = f"tcp://[{address[0]}]:{address[1]}"
        else:
            shown = f"tcp://{address[0]}:{address[1]}"
        # "unknown" is what sd_listen_fds_with_names(3) reports for a socket given no name.
        label = "no name" if name == "unknown" else f"named {name}"
        described.append(f"{shown} (fd {fd}, {label})")
    return described


class NotifySocket:
    """The NOTIFY_SOCKET a child reports readiness on (sd_notify(3): `READY=1`, ...).

    A path in a private temporary directory, which every sd_notify client can use (some
    hand-written ones pass NOTIFY_SOCKET straight to sendto); where no temporary directory is
    writable (a read-only root), an abstract-namespace address (`@graceinit-...`), which the
    sd_notify libraries understand. Each datagram carries the sender's credentials
    (SO_PASSCRED), so a message is attributed to the generation that sent it — and one from
    outside graceinit's process tree to none.
    """

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self._directory: Optional[str] = None
        try:
            self._directory = tempfile.mkdtemp(prefix="graceinit-")
            self.address = os.path.join(self._directory, "notify")
            self._sock.bind(self.address)
        except OSError:
            if self._directory is not None:
                os.rmdir(self._directory)
                self._directory = None
            self.address = f"@graceinit-{os.getpid()}-{os.urandom(6).hex()}"
            self._sock.bind("\0" + self.address[1:])

    def fileno(self) -> int:
        return self._sock.fileno()

    def environ(self) -> Dict[bytes, bytes]:
        return {b"NOTIFY_SOCKET": self.address.encode()}

    def receive(self) -> List[Tuple[Optional[int], Mapping[str, str]]]:
        """Every pending message: (sender pid, fields)."""
        received = []
        while True:
            try:
                data, ancillary, _, _ = self._sock.recvmsg(4096, socket.CMSG_SPACE(12))
            except (BlockingIOError, InterruptedError):
                return received
            received.append((_sender(ancillary), _fields(data)))

    def close(self) -> None:
        self._sock.close()
        if self._directory is not None:
            for remove, path in ((os.unlink, self.address), (os.rmdir, self._directory)):
                try:
                    remove(path)
                except OSError:
                    pass


def _sender(ancillary: List[Tuple[int, int, bytes]]) -> Optional[int]:
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS and len(data) >= 12:
            return struct.unpack("iII", data[:12])[0]
    return None


def _fields(data: bytes) -> Dict[str, str]:
    fields = {}
    for line in data.decode("utf-8", "replace").splitlines():
        key, sep, value = line.partition("=")
        if sep:
            fields[key] = value
    return fields
