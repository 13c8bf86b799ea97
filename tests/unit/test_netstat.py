"""netstat.py: the namespace's TCP counters parsed from /proc/net/snmp and /proc/net/netstat
as this kernel writes them (recorded here), and nothing else taken for them."""

from __future__ import annotations

from pathlib import Path

import pytest

from graceinit import netstat

SNMP = """\
Ip: Forwarding DefaultTTL InReceives InHdrErrors
Ip: 1 64 5961 0
Icmp: InMsgs InErrors OutRsts
Icmp: 9 0 777
Tcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens PassiveOpens AttemptFails EstabResets CurrEstab InSegs OutSegs RetransSegs InErrs OutRsts InCsumErrors
Tcp: 1 200 120000 -1 5 3 5 6 0 61 66 0 0 8 0
Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti MemErrors
Udp: 0 0 0 0 0 0 0 0 0
"""
NETSTAT = """\
TcpExt: SyncookiesSent SyncookiesRecv ListenOverflows ListenDrops TCPAbortOnData TCPAbortOnClose TCPAbortOnMemory TCPAbortOnTimeout TCPAbortOnLinger
TcpExt: 0 0 4 4 1 3 0 0 0
IpExt: InNoRoutes InTruncatedPkts
IpExt: 0 0
"""


def write(tmp_path: Path, snmp: str = SNMP, netstat_text: str = NETSTAT) -> tuple:
    (tmp_path / "snmp").write_text(snmp)
    (tmp_path / "netstat").write_text(netstat_text)
    return str(tmp_path / "snmp"), str(tmp_path / "netstat")


def test_tcp_and_tcpext_counters_by_name(tmp_path: Path) -> None:
    found = netstat.counters(write(tmp_path))
    assert found["Tcp:OutRsts"] == 8 and found["Tcp:PassiveOpens"] == 3
    assert (found["TcpExt:ListenDrops"], found["TcpExt:TCPAbortOnClose"], found["TcpExt:TCPAbortOnData"]) == (4, 3, 1)
    assert not any(name.startswith(("Ip", "Icmp", "Udp")) for name in found)  # Icmp's OutRsts is not TCP's


def test_an_unreadable_file_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        netstat.counters((str(tmp_path / "missing"),))


def test_the_real_files_have_every_counter_the_ledger_reads() -> None:
    from graceinit.ledger import COUNTERS

    found = netstat.counters()
    assert all(name in found for name in COUNTERS)
    low, high = netstat.ephemeral_ports()
    assert 0 < low <= high <= 65535
