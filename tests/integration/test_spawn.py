"""Issue 2, behaviour 1 -- spawn: what the child inherits from graceinit.

The child must get graceinit's stdin/stdout/stderr themselves (same open
files, nothing copied through graceinit, binary-safe), the environment byte
for byte as graceinit received it, the same working directory, default
signal dispositions with an empty mask, and no file descriptors but 0, 1, 2.
Everything is checked from outside through /proc, on a child that does not
touch any of it (``sleep``), except the stdio test which needs a writer.
"""
import os
import shutil
import signal
import subprocess

import pytest

pytestmark = pytest.mark.timeout(30)

from helpers import procfs, py_helper
from helpers.inits import init_params
from helpers.stdio_probe import STDERR_PAYLOAD, expected_stdout

SLEEP = shutil.which("sleep")


def start_sleeper(procs, init, pid1=False, **kw):
    """Start `init -- sleep 600` and return (supervised, child pid)."""
    sup = procs.start(init.cmd("--", SLEEP, "600"), pid1=pid1, **kw)
    child = sup.child(contains="600")
    return sup, child


@pytest.mark.parametrize("init", init_params(), indirect=True)
def test_stdio_is_passed_unchanged_and_binary_safe(init, procs):
    sup = procs.start(init.cmd("--", *py_helper("stdio_probe.py")),
                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, lines=False)
    child = sup.child(contains="stdio_probe.py")

    # The very same open files: the child's fds 0/1/2 point at the pipes the
    # init was given (same inode), so no byte goes through the init.
    init_fds, child_fds = procfs.fd_targets(sup.pid), procfs.fd_targets(child)
    for fd in (0, 1, 2):
        assert child_fds.get(fd) == init_fds.get(fd), (
            "child fd %d is %r, the init's is %r" % (fd, child_fds.get(fd), init_fds.get(fd)))

    # Binary-safe: 1 MiB with every byte value (larger than a pipe buffer).
    data = (bytes(range(256)) * 4096)[::-1] + b"\x00\r\n\x00"
    from helpers.launch import ByteCollector
    out = ByteCollector(sup.popen.stdout)
    sup.popen.stdin.write(data)
    sup.popen.stdin.close()
    assert sup.wait(20) == 0, sup.stderr_text()
    assert out.data(timeout=5) == expected_stdout(data)
    assert STDERR_PAYLOAD in sup.stderr.data(timeout=5)


@pytest.mark.parametrize("init", init_params(xfail={
    "naive": "execvp() passes Python's coerced LC_CTYPE on to the child"}), indirect=True)
def test_environment_is_passed_byte_for_byte(init, procs, pid1):
    env = {
        b"PATH": os.environb.get(b"PATH", b"/usr/bin:/bin"),
        b"HOME": b"/root",
        b"GI_NON_UTF8": b"\xff\xfe\x80 caf\xc3\xa9 \xed\xa0\x80",
        b"GI_EMPTY": b"",
        b"GI_EQUALS": b"a=b==c=",
        b"GI_SPACES": b"  two  spaces  ",
        b"GI_NEWLINE": b"line1\nline2",
        # graceinit reads GRACEINIT_*, but "byte for byte" means the child
        # still gets them (this one changes nothing: no child exits 200).
        b"GRACEINIT_REMAP_EXIT": b"200:201",
        # LANG / LC_ALL / LC_CTYPE deliberately unset: a Python program then
        # runs with C-locale coercion, which setenv()s LC_CTYPE for itself.
    }
    env = procs.env(base=env)
    expected = b"".join(k + b"=" + v + b"\0" for k, v in env.items())

    sup, child = start_sleeper(procs, init, env=env, pid1=pid1)
    assert procfs.environ_bytes(sup.pid) == expected, "harness: the init got another env"
    got = procfs.environ_bytes(child)
    if got != expected:
        exp_set, got_set = set(expected.split(b"\0")), set(got.split(b"\0"))
        pytest.fail("child environment differs: added %r, missing %r (order %s)" % (
            sorted(got_set - exp_set), sorted(exp_set - got_set),
            "differs" if exp_set == got_set else "-"))


@pytest.mark.parametrize("init", init_params(), indirect=True)
def test_arguments_are_passed_byte_for_byte(init, procs):
    args = [b"caf\xc3\xa9", b"\xff\xfe", b"", b" two  spaces ", b"-c", b"--", b"*", b"$HOME"]
    rc, out, err = procs.run(init.cmd("--", "printf", "%s|") + args)
    assert rc == 0, err
    assert out == b"".join(a + b"|" for a in args)


@pytest.mark.parametrize("init", init_params(), indirect=True)
def test_working_directory_is_unchanged(init, procs, tmp_path):
    cwd = os.path.join(os.fsencode(tmp_path), b"work dir \xff")
    os.mkdir(cwd)
    sup, child = start_sleeper(procs, init, cwd=cwd)
    assert os.readlink(b"/proc/%d/cwd" % child) == cwd


@pytest.mark.parametrize("init", init_params(xfail={
    "naive": "the child inherits Python's SIG_IGN for SIGPIPE and SIGXFSZ"}), indirect=True)
def test_child_has_default_dispositions_and_empty_mask(init, procs, pid1):
    sup, child = start_sleeper(procs, init, pid1=pid1)
    blocked = procfs.sigset(child, "SigBlk")
    ignored = procfs.sigset(child, "SigIgn")
    assert not blocked, "child starts with blocked signals: %s" % procfs.sigmask_names(blocked)
    assert not ignored, "child starts with ignored signals: %s" % procfs.sigmask_names(ignored)


@pytest.mark.parametrize("init", init_params(xfail={
    "tini": "tini does not close inherited fds",
    "dumb-init": "dumb-init does not close inherited fds",
    "naive": "inherited fds leak"}), indirect=True)
def test_child_gets_only_fds_0_1_2(init, procs, pid1):
    r, w = os.pipe()
    extra = os.open("/dev/null", os.O_RDONLY)   # inheritable (no O_CLOEXEC)
    try:
        sup, child = start_sleeper(procs, init, pid1=pid1, pass_fds=(r, w, extra))
        init_fds = procfs.fds(sup.pid)
        assert {r, w, extra} <= set(init_fds), "harness: init did not get the extra fds"
        targets = procfs.fd_targets(child)
        assert sorted(targets) == [0, 1, 2], "child has extra fds: %r" % {
            n: t for n, t in targets.items() if n > 2}
    finally:
        for fd in (r, w, extra):
            os.close(fd)


def _ignore_unusual_signals():
    """preexec_fn: hand the init ignored dispositions it does not handle itself: a fault
    signal, and glibc's internal 32/33 (as Python 3.13's subprocess does), which only the
    raw rt_sigaction system call can set."""
    import ctypes
    import platform

    signal.signal(signal.SIGSEGV, signal.SIG_IGN)
    number = {"x86_64": 13, "aarch64": 134}.get(platform.machine())
    if number is not None:
        ignore = ctypes.create_string_buffer(64)
        ctypes.c_ulong.from_buffer(ignore).value = 1  # sa_handler = SIG_IGN
        libc = ctypes.CDLL(None, use_errno=True)
        for signum in (32, 33):
            libc.syscall(number, signum, ignore, None, 8)


def test_child_gets_default_dispositions_even_when_the_init_inherited_ignores(procs, graceinit_bin):
    sup = procs.start([str(graceinit_bin), "--", SLEEP, "600"], preexec_fn=_ignore_unusual_signals)
    child = sup.child(contains="600")
    ignored = procfs.sigset(child, "SigIgn")
    assert not ignored, "child starts with ignored signals: %s" % procfs.sigmask_names(ignored)
