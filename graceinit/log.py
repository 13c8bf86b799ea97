"""graceinit's own messages on stderr: one record a line, as text or as JSON.

Every record is an event with a stable name and fields (README lists them). In text mode a
record is ``[graceinit] <message>``; in json mode it is one JSON object with ``ts``,
``level``, ``logger`` (always "graceinit": the app may log JSON on the same stream),
``event``, ``msg`` and the event's fields.

A record is one line of at most PIPE_BUF (4096) bytes, so that a write to a pipe is all or
nothing and never interleaves with the app's. A JSON record too long for that has its longest
fields shortened (strings cut, lists thinned), never the line, and names them in
``"truncated"``; a text record is cut between two characters. Both are valid UTF-8 and safe
for a terminal: control characters (C0, DEL, C1 such as U+009B, CSI) are escaped, and a byte
that was not UTF-8 (argv, a hook's name: Python decodes it to a lone surrogate, which strict
JSON parsers reject) is written as the text ``\xff``.

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
LEVEL_NAMES = ("error", "warning", "notice", "info", "debug")
# Signals our own write can make the kernel send to us. They are held while writing, and a
# SIGPIPE raised by it discarded: it is not a signal anyone sent, and forwarding it would kill
# the child when nobody reads graceinit's stderr any more (`graceinit ... 2>&1 | head`).
_SELF_INFLICTED = {signal.SIGTTOU, signal.SIGTTIN, signal.SIGPIPE}
# A pipe write up to PIPE_BUF is all or nothing; longer records are shortened to fit.
_MAX_RECORD = 4096
# C0 controls, DEL and the C1 controls (U+0080-U+009F: U+009B is CSI to a terminal that
# honours 8-bit controls), shown escaped: an app's text must not move the cursor, recolour
# the terminal, or start a line of its own that looks like graceinit's.
_CONTROLS = {code: f"\\x{code:02x}" for code in (*range(0x20), *range(0x7F, 0xA0))}
_CONTROLS.update({0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r", 0x1B: "\\x1b"})
# In a JSON string (already escaped by json.dumps but for C1): the same, as JSON escapes.
_JSON_CONTROLS = {code: f"\\u{code:04x}" for code in range(0x7F, 0xA0)}
# Fields every JSON record has, never shortened.
_FIXED = ("ts", "level", "logger", "event", "truncated")


class _Sink:
    threshold = NOTICE
    json = False
    fd = 2  # until configure(): blocking writes to fd 2 are fine before anything runs
    dropped = 0  # records lost to a full stderr since the last one that got through
    dropped_total = 0
    guarded = False  # configured: writes must not block
    ask_first = False  # writing to fd 2 itself, which might block: poll(2) before each write


def configure(quiet: bool, verbose: int, log_format: str = "text") -> None:
    """Set the level and format, and make writes non-blocking (see _nonblocking_stderr)."""
    _Sink.threshold = ERROR if quiet else min(NOTICE + verbose, DEBUG)
    _Sink.json = log_format == "json"
    _Sink.fd = _nonblocking_stderr()
    _Sink.ask_first = _Sink.fd == 2 and not _regular_file(2)
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

    Not for a regular file: a description of our own has an offset of its own, and the app,
    writing at the shared one (`2> out.log` opens without O_APPEND), would write over our
    lines. A regular file never makes a write wait for a reader, so fd 2 itself is used.
    """
    if _regular_file(2):
        return 2
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


def _regular_file(fd: int) -> bool:
    import stat  # loaded by os already

    try:
        return stat.S_ISREG(os.fstat(fd).st_mode)
    except OSError:
        return False


def escape(text: str) -> str:
    """Control characters as visible escapes (a newline too: one record stays one line)."""
    return text.translate(_CONTROLS)


def _utf8(line: str, json: bool) -> bytes:
    """Strict UTF-8. A lone surrogate U+DC80-U+DCFF stands for the byte 0x80-0xFF that was
    not UTF-8 (surrogateescape): written as the text \\xff (in JSON, a backslash then xff);
    any other lone surrogate as U+FFFD."""
    try:
        return line.encode("utf-8")
    except UnicodeEncodeError:
        backslash = "\\\\" if json else "\\"
        table = {code: "\ufffd" for code in range(0xD800, 0xE000)}
        table.update({0xDC00 + byte: f"{backslash}x{byte:02x}" for byte in range(0x80, 0x100)})
        return line.translate(table).encode("utf-8")


def _timestamp() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"


def _render(level: int, event: str, msg: str, fields: "dict[str, Any]") -> bytes:
    if _Sink.json:
        record = {"ts": _timestamp(), "level": LEVEL_NAMES[level], "logger": "graceinit", "event": event,
                  "msg": msg}
        record.update(fields)
        return _json_line(record)
    prefix = "error: " if level == ERROR else "warning: " if level == WARNING else ""
    data = _utf8(f"[graceinit] {prefix}{escape(msg)}", json=False)
    if len(data) + 1 > _MAX_RECORD:
        # Cut between two characters: a cut inside one would not be UTF-8.
        data = data[: _MAX_RECORD - 4].decode("utf-8", "ignore").encode("utf-8") + b"..."
    return data + b"\n"


def _json_line(record: "dict[str, Any]") -> bytes:
    """One JSON line within _MAX_RECORD: while too long, the longest field is halved."""
    data = _json_bytes(record)
    while len(data) > _MAX_RECORD:
        sizes = {name: len(_json_bytes(value)) for name, value in record.items() if name not in _FIXED}
        name = max(sizes, key=sizes.__getitem__, default=None)
        if name is None or sizes[name] <= 8:  # nothing left worth cutting: keep what must be said
            record = {key: record[key] for key in _FIXED[:4]}
            record["msg"], record["truncated"] = "(record too long)", ["*"]
            return _json_bytes(record)
        record[name] = _halved(record[name])
        record.setdefault("truncated", [])
        if name not in record["truncated"]:
            record["truncated"].append(name)
        data = _json_bytes(record)
    return data


def _json_bytes(value: Any) -> bytes:
    import json

    text = json.dumps(value, default=str, ensure_ascii=False).translate(_JSON_CONTROLS)
    return _utf8(text, json=True) + b"\n"


def _halved(value: Any) -> Any:
    """Half of a field: a string's first half and an ellipsis, a list's first half."""
    if isinstance(value, (list, tuple)):
        return list(value[: len(value) // 2])
    if not isinstance(value, str):
        value = str(value)
    return value[: len(value) // 2] + "\u2026"


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
        if _Sink.ask_first and _Sink.guarded and not _room(2):
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
