#!/usr/bin/env python3
"""orphans: make orphans land on whoever reaps for us (PID 1 or a subreaper).

usage: orphans.py [--count N] [--fanout M] [--code C] [--witness] [--hold]
                  [--exit CODE]

* ``--witness``: first create one long-lived orphan named ``gi-witness``
  (comm, visible as psutil name()).  It waits until it has been re-parented,
  prints ``witness ready``, then blocks reading stdin until EOF and exits 0.
  A test checks from outside that its parent is the init under test -- the
  proof that orphans really land there.
* then N short-lived orphans (default 10000): M "middle" processes each fork
  N/M grandchildren that ``_exit(C)`` at once (default C=3) and exit
  themselves without waiting, so every grandchild is orphaned.  The main
  process waits for its middles (they are not orphans) and prints
  ``burst done <N>``.
* ``--hold``: then block reading stdin until EOF.
* finally exit with ``--exit CODE`` (default 0).

Only the standard library; Python 3.6+.
"""
import argparse
import ctypes
import os
import sys
import time

PR_SET_NAME = 15


def _say(text):
    os.write(1, (text + "\n").encode())


def _wait_stdin_eof():
    try:
        while os.read(0, 65536):
            pass
    except OSError:
        pass


def _witness():
    middle = os.fork()
    if middle:
        os.waitpid(middle, 0)
        return
    middle_pid = os.getpid()
    if os.fork():
        os._exit(0)           # middle: orphan the witness
    try:
        ctypes.CDLL(None).prctl(PR_SET_NAME, b"gi-witness", 0, 0, 0)
    except OSError:
        pass
    deadline = time.monotonic() + 10
    while os.getppid() == middle_pid and time.monotonic() < deadline:
        time.sleep(0.001)     # until the middle has exited and we are adopted
    _say("witness ready")
    _wait_stdin_eof()
    os._exit(0)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--count", type=int, default=10000)
    p.add_argument("--fanout", type=int, default=100)
    p.add_argument("--code", type=int, default=3)
    p.add_argument("--witness", action="store_true")
    p.add_argument("--hold", action="store_true")
    p.add_argument("--exit", type=int, default=0)
    a = p.parse_args()

    if a.witness:
        _witness()

    middles = []
    fanout = max(1, min(a.fanout, a.count))
    per, extra = divmod(a.count, fanout)
    for i in range(fanout):
        n = per + (1 if i < extra else 0)
        pid = os.fork()
        if pid == 0:
            made = 0
            while made < n:
                try:
                    child = os.fork()
                except BlockingIOError:     # EAGAIN: too many processes, retry
                    time.sleep(0.001)
                    continue
                if child == 0:
                    os._exit(a.code)
                made += 1
            os._exit(0)
        middles.append(pid)
    for pid in middles:
        os.waitpid(pid, 0)
    _say("burst done %d" % a.count)
    if a.hold:
        _wait_stdin_eof()
    return a.exit


if __name__ == "__main__":
    sys.exit(main())
