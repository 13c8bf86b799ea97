"""Network namespaces for tests: an init started in a fresh one (like a pod's), and client
threads that join it.

    run = procs.start(in_new_netns([graceinit_bin, ...]))
    enter_netns_of(run.pid)   # in a client thread: its sockets live in the init's namespace

The namespace has only loopback (up), so the kernel's view of TCP there is the test's own
traffic, not the shared machine's. Needs root (or CAP_SYS_ADMIN): `netns_ok()` says.
"""
from __future__ import annotations

import ctypes
import os
import subprocess
from typing import List

CLONE_NEWNET = 0x40000000
_LIBC = ctypes.CDLL(None, use_errno=True)


def netns_ok() -> bool:
    try:
        return subprocess.run(["unshare", "--net", "--", "true"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def in_new_netns(argv: List[str], setup: str = "") -> List[str]:
    """argv run in a new network namespace with loopback up (and `setup`, shell commands,
    run first: an address, a dummy link). unshare execs in place: the pid stays argv's."""
    script = "ip link set lo up" + (f" && {setup}" if setup else "") + ' && exec "$@"'
    return ["unshare", "--net", "--", "sh", "-c", script, "sh", *[str(a) for a in argv]]


def enter_netns_of(pid: int) -> None:
    """Move the calling thread (only it) into pid's network namespace."""
    fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
    try:
        if _LIBC.setns(fd, CLONE_NEWNET) != 0:
            error = ctypes.get_errno()
            raise OSError(error, os.strerror(error))
    finally:
        os.close(fd)
