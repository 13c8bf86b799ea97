"""graceinit's own messages on stderr: one record a line, as text or as JSON.

Every record is an event with a stable name and fields (README lists them). In text mode a
record is ``[graceinit] <message>``; in json mode it is one JSON object with ``ts``,
``level``, ``event``, ``msg`` and the event's fields.

Written with os.write rather than the logging module: nothing to import on the start-up
path, and no buffer that could be lost if the interpreter dies. Once configured, the writes
never block the event loop: a stderr nobody reads (a full pipe) makes graceinit drop its own
lines and count them, never stop forwarding signals.
"""

from __future__ import annotations

import os
import _signal as signal  # the C module: `signal` would import enum (every start pays)
import time

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs every container start: annotations only
    from typing import Any

# NOTICE: shown by default like a warning, but not one (the termination report).
ERROR, WARNING, NOTICE, INFO, DEBUG = 0, 1, 2, 3, 4
LEVEL_NAMES = ("error", "warning", "info", "info", "debug")
# Signals our own write can make the kernel send to us. They are held while writing, and a
# SIGPIPE raised by it discarded: it is not a signal anyone sent, and forwarding it would kill
# the child when nobody reads graceinit's stderr any more (`graceinit ... 2>&1 | head`).
_SELF_INFLICTED = {signal.SIGTTOU, signal.SIGTTIN, signal.SIGPIPE}
# A pipe write up to PIPE_BUF is all or nothing; longer records are cut to fit.
_MAX_RECORD = 4096
# C0 controls and DEL, shown escaped: an app's text must not move the cursor, recolour the
# terminal, or start a line of its own that looks like graceinit's.
_CONTROLS = {code: f"\\x{code:02x}" for code in (*range(0x20), 0x7F)}
_CONTROLS.update({0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r", 0x1B: "\\x1b"})


class _Sink:
    threshold = NOTICE
    json = False
    fd = 2  # until configure(): blocking writes to fd 2 are fine before anything runs
    dropped = 0  # records lost to a full stderr since the last one that got through
    dropped_total = 0
    guarded = False  # configured: writes must not block


def configure(quiet: bool, verbose: int, log_format: str = "text") -> None:
    """Set the level and format, and make writes non-blocking (see _nonblocking_stderr)."""
    _Sink.threshold = ERROR if quiet else min(NOTICE + verbose, DEBUG)
    _Sink.json = log_format == "json"
    _Sink.fd = _nonblocking_stderr()
    _Sink.guarded = True


def set_format(log_format: str) -> None:
    _Sink.json = log_format == "json"


def enabled(level: int) -> bool:
    return level <= _Sink.threshold


def dropped_total() -> int:
    return _Sink.dropped_total


def _nonblocking_stderr() -> int:
    """A descriptor of our own for stderr, non-blocking.

    O_NONBLOCK on fd 2 itself would be set on the open file description the child shares,
    and the child's own writes would start failing with EAGAIN. Re-opening the pipe or tty
    through /proc gives graceinit a description of its own. Where that is impossible (a
    socket, no /proc), fd 2 stays, and each write first asks poll(2) whether there is room.
    """
    try:
        flags = os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY | os.O_APPEND
        fd = os.open("/proc/self/fd/2", flags)
    except OSError:
        return 2
    try:
        if os.path.sameopenfile(fd, 2):
            return fd
    except OSError:
        pass
    os.close(fd)
    return 2


def escape(text: str) -> str:
    """Control characters as visible escapes (a newline too: one record stays one line)."""
    return text.translate(_CONTROLS)


def _timestamp() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"


def _render(level: int, event: str, msg: str, fields: "dict[str, Any]") -> bytes:
    if _Sink.json:
        import json

        record = {"ts": _timestamp(), "level": LEVEL_NAMES[level], "event": event, "msg": msg}
        record.update(fields)
        line = json.dumps(record, default=str, ensure_ascii=False) + "\n"
    else:
        prefix = "error: " if level == ERROR else "warning: " if level == WARNING else ""
        line = f"[graceinit] {prefix}{escape(msg)}\n"
    data = line.encode("utf-8", "backslashreplace")
    if len(data) > _MAX_RECORD:
        data = data[: _MAX_RECORD - 4] + b"...\n"
    return data


def emit(level: int, event: str, msg: str, **fields: Any) -> None:
    """One record, if its level is on. Never raises, never blocks once configured."""
    if level > _Sink.threshold:
        return
    data = _render(level, event, msg, fields)
    if _Sink.dropped and _write(_render(WARNING, "log_dropped", f"{_Sink.dropped} log line(s) dropped:"
                                        " stderr was full", {"count": _Sink.dropped})):
        _Sink.dropped = 0
    if not _write(data):
        _Sink.dropped += 1
        _Sink.dropped_total += 1
    if not _Sink.json and "traceback" in fields:  # text: the traceback follows, a line a record
        for line in str(fields["traceback"]).split("\n"):
            emit(level, event, line)


def _write(data: bytes) -> bool:
    # Also: a background process writing to a terminal with `stty tostop` gets SIGTTOU, and a
    # handled (not blocked) SIGTTOU makes the kernel restart the write forever.
    old = signal.pthread_sigmask(signal.SIG_BLOCK, _SELF_INFLICTED)
    try:
        if _Sink.fd == 2 and _Sink.guarded and not _room(2):
            return False
        while data:
            data = data[os.write(_Sink.fd, data) :]
        return True
    except BlockingIOError:
        return False
    except BrokenPipeError:
        signal.sigtimedwait({signal.SIGPIPE}, 0)  # ours, also while boot still blocks all
        return False
    except OSError:
        return False  # stderr is gone: nowhere left to say anything, and no reason to die
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _room(fd: int) -> bool:
    """Whether fd 2 can take a record now (only when it could not be re-opened)."""
    import select

    try:
        poller = select.poll()
        poller.register(fd, select.POLLOUT)
        return bool(poller.poll(0))
    except (OSError, ValueError):
        return True


def error(message: str, event: str = "error", **fields: Any) -> None:
    emit(ERROR, event, message, **fields)


def warning(message: str, event: str = "warning", **fields: Any) -> None:
    emit(WARNING, event, message, **fields)


def info(message: str, event: str = "info", **fields: Any) -> None:
    emit(INFO, event, message, **fields)


def debug(message: str, event: str = "debug", **fields: Any) -> None:
    emit(DEBUG, event, message, **fields)


def exception(message: str, event: str = "internal_error", **fields: Any) -> None:
    """An internal error: always shown, with its traceback, because it is a bug."""
    import traceback

    emit(ERROR, event, message, traceback=traceback.format_exc().rstrip(), **fields)
