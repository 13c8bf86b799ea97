"""Entry point. Its first act is to block every signal, before any heavy import; its second,
to keep the app's Python settings out of graceinit's interpreter.

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

Isolation. An image sets PYTHONPATH, PYTHONINSPECT, PYTHONWARNINGS... for its app, and
graceinit, a Python program, inherits them: the app's `json.py` would be graceinit's json,
PYTHONINSPECT would leave PID 1 at a `>>>` prompt. Most of these act through interpreter
flags fixed at start-up, so the one sure cure is a fresh interpreter: when such a variable
is set, graceinit re-executes itself once with `-I` (no PYTHON* variable, no user site, no
working directory on the path), still with every signal blocked (the mask survives exec).
That costs one interpreter start-up (about 20 ms), paid only by images that set one: the
variables that change nothing graceinit does (PYTHONUNBUFFERED, PYTHONDONTWRITEBYTECODE, the
official image's PYTHON_VERSION...) cost nothing. The exec passes the environment block as
graceinit received it (not the interpreter's, which may have gained an LC_CTYPE), so the app
still gets every variable unchanged. Where graceinit itself lives outside the places `-I`
keeps (`pip install --user`, a PYTHONPATH install), the new interpreter is told its directory,
appended after the standard library so that nothing there can shadow it.
"""

import _signal

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs every container start: annotations only
    from typing import Dict, List

# PYTHON* variables that change nothing graceinit does (output buffering, bytecode files, hash
# order), and the metadata the official images set. Any other one costs the re-exec: unknown
# means unsafe (PYTHONIOENCODING=ascii would break `--help`).
HARMLESS = frozenset({
    "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE", "PYTHONHASHSEED",
    "PYTHON_VERSION", "PYTHON_SHA256", "PYTHON_PIP_VERSION", "PYTHON_SETUPTOOLS_VERSION",
    "PYTHON_GET_PIP_URL", "PYTHON_GET_PIP_SHA256", "PYTHON_GPG_KEY",
})


def main() -> None:
    _signal.pthread_sigmask(_signal.SIG_BLOCK, _signal.valid_signals())
    import sys

    isolate()
    from graceinit.startup import run

    sys.exit(run(sys.argv[1:]))


def isolate() -> None:
    """Re-execute in an isolated interpreter if the app's Python settings reach this one
    (returns only when no re-exec is needed or it failed); with `python -m graceinit`, move
    the working directory the interpreter put first on sys.path to the end."""
    import os  # already loaded by the interpreter's start-up: no file is read
    import sys

    if not sys.flags.ignore_environment:
        risky = unsafe(os.environ)
        if risky and not (risky == ["PYTHONPATH"] and _set_pythonpath_aside(os.environ["PYTHONPATH"])):
            try:
                os.execve(sys.executable, isolated_argv(), original_environ())
            except (OSError, ValueError):
                pass  # no interpreter to exec (sys.executable empty, a full process table): go on as we are
    if _run_as_module() and sys.path and sys.path[0] == os.getcwd():
        sys.path.append(sys.path.pop(0))  # graceinit may be in it: keep it, after the stdlib


def _set_pythonpath_aside(pythonpath: str) -> bool:
    """PYTHONPATH alone (the most common: PYTHONPATH=/app) acts only through sys.path: move
    its directories after the standard library and site-packages, so they can only add what
    is missing there (psutil, when that is where it is installed), never shadow. False when
    the start-up already imported something from them (a sitecustomize, a .pth's import):
    then only a fresh interpreter is clean."""
    import os
    import sys

    given = tuple(os.path.join(os.path.abspath(entry), "") for entry in pythonpath.split(os.pathsep) if entry)
    for name, module in list(sys.modules.items()):
        where = getattr(module, "__file__", None)
        if where and name.partition(".")[0] != "graceinit" and os.path.abspath(where).startswith(given):
            return False
    aside = [entry for entry in sys.path if os.path.join(os.path.abspath(entry or "."), "") in given]
    sys.path[:] = [entry for entry in sys.path if entry not in aside] + aside
    return True


def unsafe(environ: "Dict[str, str]") -> "List[str]":
    """The PYTHON* variables set that may change what graceinit's interpreter does."""
    return [name for name in environ if name.startswith("PYTHON") and name not in HARMLESS]


def isolated_argv() -> "List[str]":
    """The command line that starts graceinit again, the same way, in an isolated interpreter."""
    import os
    import sys

    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    kept = sys.modules["site"].getsitepackages() if "site" in sys.modules else []
    if here in kept:
        start = ["-m", "graceinit"] if _run_as_module() else [sys.argv[0]]
    else:
        start = ["-c", f"import sys; sys.path.append({here!r}); from graceinit.boot import main; main()"]
    return [sys.executable, "-I", *start, *sys.argv[1:]]


def original_environ() -> "Dict[bytes, bytes]":
    """The environment exactly as graceinit received it: the child's, and the re-exec's.

    The interpreter edits its own environment at start-up (PEP 538 adds LC_CTYPE=C.UTF-8
    under the C locale); /proc/self/environ still holds the block the kernel handed over.
    (Here rather than in spawn.py: the isolation needs it before graceinit's modules load.)
    """
    import os

    try:
        with open("/proc/self/environ", "rb") as block:
            raw = block.read()
    except OSError:
        return dict(os.environb)
    environ: "Dict[bytes, bytes]" = {}
    for entry in raw.split(b"\0"):
        name, sep, value = entry.partition(b"=")
        if sep and name:
            environ.setdefault(name, value)  # getenv(3) finds the first one
    return environ


def _run_as_module() -> bool:
    import sys

    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    return spec is not None and spec.name == "graceinit.__main__"
