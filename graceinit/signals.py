"""Signal plumbing: every signal graceinit handles becomes one byte on a pipe.

The C-level handler CPython installs writes the signal number to the "wakeup fd" the moment
the signal arrives, so the event loop can sleep in poll(2) with no timer and still wake at
once. Reading the numbers from the pipe (rather than trusting the Python-level handler,
which runs once per burst) keeps each queued real-time signal as its own event.
"""

from __future__ import annotations

import os
import _signal as signal  # the C module: `signal` would import enum (every start pays)

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs every container start: annotations only
    from typing import Iterable, List, Set

from graceinit.config import SYNCHRONOUS, UNCATCHABLE

HANDLED_SIGNALS = tuple(
    sorted(int(s) for s in signal.valid_signals() if s not in UNCATCHABLE and s not in SYNCHRONOUS)
)


_READ_SIZE = 4096


def _ignore_python_level(signum: int, frame: object) -> None:
    """The byte on the wakeup fd is the event; the Python-level call has nothing to do."""


class SignalInbox:
    """Owns signal dispositions for the life of the process."""

    def __init__(self, early: Iterable[int] = ()) -> None:
        self._read_fd, self._write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._early = list(early)
        for signum in HANDLED_SIGNALS:
            signal.signal(signum, _ignore_python_level)
        signal.set_wakeup_fd(self._write_fd, warn_on_full_buffer=False)

    @property
    def fileno(self) -> int:
        return self._read_fd

    def open(self) -> None:
        """Unblock: whatever arrived while blocked since boot is delivered now, in order."""
        signal.pthread_sigmask(signal.SIG_UNBLOCK, HANDLED_SIGNALS)

    def drain(self) -> List[int]:
        received, self._early = self._early, []
        while True:
            try:
                chunk = os.read(self._read_fd, _READ_SIZE)
            except BlockingIOError:
                return received
            received.extend(chunk)
            if len(chunk) < _READ_SIZE:
                return received  # the pipe is empty: spare the read that would say so


def detach_blocked(signals: Iterable[int], sender: int) -> List[int]:
    """Consume pending (blocked) signals; return those not sent by `sender`.

    Used after giving up the controlling terminal: the kernel then sends SIGHUP and SIGCONT
    to our own process group *as if we had sent them*, and those must not reach the child.
    """
    kept: List[int] = []
    wanted = list(signals)
    while True:
        info = signal.sigtimedwait(wanted, 0)
        if info is None:
            return kept
        if info.si_pid != sender:
            kept.append(info.si_signo)


def reset_inherited_ignores() -> None:
    """Give every signal graceinit does not handle itself its default disposition.

    An ignored disposition survives exec: whatever graceinit inherited as ignored would reach
    the child ignored too. The handled ones are reset in the child before exec; the fault
    signals are reset here (a real fault in graceinit should kill it, too); and the glibc-
    internal 32 and 33, which some launchers (Python 3.13's subprocess) hand over ignored and
    which sigaction(3) refuses to touch, through the raw system call.
    """
    for signum in SYNCHRONOUS:
        signal.signal(signum, signal.SIG_DFL)
    unreachable = _ignored() - set(signal.valid_signals())
    if unreachable:
        _default_through_syscall(unreachable)


def _ignored() -> Set[int]:
    try:
        with open("/proc/self/status", "rb") as status:
            for line in status:
                if line.startswith(b"SigIgn:"):
                    mask = int(line.split()[1], 16)
                    return {bit + 1 for bit in range(64) if mask >> bit & 1}
    except (OSError, ValueError, IndexError):
        pass
    return set()


_RT_SIGACTION = {"x86_64": 13, "aarch64": 134}


def _default_through_syscall(signums: Iterable[int]) -> None:
    import ctypes
    import platform

    number = _RT_SIGACTION.get(platform.machine())
    if number is None:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    default = ctypes.create_string_buffer(64)  # all zero: SIG_DFL, no flags, empty mask
    for signum in signums:
        libc.syscall(number, signum, default, None, 8)


def block_all() -> List[int]:
    """Block everything (before fork); returns the previous mask for restore()."""
    return list(signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals()))


def restore(mask: Iterable[int]) -> None:
    signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def reset_for_exec() -> None:
    """In a forked child: default dispositions, no wakeup fd, empty mask — then exec."""
    signal.set_wakeup_fd(-1)
    for signum in HANDLED_SIGNALS:
        signal.signal(signum, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, ())
