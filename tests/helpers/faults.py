"""Fault injection for integration tests: a hostile environment, made for real.

Each fault is either an argv *prefix* (put it in front of the init's argv, after
``PID1_PREFIX`` when the test runs graceinit as PID 1) or a context manager the test
holds while the init runs. Nothing here changes the machine the tests run on: mounts
happen in a private mount namespace that dies with the process under test, and the
pids cgroup is removed on exit, even on error.

Prefixes (compose by concatenation, outermost first)::

    argv = mount_ns(readonly("/srv/ready"), full_tmpfs(d, nr_inodes=3), no_dev()) \\
           + as_user() + [graceinit, "--ready-file", ...]

* ``mount_ns(*steps)``  ``unshare --mount`` (private propagation) running the setup
  ``steps`` (shell snippets from the functions below) as root, then exec'ing the rest
  of argv in the same process, so the init keeps the pid the test sees.
* ``readonly(path)``    bind-mount ``path`` on itself, read-only.
* ``tmpfs(path, ...)``  a fresh tmpfs on ``path`` (``nr_inodes``, ``size``), optionally
  ``filled`` (files created until the kernel says ENOSPC).
* ``full_tmpfs(path, nr_inodes=3)``  the same, filled.
* ``no_dev()``          a tmpfs over /dev: no /dev/null, no /dev/tty. Put it last.
* ``empty_proc()``      a tmpfs over /proc (use with ``pid_ns``, so it is graceinit's).
* ``pid_ns(*steps)``    like ``mount_ns`` but also a new PID namespace *without* a /proc
  of its own: the process after the prefix is PID 1 and sees the /proc it inherited.
* ``foreign_proc()``    PID 1 of an inner PID namespace whose /proc belongs to an outer
  one (made by this prefix, with a decoy ``sleep`` in it, so the machine's own process
  list is never involved): the misconfigured runtime of issue 10, item 6.
* ``as_user(uid=65534, gid=65534)``  ``setpriv --reuid --regid --clear-groups``.
* ``prlimit(nofile=None, nproc=None)``  resource limits for what follows.

Context managers / functions:

* ``pids_cgroup(limit)``  a pids cgroup (v2 or v1, whichever this machine has) with
  ``pids.max = limit``; ``cg.prefix()`` is an argv prefix that moves the process into it
  before exec'ing the rest. On exit every process still in it is SIGKILLed and the
  cgroup removed.
* ``rlimits_preexec(nofile=None, nproc=None)``  a ``preexec_fn`` for Popen.
* ``fill(path)``        create files in ``path`` until ENOSPC/EDQUOT (bounded); returns
  how many were created. For a tmpfs in a private namespace, use
  ``in_root_of(pid, path)`` to reach it from the test.
"""
import errno
import os
import resource
import shlex
import signal
import time
import uuid

NOBODY = 65534
_FILL_LIMIT = 10000  # a fill never loops for ever, whatever the filesystem


# --- argv prefixes -------------------------------------------------------------------


def _setup_wrapper(unshare_args, steps):
    script = "; ".join(list(steps) + ['exec "$@"'])
    return ["unshare"] + list(unshare_args) + ["--", "sh", "-ec", script, "fault-setup"]


def mount_ns(*steps):
    """Run `steps` (root shell snippets) in a private mount namespace, then exec argv."""
    return _setup_wrapper(["--mount", "--propagation", "private"], steps)


def pid_ns(*steps):
    """A new PID and mount namespace, no /proc mounted for it: what follows is PID 1.
    `--kill-child` so nothing outlives the test if the wrapper is killed."""
    return _setup_wrapper(["--mount", "--propagation", "private", "--pid", "--fork",
                           "--kill-child"], steps)


def readonly(path):
    p = shlex.quote(str(path))
    return "mount --bind %s %s && mount -o remount,bind,ro %s" % (p, p, p)


def tmpfs(path, nr_inodes=None, size=None, filled=False):
    options = ["mode=1777"]
    if nr_inodes is not None:
        options.append("nr_inodes=%d" % nr_inodes)
    if size is not None:
        options.append("size=%s" % size)
    p = shlex.quote(str(path))
    step = "mount -t tmpfs -o %s gitest-tmpfs %s" % (",".join(options), p)
    if filled:
        # Bounded: a tmpfs without limits would otherwise be filled for real.
        step += ("; i=0; while [ $i -lt %d ] && { true > %s/.fill-$i; } 2>/dev/null; do i=$((i+1)); done"
                 % (_FILL_LIMIT, p))
    return step


def full_tmpfs(path, nr_inodes=3):
    return tmpfs(path, nr_inodes=nr_inodes, filled=True)


def no_dev():
    """A tmpfs over /dev (no /dev/null). Any later step must not need /dev."""
    return "mount -t tmpfs -o mode=755 gitest-nodev /dev"


def empty_proc():
    return "mount -t tmpfs -o mode=555 gitest-noproc /proc"


def foreign_proc(decoy_seconds=600):
    """PID 1 of an inner namespace that sees an outer namespace's /proc.

    Outer namespace (with its own /proc): PID 1 is the inner `unshare`, a decoy `sleep`
    beside it. graceinit, PID 1 of the inner namespace, sees that /proc: its own pid (1)
    names the outer namespace's PID 1 there, exactly as it names the host's init when a
    runtime forgets to mount /proc.
    """
    inner = 'sleep %d & exec unshare --pid --fork --kill-child -- "$@"' % decoy_seconds
    return ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child", "--",
            "sh", "-c", inner, "fault-foreign-proc"]


def as_user(uid=NOBODY, gid=NOBODY):
    return ["setpriv", "--reuid=%d" % uid, "--regid=%d" % gid, "--clear-groups", "--"]


def prlimit(nofile=None, nproc=None):
    argv = ["prlimit"]
    if nofile is not None:
        argv.append("--nofile=%d" % nofile)
    if nproc is not None:
        argv.append("--nproc=%d" % nproc)
    return argv + ["--"]


def rlimits_preexec(nofile=None, nproc=None):
    """A Popen preexec_fn setting soft and hard limits in the child before exec."""
    def apply():
        if nofile is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
        if nproc is not None:
            resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
    return apply


# --- the filesystem as a process in another mount namespace sees it ---------------------


def in_root_of(pid, path):
    """`path` as the process `pid` sees it (its mount namespace), reachable from here."""
    return "/proc/%d/root%s" % (pid, os.path.abspath(str(path)))


def fill(path):
    """Create empty files in `path` until the filesystem refuses (ENOSPC/EDQUOT), bounded.
    Returns the number created."""
    for count in range(_FILL_LIMIT):
        try:
            fd = os.open(os.path.join(str(path), ".fill-late-%d" % count),
                         os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as error:
            if error.errno in (errno.ENOSPC, errno.EDQUOT):
                return count
            raise
        os.close(fd)
    raise AssertionError("%s never filled up after %d files" % (path, _FILL_LIMIT))


# --- pids cgroup -----------------------------------------------------------------------


def _pids_hierarchy():
    """(root directory of a pids cgroup hierarchy, version), or (None, None)."""
    v2 = "/sys/fs/cgroup"
    try:
        with open(os.path.join(v2, "cgroup.controllers")) as f:
            if "pids" in f.read().split():
                with open(os.path.join(v2, "cgroup.subtree_control")) as g:
                    if "pids" in g.read().split():
                        return v2, 2
    except OSError:
        pass
    v1 = "/sys/fs/cgroup/pids"
    if os.path.isfile(os.path.join(v1, "cgroup.procs")):
        return v1, 1
    return None, None


def pids_cgroup_available():
    root, _ = _pids_hierarchy()
    return root is not None and os.access(root, os.W_OK)


class PidsCgroup:
    """A child cgroup with pids.max set; use as a context manager."""

    def __init__(self, limit):
        root, self.version = _pids_hierarchy()
        if root is None:
            raise RuntimeError("no pids cgroup controller on this machine")
        self.path = os.path.join(root, "gitest-%s" % uuid.uuid4().hex[:12])
        self.limit = limit

    def __enter__(self):
        os.mkdir(self.path)
        try:
            self._write("pids.max", str(self.limit))
        except BaseException:
            os.rmdir(self.path)
            raise
        return self

    def __exit__(self, *exc):
        self.destroy()
        return False

    def _write(self, name, value):
        with open(os.path.join(self.path, name), "w") as f:
            f.write(value)

    def prefix(self):
        """argv prefix: move this shell into the cgroup, then exec the rest (same pid)."""
        procs = shlex.quote(os.path.join(self.path, "cgroup.procs"))
        return ["sh", "-ec", 'echo $$ > %s; exec "$@"' % procs, "fault-cgroup"]

    def pids(self):
        try:
            with open(os.path.join(self.path, "cgroup.procs")) as f:
                return [int(line) for line in f if line.strip()]
        except FileNotFoundError:
            return []

    def current(self):
        with open(os.path.join(self.path, "pids.current")) as f:
            return int(f.read())

    def destroy(self, timeout=10.0):
        """SIGKILL whatever is still inside (only this test's processes can be), wait for
        the cgroup to empty, remove it."""
        deadline = time.monotonic() + timeout
        while True:
            pids = self.pids()
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            if not pids:
                try:
                    os.rmdir(self.path)
                    return
                except FileNotFoundError:
                    return
                except OSError as error:  # EBUSY while the last exits are accounted
                    if time.monotonic() > deadline:
                        raise RuntimeError("cannot remove cgroup %s: %s" % (self.path, error))
            elif time.monotonic() > deadline:
                raise RuntimeError("processes %s still in cgroup %s" % (pids, self.path))
            time.sleep(0.02)


def pids_cgroup(limit):
    return PidsCgroup(limit)
