"""The benchmark runner: ``python -m benchmarks [--quick] [--only NAME] [--out FILE]``."""

from __future__ import annotations

import argparse
import datetime as dt
import fnmatch
import json
import math
import shlex
import sys
import time
import traceback
from pathlib import Path
from typing import Callable

from . import bench_drain, bench_output, bench_reaping, bench_resident, bench_rolling, bench_signals, bench_startup
from .common import (Context, Section, Stats, all_inits, build_helpers, check_floor, floor_init, fmt,
                     init_version, machine_info, probe, reap_strays, set_subreaper, table)

BENCHMARKS: dict[str, tuple[Callable[[Context], Section], str]] = {
    "startup": (bench_startup.run_startup, "launch → child's first instruction; wall of `INIT -- true`"),
    "sigwindow": (bench_startup.run_sigwindow, "exec of the init → SIGTERM blocked/caught"),
    "imports": (bench_startup.run_imports, "every module on graceinit's container path and its import time"),
    "memory": (bench_resident.run_memory, "the init's RSS/PSS while the child sleeps"),
    "signals": (bench_signals.run_signals, "SIGUSR1 send → child's handler latency"),
    "reaping": (bench_reaping.run_reaping, "10,000 orphans reaped as PID 1 (unshare)"),
    "idle": (bench_resident.run_idle, "context switches/s of an idle init"),
    "output": (bench_output.run_output, "2 GiB through stdout (pipe) and into a file"),
    "rolling": (bench_rolling.run_rolling, "rolling termination under load: failed requests"),
    "rolling-long": (bench_rolling.run_rolling_long, "… with 2 s requests in flight"),
    "rolling-ignore": (bench_rolling.run_rolling_ignore, "… with an app that ignores SIGTERM"),
    "drain": (bench_drain.run_drain, "pod deletion, unknown removal lag: --stop-delay auto (~2 h; only when named)"),
}
# Too long for the default run: only when named with --only.
OPT_IN = {"drain"}


def _select(only: list[str]) -> list[str]:
    if not only:
        return [name for name in BENCHMARKS if name not in OPT_IN]
    names: list[str] = []
    for pat in (p for o in only for p in o.split(",") if p):
        hits = [n for n in BENCHMARKS if fnmatch.fnmatch(n, pat)]
        if not hits:
            raise SystemExit(f"unknown benchmark {pat!r}; known: {', '.join(BENCHMARKS)}")
        names += [h for h in hits if h not in names]
    return names


def render(ctx: Context, sections: list[Section], meta: dict) -> str:
    init_names = ctx.measured_names
    out = ["# graceinit benchmarks — results", ""]
    out.append(f"Run on **{meta['date']}** with `{meta['command']}` "
               f"({'quick smoke run' if ctx.quick else 'full run'}, {meta['duration']:.0f} s). "
               "How each number is made: [README.md](README.md).")
    if meta.get("note"):
        out += ["", meta["note"]]
    out.append("")
    m = meta["machine"]
    out.append("## Machine\n")
    out.append(table(["nproc", "CPU", "kernel", "Python", "memory", "load avg (start → end)"],
                     [[m["nproc"], m["cpu"], m["kernel"], m["python"], m["memory"],
                       f"{meta['load_start']} → {meta['load_end']}"]]))
    out.append("\nThe machine is shared with other developers' test runs: absolute times are noisy, "
               "which is why every benchmark runs the inits interleaved and the ratios against tini "
               "are the headline. (The reaping benchmark's bursts of 10,000 runnable processes "
               "inflate the load average themselves.)\n")
    out.append(table(["init", "version", "status"],
                     [[i.name, meta["versions"].get(i.name, ""),
                       "ok" if i.available else f"**failed to run**: {i.why_not}"]
                      for i in ctx.inits + ([ctx.floor] if ctx.floor else [])]))
    heads = [(s, h) for s in sections for h in s.headline]
    if heads:
        out.append("\n## Headline (ratios against tini)\n")
        rows = []
        for s, h in heads:
            vals = h["values"]
            ref = vals.get(h["ref"])
            cells = []
            for n in init_names:
                v = vals.get(n)
                if v is None:
                    cells.append("failed to run" if n in vals or not ctx.get(n).available else "–")
                    continue
                c = fmt(v)
                if n != h["ref"] and ref:
                    c += f" ({v / ref:.2f}×)"
                cells.append(c)
            extra = [f"{k}: {fmt(v) if v is not None else 'failed to run'}" for k, v in vals.items()
                     if k not in init_names]
            note = "; ".join(x for x in [h["note"], *extra] if x)
            rows.append([h["metric"], h["unit"], *cells, note])
        out.append(table(["metric", "unit", *init_names, "notes"], rows))
    targets = [t for s in sections for t in s.raw.get("targets", [])]
    if targets:
        out.append("\n## Targets of issue 4\n")
        out.append(table(["target", "graceinit", "reference", "status"],
                         [[t["target"], t["graceinit"], t["reference"],
                           "**met**" if t["met"] else ("**missed**" if t["met"] is False else "not measured")]
                          for t in targets]))
    floor_rows = issue20_targets(sections)
    if floor_rows:
        out.append("\n## Targets of issue 20: close to the Python floor\n")
        out.append("The floor is `benchmarks/floor_init.py`, the least a correct Python PID 1 does "
                   "(block every signal, fork+exec, `sigwaitinfo`: reap on SIGCHLD, forward the rest, "
                   "exit with the child's status), run on graceinit's interpreter as a row of the "
                   "same interleaved rounds; it passed its self-check (exit statuses, SIGTERM "
                   "forwarded, 300 orphans reaped as PID 1) before the run. Medians of this run.\n")
        out.append(table(["metric", "tini", "python floor", "graceinit", "graceinit vs floor", "target",
                          "status"], floor_rows))
    cost = _issue11_targets(sections)
    if cost:
        out.append("\n## Targets of issue 11: pay only for the interpreter\n")
        out.append("The floors are the interpreter's own: `python3 -c pass` run whole, in the same "
                   "interleaved rounds. The import-time breakdown is its own section below.\n")
        out.append(table(["metric", "tini", "floor", "graceinit", "target", "status"], cost))
    for s in sections:
        out.append(f"\n## {s.title}\n")
        out.append(f"`--only {s.key}` · {s.seconds:.0f} s\n")
        if s.error:
            out.append(f"**benchmark failed**: {s.error}\n")
        for b in s.body:
            out.append(b + "\n")
    return "\n".join(out).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks",
                                 description="graceinit next to tini and dumb-init, interleaved.")
    ap.add_argument("--quick", action="store_true", help="short smoke run (smaller sizes, fewer rounds)")
    ap.add_argument("--only", action="append", default=[], metavar="NAME",
                    help="run only these benchmarks (comma list or glob, repeatable)")
    ap.add_argument("--out", metavar="FILE", help="write the Markdown report here (e.g. benchmarks/RESULTS.md)")
    ap.add_argument("--json", metavar="FILE", help="write the raw measurements as JSON here")
    ap.add_argument("--inits", metavar="LIST", help="comma list of inits to compare (default: all)")
    ap.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    ap.add_argument("--note", metavar="TEXT", help="a paragraph to put under the report's title")
    ap.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    args = ap.parse_args(argv)
    if args.list:
        for k, (_, d) in BENCHMARKS.items():
            print(f"{k:15} {d}")
        return 0
    names = _select(args.only)
    inits = all_inits()
    if args.inits:
        want = args.inits.split(",")
        inits = [i for i in inits if i.name in want]
    floor = floor_init() if not args.inits or {"floor", "python floor"} & set(args.inits.split(",")) else None
    ctx = Context(quick=args.quick, inits=inits, floor=floor, verbose=not args.quiet)
    set_subreaper()
    t_start = time.monotonic()
    meta = dict(date=dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                command=" ".join(["python -m benchmarks", *map(shlex.quote, _shown_args(argv if argv is not None else sys.argv[1:]))]),
                machine=machine_info(), note=args.note or "")
    meta["load_start"] = meta["machine"]["loadavg"]
    ctx.log("building C helpers")
    build_helpers()
    for i in inits:
        probe(i)
        ctx.log(f"{i.name}: {'ok' if i.available else 'FAILED TO RUN: ' + i.why_not}")
    if floor:
        probe(floor)
        if floor.available:
            check_floor(floor)
        ctx.log(f"{floor.name}: {'ok (self-check passed)' if floor.available else 'FAILED: ' + floor.why_not}")
    meta["versions"] = {i.name: init_version(i) for i in inits}
    if floor:
        meta["versions"][floor.name] = f"benchmarks/floor_init.py on {init_version(floor)}"
    sections: list[Section] = []
    for name in names:
        fn, desc = BENCHMARKS[name]
        ctx.log(f"== {name}: {desc}")
        t0 = time.monotonic()
        try:
            sec = fn(ctx)
        except Exception as e:  # noqa: BLE001 — one broken benchmark must not lose the others
            traceback.print_exc()
            sec = Section(name, desc, error=f"{type(e).__name__}: {e}")
        finally:
            reap_strays()
        sec.seconds = time.monotonic() - t0
        ctx.log(f"   {name} took {sec.seconds:.0f} s")
        sections.append(sec)
    meta["duration"] = time.monotonic() - t_start
    meta["load_end"] = " ".join(f"{x:.2f}" for x in __import__("os").getloadavg())
    report = render(ctx, sections, meta)
    if args.out:
        Path(args.out).write_text(report)
        ctx.log(f"wrote {args.out}")
    else:
        sys.stdout.write(report)
    if args.json:
        Path(args.json).write_text(json.dumps(
            dict(meta=meta, inits={i.name: dict(available=i.available, why_not=i.why_not) for i in inits},
                 **({"floor": dict(available=floor.available, why_not=floor.why_not)} if floor else {}),
                 sections={s.key: dict(title=s.title, raw=s.raw, error=s.error, seconds=s.seconds)
                           for s in sections}), indent=1, default=str))
    return 0


def _shown_args(args: list[str]) -> list[str]:
    """The command line as the report shows it: without --json FILE (a local path) and the
    --note text (printed under the title already)."""
    shown, skip = [], False
    for arg in args:
        if skip:
            skip = False
        elif arg in ("--json", "--note"):
            skip = True
        elif not arg.startswith(("--json=", "--note=")):
            shown.append(arg)
    return shown


def _issue11_targets(sections: list) -> list[list[str]]:
    """Issue 11's rows, from this run's raw numbers (medians; ratios against tini)."""
    raw = {s.key: s.raw for s in sections if s.raw}
    rows: list[list[str]] = []

    def med(values: list | None) -> float | None:
        stats = Stats.of(values or [])
        return stats.median if stats else None

    def status(met: bool | None) -> str:
        return "not measured" if met is None else ("**met**" if met else "**missed**")

    startup = raw.get("startup", {})
    floor = med(startup.get("wall_true_ms", {}).get("python3 -c pass (floor)"))
    first = med(startup.get("to_first_ms", {}).get("graceinit"))
    wall = med(startup.get("wall_true_ms", {}).get("graceinit"))
    if floor is not None and first is not None:
        rows.append(["launch → child's first instruction (ms)",
                     fmt(med(startup["to_first_ms"].get("tini"))), f"{fmt(floor)} (`python3 -c pass`)",
                     f"{fmt(first)} (floor + {fmt(first - floor)})", "≤ floor + 10", status(first - floor <= 10)])
    if floor is not None and wall is not None:
        rows.append(["`INIT -- true`, wall (ms)", fmt(med(startup["wall_true_ms"].get("tini"))),
                     fmt(floor), f"{fmt(wall)} (floor + {fmt(wall - floor)})", "≤ floor + 12",
                     status(wall - floor <= 12)])
    window = raw.get("sigwindow", {}).get("blocked_ms", {})
    blocked = med(window.get("graceinit"))
    if blocked is not None and floor is not None:
        rows.append(["exec → every signal blocked (ms)", fmt(med(window.get("tini"))),
                     f"{fmt(floor)} (the interpreter's whole run)", fmt(blocked),
                     "≤ the interpreter's start-up + 1", status(blocked <= floor + 1)])
    memory = raw.get("memory", {})
    rss, pss = med(memory.get("rss_mib", {}).get("graceinit")), med(memory.get("pss_mib", {}).get("graceinit"))
    if rss is not None and pss is not None:
        rows.append(["RSS / PSS while the child sleeps (MiB)",
                     f"{fmt(med(memory['rss_mib'].get('tini')))} / {fmt(med(memory['pss_mib'].get('tini')))}",
                     fmt(med(memory["rss_mib"].get("python3 sleeping (floor)"))) + " (RSS)",
                     f"{fmt(rss)} / {fmt(pss)}", "RSS ≤ 11, PSS ≤ 7", status(rss <= 11 and pss <= 7)])
    reaping = raw.get("reaping", {}).get("results", {}).get("stream", {})
    g = med([x["init_cpu_s"] * 1e3 for x in reaping.get("graceinit", [])])
    t = med([x["init_cpu_s"] * 1e3 for x in reaping.get("tini", [])])
    if g is not None and t:
        rows.append(["init CPU, a stream of 10,000 orphans as PID 1 (ms)", fmt(t), "—",
                     f"{fmt(g)} ({g / t:.2f}×)", "≤ 1.5× tini", status(g / t <= 1.5)])
    latency = raw.get("signals", {}).get("latency_us", {})
    g_lat, t_lat = Stats.of(latency.get("graceinit") or []), Stats.of(latency.get("tini") or [])
    if g_lat and t_lat:
        rows.append(["signal forwarding latency p99 (µs)", fmt(t_lat.p99), "—",
                     f"{fmt(g_lat.p99)} ({g_lat.p99 / t_lat.p99:.2f}×)", "≤ 1.5× tini",
                     status(g_lat.p99 / t_lat.p99 <= 1.5)])
    return rows


def issue20_targets(sections: list) -> list[list[str]]:
    """Issue 20's rows: graceinit against the Python floor, from this run's raw numbers."""
    raw = {s.key: s.raw for s in sections if s.raw}
    floor_name, rows = "python floor", []

    def med(values: list | None) -> float | None:
        stats = Stats.of(values or [])
        return stats.median if stats else None

    def status(met: bool) -> str:
        return "**met**" if met else "**missed**"

    startup = raw.get("startup", {})
    for key, label in (("to_first_ms", "launch → child's first instruction (ms)"),
                       ("to_first_pid1_ms", "… as PID 1 under `unshare` (ms)")):
        data = startup.get(key, {})
        f, g = med(data.get(floor_name)), med(data.get("graceinit"))
        if f is not None and g is not None:
            rows.append([label, fmt(med(data.get("tini"))), fmt(f), fmt(g), f"+{fmt(g - f)} ms",
                         "≤ floor + 8 ms", status(g - f <= 8)])
    memory = raw.get("memory", {})
    for key, label in (("rss_mib", "RSS, child sleeping (MiB)"), ("pss_mib", "PSS, child sleeping (MiB)")):
        data = memory.get(key, {})
        f, g = med(data.get(floor_name)), med(data.get("graceinit"))
        if f is not None and g is not None:
            rows.append([label, fmt(med(data.get("tini"))), fmt(f), fmt(g), f"+{fmt(g - f)} MiB",
                         "≤ floor + 2 MiB", status(g - f <= 2)])
    stream = raw.get("reaping", {}).get("results", {}).get("stream", {})

    def per_orphan(name: str) -> list[float]:  # µs of PID 1's CPU per orphan made
        return [x["init_cpu_s"] * 1e6 / x["made"] for x in stream.get(name, []) if x.get("made")]

    f, g = per_orphan(floor_name), per_orphan("graceinit")
    if f and g:
        fm, gm = med(f), med(g)
        rows.append([f"CPU per reaped orphan, a stream of 10,000 as PID 1 (µs; least-disturbed round)",
                     f"{fmt(med(per_orphan('tini')))} ({fmt(min(per_orphan('tini') or [math.nan]))})",
                     f"{fmt(fm)} ({fmt(min(f))})", f"{fmt(gm)} ({fmt(min(g))})",
                     f"{gm / fm:.2f}× ({min(g) / min(f):.2f}×)", "≤ 1.25× floor", status(gm / fm <= 1.25)])
    latency = raw.get("signals", {}).get("latency_us", {})
    f_lat, g_lat = Stats.of(latency.get(floor_name) or []), Stats.of(latency.get("graceinit") or [])
    if f_lat and g_lat:
        t_lat = Stats.of(latency.get("tini") or [])
        rows.append(["signal forwarding p50 (µs) [p99]",
                     f"{fmt(t_lat.median)} [{fmt(t_lat.p99)}]" if t_lat else "–",
                     f"{fmt(f_lat.median)} [{fmt(f_lat.p99)}]", f"{fmt(g_lat.median)} [{fmt(g_lat.p99)}]",
                     f"{g_lat.median / f_lat.median:.2f}× [{g_lat.p99 / f_lat.p99:.2f}×]", "p50 ≤ 1.5× floor",
                     status(g_lat.median / f_lat.median <= 1.5)])
    return rows
