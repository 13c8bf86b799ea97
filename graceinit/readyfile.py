"""The ready file: exists while the app should get traffic (an exec readiness probe tests it).

Behind the System seam: the life cycle says ready or not, LinuxSystem calls these. An I/O
error here (a full disk, a directory made read-only) is raised to the caller, which warns
and goes on: a ready file must never stop the stop sequence.
"""

from __future__ import annotations

import os


def create(path: str) -> None:
    # O_NONBLOCK: a FIFO put at the path would otherwise block the loop until a reader comes.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
    os.close(fd)


def remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
