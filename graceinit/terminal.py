"""How the child meets the terminal, so `docker run -it image bash` has job control."""

from __future__ import annotations

import os
import _signal as signal  # the C module: `signal` would import enum (every start pays)

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs every container start: annotations only
    from typing import List, Tuple


class Session:
    """Where the child's process group lives (compared with `is`; a plain class rather than
    an enum, whose import every container start would pay)."""

    SHARED = "shared"  # -g off: the child stays in graceinit's process group
    NEW = "new"  # own session; takes stdin as controlling tty if it is a free terminal
    FOREGROUND = "foreground"  # own process group, made the terminal's foreground group


def prepare(process_group: bool) -> Tuple[str, List[int]]:
    """Choose the child's session and, if needed, hand over the controlling terminal.

    Must run while every signal is still blocked. Returns the mode and the signals that were
    pending and must still be handled (see signals.detach_blocked).
    """
    if not process_group:
        return Session.SHARED, []
    try:
        os.tcgetpgrp(0)
    except OSError:
        return Session.NEW, []  # stdin is not our controlling terminal
    if os.getsid(0) != os.getpid():
        # Started from an interactive shell: that shell's session owns the terminal, so the
        # child cannot have a session of its own with it. It gets the foreground instead.
        return Session.FOREGROUND, []
    # We lead the session that owns the terminal (a container started with -t). Let go of it
    # so the child's new session can take it; the kernel answers with SIGHUP and SIGCONT to
    # our group, which are ours alone and must not be forwarded.
    import fcntl
    import termios

    from graceinit.signals import detach_blocked

    try:
        fcntl.ioctl(0, termios.TIOCNOTTY)
    except OSError:
        return Session.NEW, []
    return Session.NEW, detach_blocked((signal.SIGHUP, signal.SIGCONT), os.getpid())


def enter_in_child(session: str) -> None:
    """Runs in the forked child before exec, with every signal blocked."""
    if session is Session.NEW:
        os.setsid()
        if os.isatty(0):
            import fcntl
            import termios

            try:
                fcntl.ioctl(0, termios.TIOCSCTTY, 0)
            except OSError:
                pass  # someone else's terminal: the child runs without one, like setsid(1)
    elif session is Session.FOREGROUND:
        os.setpgid(0, 0)
        try:
            os.tcsetpgrp(0, os.getpgrp())
        except OSError:
            pass


def suspend_with(child_pgid: int) -> None:
    """The child, in the foreground of the terminal graceinit shares with an interactive
    shell, was stopped (Ctrl-Z). Stop graceinit too, so that shell gets the terminal back
    and sees its job stopped; on `fg` give the terminal back to the child and continue it."""
    reclaim_foreground()
    os.kill(os.getpid(), signal.SIGSTOP)  # returns once the shell continues us (fg or bg)
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTTOU, signal.SIGTTIN})
    try:
        if os.tcgetpgrp(0) == os.getpgrp():  # `fg`: the terminal is ours to hand on
            os.tcsetpgrp(0, child_pgid)
    except OSError:
        pass
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
    try:
        os.killpg(child_pgid, signal.SIGCONT)
    except ProcessLookupError:
        pass


def reclaim_foreground() -> None:
    """After a FOREGROUND child exits, take the terminal back for graceinit's group."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTTOU, signal.SIGTTIN})
    try:
        os.tcsetpgrp(0, os.getpgrp())
    except OSError:
        pass
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
