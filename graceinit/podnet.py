"""The pod's own addresses, for one start-up check of --drain-ignore (issue 19).

A --drain-ignore range that holds the pod's own address holds the pods around it too: the
ingress and every client in the cluster. Imported only when --drain-ignore is given (by
then config.py has imported ipaddress to read it); reads /proc, no netlink.
"""

from __future__ import annotations

import ipaddress

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs every start: annotations only
    from typing import List, Sequence, Tuple


def own_addresses() -> List[str]:
    """This network namespace's own addresses, loopback and IPv6 link-local left out."""
    found: List[str] = []
    try:
        with open("/proc/net/fib_trie", "rb") as trie:
            lines = trie.read(1 << 20).decode("ascii", "replace").splitlines()
        for previous, line in zip(lines, lines[1:]):
            if line.strip() == "/32 host LOCAL" and "|--" in previous:
                address = previous.split("|--")[1].strip()
                if not address.startswith("127.") and address not in found:
                    found.append(address)
    except OSError:
        pass
    try:
        with open("/proc/net/if_inet6", "rb") as inet6:
            for line in inet6.read(1 << 20).decode("ascii", "replace").splitlines():
                fields = line.split()
                if len(fields) >= 6 and fields[5] != "lo" and len(fields[0]) == 32 and not fields[0].startswith("fe80"):
                    found.append(str(ipaddress.IPv6Address(bytes.fromhex(fields[0]))))
    except (OSError, ValueError):
        pass
    return found


def ignored_own_addresses(items: Sequence[str]) -> List[Tuple[str, str]]:
    """(item, address) for each --drain-ignore item that holds one of the pod's addresses
    (one test per prefix length and address, whatever the number of items)."""
    own = [ipaddress.ip_address(address) for address in own_addresses()]
    if not own:
        return []
    lengths = {}
    for item in items:
        if not item.startswith(":"):
            network = ipaddress.ip_network(item)
            lengths.setdefault((network.version, network.prefixlen), {})[network] = item
    found = []
    for address in own:
        for (version, length), networks in lengths.items():
            if version == address.version:
                item = networks.get(ipaddress.ip_network(f"{address}/{length}", strict=False))
                if item is not None:
                    found.append((item, str(address)))
                    break
    return found
