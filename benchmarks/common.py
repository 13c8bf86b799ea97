"""Shared pieces of the benchmark suite: the inits, C helpers, statistics, tables."""

from __future__ import annotations

import dataclasses
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterable, Sequence

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CACHE = HERE / ".cache"
BIN = CACHE / "bin"
CSRC = HERE / "csrc"
PYTHON = sys.executable  # the venv's python: the interpreter graceinit runs on

# Absolute: some runs start in / (so that a checkout cannot shadow the installed package).
GRACEINIT = os.path.abspath(os.environ.get("BENCH_GRACEINIT") or str(REPO / ".venv" / "bin" / "graceinit"))
TINI = shutil.which("tini") or "/usr/bin/tini"
DUMB_INIT = shutil.which("dumb-init") or "/usr/bin/dumb-init"
FLOOR_INIT = HERE / "floor_init.py"  # the least a correct Python PID 1 does (issue 20)


# --------------------------------------------------------------------------- inits

@dataclasses.dataclass
class Init:
    """One init under test.  ``prefix`` goes in front of the child command."""

    name: str
    prefix: list[str]
    options_before_dashdash: bool = True  # extra options go before "--"
    available: bool = True
    why_not: str = ""

    @property
    def is_bare(self) -> bool:
        return not self.prefix

    def cmd(self, child: Sequence[str], options: Sequence[str] = ()) -> list[str]:
        if self.is_bare:
            return list(child)
        return [self.prefix[0], *options, *self.prefix[1:], "--", *child]


def all_inits() -> list[Init]:
    # tini -s: register as child subreaper, so it reaps orphans even when it is not PID 1
    # (what it does as PID 1 anyway) and does not print its "not PID 1" warning.
    return [
        Init("tini", [TINI, "-s"]),
        Init("dumb-init", [DUMB_INIT]),
        Init("graceinit", [GRACEINIT]),
    ]


BARE = Init("bare (no init)", [])


def floor_init() -> Init:
    """The Python floor, on the interpreter graceinit runs on (its console script's `#!`)."""
    return Init("python floor", [interpreter_of(GRACEINIT), str(FLOOR_INIT)])


def interpreter_of(script: str) -> str:
    """The interpreter a console script runs on (its `#!` line), or this one."""
    try:
        with open(script, "rb") as f:
            first = f.readline().decode(errors="replace")
    except OSError:
        return PYTHON
    return first[2:].split()[0] if first.startswith("#!") and first[2:].split() else PYTHON


def check_floor(init: Init, timeout: float = 20.0) -> None:
    """The floor is only a floor if it is a correct PID 1: real processes, or it is not run.

    Exit statuses pass (3; 143 when the child is killed by SIGTERM; 127 for a missing
    command), a SIGTERM sent to it reaches the child (whose trap exits 42), and as PID 1 of
    a PID namespace it reaps 300 orphans (the `orphans` helper counts what is left)."""
    def fail(why: str) -> None:
        init.available, init.why_not = False, f"self-check: {why}"

    for child, want in ((["sh", "-c", "exit 3"], 3), (["sh", "-c", "kill -TERM $$"], 143),
                        (["/nonexistent/command"], 127)):
        try:
            p = subprocess.run(init.cmd(child), stdin=subprocess.DEVNULL, capture_output=True,
                               timeout=timeout)
        except (OSError, subprocess.TimeoutExpired) as e:
            return fail(f"`{' '.join(child)}`: {e}")
        if p.returncode != want:
            return fail(f"`{' '.join(child)}` gave exit {p.returncode}, not {want}")
    # The child says it is ready only once its trap is set; then SIGTERM goes to the init.
    p = subprocess.Popen(init.cmd(["sh", "-c", "trap 'exit 42' TERM; echo ready; "
                                   "while :; do sleep 0.05; done"]),
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        ready = p.stdout.readline() if p.stdout else b""  # bounded: the finally kills p
        if ready.strip() != b"ready":
            return fail("the SIGTERM child never got ready")
        p.send_signal(signal.SIGTERM)
        try:
            code = p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return fail(f"SIGTERM not forwarded: still running {timeout:.0f} s later")
        if code != 42:
            return fail(f"SIGTERM forwarded: child's trap should exit 42, got {code}")
    finally:
        kill_tree(p)
        if p.stdout:
            p.stdout.close()
    unshare = shutil.which("unshare")
    if unshare:
        argv = [unshare, "--pid", "--fork", "--mount-proc", *init.cmd([helper("orphans"), "300", "10", "stream"])]
        try:
            p2 = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout + 10)
        except (OSError, subprocess.TimeoutExpired) as e:
            return fail(f"orphans as PID 1: {e}")
        lines = [ln for ln in p2.stdout.decode(errors="replace").splitlines() if ln.startswith("{")]
        if p2.returncode != 0 or not lines:
            return fail(f"orphans as PID 1: exit {p2.returncode}")
        import json
        res = json.loads(lines[-1])
        left = res["left_at_end"] + res["zombies_after_50ms"] + res["unreaped_after_50ms"]
        if res["timed_out"] or left or res["made"] != 300:
            return fail(f"orphans as PID 1: {res['left_at_end']} of {res['made']} left unreaped "
                        f"at the end, {left - res['left_at_end']} still there 50 ms later")


def probe(init: Init, timeout: float = 15.0) -> None:
    """``INIT -- true`` must exit 0; otherwise the init's rows say "failed to run"."""
    exe = init.prefix[0]
    if not os.path.exists(exe):
        init.available, init.why_not = False, f"{exe} not found"
        return
    try:
        p = subprocess.run(init.cmd(["true"]), stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        init.available, init.why_not = False, f"`{init.name} -- true` hung > {timeout:.0f} s"
        return
    except OSError as e:
        init.available, init.why_not = False, f"cannot exec: {e}"
        return
    if p.returncode != 0:
        err = (p.stderr or p.stdout).decode(errors="replace").strip().splitlines()
        last = err[-1][:160] if err else ""
        init.available = False
        init.why_not = f"`{init.name} -- true` exited {p.returncode}" + (f": {last}" if last else "")
    else:
        init.available, init.why_not = True, ""


def init_version(init: Init) -> str:
    if init.is_bare or not init.available:
        return ""
    try:
        p = subprocess.run([init.prefix[0], "--version"], capture_output=True, timeout=10,
                           stdin=subprocess.DEVNULL)
        out = (p.stdout or p.stderr).decode(errors="replace").strip().splitlines()
        return out[0] if out else ""
    except Exception as e:  # noqa: BLE001
        return f"? ({e})"


# --------------------------------------------------------------------------- C helpers

def helper(name: str) -> str:
    """Path of a compiled C helper (built on demand into benchmarks/.cache/bin)."""
    src = CSRC / f"{name}.c"
    out = BIN / name
    hdr = CSRC / "common.h"
    newest = max(src.stat().st_mtime, hdr.stat().st_mtime)
    if out.exists() and out.stat().st_mtime >= newest:
        return str(out)
    BIN.mkdir(parents=True, exist_ok=True)
    gcc = shutil.which("gcc") or shutil.which("cc")
    if not gcc:
        raise RuntimeError("gcc not found: the benchmarks need a C compiler for their helpers")
    base = [gcc, "-O2", "-Wall", "-o", str(out), str(src)]
    p = subprocess.run(base[:2] + ["-static"] + base[2:], capture_output=True)
    if p.returncode != 0:  # no static libc: a dynamic binary is good enough
        p = subprocess.run(base, capture_output=True)
        if p.returncode != 0:
            raise RuntimeError(f"compiling {src.name} failed: {p.stderr.decode()[-400:]}")
    return str(out)


def build_helpers() -> None:
    for src in sorted(CSRC.glob("*.c")):
        helper(src.stem)


# --------------------------------------------------------------------------- processes

def kill_tree(proc: subprocess.Popen | int, sig: int = signal.SIGKILL) -> None:
    """Kill a process and all its descendants (found before killing)."""
    pid = proc if isinstance(proc, int) else proc.pid
    try:
        import psutil
        try:
            kids = psutil.Process(pid).children(recursive=True)
        except psutil.Error:
            kids = []
        for p in [psutil.Process(pid), *kids] if _alive(pid) else kids:
            try:
                p.send_signal(sig)
            except psutil.Error:
                pass
    except ImportError:
        try:
            os.kill(pid, sig)
        except OSError:
            pass
    if not isinstance(proc, int):
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


def stop(proc: subprocess.Popen, timeout: float = 5.0) -> int | None:
    """SIGTERM, wait up to ``timeout``, then SIGKILL the whole tree."""
    if proc.poll() is None:
        try:
            proc.send_signal(signal.SIGTERM)
        except OSError:
            pass
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
    kill_tree(proc)
    return proc.poll()


def children_of(pid: int) -> list[int]:
    try:
        import psutil
        return [c.pid for c in psutil.Process(pid).children()]
    except Exception:  # noqa: BLE001
        return []


def wait_for_child(pid: int, timeout: float = 10.0) -> int | None:
    """Wait until ``pid`` has a child process; return the child's pid."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        kids = children_of(pid)
        if kids:
            return kids[0]
        if not _alive(pid):
            return None
        time.sleep(0.01)
    return None


def set_subreaper() -> None:
    """Make the harness a child subreaper so that nothing it starts escapes cleanup."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except Exception:  # noqa: BLE001
        pass


def reap_strays() -> None:
    """Kill and reap whatever descendants are left over (re-parented to us as subreaper)."""
    try:
        import psutil
        me = psutil.Process()
        for c in me.children(recursive=True):
            try:
                c.kill()
            except psutil.Error:
                pass
    except Exception:  # noqa: BLE001
        pass
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            break


# --------------------------------------------------------------------------- statistics

def percentile(xs: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default), q in 0..100."""
    s = sorted(xs)
    if not s:
        return math.nan
    if len(s) == 1:
        return s[0]
    k = (len(s) - 1) * q / 100.0
    f = math.floor(k)
    c = min(f + 1, len(s) - 1)
    return s[f] + (s[c] - s[f]) * (k - f)


@dataclasses.dataclass
class Stats:
    n: int
    median: float
    p99: float
    lo: float
    hi: float

    @classmethod
    def of(cls, xs: Sequence[float]) -> "Stats | None":
        xs = [x for x in xs if x is not None and not math.isnan(x)]
        if not xs:
            return None
        return cls(len(xs), percentile(xs, 50), percentile(xs, 99), min(xs), max(xs))


def fmt(x: float | None, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if x == 0:
        return "0"
    if isinstance(x, int):
        return f"{x:,}"
    a = abs(x)
    if a >= 1000:
        return f"{x:,.0f}"
    if a >= 100:
        return f"{x:.0f}"
    if a >= 10:
        return f"{x:.1f}"
    if a >= 1:
        return f"{x:.2f}"
    return f"{x:.{digits}g}"


def ratio(x: float | None, ref: float | None) -> str:
    if x is None or ref is None or ref == 0 or math.isnan(x) or math.isnan(ref):
        return "–"
    return f"{x / ref:.2f}×"


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    rows = [[str(c) for c in r] for r in rows]
    out = ["| " + " | ".join(headers) + " |",
           "|" + "|".join("---" if i == 0 else "---:" for i in range(len(headers))) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def stats_table(label: str, unit: str, data: dict[str, list[float]], ref: str | None = "tini",
                failures: dict[str, str] | None = None, scale: float = 1.0,
                order: Sequence[str] | None = None) -> str:
    """One row per init: n, median, p99, min–max, median ratio against ``ref``."""
    failures = failures or {}
    names = list(order) if order else list(data)
    for k in failures:
        if k not in names:
            names.append(k)
    ref_stats = Stats.of([x * scale for x in data.get(ref, [])]) if ref else None
    rows = []
    for name in names:
        st = Stats.of([x * scale for x in data.get(name, [])])
        if st is None:
            rows.append([name, 0, "failed to run" + (f": {failures[name]}" if name in failures else ""),
                         "", "", ""] + ([""] if ref else []))
            continue
        row = [name, st.n, fmt(st.median), fmt(st.p99), f"{fmt(st.lo)}–{fmt(st.hi)}"]
        if ref:
            row.append(ratio(st.median, ref_stats.median if ref_stats else None))
        if name in failures:
            row[2] += f" (partly failed: {failures[name]})"
        rows.append(row)
    headers = [label, "n", f"median ({unit})", f"p99 ({unit})", f"min–max ({unit})"]
    if ref:
        headers.append(f"median vs {ref}")
    return table(headers, rows)


# --------------------------------------------------------------------------- results

@dataclasses.dataclass
class Section:
    key: str
    title: str
    body: list[str] = dataclasses.field(default_factory=list)  # markdown paragraphs/tables
    headline: list[dict] = dataclasses.field(default_factory=list)
    raw: dict = dataclasses.field(default_factory=dict)
    seconds: float = 0.0
    error: str = ""

    def add(self, md: str) -> None:
        self.body.append(md)

    def head(self, metric: str, values: dict[str, float | None], unit: str,
             better: str = "lower", ref: str = "tini", note: str = "") -> None:
        """A headline row: one value per init, ratios against ``ref``."""
        self.headline.append(dict(metric=metric, values=values, unit=unit, better=better,
                                  ref=ref, note=note))


@dataclasses.dataclass
class Context:
    quick: bool
    inits: list[Init]
    # The Python floor (issue 20) is a row of the start-up, memory, signals and reaping
    # benchmarks only; the others compare inits with features, which it has none of.
    floor: Init | None = None
    deadline_factor: float = 1.0
    verbose: bool = True

    def log(self, msg: str) -> None:
        if self.verbose:
            print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    @property
    def available(self) -> list[Init]:
        return [i for i in self.inits if i.available]

    @property
    def measured(self) -> list[Init]:
        """The inits a benchmark with a floor row runs: the available ones and the floor."""
        return self.available + ([self.floor] if self.floor and self.floor.available else [])

    @property
    def measured_names(self) -> list[str]:
        return [i.name for i in self.inits] + ([self.floor.name] if self.floor else [])

    def failures(self, with_floor: bool = False) -> dict[str, str]:
        every = self.inits + ([self.floor] if with_floor and self.floor else [])
        return {i.name: i.why_not for i in every if not i.available}

    def get(self, name: str) -> Init | None:
        for i in self.inits + ([self.floor] if self.floor else []):
            if i.name == name:
                return i
        return None


class Budget:
    """A time budget for one benchmark: ``while budget.more(i, n_min)`` style loops."""

    def __init__(self, seconds: float):
        self.start = time.monotonic()
        self.seconds = seconds

    @property
    def left(self) -> float:
        return self.seconds - (time.monotonic() - self.start)

    def over(self) -> bool:
        return self.left <= 0


# --------------------------------------------------------------------------- machine

def machine_info() -> dict[str, str]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        aff = len(os.sched_getaffinity(0))
    except AttributeError:
        aff = os.cpu_count() or 0
    mem = ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return {
        "nproc": str(aff),
        "cpu": cpu or platform.processor(),
        "kernel": platform.release(),
        "python": f"{platform.python_implementation()} {platform.python_version()} ({shown_path(PYTHON)})",
        "memory": mem,
        "loadavg": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def shown_path(path: str) -> str:
    """A path as a report shows it: relative to the checkout when inside it (no machine paths)."""
    try:
        return str(Path(path).absolute().relative_to(REPO))
    except ValueError:
        return path


def timed(fn: Callable[[], object]) -> tuple[object, float]:
    t = time.perf_counter()
    r = fn()
    return r, time.perf_counter() - t
