"""Harness for the stop-sequence integration tests: runs the real installed graceinit CLI with
real helper processes, waits for events with deadlines, and kills everything a test started.

Everything a test starts carries STOP_TEST_TAG=<uuid> in its environment (graceinit passes its
environment on to the child, the hooks and whatever they start), so teardown finds and kills
even processes that escaped with setsid/double-fork, also inside a PID namespace.
"""
import os
import shlex
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil

from helpers.events import read_all
from helpers.launch import kill_all, tagged_processes

HERE = Path(__file__).resolve().parent
# The installed CLI; STOP_TEST_GRACEINIT runs the suite against another build (an executable
# path), e.g. a deliberately broken copy to check that the tests catch the breakage.
GRACEINIT = os.environ.get("STOP_TEST_GRACEINIT") or str(Path(sys.executable).with_name("graceinit"))
PYTHON = sys.executable
CHILD = str(HERE / "child.py")
HOOK = str(HERE / "hook.py")
TAG_VAR = "STOP_TEST_TAG"


class Run:
    """One graceinit invocation (optionally as PID 1 under unshare)."""

    def __init__(self, harness, argv, env, pid1, stdout, stderr):
        self.h = harness
        self.argv = argv
        self.pid1 = pid1
        self.out_path = harness.tmp / ("gi-%d.stdout" % len(harness.runs))
        self.err_path = harness.tmp / ("gi-%d.stderr" % len(harness.runs))
        self._out = open(self.out_path, "wb") if stdout is None else None
        self._err = open(self.err_path, "wb") if stderr is None else None
        full = argv
        if pid1:
            full = ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child"] + argv
        self.t_start = time.monotonic()
        self.proc = subprocess.Popen(
            full, stdin=subprocess.DEVNULL,
            stdout=self._out if stdout is None else stdout,
            stderr=self._err if stderr is None else stderr,
            env=env, cwd=str(harness.tmp), close_fds=True,
            preexec_fn=lambda: os.umask(0o022))
        self.t_exit = None
        self.rc = None
        self._gi_pid = None if pid1 else self.proc.pid

    # -- pids ---------------------------------------------------------------------------
    @property
    def gi_pid(self):
        """graceinit's pid as seen from the test (under unshare: unshare's child)."""
        if self._gi_pid is None:
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                try:
                    kids = psutil.Process(self.proc.pid).children()
                except psutil.NoSuchProcess:
                    kids = []
                if kids:
                    self._gi_pid = kids[0].pid
                    break
                if self.proc.poll() is not None:
                    raise AssertionError("unshare exited before graceinit started: %s"
                                         % self.describe())
                time.sleep(0.005)
            else:
                raise AssertionError("graceinit did not start under unshare")
        return self._gi_pid

    def signal(self, sig):
        """Send sig to graceinit; returns the monotonic time just before sending."""
        pid = self.gi_pid
        t = time.monotonic()
        os.kill(pid, sig)
        return t

    # -- exit ---------------------------------------------------------------------------
    def exited(self):
        if self.rc is None and self.proc.poll() is not None:
            self.t_exit = time.monotonic()
            self.rc = self.proc.returncode
        return self.rc is not None

    def wait(self, timeout):
        """Wait (bounded) for graceinit to exit; returns its exit status (unshare passes it on)."""
        deadline = time.monotonic() + timeout
        while not self.exited():
            if time.monotonic() > deadline:
                raise AssertionError("graceinit still running after %.1fs: %s"
                                     % (timeout, self.describe()))
            time.sleep(0.005)
        for f in (self._out, self._err):
            if f is not None:
                f.close()
        return self.rc

    # -- output -------------------------------------------------------------------------
    def stdout(self):
        return self.out_path.read_text(errors="replace") if self.out_path.exists() else ""

    def stderr(self):
        return self.err_path.read_text(errors="replace") if self.err_path.exists() else ""

    def describe(self):
        return ("\n  argv: %s\n  rc: %s\n  stderr:\n%s\n  events:\n%s" % (
            shlex.join(self.argv), self.rc, _indent(self.stderr()),
            _indent("\n".join(map(str, self.h.events())))))


def _indent(text):
    return "\n".join("    " + line for line in text.splitlines())


class Harness:
    def __init__(self, tmp_path):
        self.tmp = Path(tmp_path)
        self.log = str(self.tmp / "events.jsonl")
        self.tag = uuid.uuid4().hex
        self.runs = []

    # -- command builders ---------------------------------------------------------------
    def child(self, *args, name="child"):
        """argv list for the main child."""
        return [PYTHON, "-S", CHILD, "--log", self.log, "--name", name] + [str(a) for a in args]

    def hook_argv(self, name, *args):
        return [PYTHON, "-S", HOOK, "--log", self.log, "--name", name] + [str(a) for a in args]

    def hook(self, name, *args):
        """A hook command string (graceinit splits it like shell words)."""
        return shlex.join(self.hook_argv(name, *args))

    def env(self, **extra):
        env = {k: v for k, v in os.environ.items() if not k.startswith("GRACEINIT_")}
        env.pop("PYTHONPATH", None)
        env[TAG_VAR] = self.tag
        env.update(extra)
        return env

    # -- running ------------------------------------------------------------------------
    def start(self, options, command, env=None, pid1=False, stdout=None, stderr=None):
        argv = [GRACEINIT] + [str(o) for o in options] + ["--"] + list(command)
        run = Run(self, argv, env if env is not None else self.env(), pid1, stdout, stderr)
        self.runs.append(run)
        return run

    # -- events -------------------------------------------------------------------------
    def events(self, who=None, ev=None):
        return [e for e in read_all(self.log)
                if (who is None or e["who"] == who) and (ev is None or e["ev"] == ev)]

    def wait_event(self, who, ev, timeout=5.0, run=None, pred=None, count=1):
        """Wait (bounded) until `count` events from `who` of kind `ev` (matching pred) exist;
        returns the count-th one. Fails early if `run` (graceinit) has exited meanwhile."""
        deadline = time.monotonic() + timeout
        while True:
            found = [e for e in self.events(who, ev) if pred is None or pred(e)]
            if len(found) >= count:
                return found[count - 1]
            gone = run is not None and run.exited()
            if gone or time.monotonic() > deadline:
                found = [e for e in self.events(who, ev) if pred is None or pred(e)]
                if len(found) >= count:
                    return found[count - 1]
                raise AssertionError(
                    "no %s/%s event #%d within %.1fs%s%s" % (
                        who, ev, count, timeout,
                        " (graceinit exited first)" if gone else "",
                        run.describe() if run is not None else "\n" + "\n".join(
                            map(str, self.events()))))
            time.sleep(0.01)

    def signals(self, who):
        return [e for e in self.events(who, "signal")]

    # -- processes ----------------------------------------------------------------------
    def tagged(self):
        """Live (non-zombie) processes carrying this test's tag."""
        return tagged_processes(TAG_VAR, self.tag)

    def cleanup(self):
        kill_all([run.proc for run in self.runs], self.tagged())
        for run in self.runs:
            for f in (run._out, run._err):
                if f is not None and not f.closed:
                    f.close()


def wait_until(cond, timeout, interval=0.005):
    """Bounded wait for cond() to become true; returns the monotonic time it was seen true,
    or None on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        if cond():
            return time.monotonic()
        if time.monotonic() > deadline:
            return None
        time.sleep(interval)


def sleeper_hook(marker):
    """A hook that hangs and has its own child: `sh -c 'sleep M & sleep M'` with a unique
    duration M so the sleeps can be found (and must be gone) afterwards."""
    return shlex.join(["sh", "-c", "sleep %s & sleep %s" % (marker, marker)])


def unique_sleep():
    return "%d.%04d" % (200 + uuid.uuid4().int % 100, uuid.uuid4().int % 10000)


def sleeps_alive(marker):
    out = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            if p.info["cmdline"] == ["sleep", marker] and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
    return out
