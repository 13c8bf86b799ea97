"""Entry point. Its first act is to block every signal, before any heavy import.

As PID 1 the kernel silently drops a signal whose disposition is still the default, and
until graceinit installs its handlers every disposition is the default. A *blocked* signal
is never dropped: it stays pending and is delivered once the handlers exist. `_signal` is
built into the interpreter (no file to load, unlike `signal`, which imports `enum`).

What runs before the block: the interpreter's own start-up with `site` (about 16 ms here,
`python3 -c pass`), then the launcher `bin/graceinit`, which blocks every signal itself before
it imports this module. pip's generated console script would first run `import re` (with
`enum`: about 9 ms more); blocking before `site` would need `python -S` in the `#!` line,
which pip drops when it rewrites it; a `.pth` file could block earlier still but would run in
every Python process of the environment. So the remaining window is the interpreter's own
start-up, and nothing graceinit ships can shorten it.
"""

import _signal


def main() -> None:
    _signal.pthread_sigmask(_signal.SIG_BLOCK, _signal.valid_signals())
    import sys

    from graceinit.startup import run

    sys.exit(run(sys.argv[1:]))
