"""Where graceinit's start-up goes, next to the Python floor (issue 20's diagnosis).

    python -m benchmarks.gap timeline [--runs 21]   # launch → main → imports → fork → exec → child; fork → first wait
    python -m benchmarks.gap imports  [--runs 15]   # -X importtime, split at the child's fork
    python -m benchmarks.gap profile                # cProfile of graceinit's set-up before the fork
    python -m benchmarks.gap lazy     [--runs 15]   # what the stop-only modules cost to import

Every number is a median over interleaved runs (graceinit, floor, graceinit, floor, …) of
processes started the way the benchmarks start them: the console script named by
BENCH_GRACEINIT (default .venv/bin/graceinit) and benchmarks/floor_init.py on the same
interpreter. With --pid1 every run is PID 1 of a fresh PID namespace (`unshare`, root).

How the phases are marked: the launcher (or floor_init.py) runs inside a small wrapper that
notes CLOCK_MONOTONIC when the interpreter reaches it ("main"), after graceinit's modules are
imported, and at the audit events `os.fork` (in graceinit) and `os.exec` (in the forked child,
just before execve); the child itself is the static `firstinsn`, which prints CLOCK_MONOTONIC
first thing. The launch time is taken by the harness just before it starts the process. The
wrapper itself costs the same in both rows (a compile and an exec of the script).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time

from .common import FLOOR_INIT, GRACEINIT as _GRACEINIT, helper, interpreter_of

GRACEINIT = os.path.abspath(_GRACEINIT)  # the runs start in /, where a checkout cannot shadow it

# Notes the phases on fd 2 ("@@ TAG NS" lines); RUN_SCRIPT then runs `sys.argv[1]` as a script.
MARKS = r"""
import os, sys, time
def _mark(tag):
    os.write(2, ("@@ %s %d\n" % (tag, time.monotonic_ns())).encode())
_mark("main")
_seen = set()
def _hook(event, args):
    if event in ("os.fork", "os.exec", "os.kill", "os.killpg") and event not in _seen:
        _seen.add(event)
        _mark(event)
    elif event == "import" and args[0] == "graceinit.startup" and "startup" not in _seen:
        _seen.add("startup")
        _mark("import graceinit.startup")
sys.addaudithook(_hook)
"""
# Also marks the first time the init sleeps for events after the fork (timeline only: it
# imports select, which would then not show among graceinit's imports).
WAIT_MARK = r"""
# The first time the init sleeps for events after the fork: graceinit's poll(), the floor's
# sigwaitinfo(). Both are looked up at call time, so wrapping them here is seen.
import select, _signal
_poll, _sigwaitinfo = select.poll, _signal.sigwaitinfo
def _first_wait():
    if "wait" not in _seen and "os.fork" in _seen:
        _seen.add("wait")
        _mark("first wait")
class _Poll:
    def __init__(self):
        self._p = _poll()
        self.register, self.unregister, self.modify = self._p.register, self._p.unregister, self._p.modify
    def poll(self, *args):
        _first_wait()
        return self._p.poll(*args)
def _sigwait(sigset):
    _first_wait()
    return _sigwaitinfo(sigset)
select.poll, _signal.sigwaitinfo = _Poll, _sigwait
"""
RUN_SCRIPT = r"""
script = sys.argv[1]
sys.argv = sys.argv[1:]
exec(compile(open(script).read(), script, "exec"), {"__name__": "__main__"})
"""
WRAPPER = MARKS + RUN_SCRIPT
TIMELINE_WRAPPER = MARKS + WAIT_MARK + RUN_SCRIPT

PROFILE_WRAPPER = r"""
import cProfile, os, pstats, sys
prof = cProfile.Profile()
def _hook(event, args):
    if event == "os.fork":
        prof.disable()
        if os.environ.get("GAP_PROFILE_OUT"):
            prof.dump_stats(os.environ["GAP_PROFILE_OUT"])
            os.environ.pop("GAP_PROFILE_OUT")
sys.addaudithook(_hook)
script = sys.argv[1]
sys.argv = sys.argv[1:]
code = compile(open(script).read(), script, "exec")
prof.enable()
exec(code, {"__name__": "__main__"})
"""


def _run(argv: list[str], timeout: float = 30.0, env: dict | None = None) -> tuple[int, bytes, bytes, int]:
    """Start argv with posix_spawn, as the benchmark's launcher does (glibc's posix_spawn hands
    the child the internal signals 32 and 33 ignored, which graceinit resets; subprocess's
    fork+exec in Python 3.11 does not). Returns (status, stdout, stderr, t0 before the spawn)."""
    import tempfile

    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        actions = [(os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
                   (os.POSIX_SPAWN_DUP2, out.fileno(), 1), (os.POSIX_SPAWN_DUP2, err.fileno(), 2)]
        exe = shutil.which(argv[0]) or argv[0]
        here = os.getcwd()
        os.chdir("/")  # the child starts in /: a checkout there cannot shadow the installed package
        try:
            t0 = time.monotonic_ns()
            pid = os.posix_spawn(exe, argv, env if env is not None else os.environ, file_actions=actions)
        finally:
            os.chdir(here)  # posix_spawn returns once the child has exec'd: it keeps /
        end = time.monotonic() + timeout
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > end:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
                raise SystemExit(f"{argv[:3]}: hung > {timeout:.0f} s")
            time.sleep(0.002)
        out.seek(0)
        err.seek(0)
        return os.waitstatus_to_exitcode(status), out.read(), err.read(), t0


def _rows(pid1: bool) -> list[tuple[str, list[str]]]:
    python = interpreter_of(GRACEINIT)
    pre = ["unshare", "--pid", "--fork", "--mount-proc"] if pid1 else []
    return [("graceinit", [*pre, python, "-c", TIMELINE_WRAPPER, GRACEINIT]),
            ("python floor", [*pre, python, "-c", TIMELINE_WRAPPER, str(FLOOR_INIT)])]


def _marks(stderr: bytes) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in stderr.decode(errors="replace").splitlines():
        if line.startswith("@@ "):
            tag, _, ns = line[3:].rpartition(" ")
            out.setdefault(tag, int(ns))
    return out


def timeline(runs: int, pid1: bool) -> None:
    first = helper("firstinsn")
    phases: dict[str, dict[str, list[float]]] = {}
    for _ in range(runs):
        for name, argv in _rows(pid1):  # interleaved
            code, stdout, stderr, t0 = _run([*argv, "--", first])
            m = _marks(stderr)
            out = stdout.decode().split()
            if code != 0 or not out or "os.fork" not in m:
                raise SystemExit(f"{name}: exit {code}: {stderr.decode()[-300:]}")
            t_child = int(out[0])
            points = [("launch", t0), ("main", m["main"])]
            if "import graceinit.startup" in m:
                points.append(("imports begin", m["import graceinit.startup"]))
            points += [("fork", m["os.fork"]), ("exec", m.get("os.exec", m["os.fork"])),
                       ("child's first instruction", t_child)]
            d = phases.setdefault(name, {})
            for (a, ta), (b, tb) in zip(points, points[1:]):
                d.setdefault(f"{a} → {b}", []).append((tb - ta) / 1e6)
            d.setdefault("launch → child's first instruction (total)", []).append((t_child - t0) / 1e6)
            if "first wait" in m:
                d.setdefault("fork → the init's first wait for events (parent)", []).append(
                    (m["first wait"] - m["os.fork"]) / 1e6)
    print(f"median of {runs} interleaved runs{' as PID 1 (unshare)' if pid1 else ''}, ms "
          f"(load {' '.join(f'{x:.2f}' for x in os.getloadavg())})")
    for name, d in phases.items():
        print(f"\n{name}")
        for k, v in d.items():
            print(f"  {k:48} {statistics.median(v):8.2f}   (min {min(v):.2f})")


def import_phases(runs: int, pid1: bool, graceinit: str = "") -> dict:
    """-X importtime of the launcher's whole run, as the container runs it (posix_spawn; as
    PID 1 with `pid1`): every module imported before the child's fork (on the launch → exec
    path) with its median self and cumulative ms, and those imported after it (paid later),
    with the phase each first appeared in."""
    script = os.path.abspath(graceinit) if graceinit else GRACEINIT
    python = interpreter_of(script)
    pre = ["unshare", "--pid", "--fork", "--mount-proc"] if pid1 else []
    # The child asks for the stop itself, so the stop's imports show up after the kill mark.
    child = ["sh", "-c", "sleep 0.2; kill -TERM 1" if pid1 else "sleep 0.2; kill -TERM $PPID"]
    before: dict[str, list[int]] = {}
    cumulative: dict[str, list[int]] = {}
    after: dict[str, list[int]] = {}
    phase_of: dict[str, str] = {}
    importer: dict[str, str] = {}
    for _ in range(runs):
        code, _, stderr, _ = _run([*pre, python, "-X", "importtime", "-c", WRAPPER, script, "--", *child])
        if code != 143 and code != 0:
            raise RuntimeError(f"graceinit exited {code}: {stderr.decode(errors='replace')[-300:]}")
        phase, seen_site = "start", False
        waiting: list[tuple[int, str]] = []  # (depth, name) of imports whose importer is not printed yet
        for line in stderr.decode(errors="replace").splitlines():
            if line.startswith("@@ "):
                tag = line[3:].rpartition(" ")[0]
                if tag == "os.fork":
                    phase = "running"
                elif tag in ("os.kill", "os.killpg") and phase == "running":
                    phase = "stop"
                continue
            parts = line.split("|")
            if not line.startswith("import time:") or len(parts) != 3 or not parts[1].strip().isdigit():
                continue
            name = parts[2].rstrip()
            depth = (len(name) - len(name.lstrip())) // 2
            name = name.strip()
            if not seen_site:  # the interpreter's own start-up and `site`: the floor pays them too
                seen_site = name == "site"
                continue
            # -X importtime prints an import after everything it imported, one level deeper.
            while waiting and waiting[-1][0] > depth:
                importer.setdefault(waiting.pop()[1], name)
            waiting.append((depth, name))
            us = int(parts[0].split(":")[1])
            (before if phase == "start" else after).setdefault(name, []).append(us)
            cumulative.setdefault(name, []).append(int(parts[1]))
            phase_of[name] = phase
    med = lambda xs: statistics.median(xs) / 1e3  # noqa: E731
    return dict(runs=runs, pid1=pid1, python=python,
                before={n: dict(self_ms=med(v), cumulative_ms=med(cumulative[n]), seen=len(v),
                                imported_by=importer.get(n, "")) for n, v in before.items()},
                after={n: dict(self_ms=med(v), phase=phase_of[n], seen=len(v), imported_by=importer.get(n, ""))
                       for n, v in after.items()})


def imports(runs: int, pid1: bool) -> None:
    found = import_phases(runs, pid1)
    print(f"-X importtime, median of {runs} runs{' as PID 1' if pid1 else ''}, ms; "
          f"load {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("\nbefore the child's fork (on the launch → exec path): self, cumulative, runs seen in")
    for name, v in sorted(found["before"].items(), key=lambda kv: -kv[1]["self_ms"]):
        print(f"  {name:32} {v['self_ms']:7.3f} {v['cumulative_ms']:7.3f}  {v['seen']}  {v['imported_by']}")
    print(f"  {'sum of self times':32} {sum(v['self_ms'] for v in found['before'].values()):7.3f}")
    print("\nafter the fork (paid later; the phase where each first appeared)")
    for name, v in sorted(found["after"].items(), key=lambda kv: -kv[1]["self_ms"]):
        print(f"  {name:32} {v['self_ms']:7.3f}   {v['phase']}")


def profile(pid1: bool) -> None:
    python = interpreter_of(GRACEINIT)
    pre = ["unshare", "--pid", "--fork", "--mount-proc"] if pid1 else []
    out = f"/tmp/gap-profile-{os.getpid()}.pstats"
    env = {**os.environ, "GAP_PROFILE_OUT": out}
    _run([*pre, python, "-c", PROFILE_WRAPPER, GRACEINIT, "--", "true"], env=env)
    import pstats

    stats = pstats.Stats(out)
    stats.sort_stats("cumulative").print_stats(35)
    stats.sort_stats("tottime").print_stats(20)
    os.unlink(out)


# The modules issue 20 names as needed only by the stop (and what they alone import).
STOP_ONLY = ["graceinit.budget", "graceinit.report", "graceinit.terminate", "graceinit.hooks",
             "graceinit.generations", "graceinit.waits"]


def lazy(runs: int) -> None:
    """Time to import the stop-only modules in a process that has loaded everything else
    the start needs: what loading them at the stop would move out of the start."""
    python = interpreter_of(GRACEINIT)
    code = r"""
import sys, time
start_set = ["graceinit.config", "graceinit.log", "graceinit.signals", "graceinit.terminal",
             "graceinit.spawn", "graceinit.output", "graceinit.reaper", "graceinit.options",
             "graceinit.cli", "graceinit.events", "graceinit.facts", "graceinit.procs",
             "graceinit.readyfile", "math", "select", "errno"]
t0 = time.perf_counter_ns()
for m in start_set:
    __import__(m)
t1 = time.perf_counter_ns()
stop = sys.argv[1].split(",")
assert not [m for m in stop if m in sys.modules], [m for m in stop if m in sys.modules]
times = []
for m in stop:
    a = time.perf_counter_ns(); __import__(m); times.append(time.perf_counter_ns() - a)
t2 = time.perf_counter_ns()
print(t1 - t0, t2 - t1, *times)
"""
    start_ms, stop_ms, each = [], [], {m: [] for m in STOP_ONLY}
    for _ in range(runs):
        p = subprocess.run([python, "-c", code, ",".join(STOP_ONLY)], capture_output=True, timeout=30,
                           cwd="/", stdin=subprocess.DEVNULL)
        if p.returncode != 0:
            raise SystemExit(p.stderr.decode()[-400:])
        a, b, *rest = (int(x) for x in p.stdout.split())
        start_ms.append(a / 1e6)
        stop_ms.append(b / 1e6)
        for m, t in zip(STOP_ONLY, rest):
            each[m].append(t / 1e6)
    print(f"median of {runs} runs, ms (load {' '.join(f'{x:.2f}' for x in os.getloadavg())})")
    print(f"  the start's own modules (config … readyfile)   {statistics.median(start_ms):7.3f}")
    print(f"  then the stop-only modules, all                {statistics.median(stop_ms):7.3f}")
    for m, v in each.items():
        print(f"    {m:44} {statistics.median(v):7.3f}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.gap", description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=["timeline", "imports", "profile", "lazy"])
    ap.add_argument("--runs", type=int, default=0, help="runs (default 21 timeline, 15 imports/lazy)")
    ap.add_argument("--pid1", action="store_true", help="as PID 1 of a fresh PID namespace (unshare)")
    args = ap.parse_args(argv)
    if args.pid1 and not shutil.which("unshare"):
        raise SystemExit("unshare not found")
    if args.what == "timeline":
        timeline(args.runs or 21, args.pid1)
    elif args.what == "imports":
        imports(args.runs or 15, args.pid1)
    elif args.what == "profile":
        profile(args.pid1)
    else:
        lazy(args.runs or 15)
    return 0


if __name__ == "__main__":
    sys.exit(main())
