"""Issue 2, behaviour 3 -- reaping, as real PID 1 and as child subreaper.

The child is tests/helpers/orphans.py: it first makes one long-lived orphan
(the "witness", comm ``gi-witness``) that must be adopted by the init -- the
proof that orphans really land there (the test process is itself a subreaper,
so an init that is not would lose them to pytest, not to the machine) -- and
then a burst of short-lived orphans whose SIGCHLDs coalesce.  Zombies are
counted from /proc (state Z, parent = the init), waiting with a timeout.
"""
import subprocess

import psutil
import pytest

from helpers import procfs, py_helper
from helpers.inits import init_params

BURST = 10000


def _orphan_inits():
    return init_params(xfail={
        "naive": "waits for its one child only, and is no subreaper",
    })


def _wait_lines(reader, wanted, timeout):
    """Consume lines until every line in `wanted` was seen (any order)."""
    import time
    deadline = time.monotonic() + timeout
    seen = set()
    while set(wanted) - seen:
        seen.add(reader.next_line(max(deadline - time.monotonic(), 0)))
    return seen


def _subreaper_args(init, pid1, request):
    if pid1:
        return []
    if init.subreaper is None:
        request.applymarker(pytest.mark.xfail(
            strict=True, reason="%s cannot be a child subreaper" % init.name))
        return []
    return list(init.subreaper)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("init", _orphan_inits(), indirect=True)
def test_orphan_burst_leaves_no_zombies(init, procs, pid1, request):
    args = _subreaper_args(init, pid1, request)
    sup = procs.start(init.cmd(*args, "--", *py_helper(
        "orphans.py", "--witness", "--hold", "--count", BURST, "--exit", 42)),
        pid1=pid1, stdin=subprocess.PIPE)
    main = sup.child(contains="orphans.py")
    # The burst takes seconds (Python forks); the witness is adopted first,
    # but the two lines may come in either order.
    _wait_lines(sup.stdout, ["witness ready", "burst done %d" % BURST], timeout=120)

    # The witness orphan was adopted by the init (PID 1 / subreaper).
    witness = procfs.wait_until(
        lambda: next((p.pid for p in sup.children() if _name(p) == "gi-witness"), None),
        5, lambda: "the witness orphan to be a child of the init (children: %s)"
        % {p.pid: _name(p) for p in sup.children()})

    # Every other orphan is reaped: the init's children shrink to the main
    # child and the witness, with no zombie among them.
    def settled():
        kids = procfs.children(sup.pid)
        return set(kids) <= {main, witness} and "Z" not in kids.values()
    procfs.wait_until(settled, 20, lambda: "the orphans to be reaped: %d zombie(s) left" %
                      len(procfs.zombies_of(sup.pid)))

    sup.popen.stdin.close()          # main child and witness exit now
    assert sup.wait(timeout=15) == 42, sup.stderr_text()


@pytest.mark.timeout(30)
@pytest.mark.parametrize("init", _orphan_inits(), indirect=True)
def test_a_single_orphan_is_reaped_promptly(init, procs, pid1, request):
    """An idle init with one adopted orphan: when the orphan dies, the one
    SIGCHLD must wake the init and the zombie be gone within a second."""
    args = _subreaper_args(init, pid1, request)
    sup = procs.start(init.cmd(*args, "--", *py_helper(
        "orphans.py", "--witness", "--hold", "--count", 0)), pid1=pid1, stdin=subprocess.PIPE)
    _wait_lines(sup.stdout, ["witness ready", "burst done 0"], timeout=15)
    witness = procfs.wait_until(
        lambda: next((p.pid for p in sup.children() if _name(p) == "gi-witness"), None),
        5, "the witness orphan to be a child of the init")
    import os
    import signal
    os.kill(witness, signal.SIGKILL)
    procfs.wait_until(lambda: not procfs.exists(witness), 1.0,
                      lambda: "the dead orphan to be reaped (state %r)" % procfs.state(witness))
    sup.popen.stdin.close()
    assert sup.wait(timeout=10) == 0


@pytest.mark.timeout(60)
@pytest.mark.parametrize("init", init_params(), indirect=True)
def test_exit_status_is_the_main_childs_amid_orphans(init, procs, pid1, request):
    """The main child exits (42) right after a burst of orphans that exit 3
    and 0: the status that counts is the main child's."""
    args = [] if pid1 else list(init.subreaper or [])
    sup = procs.start(init.cmd(*args, "--", "sh", "-c",
                               "%s; %s; exit 42" % (
                                   " ".join(py_helper("orphans.py", "--count", 500,
                                                      "--code", 3)),
                                   " ".join(py_helper("orphans.py", "--count", 500,
                                                      "--code", 0)))),
                      pid1=pid1)
    assert sup.wait(timeout=45) == 42, sup.stderr_text()


@pytest.mark.timeout(30)
def test_no_subreaper_opts_out_with_a_warning(init, procs):
    """--no-subreaper (not PID 1): orphans are not adopted by graceinit (here
    they land on the test process, itself a subreaper) and graceinit warns.
    Also a self-check of the witness mechanism used above."""
    sup = procs.start(init.cmd("--no-subreaper", "--", *py_helper(
        "orphans.py", "--witness", "--hold", "--count", 0)), stdin=subprocess.PIPE)
    _wait_lines(sup.stdout, ["witness ready", "burst done 0"], timeout=15)
    mine = psutil.Process().children()
    assert any(_name(p) == "gi-witness" for p in mine), "the witness was not orphaned to us"
    assert not any(_name(p) == "gi-witness" for p in sup.children())
    sup.popen.stdin.close()
    assert sup.wait(timeout=10) == 0
    warnings = [l for l in sup.stderr_lines() if l.startswith("[graceinit] ")]
    assert warnings, "no warning about running as neither PID 1 nor subreaper"


@pytest.mark.timeout(30)
def test_default_subreaper_does_not_warn(init, procs):
    rc, _, err = procs.run(init.cmd("--", "true"))
    assert rc == 0
    assert err == b"", err


def _name(p):
    try:
        return p.name()
    except psutil.Error:
        return None
