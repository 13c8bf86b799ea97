"""Harness for the restart tests: the real graceinit CLI (started, like every init under test,
by helpers/launch.py), real servers, a bounded HTTP load on 127.0.0.1, bounded waits
(helpers/waiting.py, helpers/eventlog.py), and a teardown that kills everything a test started.

Everything a test starts carries the `procs` fixture's token in its environment (graceinit
passes its environment on to every generation and whatever they start), so teardown finds even
processes that escaped, also inside a PID namespace.
"""
import errno
import json
import os
import shutil
import signal
import socket
import sys
import threading
import time
from pathlib import Path

import psutil

from helpers.eventlog import EventLog
from helpers.launch import ProcessTracker, Supervised, clean_environ
from helpers.waiting import WaitTimeout, wait_until

HERE = Path(__file__).resolve().parent
GRACEINIT = (os.environ.get("RESTART_TEST_GRACEINIT")
             or str(Path(sys.executable).with_name("graceinit")))
PYTHON = sys.executable
APP = str(HERE / "app.py")
LOG_VAR = "RESTART_TEST_LOG"


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def alive(pid):
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def socket_inodes(pid):
    """{fd: 'socket:[inode]'} for every socket descriptor of pid."""
    out = {}
    base = "/proc/%d/fd" % pid
    for name in os.listdir(base):
        try:
            target = os.readlink(os.path.join(base, name))
        except OSError:
            continue
        if target.startswith("socket:"):
            out[int(name)] = target
    return out


# --------------------------------------------------------------------------- HTTP client

class RequestFailed(Exception):
    pass


def http_get(address, path="/", timeout=5.0):
    """One GET on a new connection (HTTP/1.0, Connection: close). Returns (pid, body dict);
    raises RequestFailed with the reason for anything but a complete 200 response."""
    if isinstance(address, str):
        family = socket.AF_UNIX
    else:
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        try:
            sock.connect(address)
        except OSError as error:
            raise RequestFailed("connect: %s" % (errno.errorcode.get(error.errno, error),))
        request = "GET %s HTTP/1.0\r\nHost: test\r\n\r\n" % path
        data = b""
        try:
            sock.sendall(request.encode())
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        except OSError as error:
            raise RequestFailed("io: %s (got %d bytes)" % (
                errno.errorcode.get(getattr(error, "errno", None), error), len(data)))
    finally:
        sock.close()
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        raise RequestFailed("incomplete response (%d bytes)" % len(data))
    status = head.split(b"\r\n", 1)[0]
    if b" 200 " not in status + b" ":
        raise RequestFailed("status %r" % status)
    headers = {}
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        headers[k.strip().lower().decode()] = v.strip().decode()
    length = int(headers.get("content-length", len(body)))
    if len(body) != length:
        raise RequestFailed("short body %d/%d" % (len(body), length))
    try:
        parsed = json.loads(body)
    except ValueError:
        raise RequestFailed("bad body %r" % body[:80])
    return int(headers.get("x-pid", parsed.get("pid", 0))), parsed


class Result:
    __slots__ = ("t0", "t1", "ok", "pid", "error")

    def __init__(self, t0, t1, ok, pid, error):
        self.t0, self.t1, self.ok, self.pid, self.error = t0, t1, ok, pid, error

    def __repr__(self):
        return "Result(t0=%.3f, dt=%.3f, %s)" % (
            self.t0, self.t1 - self.t0, "pid %s" % self.pid if self.ok else self.error)


class Load:
    """A bounded client loop: `threads` threads sending GET / on new connections, each pausing
    `interval` s between requests, until stop() or `max_seconds` / `max_requests`."""

    def __init__(self, address, threads=2, interval=0.005, max_seconds=60.0,
                 max_requests=200000, path="/"):
        self.address = address
        self.interval = interval
        self.max_requests = max_requests
        self.path = path
        self.deadline = time.monotonic() + max_seconds
        self.results = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._loop, daemon=True) for _ in range(threads)]

    def start(self):
        for t in self._threads:
            t.start()
        return self

    def _loop(self):
        while not self._stop.is_set() and time.monotonic() < self.deadline:
            if len(self.results) >= self.max_requests:
                break
            t0 = time.monotonic()
            try:
                pid, _ = http_get(self.address, self.path)
                result = Result(t0, time.monotonic(), True, pid, None)
            except RequestFailed as error:
                result = Result(t0, time.monotonic(), False, None, str(error))
            with self._lock:
                self.results.append(result)
            if self.interval:
                self._stop.wait(self.interval)

    def stop(self, timeout=10):
        self._stop.set()
        for t in self._threads:
            t.join(timeout)
            assert not t.is_alive(), "load thread did not finish"
        return self

    def snapshot(self):
        with self._lock:
            return list(self.results)

    @property
    def failures(self):
        return [r for r in self.snapshot() if not r.ok]

    def served_by(self, pid, after=0.0):
        return [r for r in self.snapshot() if r.ok and r.pid == pid and r.t0 >= after]

    def wait_for_pid(self, pid, timeout, after=0.0):
        """Bounded wait for a successful response from pid (to a request sent after `after`);
        returns that result."""
        found = wait_until(lambda: self.served_by(pid, after), timeout, lambda: (
            "a response from pid %d; last results: %s" % (pid, self.snapshot()[-5:])),
            interval=0.005, max_interval=0.02)
        return found[0]


class SlowRequest(threading.Thread):
    """GET /slow?ms=..&id=.. in the background; .result is (pid, body) or the exception."""

    def __init__(self, address, ms, ident):
        super().__init__(daemon=True)
        self.address = address
        self.path = "/slow?ms=%d&id=%s" % (ms, ident)
        self.ident_ = ident
        self.result = None
        self.t_end = None
        self.start()

    def run(self):
        try:
            self.result = http_get(self.address, self.path, timeout=30)
        except RequestFailed as error:
            self.result = error
        self.t_end = time.monotonic()


# --------------------------------------------------------------------------- graceinit runs

class Harness(EventLog):
    wait_timeout = 10.0

    def __init__(self, tmp_path, procs: ProcessTracker):
        self.tmp = Path(tmp_path)
        super().__init__(str(self.tmp / "events.jsonl"))
        self.procs = procs
        self.mode_file = str(self.tmp / "mode.json")
        self.runs = []
        self.port = free_port()
        self.address = ("127.0.0.1", self.port)

    # -- commands -------------------------------------------------------------------------
    def app(self, name="app", drain_signal=None):
        argv = [PYTHON, "-S", APP, "--log", self.log, "--name", name,
                "--mode-file", self.mode_file]
        if drain_signal:
            argv += ["--drain-signal", drain_signal]
        return argv

    def set_mode(self, **mode):
        """How the *next* generation of the app behaves (read at its start-up)."""
        tmp = self.mode_file + ".tmp"
        with open(tmp, "w") as f:
            json.dump(mode, f)
        os.replace(tmp, self.mode_file)

    def env(self, **extra):
        env = {k: v for k, v in clean_environ().items()
               if k not in ("NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES")}
        env.pop("PYTHONPATH", None)
        env[LOG_VAR] = self.log
        env.update(extra)
        return self.procs.env(env)

    def start(self, options, command, pid1=False, env=None) -> Supervised:
        """Start graceinit OPTIONS -- COMMAND (under unshare as PID 1 with pid1); its stdout
        and stderr go to files in the test's tmp dir."""
        n = len(self.runs)
        argv = [GRACEINIT] + [str(o) for o in options] + ["--"] + [str(c) for c in command]
        run = self.procs.start(
            argv, pid1=pid1, env=env if env is not None else self.env(),
            stdout=self.tmp / ("gi-%d.stdout" % n), stderr=self.tmp / ("gi-%d.stderr" % n),
            cwd=str(self.tmp), context=lambda: "  events (last 40):\n" + self.describe(40))
        self.runs.append(run)
        return run

    # -- processes ------------------------------------------------------------------------
    def tagged(self):
        """Live (non-zombie) processes carrying this test's token."""
        return self.procs.tagged_processes()

    def assert_nothing_left(self, timeout=3):
        wait_until(lambda: not self.tagged(), timeout, lambda: "no process left behind: %s" % [
            (p.pid, " ".join(p.cmdline()[:4])) for p in self.tagged()])

    def cleanup(self):
        # graceinit still running (a failed test): ask it first, so it removes its notify
        # socket and stops its children; then SIGKILL whatever is left.
        running = [run for run in self.runs if not run.exited()]
        for run in running:
            try:
                os.kill(run.pid, signal.SIGCONT)  # in case a test left it stopped
                os.kill(run.pid, signal.SIGTERM)
            except (OSError, AssertionError):
                pass
        if running:
            try:
                wait_until(lambda: all(run.exited() for run in running), 3)
            except WaitTimeout:
                pass
        self.procs.cleanup()
        # notify sockets of runs that had to be killed
        for event in self.events(ev="start"):
            path = (event.get("env") or {}).get("NOTIFY_SOCKET")
            directory = os.path.dirname(path) if path else ""
            if os.path.basename(directory).startswith("graceinit-") and os.path.isdir(directory):
                shutil.rmtree(directory, ignore_errors=True)


# --------------------------------------------------------------------------- gunicorn

def gunicorn_argv(workers=2):
    """gunicorn serving restart_helpers/wsgi_app.py on the inherited sockets (no --bind: with
    LISTEN_FDS/LISTEN_PID it takes fd 3.. and ignores its default address)."""
    return [PYTHON, "-m", "gunicorn", "--config", str(HERE / "gunicorn_conf.py"),
            "--chdir", str(HERE), "--workers", str(workers), "--worker-class", "sync",
            "--graceful-timeout", "20", "--timeout", "30", "wsgi_app:app"]
