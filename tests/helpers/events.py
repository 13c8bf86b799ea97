"""A JSONL event log shared by the test programs (stop-sequence child/hook, restart app/WSGI app/
gunicorn hooks) and the harnesses that read it.

Every program appends one JSON object per line with a single O_APPEND write, so lines from
different processes never interleave. Timestamps are CLOCK_MONOTONIC (time.monotonic()),
system-wide (also inside a PID namespace), so the test can compare them with its own clock.

Stdlib only and no imports from the helpers package: the programs run under `python -S` (no
site-packages, so not `helpers/__init__.py` either) and import this file as the top-level
module `events`, after putting tests/helpers/ on sys.path; tests import it as `helpers.events`.
"""
import json
import os
import time


def emit(log_path, who, ev, **fields):
    record = {"t": time.monotonic(), "who": who, "ev": ev, "pid": os.getpid()}
    record.update(fields)
    line = (json.dumps(record, sort_keys=True) + "\n").encode()
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
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
    return [json.loads(line) for line in data.splitlines() if line.strip()]
