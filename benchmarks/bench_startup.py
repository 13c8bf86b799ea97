"""start-up: launch → child's first instruction; total wall of ``INIT -- true``; floors.

Also the "signal-safe window": exec of the init → SIGTERM blocked (or caught)."""

from __future__ import annotations

import shutil
import subprocess

from .common import (BARE, PYTHON, Budget, Context, Section, Stats, fmt, helper, interpreter_of,
                     shown_path, stats_table, table)


def _spawntime(argv: list[str]) -> tuple[int, int, int, str]:
    p = subprocess.run([helper("spawntime"), *argv], capture_output=True, timeout=30,
                       stdin=subprocess.DEVNULL)
    lines = p.stdout.decode(errors="replace").splitlines()
    if p.returncode != 0 or not lines:
        raise RuntimeError(f"spawntime failed: {p.stderr.decode(errors='replace')[-200:]}")
    t0, t1, status = (int(x) for x in lines[0].split())
    return t0, t1, status, lines[1] if len(lines) > 1 else ""


def run_startup(ctx: Context) -> Section:
    sec = Section("startup", "Start-up: launch → child's first instruction, and `INIT -- true`")
    first = helper("firstinsn")
    rounds = 8 if ctx.quick else 40
    budget = Budget((25 if ctx.quick else 100) * ctx.deadline_factor)
    to_first: dict[str, list[float]] = {}
    to_first_pid1: dict[str, list[float]] = {}
    wall_true: dict[str, list[float]] = {}
    errors: dict[str, str] = ctx.failures(with_floor=True)
    floor_py = "python3 -c pass (floor)"
    floor_true = "bare `true` (floor)"
    runners = [BARE, *ctx.measured]
    unshare = shutil.which("unshare")
    as_pid1 = [unshare, "--pid", "--fork", "--mount-proc"] if unshare else None
    done = 0
    for r in range(rounds):
        if budget.over() and r >= 3:
            break
        for init in runners:  # interleaved: A B C A B C …
            name = init.name
            try:
                t0, _, st, out = _spawntime(init.cmd([first]))
                if st != 0 or not out.strip().isdigit():
                    raise RuntimeError(f"exit {st}, output {out[:60]!r}")
                to_first.setdefault(name, []).append((int(out) - t0) / 1e6)
                if as_pid1:  # the same, as PID 1 of a fresh PID namespace (unshare's cost in every row)
                    t0, _, st, out = _spawntime([*as_pid1, *init.cmd([first])])
                    if st != 0 or not out.strip().isdigit():
                        raise RuntimeError(f"as PID 1: exit {st}, output {out[:60]!r}")
                    to_first_pid1.setdefault(name, []).append((int(out) - t0) / 1e6)
                t0, t1, st, _ = _spawntime(init.cmd(["true"]))
                if st != 0:
                    raise RuntimeError(f"`-- true` exit {st}")
                key = floor_true if init.is_bare else name
                wall_true.setdefault(key, []).append((t1 - t0) / 1e6)
            except Exception as e:  # noqa: BLE001
                errors[name] = str(e)[:200]
        try:
            t0, t1, st, _ = _spawntime([PYTHON, "-c", "pass"])
            wall_true.setdefault(floor_py, []).append((t1 - t0) / 1e6)
        except Exception as e:  # noqa: BLE001
            errors[floor_py] = str(e)[:200]
        done += 1
    order = [BARE.name, *ctx.measured_names]
    sec.add(f"{done} interleaved rounds. Launch is `posix_spawn` in a small C launcher; the child "
            "is a static C program whose `main()` reads `CLOCK_MONOTONIC` first thing. "
            "*python floor* is `benchmarks/floor_init.py`, the least a correct Python PID 1 does, "
            "on graceinit's interpreter.")
    sec.add("**Launch → child's first instruction** (ms)\n\n" +
            stats_table("init", "ms", to_first, failures=errors, order=order))
    if to_first_pid1:
        sec.add("**Launch → child's first instruction, as PID 1** (ms): "
                "`unshare --pid --fork --mount-proc INIT -- firstinsn`, so every row, bare included, "
                "pays unshare's own fork and /proc mount\n\n" +
                stats_table("init", "ms", to_first_pid1, failures=errors, order=order))
    order2 = [floor_true, floor_py, *ctx.measured_names]
    sec.add("**Total wall time of `INIT -- true`** (launch → init exited, ms)\n\n" +
            stats_table("init", "ms", wall_true, failures=errors, order=order2))
    med = {k: (Stats.of(v).median if v else None) for k, v in to_first.items()}
    medw = {k: (Stats.of(v).median if v else None) for k, v in wall_true.items()}
    medp = {k: (Stats.of(v).median if v else None) for k, v in to_first_pid1.items()}
    sec.head("launch → child's first instruction (median)",
             {n: med.get(n) for n in ctx.measured_names}, "ms")
    if medp:
        sec.head("… as PID 1 under `unshare` (median)", {n: medp.get(n) for n in ctx.measured_names}, "ms",
                 note=f"bare under unshare: {fmt(medp.get(BARE.name))} ms")
    sec.head("wall time of `INIT -- true` (median)",
             {n: medw.get(n) for n in ctx.measured_names}, "ms")
    g, t = med.get("graceinit"), med.get("tini")
    fl = medw.get(floor_py)
    site = _site_cost()
    if g is not None and t is not None:
        lines = [f"- graceinit − tini, time-to-exec medians: **{fmt(g - t)} ms**"]
        if fl is not None:
            lines.append(f"- graceinit's time-to-exec − the whole `python3 -c pass` run: {fmt(g - fl)} ms "
                         "(what graceinit's own imports and set-up add to a bare interpreter)")
        if site:
            lines.append(f"- this venv's `site` import: {fmt(site['site_ms'])} ms at every interpreter start"
                         + (f", of which {fmt(site['editable_ms'])} ms is the editable-install finder "
                            "(`pip install -e`); a regular (wheel) install, as in a container image, does "
                            "not pay that" if site.get("editable_ms") else ""))
        sec.add("\n".join(lines))
    sec.raw = dict(to_first_ms=to_first, to_first_pid1_ms=to_first_pid1, wall_true_ms=wall_true, errors=errors, site=site)
    sec.raw["targets"] = [dict(
        target="time-to-exec within 60 ms of tini",
        graceinit=f"{fmt(g)} ms" if g is not None else "failed to run",
        reference=f"tini {fmt(t)} ms; difference {fmt(g - t)} ms" if g is not None and t is not None else "",
        met=(g - t <= 60) if g is not None and t is not None else None)]
    return sec


def _site_cost() -> dict[str, float]:
    """Median cumulative import time of `site` (and of an editable-install finder in it)."""
    site, editable = [], []
    for _ in range(5):
        try:
            p = subprocess.run([PYTHON, "-X", "importtime", "-c", "pass"], capture_output=True,
                               timeout=30, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired):
            return {}
        ed = 0.0
        for line in p.stderr.decode(errors="replace").splitlines():
            parts = [x.strip() for x in line.split("|")]
            if len(parts) != 3 or not parts[1].isdigit():
                continue
            if parts[2] == "site":
                site.append(int(parts[1]) / 1e3)
            elif parts[2].startswith("__editable__") and parts[2].endswith("_finder"):
                ed = int(parts[1]) / 1e3
        editable.append(ed)
    if not site:
        return {}
    return dict(site_ms=Stats.of(site).median, editable_ms=Stats.of(editable).median)


def run_sigwindow(ctx: Context) -> Section:
    sec = Section("sigwindow", "Signal-safe window: exec of the init → SIGTERM blocked")
    prog = helper("sigwin")
    rounds = 5 if ctx.quick else 20
    budget = Budget((20 if ctx.quick else 60) * ctx.deadline_factor)
    blocked: dict[str, list[float]] = {}
    safe: dict[str, list[float]] = {}
    never: dict[str, int] = {}
    errors = ctx.failures()
    done = 0
    for r in range(rounds):
        if budget.over() and r >= 2:
            break
        for init in ctx.available:
            try:
                p = subprocess.run([prog, "3000", *init.cmd(["sleep", "2"])], capture_output=True,
                                   timeout=30, stdin=subprocess.DEVNULL)
                t_exec, t_blk, t_safe, _polls = (int(x) for x in p.stdout.split()[:4])
                if not t_exec:
                    raise RuntimeError("child never reached exec")
                if t_blk:
                    blocked.setdefault(init.name, []).append((t_blk - t_exec) / 1e6)
                else:
                    never[init.name] = never.get(init.name, 0) + 1
                if t_safe:
                    safe.setdefault(init.name, []).append((t_safe - t_exec) / 1e6)
            except Exception as e:  # noqa: BLE001
                errors[init.name] = str(e)[:200]
        done += 1
    sec.add(f"{done} interleaved rounds of `INIT -- sleep 2`. A C launcher notes `CLOCK_MONOTONIC` "
            "just before `execve` of the init and polls `/proc/PID/status` in a tight loop "
            "(one `pread` per poll, ~5–20 µs; when the launcher is scheduled late its first poll "
            "already sees the mask, so small values are upper bounds). Until SIGTERM is blocked "
            "(`SigBlk`) or caught (`SigCgt`) it takes its default action: an init that is not "
            "PID 1 dies without forwarding anything, and as PID 1 of a namespace the kernel drops "
            "it — either way the stop request is lost; a *blocked* signal stays pending and is "
            "handled later. tini and dumb-init sleep in `sigtimedwait`, during which the kernel "
            "shows the waited-for signals as unblocked: a task asleep in `rt_sigtimedwait` whose "
            "wait set (read from `/proc/PID/mem`) holds SIGTERM counts as blocked.")
    order = [i.name for i in ctx.inits]
    for k, v in never.items():
        errors.setdefault(k, f"SIGTERM never blocked in {v} run(s) (within 3 s)")
    sec.add("**exec → SIGTERM in SigBlk** (ms)\n\n" + stats_table("init", "ms", blocked, failures=errors, order=order))
    sec.add("**exec → SIGTERM blocked or caught** (ms)\n\n" + stats_table("init", "ms", safe, failures=ctx.failures(), order=order))
    mb = {k: Stats.of(v).median for k, v in blocked.items() if v}
    ms = {k: Stats.of(v).median for k, v in safe.items() if v}
    sec.head("signal-safe window: exec → SIGTERM blocked or caught (median)",
             {i.name: ms.get(i.name) for i in ctx.inits}, "ms")
    sec.raw = dict(blocked_ms=blocked, safe_ms=safe, never_blocked=never, errors=errors)
    return sec



def _importer(name: str, by: str) -> str:
    if by:
        return f"`{by}`"
    # At the top level: the launcher's own import, or one made inside a function at run time.
    return "the launcher" if name == "graceinit.boot" else "a function, at run time"


def run_imports(ctx: Context) -> Section:
    sec = Section("imports", "Imports on graceinit's container path")
    from .common import GRACEINIT
    from .gap import import_phases

    runs = 5 if ctx.quick else 15
    try:
        found = import_phases(runs, pid1=shutil.which("unshare") is not None, graceinit=GRACEINIT)
    except (OSError, RuntimeError, SystemExit) as e:
        sec.error = str(e)[:300]
        return sec
    before = sorted(found["before"].items(), key=lambda kv: -kv[1]["self_ms"])
    own = sum(v["self_ms"] for n, v in before if n == "graceinit" or n.startswith("graceinit."))
    other = sum(v["self_ms"] for n, v in before if not (n == "graceinit" or n.startswith("graceinit.")))
    heavy = [n for n in ("click", "re", "enum", "typing", "dataclasses", "inspect", "psutil", "platform",
                         "ctypes", "collections", "functools", "socket", "json") if n in found["before"]]
    where = "as PID 1 of a fresh PID namespace (`unshare`)" if found["pid1"] else "not as PID 1"
    sec.add(f"`{shown_path(found['python'])} -X importtime {shown_path(GRACEINIT)} -- sh -c 'sleep 0.2; "
            f"kill -TERM 1'`, started with `posix_spawn` as the start-up benchmark starts it, {where}; "
            f"median of {runs} runs. A wrapper marks the child's fork (audit event `os.fork`) and "
            "graceinit's first `kill`, so each module is placed in the phase that pays it. Modules "
            "loaded up to `site` are the interpreter's own start-up, which the floor pays too, and "
            "are left out. `seen` = in how many runs the module was imported in that phase "
            "(a module loaded only on some runs depends on what graceinit inherited).")
    sec.add(f"**Before the child's fork** (on the launch → exec path): **{len(before)} modules**, "
            f"self times summing to **{fmt(own + other)} ms** — graceinit's own {fmt(own)} ms, "
            f"the standard library's {fmt(other)} ms. Known-heavy modules on the path: "
            + (", ".join(f"`{n}`" for n in heavy) or "none") + ".\n\n"
            + table(["module", "self (ms)", "with its imports (ms)", "imported by", "seen"],
                    [[f"`{n}`", fmt(v["self_ms"]), fmt(v["cumulative_ms"]), _importer(n, v["imported_by"]),
                      f"{v['seen']}/{runs}"] for n, v in before]))
    after = sorted(found["after"].items(), key=lambda kv: -kv[1]["self_ms"])
    sec.add("**After the fork** (paid while the child runs, or at the stop): "
            + ("none." if not after else "\n\n" + table(
                ["module", "self (ms)", "imported by", "phase", "seen"],
                [[f"`{n}`", fmt(v["self_ms"]), _importer(n, v["imported_by"]), v["phase"], f"{v['seen']}/{runs}"]
                 for n, v in after])))
    sec.raw = found
    return sec
