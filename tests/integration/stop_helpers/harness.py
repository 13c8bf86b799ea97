"""Harness for the stop-sequence integration tests: runs the real installed graceinit CLI with
real helper processes (started, like every init under test, by helpers/launch.py), waits for
their events with deadlines (helpers/eventlog.py), and kills everything a test started.

Everything a test starts carries the `procs` fixture's token in its environment (graceinit
passes its environment on to the child, the hooks and whatever they start), so teardown finds
and kills even processes that escaped with setsid/double-fork, also inside a PID namespace.
"""
import os
import shlex
import sys
import uuid
from pathlib import Path

import psutil

from helpers.eventlog import EventLog
from helpers.launch import ProcessTracker, Supervised, clean_environ

HERE = Path(__file__).resolve().parent
# The installed CLI; STOP_TEST_GRACEINIT runs the suite against another build (an executable
# path), e.g. a deliberately broken copy to check that the tests catch the breakage.
GRACEINIT = os.environ.get("STOP_TEST_GRACEINIT") or str(Path(sys.executable).with_name("graceinit"))
PYTHON = sys.executable
CHILD = str(HERE / "child.py")
HOOK = str(HERE / "hook.py")


def _umask_022():
    os.umask(0o022)


class Harness(EventLog):
    wait_timeout = 5.0

    def __init__(self, tmp_path, procs: ProcessTracker):
        self.tmp = Path(tmp_path)
        super().__init__(str(self.tmp / "events.jsonl"))
        self.procs = procs
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
        env = clean_environ()
        env.pop("PYTHONPATH", None)
        env.update(extra)
        return self.procs.env(env)

    # -- running ------------------------------------------------------------------------
    def start(self, options, command, env=None, pid1=False, stdout=None,
              stderr=None) -> Supervised:
        """Start graceinit OPTIONS -- COMMAND (under unshare as PID 1 with pid1); its stdout
        and stderr go to files in the test's tmp dir unless given (e.g. subprocess.PIPE)."""
        n = len(self.runs)
        argv = [GRACEINIT] + [str(o) for o in options] + ["--"] + list(command)
        run = self.procs.start(
            argv, pid1=pid1, env=env if env is not None else self.env(),
            stdout=self.tmp / ("gi-%d.stdout" % n) if stdout is None else stdout,
            stderr=self.tmp / ("gi-%d.stderr" % n) if stderr is None else stderr,
            cwd=str(self.tmp), preexec_fn=_umask_022,
            context=lambda: "  events:\n" + self.describe())
        self.runs.append(run)
        return run

    # -- processes ----------------------------------------------------------------------
    def tagged(self):
        """Live (non-zombie) processes carrying this test's token."""
        return self.procs.tagged_processes()


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
