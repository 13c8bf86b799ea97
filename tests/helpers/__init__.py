"""Shared test helpers for graceinit's integration tests.

Modules (import as ``from helpers import ...`` -- tests/conftest.py puts
tests/ on sys.path):

* ``launch``   ProcessTracker (the ``procs`` fixture), Supervised (the one
               launcher, also behind the stop/restart harnesses),
               LineReader, PtyReader, helper()/py_helper() paths, PID1_PREFIX;
               kill_all() and tagged_processes() for teardown.
* ``waiting``  the one ``wait_until`` (returns the truthy value, raises
               WaitTimeout) and ``wait_on`` (same, on a condition variable).
* ``events``   the JSONL event log (emit/read_all) of the stop/restart test
               programs; stdlib only, also imported by them as plain ``events``.
* ``eventlog`` EventLog: the harnesses' events()/wait_event() on that log.
* ``procfs``   /proc readers (status, SigBlk/SigIgn sets, fds, environ,
               children, zombies, context switches); re-exports ``wait_until``.
* ``inits``    InitSpec for graceinit/tini/dumb-init/naive and
               ``init_params()`` for comparison parametrization.
* ``sigprinter``  (also a program) ``signame``/``signum``.

Child programs (run with ``py_helper("name.py", ...)``):

* ``sigprinter.py``  prints ``ready`` then one line per signal received.
* ``orphans.py``     creates bursts of orphans (for reaping tests).
* ``stdio_probe.py`` binary-safe stdin/stdout/stderr echo.
* ``naive_init.py``  a deliberately broken init (negative control).
"""
from . import procfs  # noqa: F401
from .launch import (  # noqa: F401
    PID1_PREFIX, PYTHON, ByteCollector, LineReader, ProcessTracker, PtyReader,
    Supervised, helper, py_helper,
)
from .waiting import WaitTimeout, wait_until  # noqa: F401
from .sigprinter import catchable, signame, signum  # noqa: F401
