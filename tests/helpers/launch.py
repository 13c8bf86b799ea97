"""Start an init (graceinit, tini, dumb-init, ...) under test and watch it.

The central pieces:

* ``ProcessTracker`` -- the ``procs`` fixture.  Every process a test starts goes
  through it.  It stamps each process's environment with a per-test token
  (``GITEST_TOKEN=<uuid>``), and at teardown SIGKILLs every process on the
  machine that still carries the token (children, grandchildren, orphans that
  escaped, whole PID namespaces via ``unshare --kill-child``), then reaps what
  was re-parented to the test process (which is a child subreaper while the
  fixture is active, see ``become_subreaper``).  Nothing outlives a test.

* ``Supervised`` -- one running init, the only launcher
  of the integration tests (the stop/restart harnesses start graceinit
  through it too).  ``start(..., pid1=True)`` runs it as
  real PID 1 of a fresh PID namespace
  (``unshare --pid --fork --mount-proc --kill-child``); ``.pid`` is then the
  init's pid *as seen from the test* (the child of the unshare process),
  found by waiting (bounded) for it to have exec'd.  ``tty=`` runs it as a
  session leader whose controlling terminal is the given pty slave (via
  ``setsid --ctty``), the way ``docker run -it`` starts PID 1.
  ``signal()``, ``wait(timeout) -> status``, ``stderr_text()``, ``describe()``.

* ``LineReader`` / ``PtyReader`` -- read a pipe or a pty master in a thread
  and let the test *wait for* a line or a pattern with a timeout, instead of
  sleeping and hoping.

Everything waits on events with a bound (helpers/waiting.py); a timeout raises
``WaitTimeout`` (an AssertionError) whose message includes what was seen so far.
"""
from __future__ import annotations

import ctypes
import os
import re
import select
import shlex
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Callable, Optional

import psutil

from . import procfs
from .waiting import WaitTimeout, wait_on, wait_until

TOKEN_VAR = "GITEST_TOKEN"
HELPERS = os.path.dirname(os.path.abspath(__file__))
PYTHON = sys.executable

PID1_PREFIX = ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child", "--"]
TTY_PREFIX = ["setsid", "--ctty", "--"]

PR_SET_CHILD_SUBREAPER = 36


def helper(name):
    """Absolute path of a helper program in tests/helpers/."""
    return os.path.join(HELPERS, name)


def py_helper(name, *args):
    """argv running helper `name` (e.g. 'sigprinter.py') with this Python."""
    return [PYTHON, helper(name)] + [str(a) for a in args]


def become_subreaper(on=True):
    """Make the test process a child subreaper (or stop being one), so that
    processes orphaned by a broken init land on us (and get reaped at
    teardown) instead of on the machine's PID 1.  The ``procs`` fixture turns
    it on for the duration of each test.  Returns True on success."""
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.prctl(PR_SET_CHILD_SUBREAPER, 1 if on else 0, 0, 0, 0) == 0


def clean_environ():
    """os.environ without GRACEINIT_* (a developer's shell must not change
    what the tests see) -- a fresh dict, safe to modify."""
    return {k: v for k, v in os.environ.items() if not k.startswith("GRACEINIT_")}


_EOF = object()  # LineReader.wait_for's "the stream ended" marker


class LineReader:
    """Collect the lines written to a pipe, in a daemon thread.

    ``next_line(timeout)`` returns the next unread line (str, without the
    newline); ``wait_for(match, timeout)`` skips lines until one matches (an
    exact string, a compiled regex, or a predicate) and returns it;
    ``rest(timeout)`` waits for EOF and returns the unread lines.  ``seen``
    lists everything read so far (for failure messages).
    """

    def __init__(self, fileobj, name="stdout"):
        self.name = name
        self.seen = []
        self._pos = 0
        self._eof = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, args=(fileobj,), daemon=True)
        self._thread.start()

    def _run(self, f):
        try:
            for raw in iter(f.readline, b""):
                with self._cond:
                    self.seen.append(raw.decode("utf-8", "replace").rstrip("\n"))
                    self._cond.notify_all()
        except (OSError, ValueError):
            pass
        finally:
            with self._cond:
                self._eof = True
                self._cond.notify_all()

    def _describe(self):
        return "%s lines so far: %r" % (self.name, self.seen[-30:])

    def next_line(self, timeout=5.0):
        with self._cond:
            wait_on(self._cond, lambda: self._pos < len(self.seen) or self._eof, timeout,
                    lambda: "a line on %s; %s" % (self.name, self._describe()))
            if self._pos >= len(self.seen):
                raise WaitTimeout("EOF on %s while waiting for a line; %s"
                                  % (self.name, self._describe()))
            line = self.seen[self._pos]
            self._pos += 1
            return line

    def expect(self, expected, timeout=5.0):
        """Assert that the *next* line is exactly `expected`."""
        line = self.next_line(timeout)
        assert line == expected, "expected next %s line %r, got %r; %s" % (
            self.name, expected, line, self._describe())
        return line

    def wait_for(self, match, timeout=5.0):
        """Consume lines until one matches; return it."""
        if isinstance(match, str):
            pred = match.__eq__
        elif hasattr(match, "search"):
            pred = lambda s: match.search(s) is not None  # noqa: E731
        else:
            pred = match

        def consumed_a_match():
            while self._pos < len(self.seen):
                line = self.seen[self._pos]
                self._pos += 1
                if pred(line):
                    return (line,)
            return self._eof and (_EOF,)

        with self._cond:
            (line,) = wait_on(self._cond, consumed_a_match, timeout, lambda: (
                "a line matching %r on %s; %s" % (match, self.name, self._describe())))
            if line is _EOF:
                raise WaitTimeout("EOF on %s while waiting for a line matching %r; %s"
                                  % (self.name, match, self._describe()))
            return line

    def unread(self):
        with self._cond:
            return list(self.seen[self._pos:])

    def rest(self, timeout=5.0):
        """Wait for EOF (bounded) and return all unread lines."""
        with self._cond:
            self._wait_eof(timeout)
            out = self.seen[self._pos:]
            self._pos = len(self.seen)
            return out

    def wait_eof(self, timeout=5.0):
        """Wait (bounded) for EOF without consuming anything."""
        with self._cond:
            self._wait_eof(timeout)

    def _wait_eof(self, timeout):
        wait_on(self._cond, lambda: self._eof, timeout,
                lambda: "EOF on %s; %s" % (self.name, self._describe()))


class ByteCollector:
    """Collect every byte written to a pipe (e.g. stderr), in a thread."""

    def __init__(self, fileobj):
        self._chunks = []
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(fileobj,), daemon=True)
        self._thread.start()

    def _run(self, f):
        try:
            while True:
                chunk = os.read(f.fileno(), 65536)
                if not chunk:
                    break
                self._chunks.append(chunk)
        except (OSError, ValueError):
            pass
        finally:
            self._done.set()

    def data(self, timeout=None):
        """All bytes so far; with a timeout, first wait (bounded) for EOF."""
        if timeout is not None:
            self._done.wait(timeout)
        return b"".join(self._chunks)

    def text(self, timeout=None):
        return self.data(timeout).decode("utf-8", "replace")


class PtyReader:
    """Read a pty master in a thread; ``expect(regex, timeout)`` waits for a
    pattern in the output that follows the previous match."""

    def __init__(self, master_fd):
        self.fd = master_fd
        self.buf = bytearray()
        self._pos = 0
        self._eof = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        try:
            while True:
                try:
                    chunk = os.read(self.fd, 4096)
                except OSError:  # EIO: every slave fd closed
                    break
                if not chunk:
                    break
                with self._cond:
                    self.buf += chunk
                    self._cond.notify_all()
        finally:
            with self._cond:
                self._eof = True
                self._cond.notify_all()

    def write(self, data):
        if isinstance(data, str):
            data = data.encode()
        os.write(self.fd, data)

    def expect(self, pattern, timeout=5.0):
        if isinstance(pattern, str):
            pattern = pattern.encode()
        rx = re.compile(pattern) if isinstance(pattern, bytes) else pattern
        with self._cond:
            try:
                found = wait_on(self._cond,
                                lambda: rx.search(self.buf, self._pos) or self._eof, timeout,
                                "%r on the pty" % rx.pattern)
            except WaitTimeout:
                found = None
            if not isinstance(found, re.Match):
                tail = bytes(self.buf[max(self._pos, len(self.buf) - 600):])
                raise WaitTimeout("%r not seen on the pty within %.1fs%s; output after "
                                  "the previous match: %r" % (
                                      rx.pattern, timeout,
                                      " (EOF)" if self._eof else "", tail))
            self._pos = found.end()
            return found

    def text(self):
        return bytes(self.buf).decode("utf-8", "replace")


class Supervised:
    """One running init (graceinit, tini, ...), started by ProcessTracker.start().

    The one launcher every integration test uses, directly (``procs.start``) or
    through the stop/restart harnesses (``gi.start``/``h.start``, which add
    their event logs to ``describe()``).

    * ``pid`` -- the init's pid as the test sees it (under ``unshare`` the
      wrapper's child, once it has exec'd); ``signal(sig)`` sends it a signal
      and returns the monotonic time just before sending.
    * ``wait(timeout)`` -- its exit status (Popen.returncode; negative = killed
      by that signal; under ``unshare`` the init's status, passed on), raising
      WaitTimeout with ``describe()`` when it is still running; ``exited()``
      asks without waiting, ``t_exit`` is when the exit was first seen.
    * ``stdout`` is a LineReader and ``stderr`` a ByteCollector when they are
      pipes; ``stdout_text()``/``stderr_text()`` read them, or the files they
      were sent to (``start(stdout=path)``).
    """

    def __init__(self, popen: subprocess.Popen, argv: list, prefix: list, pid1: bool,
                 stdout_path: Optional[Path] = None, stderr_path: Optional[Path] = None,
                 context: Optional[Callable[[], str]] = None):
        self.popen = popen
        self.argv = argv            # the init's own argv (without wrapper)
        self.prefix = prefix        # wrapper argv (unshare/setsid) or []
        self.pid1 = pid1
        self.stdout: Optional[LineReader] = None   # when stdout was PIPE and lines=True
        self.stderr: Optional[ByteCollector] = None  # when stderr was PIPE
        self.stdout_path = stdout_path
        self.stderr_path = stderr_path
        self.context = context      # more for describe(), e.g. a harness's event log
        self.t_start = time.monotonic()
        self.t_exit: Optional[float] = None
        self.rc: Optional[int] = None
        self._pid: Optional[int] = None

    # -- identity -------------------------------------------------------
    @property
    def pid(self) -> int:
        """The init's pid (in the test's namespace), waiting up to 10 s for
        the wrapper (if any) to have forked and exec'd it."""
        if self._pid is None:
            self._pid = self.resolve_pid()
        return self._pid

    def resolve_pid(self, timeout: float = 10.0) -> int:
        if not self.prefix:
            return self.popen.pid
        wrapper = self.popen.pid
        wrapper_cmd = {os.path.basename(a) for a in self.prefix if a in ("unshare", "setsid")}

        def execd(pid):
            try:
                cmd = psutil.Process(pid).cmdline()
            except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
                return False
            return bool(cmd) and os.path.basename(cmd[0]) not in wrapper_cmd

        def find():
            if execd(wrapper):                     # setsid: exec'd in place
                return wrapper
            try:
                kids = psutil.Process(wrapper).children()
            except psutil.NoSuchProcess:
                kids = []
            for k in kids:                         # unshare --fork: its child
                if execd(k.pid):                   # (which may exec setsid first)
                    return k.pid
            if self.exited():
                raise WaitTimeout("%s exited (status %s) before the init behind it was seen "
                                  "running (it may have exited at once)%s" % (
                                      self.prefix[0], self.rc, self.describe()))
            return None

        return wait_until(find, timeout, lambda: "the init behind %s to exec%s" % (
            self.prefix[0], self.describe()), interval=0.002)

    def children(self) -> list:
        """psutil.Process list of the init's direct children."""
        try:
            return psutil.Process(self.pid).children()
        except psutil.NoSuchProcess:
            return []

    def child(self, timeout: float = 10.0, contains: Optional[str] = None) -> int:
        """Pid of the init's main child once it has exec'd (its cmdline no
        longer equals the init's); with `contains`, once some argument of
        its cmdline contains that string."""
        init_cmd = psutil.Process(self.pid).cmdline()

        def find():
            for c in self.children():
                try:
                    cmd = c.cmdline()
                except (psutil.NoSuchProcess, psutil.ZombieProcess):
                    continue
                if not cmd or cmd == init_cmd:
                    continue
                if contains is None or any(contains in a for a in cmd):
                    return c.pid
            return None

        return wait_until(find, timeout, lambda: "a child of the init (%s) to exec%s; "
                          "stderr: %s" % (self.pid, (" %r" % contains) if contains else "",
                                          self.stderr_text()))

    # -- interaction ----------------------------------------------------
    def signal(self, sig: int) -> float:
        """Send `sig` to the init; returns the monotonic time just before sending."""
        pid = self.pid
        t = time.monotonic()
        os.kill(pid, sig)
        return t

    def send(self, sig: int) -> None:
        os.kill(self.pid, sig)

    # -- exit -----------------------------------------------------------
    def exited(self) -> bool:
        """Has the init (or its unshare wrapper) exited?  Records rc and t_exit."""
        if self.rc is None and self.popen.poll() is not None:
            self.t_exit = time.monotonic()
            self.rc = self.popen.returncode
        return self.rc is not None

    def running(self) -> bool:
        return not self.exited()

    def wait(self, timeout: float = 10.0) -> int:
        """Wait (bounded) for the init -- or its unshare wrapper -- to exit;
        returns Popen.returncode (negative = killed by that signal)."""
        if not self.exited():
            _wait_for_exit(self.popen.pid, timeout)
        if not self.exited():
            raise WaitTimeout("init still running after %.1fs; state %s%s" % (
                timeout, procfs.state(self._pid) if self._pid else "?", self.describe()))
        return self.rc

    def assert_running(self, what: str = "") -> None:
        assert not self.exited(), "init exited (%s) %s%s" % (self.rc, what, self.describe())

    # -- output ---------------------------------------------------------
    def stderr_text(self, timeout: Optional[float] = None) -> str:
        """The init's stderr so far; with a timeout, after waiting (bounded) for EOF."""
        if self.stderr is not None:
            return self.stderr.text(timeout)
        if self.stderr_path is not None:
            return _read_text(self.stderr_path)
        return "<not captured>"

    def stdout_text(self, timeout: Optional[float] = None) -> str:
        if self.stdout is not None:
            if timeout is not None:
                self.stdout.wait_eof(timeout)
            return "".join(line + "\n" for line in self.stdout.seen)
        if self.stdout_path is not None:
            return _read_text(self.stdout_path)
        return "<not captured>"

    def stderr_lines(self, timeout: float = 2.0) -> list:
        """graceinit's stderr as non-empty lines, after waiting for EOF."""
        return [l for l in self.stderr_text(timeout).splitlines() if l.strip()]

    def gi_lines(self, contains: str = "") -> list:
        """graceinit's own lines on stderr so far ("[graceinit] ..."), those containing
        `contains`."""
        return [line for line in self.stderr_text().splitlines()
                if line.startswith("[graceinit]") and contains in line]

    def wait_line(self, contains: str, timeout: float = 5) -> str:
        """Bounded wait for a graceinit line containing `contains`; returns the first."""
        return wait_until(lambda: self.gi_lines(contains), timeout, lambda: (
            "a graceinit line containing %r%s" % (contains, self.describe())))[0]

    def describe(self) -> str:
        """argv, exit status, stderr and the starter's context, for failure messages."""
        self.exited()
        text = "\n  argv: %s\n  rc: %s\n  stderr:\n%s" % (
            shlex.join(self.prefix + [os.fsdecode(a) for a in self.argv]), self.rc,
            _indent(self.stderr_text()[-6000:]))
        if self.context is not None:
            text += "\n" + self.context()
        return text



def _read_text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())


def _wait_for_exit(pid: int, timeout: float) -> None:
    """Block until process `pid` (our child) has exited or `timeout` passed, without
    reaping it: on a pidfd when the kernel has them (woken by the exit itself), else by
    polling."""
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        try:
            wait_until(lambda: _has_exited(pid), timeout, interval=0.002, max_interval=0.01)
        except WaitTimeout:
            pass
        return
    try:
        select.select([fd], [], [], timeout)
    finally:
        os.close(fd)


def _has_exited(pid: int) -> bool:
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


class ProcessTracker:
    """Starts processes for one test and guarantees none survives it."""

    def __init__(self):
        self.token = uuid.uuid4().hex
        self.started = []   # Popen objects

    # -- environment ----------------------------------------------------
    def env(self, base=None, **extra):
        """An environment for a tracked process: `base` (default: the test
        process's environment minus GRACEINIT_*) plus `extra`, plus the
        cleanup token.  Works with str or bytes dicts."""
        env = clean_environ() if base is None else dict(base)
        env.update(extra)
        return self._stamp(env)

    def _stamp(self, env):
        if any(isinstance(k, bytes) for k in env):
            env[TOKEN_VAR.encode()] = self.token.encode()
        else:
            env[TOKEN_VAR] = self.token
        return env

    # -- starting -------------------------------------------------------
    def popen(self, argv, env=None, **kw):
        """subprocess.Popen, tracked, with the token in its environment."""
        env = self.env() if env is None else self._stamp(dict(env))
        p = subprocess.Popen([_arg(a) for a in argv], env=env, **kw)
        self.started.append(p)
        return p

    def start(self, argv, *, pid1=False, tty=None, env=None, stdin=subprocess.DEVNULL,
              stdout=subprocess.PIPE, stderr=subprocess.PIPE, lines=True,
              context=None, **kw) -> Supervised:
        """Start an init command line and return a Supervised.

        argv     the init and its arguments, e.g. [graceinit, '--', 'sleep', '9']
        pid1     run it as PID 1 of a new PID namespace (unshare)
        tty      a pty slave fd: the init becomes a session leader with it as
                 controlling terminal and as stdin/stdout/stderr (with pid1 too:
                 PID 1 + session leader + ctty, exactly `docker run -it`)
        stdout,  PIPE (default: read by a LineReader / ByteCollector), a
        stderr   pathlib.Path (the stream goes to that file, read back by
                 stdout_text()/stderr_text()), or anything Popen takes
        lines    wrap a piped stdout in a LineReader (else leave popen.stdout)
        context  a callable whose text describe() appends (e.g. an event log)
        kw       passed on to Popen (cwd, preexec_fn, ...)
        """
        argv = [_arg(a) for a in argv]
        prefix = []
        if pid1:
            prefix = list(PID1_PREFIX)
        if tty is not None:
            # setsid --ctty runs last, so that the init itself (PID 1 or not)
            # is the session leader owning the terminal.
            prefix = prefix + list(TTY_PREFIX)
            stdin = stdout = stderr = tty
        paths = {name: stream for name, stream in (("stdout", stdout), ("stderr", stderr))
                 if isinstance(stream, Path)}
        files = {name: open(path, "wb") for name, path in paths.items()}
        try:
            p = self.popen(prefix + argv, env=env, stdin=stdin,
                           stdout=files.get("stdout", stdout), stderr=files.get("stderr", stderr),
                           **kw)
        finally:
            for f in files.values():  # the init has its own copies
                f.close()
        sup = Supervised(p, argv, prefix, pid1, stdout_path=paths.get("stdout"),
                         stderr_path=paths.get("stderr"), context=context)
        if p.stdout is not None and lines:
            sup.stdout = LineReader(p.stdout)
        if p.stderr is not None:
            sup.stderr = ByteCollector(p.stderr)
        return sup

    def run(self, argv, timeout=10.0, **kw):
        """Start, wait (bounded) and return (returncode, stdout bytes,
        stderr bytes) -- for short-lived commands."""
        sup = self.start(argv, lines=False, **kw)
        out = b""
        if sup.popen.stdout is not None:
            reader = ByteCollector(sup.popen.stdout)
        rc = sup.wait(timeout)
        if sup.popen.stdout is not None:
            out = reader.data(timeout=5)
        return rc, out, (sup.stderr.data(timeout=5) if sup.stderr else b"")

    # -- cleanup --------------------------------------------------------
    def tagged_pids(self):
        """Every live process carrying this test's token (zombies have no
        readable environment and are not listed)."""
        needle = ("%s=%s\0" % (TOKEN_VAR, self.token)).encode()
        me = os.getpid()
        out = []
        for name in os.listdir("/proc"):
            if not name.isdigit() or int(name) == me:
                continue
            try:
                with open("/proc/%s/environ" % name, "rb") as f:
                    if needle in f.read():
                        out.append(int(name))
            except OSError:
                continue
        return out

    def tagged_processes(self):
        """Live (non-zombie) psutil.Processes carrying this test's token."""
        return tagged_processes(TOKEN_VAR, self.token)

    def cleanup(self, timeout=10.0):
        """SIGKILL everything this test started, wait for it to be gone and
        reap what was re-parented to us.  Returns the pids it had to kill."""
        killed = []
        for p in self.started:
            if p.poll() is None:
                # Descendants first (also those that dropped the token with
                # `env -i`), then the process itself.
                try:
                    tree = psutil.Process(p.pid).children(recursive=True)
                except psutil.Error:
                    tree = []
                for c in tree:
                    _kill(c.pid)
                    killed.append(c.pid)
                _kill(p.pid)
                killed.append(p.pid)
        left = []

        def all_gone():
            pids = self.tagged_pids()
            for pid in pids:
                _kill(pid)
            killed.extend(pids)
            left[:] = pids
            for p in self.started:
                if p.poll() is None:
                    try:
                        p.wait(0.05)
                    except subprocess.TimeoutExpired:
                        pass
            reap_adopted(self.started)
            return not pids and all(p.returncode is not None for p in self.started)

        wait_until(all_gone, timeout, lambda: "the test's processes to be gone; still there: %s"
                   % (left or [p.pid for p in self.started if p.returncode is None]),
                   interval=0.02, max_interval=0.02)
        for p in self.started:
            for f in (p.stdin, p.stdout, p.stderr):
                if f is not None:
                    try:
                        f.close()
                    except OSError:
                        pass
        return sorted(set(killed))


def _arg(a):
    """argv element: str and bytes (binary-safe) as they are, others str()."""
    return a if isinstance(a, (str, bytes)) else str(a)


def _kill(pid, sig=signal.SIGKILL):
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def reap_adopted(popens=()):
    """Reap zombie children of the test process that no Popen owns (orphans
    re-parented to us as subreaper)."""
    owned = {p.pid for p in popens if p.returncode is None}
    try:
        kids = psutil.Process().children()
    except psutil.Error:
        return
    for k in kids:
        if k.pid in owned:
            continue
        try:
            os.waitpid(k.pid, os.WNOHANG)
        except ChildProcessError:
            pass


def tagged_processes(var, value):
    """Live (non-zombie) psutil.Processes, other than this one, whose environment has
    var=value (a per-test tag passed on to everything a test starts)."""
    out = []
    for p in psutil.process_iter():
        try:
            if p.pid == os.getpid():
                continue
            if p.environ().get(var) == value and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return out


def kill_all(popens, others=(), timeout=5):
    """Teardown for harnesses that start processes themselves: SIGCONT (in case a test left one
    stopped) and SIGKILL every Popen's process with all its descendants and the psutil.Processes
    in `others` (e.g. tagged_processes(...)), wait (bounded) for them to be gone, then reap the
    Popens. Never raises for what could not be killed or reaped in time."""
    victims = {}
    for proc in popens:
        try:
            root = psutil.Process(proc.pid)
            for p in [root] + root.children(recursive=True):
                victims[p.pid] = p
        except psutil.NoSuchProcess:
            pass
    for p in others:
        victims[p.pid] = p
    for p in victims.values():
        try:
            p.send_signal(signal.SIGCONT)
            p.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(list(victims.values()), timeout=timeout)
    for proc in popens:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
