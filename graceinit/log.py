"""graceinit's own messages: one line each on stderr, prefixed ``[graceinit]``.

Written with os.write rather than the logging module: nothing to import on the start-up
path, and no buffer that could be lost if the interpreter dies.
"""

from __future__ import annotations

import os
import signal

ERROR, WARNING, INFO, DEBUG = 0, 1, 2, 3
# Signals our own write can make the kernel send to us. They are held while writing, and a
# SIGPIPE raised by it discarded: it is not a signal anyone sent, and forwarding it would kill
# the child when nobody reads graceinit's stderr any more (`graceinit ... 2>&1 | head`).
_SELF_INFLICTED = {signal.SIGTTOU, signal.SIGTTIN, signal.SIGPIPE}


class _Level:
    threshold = WARNING


def set_verbosity(quiet: bool, verbose: int) -> None:
    _Level.threshold = ERROR if quiet else min(WARNING + verbose, DEBUG)


def enabled(level: int) -> bool:
    return level <= _Level.threshold


def _write(text: str) -> None:
    data = "".join(f"[graceinit] {line}\n" for line in text.splitlines() or [""]).encode(
        "utf-8", "backslashreplace"
    )
    # Also: a background process writing to a terminal with `stty tostop` gets SIGTTOU, and a
    # handled (not blocked) SIGTTOU makes the kernel restart the write forever.
    old = signal.pthread_sigmask(signal.SIG_BLOCK, _SELF_INFLICTED)
    try:
        while data:
            data = data[os.write(2, data) :]
    except BrokenPipeError:
        signal.sigtimedwait({signal.SIGPIPE}, 0)  # ours, also while boot still blocks all
    except OSError:
        pass  # stderr is gone: nowhere left to say anything, and no reason to die
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def error(message: str) -> None:
    _write(f"error: {message}")


def warning(message: str) -> None:
    if enabled(WARNING):
        _write(f"warning: {message}")


def info(message: str) -> None:
    if enabled(INFO):
        _write(message)


def debug(message: str) -> None:
    if enabled(DEBUG):
        _write(message)


def exception(message: str) -> None:
    """An internal error: always shown, with its traceback, because it is a bug."""
    import traceback

    _write(f"error: {message}\n{traceback.format_exc().rstrip()}")
