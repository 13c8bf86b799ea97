"""Entry point. Its first act is to block every signal, before any heavy import.

As PID 1 the kernel silently drops a signal whose disposition is still the default, and
until graceinit installs its handlers every disposition is the default. A *blocked* signal
is never dropped: it stays pending and is delivered once the handlers exist. So the window in
which a `docker stop` can be lost is only the interpreter's own start-up, which nothing
written in Python can shorten further. `_signal` is built into the interpreter (no file to
load, unlike `signal`, which imports `enum`).
"""

import _signal


def main() -> None:
    _signal.pthread_sigmask(_signal.SIG_BLOCK, _signal.valid_signals())
    import sys

    from graceinit.startup import run

    sys.exit(run(sys.argv[1:]))
