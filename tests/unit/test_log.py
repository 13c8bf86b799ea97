"""graceinit's own stderr: text and JSON records, escaping, and never blocking (log.py).

These write to real pipes: the sink is configured onto the pipe's write end as fd 2 of a
forked child, so the test process's own stderr is never touched."""

from __future__ import annotations

import json
import os
import signal
from typing import Callable

import pytest

from graceinit import log


def in_child(body: Callable[[], None], fill: bool = False, timeout: float = 10.0) -> bytes:
    """Run `body` in a forked child whose fd 2 is a pipe; return what it wrote. With `fill`,
    the pipe is full before `body` runs (nobody reads it until the child exits)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            signal.alarm(int(timeout))  # a blocking write would hang here: die instead
            os.dup2(write_end, 2)
            if fill:
                filler = os.open(f"/proc/self/fd/{write_end}", os.O_WRONLY | os.O_NONBLOCK)
                try:
                    while True:
                        os.write(filler, b"." * 4096)
                except BlockingIOError:
                    pass
            body()
            os._exit(0)
        except BaseException:
            os._exit(3)
    os.close(write_end)
    chunks = []
    _, status = os.waitpid(pid, 0)
    while True:
        chunk = os.read(read_end, 65536)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(read_end)
    assert os.waitstatus_to_exitcode(status) == 0, f"child ended with {status}"
    return b"".join(chunks).lstrip(b".")


def test_text_record_is_one_prefixed_line_with_controls_escaped() -> None:
    def body() -> None:
        log.configure(False, 1)
        log.info("pid 7 status: \x1b[31mred\n[graceinit] forged", event="child_status", pid=7)

    out = in_child(body)
    assert out == b"[graceinit] pid 7 status: \\x1b[31mred\\n[graceinit] forged\n"


def test_json_record_has_ts_level_event_msg_and_fields() -> None:
    def body() -> None:
        log.configure(False, 0, "json")
        log.warning("grace period over", event="sigkill", pid=12, reason="grace period over")

    record = json.loads(in_child(body))
    assert record["level"] == "warning" and record["event"] == "sigkill"
    assert record["logger"] == "graceinit"
    assert record["msg"] == "grace period over" and record["pid"] == 12
    assert record["ts"].endswith("Z") and record["ts"][10] == "T"


def test_levels_default_shows_notice_not_info_and_quiet_only_errors() -> None:
    def body() -> None:
        log.configure(False, 0)
        log.info("hidden")
        log.emit(log.NOTICE, "termination_report", "shown")
        log.configure(True, 0)
        log.warning("hidden too")
        log.error("an error")

    assert in_child(body) == b"[graceinit] shown\n[graceinit] error: an error\n"


def test_a_full_stderr_drops_lines_instead_of_blocking_and_counts_them() -> None:
    def body() -> None:
        log.configure(False, 2)
        for number in range(50):
            log.info(f"line {number}")
        assert log.dropped_total() == 50

    in_child(body, fill=True)  # the child's alarm kills it if a write blocks


@pytest.mark.parametrize("text", ["\x00", "\x07bell", "\r", "\t", "\x7f", "\x9b2J", "\x85", "\x80\x9f"])
def test_escape_leaves_no_control_character(text: str) -> None:
    assert not any(ord(char) < 0x20 or 0x7F <= ord(char) < 0xA0 for char in log.escape(text))


def _strict(data: bytes) -> dict:
    assert len(data) <= 4096 and data.endswith(b"\n") and data.count(b"\n") == 1
    record = json.loads(data.decode("utf-8"))
    json.dumps(record, ensure_ascii=False).encode("utf-8")  # no lone surrogate survived
    return record


@pytest.mark.parametrize("field", ["x" * 9000, "€" * 3000, list(range(3000)), ["hook-é" * 20] * 60])
def test_a_long_field_is_shortened_and_named_not_the_line(field: object) -> None:
    record = _strict(log._json_line({"ts": "t", "level": "info", "logger": "graceinit", "event": "e",
                                     "msg": "short", "big": field, "small": 7}))
    assert record["truncated"] == ["big"] and record["small"] == 7 and record["msg"] == "short"


def test_many_long_fields_still_give_one_line() -> None:
    fields = {f"f{n}": "y" * 500 for n in range(40)}
    record = _strict(log._json_line({"ts": "t", "level": "info", "logger": "graceinit", "event": "e",
                                     "msg": "m", **fields}))
    assert record["event"] == "e" and record["truncated"]


def test_a_record_of_countless_tiny_fields_falls_back_to_what_must_be_said() -> None:
    fields = {f"field{n}": n for n in range(2000)}
    record = _strict(log._json_line({"ts": "t", "level": "warning", "logger": "graceinit", "event": "e",
                                     "msg": "m", **fields}))
    assert record["event"] == "e" and record["truncated"] == ["*"]


def test_bytes_that_were_not_utf8_and_c1_controls_are_escaped_in_json() -> None:
    argv = b"caf\xe9 \xff".decode("utf-8", "surrogateescape") + "\x9b2J\ud800"
    record = _strict(log._json_line({"ts": "t", "level": "info", "logger": "graceinit", "event": "e",
                                     "msg": argv}))
    assert record["msg"] == "caf\\xe9 \\xff\x9b2J\ufffd"
    assert b"\\u009b" in log._json_bytes(argv)
