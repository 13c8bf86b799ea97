"""The network namespace's TCP counters, as the kernel keeps them for the namespace alone:
/proc/net/snmp (`Tcp:`) and /proc/net/netstat (`TcpExt:`), and its ephemeral port range.
Read by the ledger (ledger.py) at the stop's boundaries and by the drain's looks
(traffic.py, PassiveOpens); nothing here runs before the stop signal, and nothing here
imports more than the os module already there."""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only
    from typing import Dict, Tuple

FILES = ("/proc/net/snmp", "/proc/net/netstat")
_WANTED = (b"Tcp", b"TcpExt")


def counters(files: tuple = FILES) -> Dict[str, int]:
    """{"Tcp:OutRsts": n, "TcpExt:ListenDrops": n, ...}; OSError when a file cannot be read.
    Each file holds pairs of lines: `Prefix: Name Name ...` then `Prefix: value value ...`."""
    found: Dict[str, int] = {}
    for path in files:
        lines = _read(path).splitlines()
        for names, values in zip(lines[::2], lines[1::2]):
            prefix, _, names = names.partition(b":")
            if prefix not in _WANTED or not values.startswith(prefix + b":"):
                continue
            head = prefix.decode() + ":"
            for name, value in zip(names.split(), values[len(prefix) + 1:].split()):
                found[head + name.decode()] = int(value)
    return found


def passive_opens() -> int:
    """Connections accepted in this namespace so far (`Tcp: PassiveOpens`): read at each of the
    drain's looks, so /proc/net/snmp alone. ValueError when the file has none."""
    found = counters(FILES[:1]).get("Tcp:PassiveOpens")
    if found is None:
        raise ValueError(f"no Tcp: PassiveOpens in {FILES[0]}")
    return found


def _read(path: str) -> bytes:
    """A whole /proc file, read raw (no file object: the drain reads one every look)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        chunks = []
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
    finally:
        os.close(fd)


def ephemeral_ports() -> Tuple[int, int]:
    """The namespace's range of local ports for outgoing connections (ip_local_port_range)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range", "rb") as source:
            low, high = source.read().split()[:2]
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999  # the kernel's default
