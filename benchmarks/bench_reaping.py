"""reaping: the init as PID 1 of a fresh PID namespace; its child makes 10,000 orphans."""

from __future__ import annotations

import json
import shutil
import subprocess

from .common import Budget, Context, Section, Stats, fmt, helper, stats_table, table

ORPHANS = 10_000
MODES = ("burst", "stream")


def run_reaping(ctx: Context) -> Section:
    sec = Section("reaping", f"Reaping {ORPHANS:,} orphans as PID 1")
    rounds = 1 if ctx.quick else 5
    timeout = 30.0 if ctx.quick else 60.0
    budget = Budget((60 if ctx.quick else 200) * ctx.deadline_factor)
    prog = helper("orphans")
    errors = ctx.failures(with_floor=True)
    unshare = shutil.which("unshare")
    if not unshare:
        sec.error = "unshare not found (util-linux)"
        return sec
    results: dict[str, dict[str, list[dict]]] = {m: {} for m in MODES}
    done = 0
    for r in range(rounds):
        if budget.over() and r >= 1:
            break
        for mode in MODES:
            for init in ctx.measured:  # interleaved
                argv = [unshare, "--pid", "--fork", "--mount-proc",
                        *init.cmd([prog, str(ORPHANS), str(timeout), mode])]
                try:
                    p = subprocess.run(argv, capture_output=True, timeout=timeout + 30,
                                       stdin=subprocess.DEVNULL)
                    lines = [ln for ln in p.stdout.decode(errors="replace").splitlines()
                             if ln.startswith("{")]
                    if not lines:
                        raise RuntimeError(f"exit {p.returncode}: "
                                           f"{p.stderr.decode(errors='replace').strip()[-200:]}")
                    res = json.loads(lines[-1])
                    res["exit"] = p.returncode
                    results[mode].setdefault(init.name, []).append(res)
                    if res["timed_out"]:
                        errors[init.name] = (f"{mode}: {res['left_at_end']} orphans still unreaped "
                                             f"after {timeout:.0f} s")
                    elif p.returncode != 0:
                        errors[init.name] = f"{mode}: init exited {p.returncode}"
                except subprocess.TimeoutExpired:
                    errors[init.name] = f"{mode}: hung > {timeout + 30:.0f} s"
                except Exception as e:  # noqa: BLE001
                    errors[init.name] = f"{mode}: {e}"[:200]
        done += 1
    order = ctx.measured_names

    def col(mode: str, key: str) -> dict[str, list[float]]:
        return {k: [x[key] for x in v] for k, v in results[mode].items()}

    sec.add(f"{done} interleaved round(s) of `unshare --pid --fork --mount-proc INIT -- orphans "
            f"{ORPHANS} … MODE`. The C child forks short-lived middle processes that each fork "
            "100 grandchildren and exit at once, so every grandchild becomes PID 1's to reap.\n\n"
            f"- **burst**: the {ORPHANS:,} grandchildren first block on a pipe; when all exist, the "
            "child closes the pipe and they exit together: PID 1 faces up to "
            f"{ORPHANS:,} zombies at once. Timed from that moment until none is left.\n"
            "- **stream**: each grandchild exits at once while the forking goes on (the fork rate "
            "of the child sets the pace). Timed from the first fork until none is left.\n\n"
            "*Unreaped* = entries in the namespace's `/proc` other than PID 1 and the child; "
            "*zombies* = of those, state `Z` (scanned every 5 ms, so peaks are sampled). "
            "Init CPU = PID 1's `schedstat` run time over the timed interval. Afterwards the "
            "child waits 50 ms and counts what is left.")
    for mode in MODES:
        sec.add(f"**{mode}: time to reap all** (ms)\n\n" +
                stats_table("init", "ms", col(mode, "reap_all_s"), failures=errors, order=order, scale=1e3))
        sec.add(f"**{mode}: init CPU time** (ms)\n\n" +
                stats_table("init", "ms", col(mode, "init_cpu_s"), failures=errors, order=order, scale=1e3))
    rows = []
    for mode in MODES:
        for name in order:
            v = results[mode].get(name)
            if not v:
                continue
            rows.append([mode, name, max(x["peak_unreaped"] for x in v), max(x["peak_zombies"] for x in v),
                         max(x["left_at_end"] for x in v),
                         max(x["zombies_after_50ms"] for x in v), max(x["unreaped_after_50ms"] for x in v),
                         sum(x["made"] for x in v), sum(x["fork_failures"] for x in v)])
    sec.add("**peaks and leftovers** (max over rounds)\n\n" + table(
        ["mode", "init", "peak unreaped", "peak zombies seen", "left at timeout", "zombies 50 ms later",
         "unreaped 50 ms later", "orphans made", "fork failures"], rows))
    reap = {k: Stats.of(v).median * 1e3 for k, v in col("burst", "reap_all_s").items() if v}
    cpu = {k: Stats.of(v).median * 1e3 for k, v in col("burst", "init_cpu_s").items() if v}
    scpu = {k: Stats.of(v).median * 1e3 for k, v in col("stream", "init_cpu_s").items() if v}
    sec.head(f"reap {ORPHANS:,} zombies at once as PID 1 (median)", {n: reap.get(n) for n in ctx.measured_names}, "ms")
    sec.head("init CPU for those (median)", {n: cpu.get(n) for n in ctx.measured_names}, "ms")
    sec.head(f"init CPU reaping a stream of {ORPHANS:,} orphans (median)",
             {n: scpu.get(n) for n in ctx.measured_names}, "ms")
    peaks = {k: max(x["peak_zombies"] for x in v) for k, v in results["burst"].items()}
    g, t = reap.get("graceinit"), reap.get("tini")
    gl = [x for m in MODES for x in results[m].get("graceinit", [])]
    left = max((x["zombies_after_50ms"] + x["unreaped_after_50ms"] + x["left_at_end"] for x in gl), default=None)
    sec.raw = dict(results=results, errors=errors)
    sec.raw["targets"] = [dict(
        target=f"reaping {ORPHANS:,} orphans within 2× tini, no zombie left",
        graceinit=(f"{fmt(g)} ms, {left} left, peak {peaks.get('graceinit')} zombies" if g is not None else "failed to run"),
        reference=(f"tini {fmt(t)} ms (ratio {g / t:.2f}×), peak {peaks.get('tini')} zombies" if g is not None and t else ""),
        met=(g <= 2 * t and left == 0) if g is not None and t else None)]
    return sec
