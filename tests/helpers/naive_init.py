#!/usr/bin/env python3
"""naive_init: a deliberately *wrong* init, used only as a negative control.

It is what a hand-rolled Python entrypoint wrapper typically looks like:
fork + os.execvp (so the child inherits Python's own SIGPIPE/SIGXFSZ "ignore"
dispositions and the LC_CTYPE that Python's C-locale coercion put into the
environment), forward a handful of signals to the child only, wait for that
one child (no reaping of orphans, not a subreaper, no process group, no tty
handling).  Tests run against it with a strict xfail to prove that they can
fail; it is never a target.

usage: naive_init.py COMMAND [ARG...]
"""
import os
import signal
import sys


def main():
    cmd = sys.argv[1:]
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    child = os.fork()
    if child == 0:
        try:
            os.execvp(cmd[0], cmd)
        except OSError as e:
            sys.stderr.write("naive_init: %s: %s\n" % (cmd[0], e.strerror))
            os._exit(127)

    def forward(signum, frame):
        os.kill(child, signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, forward)
    while True:
        try:
            _, status = os.waitpid(child, 0)
            break
        except InterruptedError:
            continue
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


if __name__ == "__main__":
    sys.exit(main())
