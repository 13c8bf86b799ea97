"""An app's Python settings, as an image would set them for its app (issue 18 item 2): a
PYTHONPATH of modules shadowing what graceinit imports, and the PYTHON* variables that change
an interpreter's behaviour. graceinit must behave the same with or without them.

Every shadow module, when imported, leaves a marker file behind and then breaks: the marker
tells a test that graceinit's interpreter reached the app's code at all, whatever the
breakage did.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, List

import graceinit

# What graceinit (and psutil, click) import on some path: the attack run's four and more.
SHADOWED = ["shlex", "ipaddress", "json", "struct", "socket", "select", "traceback", "math",
            "fcntl", "termios", "psutil", "click", "typing", "enum", "re", "base64", "hashlib",
            "random", "warnings", "contextlib", "collections", "functools", "threading",
            "selectors", "subprocess", "signal", "locale", "tempfile", "weakref", "glob"]

# Variables that change the interpreter itself. Not PYTHONHOME and PYTHONPLATLIBDIR: with
# those wrong the interpreter cannot even start, before any line of graceinit runs.
INTERPRETER_VARIABLES: Dict[str, List[str]] = {
    "PYTHONINSPECT": ["1"],
    "PYTHONDEVMODE": ["1"],
    "PYTHONWARNINGS": ["error", "always", "error::ResourceWarning"],
    "PYTHONVERBOSE": ["1", "2"],
    "PYTHONPROFILEIMPORTTIME": ["1"],
    "PYTHONOPTIMIZE": ["1", "2"],
    "PYTHONMALLOC": ["debug", "malloc"],
    "PYTHONTRACEMALLOC": ["1"],
    "PYTHONFAULTHANDLER": ["1"],
    "PYTHONWARNDEFAULTENCODING": ["1"],
    "PYTHONASYNCIODEBUG": ["1"],
    "PYTHONBREAKPOINT": ["os._exit"],
    "PYTHONNOUSERSITE": ["1"],
    "PYTHONSAFEPATH": ["1"],
    "PYTHONUNBUFFERED": ["1"],
    "PYTHONDONTWRITEBYTECODE": ["1"],
    "PYTHONHASHSEED": ["0", "random", "4242"],
    "PYTHONIOENCODING": ["latin-1", "ascii:strict"],
    "PYTHONUTF8": ["0", "1"],
    "PYTHONCOERCECLOCALE": ["0"],
    "PYTHONINTMAXSTRDIGITS": ["640"],
    "PYTHONNODEBUGRANGES": ["1"],
    "PYTHON_VERSION": ["3.12.1"],
}


def shadow_dir(directory: Path, modules: List[str] = SHADOWED) -> Path:
    """A directory for PYTHONPATH holding a `name.py` (or package) for each module, which
    breaks when graceinit's code imports it, and leaves a marker in directory/imported/.

    Imported by anything else (the editable install's finder, which `site` runs before any
    line of graceinit), it hands over the real module: that happens in every Python of the
    environment and is no concern of graceinit's."""
    imported = directory / "imported"
    imported.mkdir(parents=True, exist_ok=True)
    package_dir = os.path.dirname(os.path.abspath(graceinit.__file__)) + os.sep
    for name in modules:
        marker = str(imported / name)
        if name == "psutil":  # "an old psutil": its import works, but it lacks what is used
            package = directory / "psutil"
            package.mkdir(exist_ok=True)
            (package / "__init__.py").write_text(
                f"open({marker!r}, 'w').close()\nversion_info = (1, 0, 0)\n")
            continue
        (directory / f"{name}.py").write_text(_SHADOW.format(package_dir=package_dir, marker=marker))
    return directory


_SHADOW = """\
import os, sys

def _from_graceinit():
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_filename.startswith({package_dir!r}):
            return True
        frame = frame.f_back
    return False

if _from_graceinit():
    open({marker!r}, 'w').close()
    raise RuntimeError("the app's " + __name__ + " reached graceinit")
_here = os.path.dirname(os.path.abspath(__file__))
_saved = sys.path[:]
del sys.modules[__name__]
sys.path[:] = [p for p in sys.path if os.path.abspath(p or '.') != _here]
try:
    sys.modules[__name__] = __import__(__name__)
finally:
    sys.path[:] = _saved
"""


def reached(directory: Path) -> List[str]:
    """The shadow modules graceinit imported."""
    return sorted(os.listdir(directory / "imported"))
