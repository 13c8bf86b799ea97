"""Issue 2, behaviour 5 -- a terminal (``docker run -it image bash``).

The init is started the way a container runtime starts PID 1 with ``-it``: a
session leader whose controlling terminal is a pty slave (``setsid --ctty``)
and which has the slave as stdin/stdout/stderr -- both as real PID 1 (under
``unshare``, exactly ``docker run -it``) and not.  It runs ``bash -i``; the
test types into the pty master, as a user would, and watches both the bytes
coming back and the kernel's view (/proc stat: session, tty_nr, tpgid,
state).

Commands typed are written so that their *output* differs from their echo
(``echo RC:$?`` prints ``RC:130``; the echo shows ``RC:$?``), so a match is
always the command's output.
"""
import os
import re
import shutil

import pytest

pytestmark = pytest.mark.timeout(30)

from helpers import PtyReader, procfs
from helpers.inits import init_params

BASH = shutil.which("bash")


def _stat(pid):
    f = procfs.stat(pid)
    # proc(5): pid comm state ppid pgrp session tty_nr tpgid
    return {"state": f[2], "ppid": int(f[3]), "pgrp": int(f[4]), "session": int(f[5]),
            "tty_nr": int(f[6]), "tpgid": int(f[7])}


def _sleep_child(shell, arg):
    """Pid of `sleep <arg>` started by the shell, once it has exec'd."""
    import psutil

    def find():
        try:
            for c in psutil.Process(shell).children():
                try:
                    if c.cmdline()[1:] == [arg]:
                        return c.pid
                except (psutil.NoSuchProcess, psutil.ZombieProcess, IndexError):
                    continue
        except psutil.NoSuchProcess:
            return None
        return None
    return procfs.wait_until(find, 10, "`sleep %s` to start under bash" % arg)


@pytest.fixture
def pty_pair():
    master, slave = os.openpty()
    try:
        yield master, slave
    finally:
        for fd in (master, slave):
            try:
                os.close(fd)
            except OSError:
                pass


@pytest.mark.timeout(60)
@pytest.mark.parametrize("init", init_params(xfail={
    "tini": "puts the child in its own process group of tini's session, not its own session",
    "naive": "no terminal handling: bash is not in the foreground",
}), indirect=True)
def test_interactive_bash_gets_the_terminal_and_job_control(init, procs, pty_pair, pid1):
    master, slave = pty_pair
    slave_name = os.ttyname(slave)
    slave_dev = os.fstat(slave).st_rdev
    env = procs.env(base={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": "/root",
                          "TERM": "dumb", "PS1": "$ ", "HISTFILE": "/dev/null"})
    sup = procs.start(init.cmd("--", BASH, "--norc", "--noprofile", "--noediting", "-i"),
                      tty=slave, env=env, pid1=pid1)
    term = PtyReader(master)

    term.write("echo GI$((6*7))\n")
    term.expect(rb"GI42", timeout=15)
    shell = sup.child(contains="--noediting")
    init_pid = sup.pid

    # -- the terminal is bash's controlling tty, in bash's own session -------
    st = _stat(shell)
    assert st["tty_nr"] == slave_dev, "bash has no/another controlling tty: %r" % st
    assert st["session"] == shell, "bash is not in its own session (sid %d)" % st["session"]
    assert st["tpgid"] == st["pgrp"], "bash is not the terminal's foreground group: %r" % st
    term.write("tty\n")
    term.expect(re.escape(slave_name).encode() + rb"\r?\n", timeout=5)
    assert b"no job control" not in term.buf, term.text()

    # -- Ctrl-C interrupts the foreground job --------------------------------
    term.write("sleep 101\n")
    sleeper = _sleep_child(shell, "101")
    procfs.wait_until(lambda: _stat(shell)["tpgid"] == _stat(sleeper)["pgrp"], 5,
                      "sleep to be the foreground job")
    term.write(b"\x03")
    procfs.wait_until(lambda: procfs.state(sleeper) in (None, "Z"), 5, "Ctrl-C to end sleep")
    term.write("echo RC:$?\n")
    term.expect(rb"RC:130", timeout=5)
    assert procfs.state(init_pid) not in ("T", "t"), "init stopped"

    # -- Ctrl-Z stops it, fg resumes it --------------------------------------
    term.write("sleep 102\n")
    sleeper = _sleep_child(shell, "102")
    procfs.wait_until(lambda: _stat(shell)["tpgid"] == _stat(sleeper)["pgrp"], 5,
                      "sleep to be the foreground job")
    term.write(b"\x1a")
    procfs.wait_until(lambda: procfs.state(sleeper) == "T", 5, "Ctrl-Z to stop sleep")
    term.expect(rb"Stopped", timeout=5)
    assert procfs.state(init_pid) not in ("T", "t"), "init stopped by Ctrl-Z"
    term.write("echo BACK$((1+1))\n")               # bash has the terminal again
    term.expect(rb"BACK2", timeout=5)

    term.write("fg\n")
    procfs.wait_until(lambda: procfs.state(sleeper) in ("S", "R")
                      and _stat(shell)["tpgid"] == _stat(sleeper)["pgrp"], 5,
                      "fg to resume sleep in the foreground")
    term.write(b"\x03")
    procfs.wait_until(lambda: procfs.state(sleeper) in (None, "Z"), 5, "Ctrl-C after fg")
    term.write("echo RC:$?\n")
    term.expect(rb"RC:130", timeout=5)

    # -- the init exits when bash exits, with bash's status ------------------
    assert procfs.state(init_pid) not in ("T", "t"), "init stopped"
    if pid1:
        assert _stat(init_pid)["session"] == init_pid, "harness: PID 1 is no session leader"
    term.write("exit 7\n")
    assert sup.wait(timeout=10) == 7, term.text()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("init", init_params(xfail={
    "dumb-init": "setsid()s the child away from the terminal",
    "naive": "no terminal handling: the child is not the foreground group",
}), indirect=True)
def test_run_from_an_interactive_shell(init, procs, pty_pair):
    """Contract: when the init is *not* a session leader but stdin is its
    controlling tty (typed at an interactive shell), the child gets its own
    process group, made the terminal's foreground group; Ctrl-C reaches it
    and the shell gets the terminal back when the init exits."""
    _from_an_interactive_shell(init, procs, pty_pair)


@pytest.mark.timeout(60)
def test_run_from_an_interactive_shell_with_tostop_and_messages(init, procs, pty_pair):
    """Same, with `stty tostop` and -v: graceinit, now in a background
    process group, writes its messages to the terminal -- the kernel answers
    with SIGTTOU to graceinit's group.  That must neither stop graceinit nor
    loop, nor reach the child as a forwarded signal."""
    _from_an_interactive_shell(init, procs, pty_pair, init_args=["-v"], tostop=True)


@pytest.mark.timeout(60)
def test_ctrl_z_and_fg_from_an_interactive_shell(procs, pty_pair, graceinit_bin):
    """Ctrl-Z stops the child (the terminal's foreground group), and graceinit follows it:
    it stops itself so the shell gets the terminal back and reports the job stopped; `fg`
    hands the terminal back to the child, which runs on until Ctrl-C."""

    class GraceInit:
        @staticmethod
        def cmd(*args):
            return [str(graceinit_bin), *args]

    _from_an_interactive_shell(GraceInit, procs, pty_pair, suspend=True)


def _from_an_interactive_shell(init, procs, pty_pair, init_args=(), tostop=False, suspend=False):
    master, slave = pty_pair
    env = procs.env(base={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": "/root",
                          "TERM": "dumb", "PS1": "$ ", "HISTFILE": "/dev/null"})
    outer = procs.start([BASH, "--norc", "--noprofile", "--noediting", "-i"], tty=slave,
                        env=env)
    term = PtyReader(master)
    term.write("%secho GI$((6*7))\n" % ("stty tostop; " if tostop else ""))
    term.expect(rb"GI42", timeout=15)
    shell = outer.pid

    term.write(" ".join(init.cmd(*init_args, "--", "sleep", "103")) + "\n")
    sleeper = procfs.wait_until(
        lambda: next((p for p in procfs.children(_init_under(shell)) or {}
                      if _cmd(p)[1:] == ["103"]), None) if _init_under(shell) else None,
        15, "`init -- sleep 103` to start under the shell")
    init_pid = _init_under(shell)
    procfs.wait_until(lambda: _stat(sleeper)["tpgid"] == _stat(sleeper)["pgrp"], 5,
                      lambda: "sleep to be the terminal's foreground group: sleep %r, init %r"
                      % (_stat(sleeper), _stat(init_pid)))
    assert _stat(sleeper)["pgrp"] != _stat(init_pid)["pgrp"], "child not in its own group"
    assert procfs.state(init_pid) not in ("T", "t"), "init stopped"
    if suspend:
        term.write(b"\x1a")
        procfs.wait_until(lambda: procfs.state(init_pid) == "T" and procfs.state(sleeper) == "T"
                          and _stat(shell)["tpgid"] == _stat(shell)["pgrp"], 5,
                          lambda: "Ctrl-Z to stop child and init and give the shell the terminal:"
                          " init %r, sleep %r, shell %r" % (_stat(init_pid), _stat(sleeper), _stat(shell)))
        term.write("fg\n")
        procfs.wait_until(lambda: procfs.state(sleeper) not in ("T", None)
                          and _stat(sleeper)["tpgid"] == _stat(sleeper)["pgrp"], 5,
                          lambda: "`fg` to continue the child in the foreground: sleep %r"
                          % (_stat(sleeper),))
    term.write(b"\x03")
    procfs.wait_until(lambda: procfs.state(init_pid) in (None, "Z"), 5,
                      lambda: "the init to exit after Ctrl-C (init state %r, sleep state %r)"
                      % (procfs.state(init_pid), procfs.state(sleeper)))
    term.write("echo RC:$?\n")
    term.expect(rb"RC:130", timeout=5)
    st = _stat(shell)
    assert st["tpgid"] == st["pgrp"], "the shell did not get the terminal back"
    term.write("exit 0\n")
    assert outer.wait(timeout=10) == 0


def _init_under(shell):
    import psutil
    try:
        kids = psutil.Process(shell).children()
    except psutil.NoSuchProcess:
        return None
    return kids[0].pid if kids else None


def _cmd(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return [a.decode() for a in f.read().split(b"\0")[:-1]]
    except OSError:
        return []
