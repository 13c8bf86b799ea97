"""Reading the app's traffic from the kernel, for `--stop-delay auto` (drain.py decides).

One netlink sock_diag dump (inet_diag) per sample, filtered in the kernel to the app's
listening ports: every connection to them, with its peer address, the kernel's socket cookie
(a stable id) and `tcp_info` (`data_segs_in`, `last_data_recv`). Connections the server
closed linger in TIME_WAIT with their cookie, so short connection-per-request traffic is
seen too. Standard library only, and imported only when a drain starts: nothing here is on
the start-up path, and nothing is sampled outside the drain window.

Which ports: the --listen TCP sockets when there are any, else the TCP sockets in LISTEN
state held open by the child's process tree (its /proc/PID/fd socket inodes matched against
a dump of listeners), taken once when the drain starts.

Peers: every address counts, loopback included, because a mesh sidecar (Istio: 127.0.0.6)
or a local proxy forwards real requests over loopback; exec probes send no traffic. Peers
in `--drain-ignore` (an HTTP probe's node address, say) are left out.

Where the kernel refuses (no netlink, EPERM, a seccomp profile), `watch` raises
`Unavailable` and the caller falls back to a fixed delay of the max: never fail open.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
import time
from typing import Dict, Iterator, List, Optional, Sequence, Set, Tuple

from graceinit import procs
from graceinit.drain import Conn, TrafficSample, Unavailable

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST = 0x1
NLM_F_DUMP = 0x300
NLMSG_ERROR = 2
NLMSG_DONE = 3
INET_DIAG_REQ_BYTECODE = 1
INET_DIAG_INFO = 2
INET_DIAG_BC_S_GE = 2
INET_DIAG_BC_S_LE = 3
INET_DIAG_BC_JMP = 1

TCP_ESTABLISHED, TCP_TIME_WAIT, TCP_CLOSE_WAIT, TCP_LISTEN = 1, 6, 8, 10
# Connections that carry or carried the peer's requests: established, closing on either
# side, TIME_WAIT. Not SYN_RECV (the same connection shows up once established, under
# another cookie: it would count twice) nor LISTEN.
CONNECTION_STATES = sum(1 << state for state in (1, 4, 5, 6, 8, 9, 11))
TIME_WAIT_LENGTH = 60.0  # TCP_TIMEWAIT_LEN: a TIME_WAIT socket's expiry says when it closed

_NLMSGHDR = struct.Struct("=IHHII")
_REQUEST = struct.Struct("=BBBBI")  # inet_diag_req_v2 up to the socket id
_MSG = struct.Struct("=BBBB2H16s16sI8sIIIII")  # inet_diag_msg
_ATTR = struct.Struct("=HH")
_BC_OP = struct.Struct("=BBH")
# struct tcp_info (linux/tcp.h): last_data_sent at 44, last_data_recv at 52, data_segs_in at
# 152, data_segs_out at 156 (Linux >= 4.6).
_U32 = struct.Struct("=I")
_LAST_DATA_SENT_AT = 44
_LAST_DATA_RECV_AT = 52
_DATA_SEGS_IN_AT = 152
_DATA_SEGS_OUT_AT = 156
_V4_MAPPED = b"\0" * 10 + b"\xff\xff"
RECEIVE_BUFFER = 1 << 20
FAMILIES = (socket.AF_INET, socket.AF_INET6)


# --- what counts --------------------------------------------------------------------------


class Networks:
    """--drain-ignore CIDRs, as integers to test raw kernel addresses against."""

    def __init__(self, cidrs: Sequence[str]) -> None:
        self.text = tuple(cidrs)
        self._nets: List[Tuple[int, int, int]] = []  # (version, network, mask)
        if cidrs:
            import ipaddress  # only when a drain starts with --drain-ignore
        for cidr in cidrs:
            net = ipaddress.ip_network(cidr, strict=False)
            self._nets.append((net.version, int(net.network_address), int(net.netmask)))

    def __contains__(self, peer: Tuple[int, int]) -> bool:
        version, address = peer
        return any(v == version and address & mask == network for v, network, mask in self._nets)


def _peer(family: int, raw: bytes) -> Tuple[int, int, str]:
    """(IP version, address as an int, text) of a peer; v4-mapped IPv6 counts as IPv4."""
    if family == socket.AF_INET:
        return 4, int.from_bytes(raw[:4], "big"), socket.inet_ntop(socket.AF_INET, raw[:4])
    if raw[:12] == _V4_MAPPED:
        return 4, int.from_bytes(raw[12:], "big"), socket.inet_ntop(socket.AF_INET, raw[12:])
    return 6, int.from_bytes(raw, "big"), socket.inet_ntop(socket.AF_INET6, raw)


# --- netlink --------------------------------------------------------------------------------


class _Diag:
    """A NETLINK_SOCK_DIAG socket that runs inet_diag dumps."""

    def __init__(self) -> None:
        try:
            self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG)
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
            self._sock.bind((0, 0))
        except (OSError, AttributeError) as error:
            raise Unavailable(f"cannot open a netlink sock_diag socket: {_reason(error)}") from None
        self._seq = 0

    def close(self) -> None:
        self._sock.close()

    def dump(self, family: int, states: int, bytecode: bytes = b"", info: bool = False) -> Iterator[Tuple[bytes, int, int]]:
        """Every matching TCP socket as (chunk, start, end): its inet_diag_msg and attributes
        are chunk[start:end]. Offsets, not parsed fields: a dump can hold 10,000 TIME_WAIT
        sockets, and most of them are only looked up by cookie (see TrafficWatch._read)."""
        self._seq += 1
        request = _REQUEST.pack(family, socket.IPPROTO_TCP, (1 << (INET_DIAG_INFO - 1)) if info else 0, 0, states)
        request += b"\0" * 48  # the socket id: unused in a dump
        if bytecode:
            request += _ATTR.pack(_ATTR.size + len(bytecode), INET_DIAG_REQ_BYTECODE) + bytecode
        header = _NLMSGHDR.pack(_NLMSGHDR.size + len(request), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, self._seq, 0)
        self._sock.send(header + request)
        unpack_header = _NLMSGHDR.unpack_from
        while True:
            chunk = self._sock.recv(RECEIVE_BUFFER)
            size, offset = len(chunk), 0
            while offset + 16 <= size:
                length, kind, _, seq, _ = unpack_header(chunk, offset)
                if length < 16:
                    return
                if seq != self._seq:
                    pass  # a late answer to an abandoned dump
                elif kind == SOCK_DIAG_BY_FAMILY:
                    yield chunk, offset + 16, offset + length
                elif kind == NLMSG_DONE:
                    return
                elif kind == NLMSG_ERROR:
                    code = -struct.unpack_from("=i", chunk, offset + 16)[0]
                    if code:
                        raise OSError(code, os.strerror(code))
                    return
                offset += (length + 3) & ~3


def _attribute(chunk: bytes, start: int, end: int, wanted: int) -> Optional[Tuple[int, int]]:
    """(start, end) of one attribute's payload within chunk[start:end], or None."""
    offset = start
    while offset + _ATTR.size <= end:
        length, kind = _ATTR.unpack_from(chunk, offset)
        if length < _ATTR.size:
            return None
        if kind == wanted:
            return offset + _ATTR.size, offset + length
        offset += (length + 3) & ~3
    return None


def port_filter(ports: Sequence[int]) -> bytes:
    """inet_diag bytecode: the local port is one of `ports` (each as >= p and <= p, which
    every kernel since 2.6 understands; ORs chained as ss(8) compiles them)."""
    program = b""
    for port in sorted(set(ports)):
        # this port: >= p (else on to the next port's test), then <= p (accept, else on)
        one = (
            _BC_OP.pack(INET_DIAG_BC_S_GE, 8, 20) + _BC_OP.pack(0, 0, port)
            + _BC_OP.pack(INET_DIAG_BC_S_LE, 8, 12) + _BC_OP.pack(0, 0, port)
        )
        if program:
            # previous tests: accept -> jump over this block; reject -> land on this block
            program = program + _BC_OP.pack(INET_DIAG_BC_JMP, 4, len(one) + 4) + one
        else:
            program = one
    return program


# --- the watch ------------------------------------------------------------------------------


class TrafficWatch:
    """Samples the connections to the app's ports, one netlink dump per family."""

    def __init__(self, diag: _Diag, listeners: Set[Tuple[int, int, bytes]], ignore: Networks, origin: str) -> None:
        self._diag = diag
        self._families = sorted({family for family, _, _ in listeners})
        self._ports = sorted({port for _, port, _ in listeners})
        self._bytecode = port_filter(self._ports)
        # A listener bound to one address (another pod's sharing the host network, or a
        # second server in the namespace) owns only connections to that address.
        self._locals: Dict[int, Optional[Set[Tuple[int, int]]]] = {}
        for family, port, address in listeners:
            if not address.strip(b"\0"):
                self._locals[port] = None
            elif self._locals.get(port, set()) is not None:
                self._locals.setdefault(port, set()).add(_peer(family, address)[:2])  # type: ignore[union-attr]
        self._ignore = ignore
        self._origin = origin
        self._peers: Dict[bytes, str] = {}  # raw peer address -> text ("" if ignored)
        self._owned: Dict[bytes, bool] = {}  # raw (sport, src) -> one of the app's listeners'
        self._previous: Dict[int, Conn] = {}  # the last sample's connections

    def describe(self) -> str:
        families = "+".join("IPv4" if family == socket.AF_INET else "IPv6" for family in self._families)
        ignored = f"; ignoring peers in {', '.join(self._ignore.text)}" if self._ignore.text else ""
        return (f"requests to TCP port(s) {', '.join(map(str, self._ports))} ({self._origin}; {families}),"
                f" from every peer, loopback included{ignored}")

    def sample(self, now: float) -> Optional[TrafficSample]:
        """Every connection to the app's ports now; None if the kernel did not answer."""
        started = time.monotonic()
        conns: Dict[int, Conn] = {}
        try:
            for family in self._families:
                self._read(family, conns)
        except OSError:
            return None
        at = time.monotonic()
        self._previous = conns
        return TrafficSample(at=at, cost_s=at - started, conns=conns)

    def _read(self, family: int, conns: Dict[int, Conn]) -> None:
        # Offsets in inet_diag_msg: state 1, sport 4, src 8, dst 24, cookie 44, expires 52;
        # the attributes follow at _MSG.size.
        at = time.monotonic()
        previous, peers, owned = self._previous, self._peers, self._owned
        for chunk, start, end in self._diag.dump(family, CONNECTION_STATES, self._bytecode, info=True):
            key = int.from_bytes(chunk[start + 44:start + 52], "little")
            state = chunk[start + 1]
            if state == TCP_TIME_WAIT:
                known = previous.get(key)
                if known is not None and known.segs_in is None:
                    conns[key] = known  # closed already at the last sample: nothing new
                    continue
            local = chunk[start + 4:start + 24]  # sport and src
            mine = owned.get(local)
            if mine is None:
                mine = owned[local] = self._owns(family, local)
            if not mine:
                continue
            dst = chunk[start + 24:start + 40]
            text = peers.get(dst)
            if text is None:
                version, address, text = _peer(family, dst)
                if (version, address) in self._ignore:
                    text = ""
                peers[dst] = text
            if not text:
                continue
            if state == TCP_TIME_WAIT:
                expires = _U32.unpack_from(chunk, start + 52)[0]
                conns[key] = Conn(text, None, at - max(0.0, TIME_WAIT_LENGTH - expires / 1000.0))
                continue
            info = _attribute(chunk, start + _MSG.size, end, INET_DIAG_INFO)
            if info is None or info[1] - info[0] < _DATA_SEGS_IN_AT + 4:
                continue  # a kernel before 4.6: no data_segs_in
            segs = _U32.unpack_from(chunk, info[0] + _DATA_SEGS_IN_AT)[0]
            idle = _U32.unpack_from(chunk, info[0] + _LAST_DATA_RECV_AT)[0] / 1000.0
            conns[key] = Conn(text, segs, at - idle)

    def _owns(self, family: int, local: bytes) -> bool:
        """Is a connection with this (sport, src) one of the app's listeners'?"""
        addresses = self._locals.get(int.from_bytes(local[:2], "big"), None)
        return addresses is None or _peer(family, local[4:])[:2] in addresses

    def close(self) -> None:
        self._diag.close()


def watch(root_pid: int, ignore: Sequence[str], listen_ports: Sequence[Tuple[int, int, bytes]] = ()) -> TrafficWatch:
    """Start watching the app's traffic: the given (family, port, packed local address)
    listeners, or else those of `root_pid`'s process tree. Raises Unavailable when that
    cannot be done."""
    diag = _Diag()
    try:
        networks = Networks(ignore)
        if listen_ports:
            origin = "the --listen sockets"
            listeners = set(listen_ports)
        else:
            origin = f"listening sockets of pid {root_pid} and its descendants"
            listeners = _listeners(diag, _socket_inodes(procs.tree(root_pid)))
        if not listeners:
            raise Unavailable(f"no TCP listening socket found ({origin})")
        watcher = TrafficWatch(diag, listeners, networks, origin)
        watcher.sample(time.monotonic())  # the kernel's answer now, not at the first tick
    except Unavailable:
        diag.close()
        raise
    except OSError as error:
        diag.close()
        raise Unavailable(f"cannot read the app's connections: {_reason(error)}") from None
    return watcher


def _socket_inodes(pids: Sequence[int]) -> Set[int]:
    inodes = set()
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(int(target[8:-1]))
    return inodes


def _listeners(diag: _Diag, inodes: Optional[Set[int]]) -> Set[Tuple[int, int, bytes]]:
    """(family, port, local address as the kernel gives it) of the listeners among inodes
    (None: all of them)."""
    found = set()
    for family in FAMILIES:
        for chunk, start, _ in diag.dump(family, 1 << TCP_LISTEN):
            fields = _MSG.unpack_from(chunk, start)
            sport, src, inode = fields[4], fields[6], fields[14]
            if inodes is None or inode in inodes:
                found.add((family, socket.ntohs(sport), src))
    return found


def packed(family: int, host: str) -> bytes:
    """A socket address's host as inet_diag reports it (16 bytes)."""
    return socket.inet_pton(family, host).ljust(16, b"\0")


def _reason(error: BaseException) -> str:
    if isinstance(error, OSError) and error.errno in (errno.EPERM, errno.EACCES):
        return f"{error.strerror} (a seccomp profile or a missing capability?)"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error) or type(error).__name__


# --- for the ledger (ledger.py): at SIGKILL and at the report, never on the forward's path ---


def foreign_listeners(root_pid: int) -> int:
    """How many of the namespace's TCP listeners root_pid's process tree does not hold."""
    diag = _Diag()
    try:
        return len(_listeners(diag, None) - _listeners(diag, _socket_inodes(procs.tree(root_pid))))
    finally:
        diag.close()


def in_flight(root_pid: int, ephemeral: Tuple[int, int]) -> Tuple[int, int]:
    """Connections that clients opened to root_pid's process tree (held by it, on a listener's
    port or a local port outside the `ephemeral` range, which outgoing ones come from), with a
    request in flight: data unread, data received and nothing ever sent, or data received
    after the last data sent (a millisecond apart at least).
    Returns (how many, how many of them with data unread)."""
    diag = _Diag()
    count = unread = 0
    try:
        inodes = _socket_inodes(procs.tree(root_pid))
        listening = {port for _, port, _ in _listeners(diag, inodes)}
        for family in FAMILIES:
            for chunk, start, end in diag.dump(family, (1 << TCP_ESTABLISHED) | (1 << TCP_CLOSE_WAIT), info=True):
                fields = _MSG.unpack_from(chunk, start)
                port = socket.ntohs(fields[4])
                if fields[14] not in inodes or (ephemeral[0] <= port <= ephemeral[1] and port not in listening):
                    continue  # not the app's, or its own outgoing connection
                info = _attribute(chunk, start + _MSG.size, end, INET_DIAG_INFO)
                if info is None or info[1] - info[0] < _DATA_SEGS_OUT_AT + 4:
                    continue  # a kernel before 4.6
                segs_in = _U32.unpack_from(chunk, info[0] + _DATA_SEGS_IN_AT)[0]
                segs_out = _U32.unpack_from(chunk, info[0] + _DATA_SEGS_OUT_AT)[0]
                since_sent = _U32.unpack_from(chunk, info[0] + _LAST_DATA_SENT_AT)[0]
                since_received = _U32.unpack_from(chunk, info[0] + _LAST_DATA_RECV_AT)[0]
                if fields[11] or (segs_in and (not segs_out or since_received < since_sent)):
                    count += 1
                    unread += fields[11] > 0
    finally:
        diag.close()
    return count, unread
