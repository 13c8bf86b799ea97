"""Entry point. Its first act is to block every signal, before any heavy import.

As PID 1 the kernel silently drops a signal whose disposition is still the default, and
until graceinit installs its handlers every disposition is the default. A *blocked* signal
is never dropped: it stays pending and is delivered once the handlers exist. `_signal` is
built into the interpreter (no file to load, unlike `signal`, which imports `enum`).

What still runs before this line, measured as CPU time of a whole run that stops right here
(Python 3.11, median of 80 interleaved runs on a loaded 2-core machine):

- the interpreter's own start-up with `site`: 16.1 ms (`python3 -c pass`); without `site`
  11.6 ms (`python3 -I -S -c pass`);
- pip's generated console script adds `import re` (with `enum`) before its `from
  graceinit.boot import main`: 25.1 ms in all, the floor + 9 ms;
- a launcher script without that import (`#!python`, then `_signal.pthread_sigmask`, then
  this module), installable through setuptools' `script-files` (pip rewrites `#!python` to
  the environment's interpreter, for wheels and editable installs alike), would block at
  16.5 ms, the floor + 0.4 ms. graceinit still ships pip's console script
  (`[project.scripts]`): changing that is a packaging decision;
- blocking before `site` needs `python -S` in the `#!` line (12.4 ms), which pip drops when it
  rewrites the line; a `.pth` file could do it earlier still, but it runs in every Python
  process of the environment, so graceinit does not ship one.
"""

import _signal


def main() -> None:
    _signal.pthread_sigmask(_signal.SIG_BLOCK, _signal.valid_signals())
    import sys

    from graceinit.startup import run

    sys.exit(run(sys.argv[1:]))
