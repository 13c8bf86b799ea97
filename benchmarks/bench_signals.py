"""signal latency: SIGUSR1 sent to the init → the C child's handler runs."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import time

from .common import BARE, Budget, Context, Section, Stats, fmt, helper, stats_table, stop, table


class _Target:
    def __init__(self, name: str, argv: list[str]):
        self.name = name
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL)
        self.fd = self.proc.stdout.fileno()
        os.set_blocking(self.fd, False)
        self.buf = b""
        self.lat: list[float] = []
        self.error = ""

    def line(self, timeout: float) -> bytes | None:
        end = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = end - time.monotonic()
            if left <= 0:
                return None
            r, _, _ = select.select([self.fd], [], [], left)
            if r:
                try:
                    chunk = os.read(self.fd, 4096)
                except BlockingIOError:
                    continue
                if not chunk:
                    return None
                self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line


def run_signals(ctx: Context) -> Section:
    sec = Section("signals", "Signal latency: send → child's handler")
    count = 500 if ctx.quick else 2000
    budget = Budget((30 if ctx.quick else 90) * ctx.deadline_factor)
    prog = helper("sigrecv")
    errors = ctx.failures(with_floor=True)
    targets = [_Target(BARE.name, [prog])]
    targets += [_Target(i.name, i.cmd([prog])) for i in ctx.measured]
    try:
        for t in targets:
            if t.line(20) != b"R":
                t.error = f"child not ready after 20 s (init exit {t.proc.poll()})"
        live = [t for t in targets if not t.error]
        sent = 0
        while sent < count and live and not (budget.over() and sent >= 100):
            for t in list(live):  # interleaved: one signal to each init in turn
                t0 = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
                os.kill(t.proc.pid, signal.SIGUSR1)
                reply = t.line(2.0)
                if reply is None or not reply.isdigit():
                    t.error = f"no handler run within 2 s after {len(t.lat)} signals"
                    live.remove(t)
                    continue
                t.lat.append((int(reply) - t0) / 1e3)  # µs
            sent += 1
            time.sleep(0.0005)
    finally:
        for t in targets:
            stop(t.proc)
    lat = {t.name: t.lat for t in targets}
    for t in targets:
        if t.error:
            errors[t.name] = t.error
    order = [BARE.name, *ctx.measured_names]
    n = max((len(v) for v in lat.values()), default=0)
    sec.add(f"{n} SIGUSR1 per init, sent round-robin to all inits (and to the bare child) "
            "running at the same time: `os.kill(init_pid, SIGUSR1)` right after reading "
            "`CLOCK_MONOTONIC`; the static C child's handler reads `CLOCK_MONOTONIC` first and "
            "writes it back through a pipe; the next signal goes after the reply. The bare row "
            "sends to the child directly (the kernel's own delivery cost).")
    sec.add("**latency** (µs)\n\n" + stats_table("init", "µs", lat, failures=errors, order=order))
    rows = []
    st = {k: Stats.of(v) for k, v in lat.items() if v}
    for name in order:
        s = st.get(name)
        if s:
            rows.append([name, fmt(s.median), fmt(s.p99), fmt(s.hi),
                         f"{s.p99 / st['tini'].p99:.2f}×" if "tini" in st else "–"])
    sec.add("**p50 / p99 / max** (µs)\n\n" + table(["init", "p50", "p99", "max", "p99 vs tini"], rows))
    sec.head("signal latency p50", {n: st[n].median if n in st else None for n in ctx.measured_names}, "µs")
    sec.head("signal latency p99", {n: st[n].p99 if n in st else None for n in ctx.measured_names}, "µs")
    g, t = st.get("graceinit"), st.get("tini")
    sec.raw = dict(latency_us=lat, errors=errors)
    sec.raw["targets"] = [dict(target="signal latency p99 within 2× tini",
                               graceinit=f"p99 {fmt(g.p99)} µs" if g else "failed to run",
                               reference=f"tini p99 {fmt(t.p99)} µs; ratio {g.p99 / t.p99:.2f}×" if g and t else "",
                               met=(g.p99 <= 2 * t.p99) if g and t else None)]
    return sec
