"""Reading the app's traffic from the kernel, for `--stop-delay auto` (drain.py decides).

Standard library only, and imported only when a drain starts: nothing here is on the
start-up path, and nothing is read outside the drain window. Everything comes from netlink
sock_diag in the pod's own network namespace (no privilege needed) and /proc/net/snmp:

- **At the stop signal, one dump** of the namespace's TCP sockets: the history (connections
  the server closed in the last minute wait in TIME_WAIT with their close times; the open
  ones show their last data) and the open connections to the app's ports, to follow.
- **Every connection that ends**, however short, whoever closed it: the kernel broadcasts
  each TCP socket's destruction, with its `tcp_info`, to sock_diag's multicast groups
  (`DestroyStream`). A client that closes first against a keep-alive server leaves no
  TIME_WAIT and lives a few milliseconds: only this sees it.
- **Requests on kept-alive connections**: one exact lookup per known open connection (by
  its 4-tuple and cookie, all in one netlink message), not a dump. A dump walks the whole
  node's socket table, every pod's, even when filtered (35 ms with 144,000 sockets in other
  namespaces, against 3 ms): lookups and events cost the same on any node.
- **New connections still open** (a new keep-alive client): `Tcp: PassiveOpens` counts every
  accepted connection of the namespace. One that neither a dump nor a destroy event
  accounts for is *pending*: the detector does not end while one is, and a dump (at most
  DUMP_SHARE of a core's worth) finds it. Quiet is confirmed by one last dump.

Which ports: the --listen TCP sockets when there are any, else the TCP sockets in LISTEN
state held open by the child's process tree (its /proc/PID/fd socket inodes matched against
a dump of listeners), taken once when the drain starts. Peers: every address counts,
loopback included (a mesh sidecar forwards real requests over 127.0.0.6); `--drain-ignore`
peers and ports are counted apart, for the report.

Where the kernel refuses (no netlink, EPERM, a seccomp profile), `watch` raises
`Unavailable`; a sample that cannot be read is None. Both mean waiting the max.

`DestroyStream` is reusable by other modules: it depends on nothing of the drain. The TCP
counters come from netstat.py, which the ledger reads too.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
import time
from typing import Dict, Iterator, List, NamedTuple, Optional, Sequence, Set, Tuple

from graceinit import procs
from graceinit.netstat import passive_opens
from graceinit.drain import Arrival, TrafficSample, Unavailable, kept_alive_arrivals

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST = 0x1
NLM_F_DUMP = 0x300
NLMSG_ERROR = 2
NLMSG_DONE = 3
INET_DIAG_INFO = 2
# sock_diag multicast groups (linux/sock_diag.h): SKNLGRP_INET_TCP_DESTROY = 1 and
# SKNLGRP_INET6_TCP_DESTROY = 3, as bits of the bind mask. A dual-stack listener's IPv4
# clients are IPv6 (v4-mapped) sockets: both groups.
DESTROY_GROUPS = (1 << 0) | (1 << 2)
SOL_NETLINK = 270

TCP_ESTABLISHED, TCP_TIME_WAIT, TCP_CLOSE_WAIT, TCP_LISTEN = 1, 6, 8, 10
# Open connections: established, closing on either side (not SYN_RECV: a request socket,
# not yet accepted, is seen again once established).
OPEN_STATES = sum(1 << state for state in (1, 4, 5, 8, 9, 11))
HISTORY_STATES = OPEN_STATES | (1 << TCP_TIME_WAIT) | (1 << TCP_LISTEN)
ALL_STATES = 0xFFFFFFFF
TIME_WAIT_LENGTH = 60.0  # TCP_TIMEWAIT_LEN: a TIME_WAIT socket's expiry says when it closed

_NLMSGHDR = struct.Struct("=IHHII")
_REQUEST = struct.Struct("=BBBBI")  # inet_diag_req_v2 up to the socket id
_MSG = struct.Struct("=BBBB2H16s16sI8sIIIII")  # inet_diag_msg
_ATTR = struct.Struct("=HH")
_U32 = struct.Struct("=I")
_PORT = struct.Struct("!H")
# inet_diag_msg offsets: state 1, sport 4, dport 6, src 8, dst 24, cookie 44, expires 52; the
# socket id (what an exact lookup sends back) is 4:52; attributes follow at _MSG.size.
_ID = slice(4, 52)
# struct tcp_info (linux/tcp.h): last_data_sent at 44, last_data_recv at 52, data_segs_in at
# 152 and data_segs_out at 156 (Linux >= 4.6).
_LAST_DATA_SENT_AT = 44
_LAST_DATA_RECV_AT = 52
_DATA_SEGS_IN_AT = 152
_DATA_SEGS_OUT_AT = 156
_V4_MAPPED = b"\0" * 10 + b"\xff\xff"
RECEIVE_BUFFER = 1 << 20
EVENT_BUFFER = 4 << 20
LOOKUPS_PER_SEND = 256
FULL_EVERY = 0.04  # seconds: the most often a dump confirms quiet,
FULL_SHARE = 0.2  # ... and at most this share of a core (a 50 ms dump on a big node: every 0.25 s)
DUMP_SHARE = 0.005  # of a core, at most, for dumps that look for new connections
FAMILIES = (socket.AF_INET, socket.AF_INET6)


# --- what counts --------------------------------------------------------------------------


class Networks:
    """--drain-ignore items: CIDRs (as integers, to test raw kernel addresses against) and
    `:PORT`s (the app's own ports whose connections do not count). Config normalized them;
    no ipaddress import here, and a lookup costs one set test per prefix length, not one
    per item (40,000 items are fine)."""

    def __init__(self, items: Sequence[str]) -> None:
        self.text = tuple(items)
        self.ports: Set[int] = set()
        self._nets: Dict[Tuple[int, int], Set[int]] = {}  # (version, prefix length) -> networks
        for item in items:
            if item.startswith(":"):
                self.ports.add(int(item[1:]))
                continue
            host, _, bits = item.partition("/")
            version, width = (6, 128) if ":" in host else (4, 32)
            address = int.from_bytes(socket.inet_pton(socket.AF_INET6 if version == 6 else socket.AF_INET, host), "big")
            length = int(bits) if bits else width
            if not 0 <= length <= width:
                raise ValueError(f"not a network: {item!r}")
            self._nets.setdefault((version, length), set()).add(address >> (width - length))

    def __contains__(self, peer: Tuple[int, int]) -> bool:
        version, address = peer
        width = 128 if version == 6 else 32
        return any(v == version and address >> (width - length) in networks
                   for (v, length), networks in self._nets.items())


def _peer(family: int, raw: bytes) -> Tuple[int, int, str]:
    """(IP version, address as an int, text) of an address; v4-mapped IPv6 counts as IPv4."""
    if family == socket.AF_INET:
        return 4, int.from_bytes(raw[:4], "big"), socket.inet_ntop(socket.AF_INET, raw[:4])
    if raw[:12] == _V4_MAPPED:
        return 4, int.from_bytes(raw[12:], "big"), socket.inet_ntop(socket.AF_INET, raw[12:])
    return 6, int.from_bytes(raw, "big"), socket.inet_ntop(socket.AF_INET6, raw)


# --- netlink --------------------------------------------------------------------------------


def _netlink(groups: int = 0, buffer: int = RECEIVE_BUFFER) -> socket.socket:
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG)
    try:
        try:
            sock.setsockopt(socket.SOL_SOCKET, 33, buffer)  # SO_RCVBUFFORCE: root may exceed rmem_max
        except OSError:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, buffer)
        sock.bind((0, groups))
    except BaseException:
        sock.close()
        raise
    return sock


class _Diag:
    """A NETLINK_SOCK_DIAG socket for inet_diag dumps and exact lookups."""

    def __init__(self) -> None:
        try:
            self._sock = _netlink()
            self._sock.settimeout(2.0)  # the kernel answers at once; never hang the drain
        except (OSError, AttributeError) as error:
            raise Unavailable(f"cannot open a netlink sock_diag socket: {_reason(error)}") from None
        self._seq = 0

    def close(self) -> None:
        self._sock.close()

    def dump(self, family: int, states: int, info: bool = False) -> Iterator[Tuple[bytes, int, int]]:
        """Every TCP socket of the namespace in `states` as (chunk, start, end): its
        inet_diag_msg and attributes are chunk[start:end]. Offsets, not parsed fields: a
        dump can hold 10,000 TIME_WAIT sockets."""
        self._seq += 1
        request = _REQUEST.pack(family, socket.IPPROTO_TCP, (1 << (INET_DIAG_INFO - 1)) if info else 0, 0, states)
        request += b"\0" * 48  # the socket id: unused in a dump
        header = _NLMSGHDR.pack(_NLMSGHDR.size + len(request), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, self._seq, 0)
        self._sock.send(header + request)
        while True:
            chunk = self._sock.recv(RECEIVE_BUFFER)
            for kind, seq, start, end in _messages(chunk):
                if seq != self._seq:
                    continue  # a late answer to an abandoned request
                if kind == SOCK_DIAG_BY_FAMILY:
                    yield chunk, start, end
                elif kind == NLMSG_DONE:
                    return
                elif kind == NLMSG_ERROR:
                    _raise_error(chunk, start)
                    return
            if not chunk:
                return

    def lookup(self, wanted: Sequence[Tuple[int, bytes]]) -> Dict[int, Optional[Tuple[bytes, int, int]]]:
        """Exact lookups, by (family, socket id as a dump gave it): index -> the answer's
        (chunk, start, end), or None where the socket is gone. One send per LOOKUPS_PER_SEND:
        the kernel answers every message of a send before the send returns."""
        answers: Dict[int, Optional[Tuple[bytes, int, int]]] = {}
        for first in range(0, len(wanted), LOOKUPS_PER_SEND):
            batch = wanted[first:first + LOOKUPS_PER_SEND]
            base = self._seq + 1
            self._seq += len(batch)
            out = []
            for offset, (family, sock_id) in enumerate(batch):
                request = _REQUEST.pack(family, socket.IPPROTO_TCP, 1 << (INET_DIAG_INFO - 1), 0, ALL_STATES) + sock_id
                out.append(_NLMSGHDR.pack(_NLMSGHDR.size + len(request), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST, base + offset, 0))
                out.append(request)
            self._sock.send(b"".join(out))
            waiting = len(batch)
            while waiting:
                chunk = self._sock.recv(RECEIVE_BUFFER)
                if not chunk:
                    raise OSError(errno.EIO, "netlink answered nothing")
                for kind, seq, start, end in _messages(chunk):
                    index = seq - base
                    if not 0 <= index < len(batch) or first + index in answers:
                        continue
                    if kind == SOCK_DIAG_BY_FAMILY:
                        answers[first + index] = (chunk, start, end)
                    elif kind == NLMSG_ERROR:
                        code = -struct.unpack_from("=i", chunk, start)[0]
                        if code not in (errno.ENOENT, 0):
                            raise OSError(code, os.strerror(code))
                        answers[first + index] = None
                    else:
                        continue
                    waiting -= 1
        return answers


def _messages(chunk: bytes) -> Iterator[Tuple[int, int, int, int]]:
    """(type, seq, payload start, payload end) of each netlink message in chunk."""
    size, offset = len(chunk), 0
    while offset + _NLMSGHDR.size <= size:
        length, kind, _, seq, _ = _NLMSGHDR.unpack_from(chunk, offset)
        if length < _NLMSGHDR.size or offset + length > size:
            raise ValueError(f"a netlink message of {length} bytes at {offset} of {size}")
        yield kind, seq, offset + _NLMSGHDR.size, offset + length
        offset += (length + 3) & ~3


def _raise_error(chunk: bytes, start: int) -> None:
    code = -struct.unpack_from("=i", chunk, start)[0]
    if code:
        raise OSError(code, os.strerror(code))


def _attribute(chunk: bytes, start: int, end: int, wanted: int) -> Optional[Tuple[int, int]]:
    """(start, end) of one attribute's payload within chunk[start:end], or None."""
    offset = start
    while offset + _ATTR.size <= end:
        length, kind = _ATTR.unpack_from(chunk, offset)
        if length < _ATTR.size:
            return None
        if kind == wanted:
            return offset + _ATTR.size, min(offset + length, end)
        offset += (length + 3) & ~3
    return None


def _data(chunk: bytes, start: int, end: int) -> Optional[Tuple[int, float, int]]:
    """(data_segs_in, seconds since data last came, data_segs_out) from a message's
    tcp_info; None when it has none (a TIME_WAIT socket, a kernel before 4.6)."""
    info = _attribute(chunk, start + _MSG.size, end, INET_DIAG_INFO)
    if info is None or info[1] - info[0] < _DATA_SEGS_OUT_AT + 4:
        return None
    segs = _U32.unpack_from(chunk, info[0] + _DATA_SEGS_IN_AT)[0]
    return (segs, _U32.unpack_from(chunk, info[0] + _LAST_DATA_RECV_AT)[0] / 1000.0,
            _U32.unpack_from(chunk, info[0] + _DATA_SEGS_OUT_AT)[0])


class Closed(NamedTuple):
    """One TCP socket of the namespace, destroyed."""

    family: int
    sport: int
    src: bytes  # 16 bytes, as inet_diag gives it
    dport: int  # 0: a listener
    dst: bytes
    cookie: int
    data_segs_in: Optional[int]  # None: no tcp_info came with it
    idle_s: float  # since data last came, when the kernel reported it
    at: float  # when its message came (monotonic): the socket died just before


class DestroyStream:
    """Every TCP socket of this network namespace as the kernel destroys it (sock_diag's
    SKNLGRP_INET[6]_TCP_DESTROY groups, with tcp_info), from the moment it is created.
    Nothing is sent before a reader subscribes, so subscribe only when needed; `close`
    unsubscribes. `read` returns what came since the last read, and whether some was lost
    (a full buffer).

    The kernel's messages carry no time of their own (only "data last came N ms before
    this message"), so a thread of its own receives them as they come and stamps each with
    the time it came: read once per tick, a whole tick's connections would look like one
    instant, and a stream like a burst. The thread blocks every signal (the main thread
    handles them) and ends at `close`."""

    MAX_CHUNKS = 65536  # unread chunks kept; beyond, they count as lost

    def __init__(self) -> None:
        import select  # only when a drain starts
        import threading

        self._sock = _netlink(DESTROY_GROUPS, EVENT_BUFFER)
        self._sock.setblocking(False)
        self._chunks: List[Tuple[float, bytes]] = []
        self._lost = False
        self._error: Optional[OSError] = None
        self._lock = threading.Lock()
        self._wake_read, self._wake_write = os.pipe()
        self._poll = select.poll()
        self._poll.register(self._sock.fileno(), select.POLLIN)
        self._poll.register(self._wake_read, select.POLLIN)
        self._thread = threading.Thread(target=self._receive, name="graceinit-destroy-events", daemon=True)
        import _signal

        blocked = _signal.pthread_sigmask(_signal.SIG_BLOCK, _signal.valid_signals())  # the thread inherits it
        try:
            self._thread.start()
        finally:
            _signal.pthread_sigmask(_signal.SIG_SETMASK, blocked)

    def _receive(self) -> None:
        recv = self._sock.recv
        while True:
            for fd, _ in self._poll.poll():
                if fd == self._wake_read:
                    return
            while True:
                try:
                    chunk = recv(RECEIVE_BUFFER)
                except BlockingIOError:
                    break
                except OSError as error:
                    with self._lock:
                        if error.errno == errno.ENOBUFS:
                            self._lost = True
                            continue
                        self._error = error
                    return
                at = time.monotonic()
                with self._lock:
                    if len(self._chunks) < self.MAX_CHUNKS:
                        self._chunks.append((at, chunk))
                    else:
                        self._lost = True

    def read(self, ports: Optional[Set[int]] = None) -> Tuple[List[Closed], bool]:
        """The sockets destroyed since the last read (only those with a local port in
        `ports`, when given: a busy namespace destroys thousands a second, and skipping one
        costs a fraction of parsing it), and whether some were lost."""
        with self._lock:
            chunks, self._chunks = self._chunks, []
            lost, self._lost = self._lost, False
            error = self._error
        if error is not None:
            raise error
        closed: List[Closed] = []
        unpack_port = _PORT.unpack_from
        for at, chunk in chunks:
            for kind, _, start, end in _messages(chunk):
                if kind != SOCK_DIAG_BY_FAMILY or end - start < _MSG.size:
                    continue
                sport = unpack_port(chunk, start + 4)[0]
                if ports is not None and sport not in ports:
                    continue
                data = _data(chunk, start, end)
                closed.append(Closed(
                    chunk[start], sport, chunk[start + 8:start + 24], unpack_port(chunk, start + 6)[0],
                    chunk[start + 24:start + 40], int.from_bytes(chunk[start + 44:start + 52], "little"),
                    data[0] if data else None, data[1] if data else 0.0, at))
        return closed, lost

    def close(self) -> None:
        try:
            os.write(self._wake_write, b"x")
        except OSError:
            pass
        self._thread.join(2.0)
        for fd in (self._wake_read, self._wake_write):
            try:
                os.close(fd)
            except OSError:
                pass
        self._sock.close()


# --- the watch ------------------------------------------------------------------------------


class _Open:
    """An open connection to the app, followed by exact lookups."""

    __slots__ = ("family", "sock_id", "peer", "ignored", "segs", "segs_out", "looked_at")

    def __init__(self, family: int, sock_id: bytes, peer: str, ignored: bool, segs: int, segs_out: int,
                 looked_at: float) -> None:
        self.family, self.sock_id, self.peer, self.ignored = family, sock_id, peer, ignored
        self.segs, self.segs_out, self.looked_at = segs, segs_out, looked_at


class TrafficWatch:
    """Samples the requests to the app's ports (see the module docstring)."""

    def __init__(self, diag: _Diag, stream: DestroyStream, listeners: Set[Tuple[int, int, bytes]],
                 ignore: Networks, origin: str, opens: int) -> None:
        self._diag = diag
        self._stream = stream
        self._families = sorted({family for family, _, _ in listeners})
        self._ports = sorted({port for _, port, _ in listeners})
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
        self._peers: Dict[bytes, Tuple[str, bool]] = {}  # raw peer address -> (text, ignored)
        self._owned: Dict[Tuple[int, bytes], bool] = {}  # (sport, src) -> one of the app's listeners'
        self._open: Dict[int, _Open] = {}  # cookie -> an open connection to the app
        self._gone: Dict[int, int] = {}  # cookie -> data_segs_in, of followed ones found gone
        # Accounting for connections opened since the last dump (PassiveOpens).
        self._listening: Set[int] = set()  # every TCP listening port of the namespace
        self._seen: Set[int] = set()  # cookies of the open accepted connections at the last dump
        self._opens_at_dump = opens
        self._closed_new = 0  # accepted connections closed since, not in the last dump
        self._dumped_at = 0.0
        self._dump_cost = 0.0
        self._history: List[Arrival] = []
        self._history_from: Optional[float] = None
        self.dumps = 0

    def describe(self) -> str:
        families = "+".join("IPv4" if family == socket.AF_INET else "IPv6" for family in self._families)
        ignored = f"; ignoring {', '.join(self._ignore.text[:8])}" if self._ignore.text else ""
        if len(self._ignore.text) > 8:
            ignored += f" and {len(self._ignore.text) - 8} more"
        return (f"requests to TCP port(s) {', '.join(map(str, self._ports[:20]))}"
                f"{' ...' if len(self._ports) > 20 else ''} ({self._origin}; {families}),"
                f" from every peer, loopback included{ignored}")

    # --- sampling ------------------------------------------------------------------------

    def sample(self, now: float, full: bool = False) -> Optional[TrafficSample]:
        """The requests since the last sample; None if the kernel could not be read. With
        `full`, one dump confirms that no open connection went unseen."""
        cpu = time.thread_time()
        try:
            return self._sample(full, cpu)
        except (OSError, ValueError, struct.error, IndexError):
            return None

    def _sample(self, full: bool, cpu: float) -> TrafficSample:
        at = time.monotonic()
        arrivals: List[Arrival] = self._history
        history_from, self._history, self._history_from = self._history_from, [], None
        closed, lost = self._stream.read(self._listening)
        for one in closed:
            self._closed(one, arrivals, count=True)
        self._look(arrivals)
        unknown = passive_opens() - self._opens_at_dump - self._closed_new
        complete, dump_s = False, 0.0
        # Dumps budget themselves (DUMP_SHARE of a core), so that an expensive one, on a node
        # with a big socket table, does not stretch the cheap samples' tick; a dump to
        # confirm quiet may come sooner: at most every FULL_EVERY, within FULL_SHARE of a core.
        since = at - self._dumped_at
        if (lost or unknown > 0) and since >= self._dump_cost / DUMP_SHARE or full and since >= min(
                self._dump_cost / DUMP_SHARE, max(FULL_EVERY, self._dump_cost / FULL_SHARE)):
            self._dump(arrivals, history=False)
            complete, unknown, dump_s = not lost, 0, self._dump_cost
        cost = time.thread_time() - cpu
        return TrafficSample(at=at, cost_s=cost, arrivals=arrivals, pending=max(0, unknown),
                             complete=complete, lost=lost, history_from=history_from, dump_s=dump_s)

    def _closed(self, one: Closed, arrivals: List[Arrival], count: bool) -> None:
        """A destroyed socket: a request if it carried data not seen yet."""
        if not one.dport:
            return  # a listener
        if one.sport in self._listening and one.cookie not in self._seen and count:
            self._closed_new += 1
        self._seen.discard(one.cookie)
        known = self._open.pop(one.cookie, None)
        before = known.segs if known is not None else self._gone.pop(one.cookie, None)
        if known is None and before is None and not self._mine(one.family, one.sport, one.src):
            return
        if one.data_segs_in is None or one.data_segs_in <= (before or 0):
            return
        peer, ignored = (known.peer, known.ignored) if known is not None else self._peer_of(one.family, one.dst, one.sport)
        arrivals.append(Arrival(peer, one.at - one.idle_s, not before, ignored))

    def _look(self, arrivals: List[Arrival]) -> None:
        """Exact lookups of the open connections: a request where the data counter moved."""
        if not self._open:
            return
        cookies = list(self._open)
        answers = self._diag.lookup([(self._open[c].family, self._open[c].sock_id) for c in cookies])
        at = time.monotonic()
        for index, cookie in enumerate(cookies):
            conn = self._open[cookie]
            answer = answers.get(index)
            data = _data(*answer) if answer is not None else None
            if data is None:  # gone, or closed (TIME_WAIT): its destroy event tells the rest
                del self._open[cookie]
                if len(self._gone) < 65536:
                    self._gone[cookie] = conn.segs
                continue
            segs, idle, segs_out = data
            if segs > conn.segs:
                # Requests, not segments: an upload is many segments in and one answer out, a
                # big answer one request in and many out; each request has both.
                requests = max(1, min(segs - conn.segs, segs_out - conn.segs_out))
                arrivals += kept_alive_arrivals(conn.peer, conn.looked_at, at - idle, requests, conn.ignored)
                conn.segs, conn.segs_out = segs, segs_out
            conn.looked_at = at

    def _dump(self, arrivals: List[Arrival], history: bool) -> None:
        """One dump of the namespace: every open connection (and, at the stop signal, the
        listeners and the TIME_WAIT history)."""
        cpu = time.thread_time()
        # PassiveOpens before the dump: a connection accepted meanwhile is both in the dump
        # and counted as new, so it is looked for again (never the other way round).
        opens = passive_opens()
        at = time.monotonic()
        seen: Set[int] = set()
        listed: Set[int] = set()  # a socket turning TIME_WAIT mid-dump is listed twice, one cookie
        listening: Set[int] = set()
        for family in FAMILIES:
            for chunk, start, end in self._diag.dump(family, HISTORY_STATES if history else OPEN_STATES | (1 << TCP_LISTEN), info=True):
                if end - start < _MSG.size:
                    continue
                state = chunk[start + 1]
                sport = _PORT.unpack_from(chunk, start + 4)[0]
                if state == TCP_LISTEN:
                    listening.add(sport)
                    continue
                cookie = int.from_bytes(chunk[start + 44:start + 52], "little")
                if cookie in listed:
                    continue
                listed.add(cookie)
                src = chunk[start + 8:start + 24]
                mine = self._mine(family, sport, src)
                if state == TCP_TIME_WAIT:
                    if mine:
                        peer, ignored = self._peer_of(family, chunk[start + 24:start + 40], sport)
                        expires = _U32.unpack_from(chunk, start + 52)[0] / 1000.0
                        arrivals.append(Arrival(peer, at - max(0.0, TIME_WAIT_LENGTH - expires), True, ignored))
                    continue
                seen.add(cookie)
                if not mine or cookie in self._open:
                    continue
                data = _data(chunk, start, end)
                if data is None:
                    continue
                segs, idle, segs_out = data
                peer, ignored = self._peer_of(family, chunk[start + 24:start + 40], sport)
                self._open[cookie] = _Open(family, bytes(chunk[start + 4:start + 52]), peer, ignored, segs, segs_out, at)
                if segs > self._gone.pop(cookie, 0):
                    arrivals.append(Arrival(peer, at - idle, segs <= 1, ignored))
        self._listening = listening | set(self._ports)
        self._seen = {cookie for cookie in seen}
        self._opens_at_dump = opens
        self._closed_new = 0
        # Events read right after a dump may be of sockets that died before it: they are
        # requests, but not accepted since the dump.
        closed, _ = self._stream.read(self._listening)
        for one in closed:
            self._closed(one, arrivals, count=False)
        self._dumped_at = time.monotonic()
        self._dump_cost = time.thread_time() - cpu
        self.dumps += 1

    def start(self) -> None:
        """The dump at the stop signal: history and the connections to follow."""
        arrivals: List[Arrival] = []
        self._dump(arrivals, history=True)
        self._history, self._history_from = arrivals, time.monotonic() - TIME_WAIT_LENGTH

    # --- whose is it ---------------------------------------------------------------------

    def _mine(self, family: int, sport: int, src: bytes) -> bool:
        """Is a connection with this local port and address one of the app's listeners'?"""
        known = self._owned.get((sport, src))
        if known is None:
            addresses = self._locals.get(sport, ())
            known = addresses is None or (bool(addresses) and _peer(family, src)[:2] in addresses)  # type: ignore[operator]
            if len(self._owned) < 65536:
                self._owned[(sport, bytes(src))] = known
        return known

    def _peer_of(self, family: int, dst: bytes, sport: int) -> Tuple[str, bool]:
        found = self._peers.get(dst)
        if found is None:
            version, address, text = _peer(family, dst)
            found = (text, (version, address) in self._ignore)
            if len(self._peers) < 65536:
                self._peers[bytes(dst)] = found
        return found[0], found[1] or sport in self._ignore.ports

    def close(self) -> None:
        self._stream.close()
        self._diag.close()


def watch(root_pid: int, ignore: Sequence[str], listen_ports: Sequence[Tuple[int, int, bytes]] = ()) -> TrafficWatch:
    """Start watching the app's traffic: the given (family, port, packed local address)
    listeners, or else those of `root_pid`'s process tree. Raises Unavailable when that
    cannot be done."""
    diag = _Diag()
    stream: Optional[DestroyStream] = None
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
        # Subscribe first: a connection that closes between the dump and the subscription
        # would be in neither.
        stream = DestroyStream()
        watcher = TrafficWatch(diag, stream, listeners, networks, origin, passive_opens())
        watcher.start()
    except Unavailable:
        _close(diag, stream)
        raise
    except (OSError, ValueError, struct.error, IndexError) as error:
        _close(diag, stream)
        raise Unavailable(f"cannot read the app's connections: {_reason(error)}") from None
    return watcher


def _close(diag: _Diag, stream: Optional[DestroyStream]) -> None:
    diag.close()
    if stream is not None:
        stream.close()


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
    (None: all of them). A dump of listeners only walks the listening table, not the node's
    connections."""
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
