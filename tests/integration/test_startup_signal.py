"""Issue 2, behaviour 7 -- a stop signal during start-up is not lost.

Deterministic without test hooks: ``--stdout FIFO`` makes graceinit open the
FIFO for writing before it spawns the child, and that open blocks until a
reader appears.  While graceinit is blocked there (seen in
/proc/<pid>/syscall) and has taken control of SIGTERM (blocked or caught, per
/proc/<pid>/status), the test sends SIGTERM, then opens the FIFO for reading
so the open returns.  Contract: exit 143 (128+15), the child never started
(it would create a marker file), nothing left running.  As real PID 1 this is
exactly the case the kernel would otherwise drop.
"""
import os
import signal

import pytest

pytestmark = pytest.mark.timeout(30)

from helpers import procfs, py_helper


@pytest.mark.timeout(30)
@pytest.mark.parametrize("stop", ["TERM", "INT"])
def test_sigterm_before_the_child_is_spawned_stops_everything(init, procs, pid1, tmp_path,
                                                             stop):
    stop = getattr(signal, "SIG" + stop)
    fifo = tmp_path / "stdout.fifo"
    os.mkfifo(str(fifo))
    marker = tmp_path / "child-started"
    sup = procs.start(init.cmd("--stdout", str(fifo), "--",
                               *py_helper("sigprinter.py", "--marker", str(marker))),
                      pid1=pid1)
    pid = sup.pid

    def blocked_in_startup():
        if not sup.running():
            return False
        controlled = procfs.sigset(pid, "SigBlk") | procfs.sigset(pid, "SigCgt")
        return stop in controlled and procfs.blocked_in_open(pid)
    procfs.wait_until(blocked_in_startup, 15, lambda: (
        "graceinit to block opening the FIFO with SIGTERM under control (running=%s, "
        "syscall=%r, wchan=%r); stderr: %s" % (
            sup.running(), _syscall(pid), procfs.wchan(pid), sup.stderr_text())))
    assert not procfs.children(pid), "graceinit spawned before opening --stdout"

    sup.send(stop)
    reader = os.open(str(fifo), os.O_RDONLY | os.O_NONBLOCK)   # lets its open() return
    try:
        rc = sup.wait(timeout=10)
    except procfs.WaitTimeout as e:
        pytest.fail("graceinit did not exit after the early stop signal (child started: %s): %s"
                    % (marker.exists(), e))
    finally:
        os.close(reader)
    assert rc == 128 + stop, "exit %r; stderr: %s" % (rc, sup.stderr_text())
    assert not marker.exists(), "the child was started despite the early stop signal"


def _syscall(pid):
    try:
        with open("/proc/%d/syscall" % pid) as f:
            return f.read().split()[0]
    except (OSError, IndexError):
        return None


@pytest.mark.timeout(30)
def test_other_signal_before_the_child_exists_is_forwarded_once_it_does(init, procs, pid1,
                                                                       tmp_path):
    """Contract: non-stop signals that arrive before the child exists are
    queued and forwarded once it does.  The child is `sleep`, whose default
    action for SIGUSR1 is to die: if the queued USR1 reaches it (before or
    after its exec, either way), graceinit exits 128+10 at once; if it was
    lost, sleep runs on and the bounded wait fails."""
    fifo = tmp_path / "stdout.fifo"
    os.mkfifo(str(fifo))
    sup = procs.start(init.cmd("--stdout", str(fifo), "--", "sleep", "600"), pid1=pid1)
    pid = sup.pid
    procfs.wait_until(lambda: sup.running() and signal.SIGUSR1 in (
        procfs.sigset(pid, "SigBlk") | procfs.sigset(pid, "SigCgt"))
        and procfs.blocked_in_open(pid), 15,
        lambda: "graceinit to block opening the FIFO; stderr: %s" % sup.stderr_text())
    sup.send(signal.SIGUSR1)
    reader = os.open(str(fifo), os.O_RDONLY | os.O_NONBLOCK)
    try:
        rc = sup.wait(timeout=10)
    except procfs.WaitTimeout as e:
        pytest.fail("the early SIGUSR1 never reached the child: %s" % e)
    finally:
        os.close(reader)
    assert rc == 128 + signal.SIGUSR1, sup.stderr_text()
