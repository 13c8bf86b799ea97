"""Issue 2, behaviour 7 -- never die with the child alive / keep supervising.

An error inside graceinit must not hurt the child: the one that can be
provoked from outside without test hooks is graceinit's own stderr breaking
(the log reader went away: ``graceinit ... 2>&1 | head``, a collector
restarting).  Writing a message then fails with EPIPE, and the kernel sends
SIGPIPE *to graceinit itself*.  That is not a signal a user or runtime sent:
it must not be forwarded (it would kill a child with the default SIGPIPE
action), and graceinit must keep supervising and forwarding.
"""
import os
import signal

import pytest

from helpers import py_helper

pytestmark = pytest.mark.timeout(30)


def test_broken_stderr_does_not_hurt_the_child(init, procs, pid1):
    r, w = os.pipe()
    os.close(r)                                     # nobody will ever read graceinit's stderr
    try:
        sup = procs.start(init.cmd("-v", "--", *py_helper(
            "sigprinter.py", "--exit-on", "USR2:5")), stderr=w, pid1=pid1)
    finally:
        os.close(w)
    try:
        sup.stdout.expect("ready", timeout=15)
    except AssertionError as e:
        try:
            rc = sup.wait(timeout=5)
        except AssertionError:
            rc = "still running"
        pytest.fail("the child did not survive graceinit's broken stderr (graceinit exit %r): %s"
                    % (rc, e))
    sup.send(signal.SIGUSR1)                        # info messages are written now
    sup.stdout.expect("SIGUSR1", timeout=5)
    sup.send(signal.SIGHUP)
    sup.stdout.expect("SIGHUP", timeout=5)
    sup.send(signal.SIGUSR2)                        # the child exits 5
    sup.stdout.expect("SIGUSR2", timeout=5)
    assert sup.wait(timeout=10) == 5
    assert "SIGPIPE" not in sup.stdout.seen, sup.stdout.seen
