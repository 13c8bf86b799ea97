"""Tiny shared event log for the stop-sequence test programs.

Every helper program (child, hook, daemon) appends one JSON object per line to the same file,
with a single O_APPEND write, so lines from different processes never interleave.
Timestamps are CLOCK_MONOTONIC (time.monotonic()), which is system-wide (also inside a PID
namespace), so the test can compare them with its own time.monotonic() readings.

Stdlib only: the hook runs under `python -S`.
"""
import json
import os
import time


def emit(log_path, who, ev, **fields):
    record = {"t": time.monotonic(), "who": who, "ev": ev, "pid": os.getpid()}
    record.update(fields)
    line = (json.dumps(record, sort_keys=True) + "\n").encode()
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)
    return record


def read_all(log_path):
    try:
        with open(log_path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return []
    out = []
    for line in data.splitlines():
        if line.strip():
            out.append(json.loads(line))
    return out
