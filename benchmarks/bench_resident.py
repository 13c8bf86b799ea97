"""memory (RSS/PSS of the init while the child sleeps) and idle cost (context switches/s)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from .common import (PYTHON, Budget, Context, Section, Stats, fmt, stats_table, stop,
                     table, wait_for_child)

FLOOR_PY = "python3 sleeping (floor)"


def _kb_fields(path: str, names: tuple[str, ...]) -> dict[str, int]:
    out = {}
    try:
        for line in Path(path).read_text().splitlines():
            k, _, v = line.partition(":")
            if k in names:
                out[k] = int(v.split()[0])
    except OSError:
        pass
    return out


def _start_sleepers(ctx: Context, seconds: int, with_floor: bool = False) -> dict[str, subprocess.Popen]:
    procs: dict[str, subprocess.Popen] = {}
    for init in ctx.measured if with_floor else ctx.available:
        procs[init.name] = subprocess.Popen(init.cmd(["sleep", str(seconds)]),
                                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                            stderr=subprocess.DEVNULL)
    return procs


def run_memory(ctx: Context) -> Section:
    sec = Section("memory", "Memory: the init's RSS while the child sleeps")
    rounds = 2 if ctx.quick else 5
    budget = Budget((20 if ctx.quick else 60) * ctx.deadline_factor)
    rss: dict[str, list[float]] = {}
    pss: dict[str, list[float]] = {}
    uss: dict[str, list[float]] = {}
    threads: dict[str, int] = {}
    errors = ctx.failures(with_floor=True)
    done = 0
    for r in range(rounds):
        if budget.over() and r >= 1:
            break
        procs = _start_sleepers(ctx, 60, with_floor=True)
        procs[FLOOR_PY] = subprocess.Popen([PYTHON, "-c", "import time; time.sleep(60)"],
                                           stdin=subprocess.DEVNULL)
        try:
            for name, p in procs.items():
                if name != FLOOR_PY and wait_for_child(p.pid, 15) is None:
                    errors[name] = f"no child after 15 s (exit {p.poll()})"
            time.sleep(1.0)  # let the init settle (lazy imports, threads)
            for name, p in procs.items():
                if p.poll() is not None:
                    errors.setdefault(name, f"exited {p.returncode} while its child should sleep")
                    continue
                st = _kb_fields(f"/proc/{p.pid}/status", ("VmRSS", "Threads"))
                sm = _kb_fields(f"/proc/{p.pid}/smaps_rollup",
                                ("Pss", "Private_Clean", "Private_Dirty"))
                if "VmRSS" in st:
                    rss.setdefault(name, []).append(st["VmRSS"] / 1024)
                    threads[name] = st.get("Threads", 0)
                if "Pss" in sm:
                    pss.setdefault(name, []).append(sm["Pss"] / 1024)
                    uss.setdefault(name, []).append(
                        (sm.get("Private_Clean", 0) + sm.get("Private_Dirty", 0)) / 1024)
        finally:
            for p in procs.values():
                stop(p)
        done += 1
    order = ctx.measured_names + [FLOOR_PY]
    sec.add(f"{done} rounds; in each, every init runs `INIT -- sleep 60` at the same time and is "
            "measured 1 s after its child exists. RSS = `VmRSS` of the init process alone "
            "(`/proc/PID/status`); PSS and USS (private) from `/proc/PID/smaps_rollup`, so shared "
            "libraries are split among the processes that map them. *python3 sleeping* is a bare Python "
            "interpreter (`python3 -c 'import time; time.sleep(60)'`); *python floor* is "
            "`benchmarks/floor_init.py` with its child sleeping, the least a Python init can cost.")
    sec.add("**RSS** (MiB)\n\n" + stats_table("init", "MiB", rss, failures=errors, order=order))
    rows = []
    for name in order:
        if name in pss:
            rows.append([name, fmt(Stats.of(pss[name]).median), fmt(Stats.of(uss[name]).median),
                         threads.get(name, "")])
    sec.add("**PSS / USS** (median, MiB) and thread count\n\n" +
            table(["init", "PSS (MiB)", "USS (MiB)", "threads"], rows))
    med = {k: Stats.of(v).median for k, v in rss.items() if v}
    sec.head("RSS while the child sleeps (median)", {n: med.get(n) for n in ctx.measured_names}, "MiB")
    medp = {k: Stats.of(v).median for k, v in pss.items() if v}
    sec.head("PSS while the child sleeps (median)", {n: medp.get(n) for n in ctx.measured_names}, "MiB")
    g = med.get("graceinit")
    sec.raw = dict(rss_mib=rss, pss_mib=pss, uss_mib=uss, threads=threads, errors=errors)
    sec.raw["targets"] = [dict(target="RSS under 20 MB",
                               graceinit=f"{fmt(g)} MiB ({fmt(g * 1.048576)} MB)" if g else "failed to run",
                               reference=f"tini {fmt(med.get('tini'))} MiB",
                               met=(g * 1.048576 < 20) if g else None)]
    return sec


def _task_sample(pid: int) -> tuple[int, int, int]:
    """(context switches, CPU ns, threads) summed over the process's threads."""
    sw = cpu = n = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        st = _kb_fields(f"/proc/{pid}/task/{tid}/status",
                        ("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches"))
        sw += st.get("voluntary_ctxt_switches", 0) + st.get("nonvoluntary_ctxt_switches", 0)
        try:
            cpu += int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            pass
        n += 1
    return sw, cpu, n


def run_idle(ctx: Context) -> Section:
    sec = Section("idle", "Idle cost: the init's context switches per second while the child sleeps")
    windows = 1 if ctx.quick else 3
    window = 3.0 if ctx.quick else 10.0
    rate: dict[str, list[float]] = {}
    cpu: dict[str, list[float]] = {}
    errors = ctx.failures()
    procs = _start_sleepers(ctx, 600)
    try:
        for name, p in procs.items():
            if wait_for_child(p.pid, 15) is None:
                errors[name] = f"no child after 15 s (exit {p.poll()})"
        time.sleep(2.0)
        for _ in range(windows):
            before = {}
            for name, p in procs.items():
                if p.poll() is None:
                    before[name] = (_task_sample(p.pid), time.monotonic())
            time.sleep(window)
            for name, p in procs.items():
                if name not in before:
                    continue
                if p.poll() is not None:
                    errors[name] = f"exited {p.returncode} during the window"
                    continue
                (sw0, c0, _), t0 = before[name]
                sw1, c1, _ = _task_sample(p.pid)
                dt = time.monotonic() - t0
                rate.setdefault(name, []).append((sw1 - sw0) / dt)
                cpu.setdefault(name, []).append((c1 - c0) / dt / 1e3)  # µs of CPU per second
    finally:
        for p in procs.values():
            stop(p)
    order = [i.name for i in ctx.inits]
    sec.add(f"All inits run `INIT -- sleep 600` at the same time; after 2 s of settling, "
            f"{windows} window(s) of {window:.0f} s. Switches = voluntary + involuntary context "
            "switches summed over all the init's threads (`/proc/PID/task/*/status`); CPU from "
            "`/proc/PID/task/*/schedstat`. A sleeping init that never wakes up scores 0.")
    sec.add("**context switches per second**\n\n" +
            stats_table("init", "/s", rate, failures=errors, order=order, ref=None))
    sec.add("**CPU time per second of wall time** (µs/s)\n\n" +
            stats_table("init", "µs/s", cpu, failures=errors, order=order, ref=None))
    med = {k: Stats.of(v).median for k, v in rate.items() if v}
    sec.head("idle context switches (median of windows)", {i.name: med.get(i.name) for i in ctx.inits},
             "/s", note="target 0")
    g = med.get("graceinit")
    sec.raw = dict(switches_per_s=rate, cpu_us_per_s=cpu, errors=errors)
    sec.raw["targets"] = [dict(target="idle context switches 0/s",
                               graceinit=f"{fmt(g)}/s" if g is not None else "failed to run",
                               reference=f"tini {fmt(med.get('tini'))}/s, dumb-init {fmt(med.get('dumb-init'))}/s",
                               met=(max(rate['graceinit']) == 0) if g is not None else None)]
    return sec

