"""The two libc calls the os module lacks: prctl(2) and the raw syscall(2).

They go through `_ctypes`, the C half of ctypes: `import ctypes` (its Python half, with struct
and the type classes) costs ~2 ms more on a start that needs either call, and a start that is
not PID 1 (the subreaper) or was launched through posix_spawn (signals 32 and 33 arrive
ignored) needs one. Only ints, None (NULL) and bytes (a pointer to their buffer) are passed,
which _ctypes converts without ctypes' type classes; the result is read as a C int.
"""

from __future__ import annotations

import os
import _ctypes

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict, Optional, Union

    Argument = Union[int, bytes, None]


class _Function(_ctypes.CFuncPtr):
    """A libc function: C calling convention, errno saved for get_errno() right after."""

    _flags_ = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_USE_ERRNO


_functions: Dict[str, _Function] = {}


def _function(name: str) -> _Function:
    function = _functions.get(name)
    if function is None:
        function = _functions[name] = _Function(_ctypes.dlsym(_ctypes.dlopen(None), name))
    return function


def call(name: str, *arguments: Argument) -> int:
    """Call libc's `name`; raise OSError with errno when it returns -1 (their error)."""
    result = _function(name)(*arguments)
    if result == -1:
        code = _ctypes.get_errno()
        raise OSError(code, os.strerror(code))
    return result


# The raw system call numbers of rt_sigaction, by machine (`os.uname().machine`: the
# `platform` module would import re, enum and collections for the same string).
_RT_SIGACTION = {"x86_64": 13, "aarch64": 134}


def rt_sigaction_number() -> Optional[int]:
    return _RT_SIGACTION.get(os.uname().machine)
