"""rolling termination under load — the seeds' scenario.

Two backends (``app.py``, each under the init being tested) behind ``lb.py`` on 127.0.0.1,
an open-loop load of ``RATE`` requests/s.  "Deleting the pod" = SIGTERM to backend 0's init
(or to the app itself with no init) at the same moment the balancer is told — but it removes
the endpoint only after a 1 s propagation lag, like kube-proxy.  Every request's outcome is
counted by the client.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shlex
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from .common import (HERE, PYTHON, Context, Init, Section, Stats, fmt, kill_tree, reap_strays,
                     stop, table)

RATE = 500           # requests/s, open loop
LAG = 1.0            # endpoint-removal lag after SIGTERM (kube-proxy)
STOP_DELAY = 2.0     # graceinit --stop-delay, > LAG
LONG_MS = 2000       # long-request variant: request duration
LONG_RATE = 20       # long requests/s (on top of the short load)


@dataclasses.dataclass
class Config:
    name: str
    init: Init | None      # None = the app with no init
    options: list[str] = dataclasses.field(default_factory=list)
    post_hook: bool = False


@dataclasses.dataclass
class Outcome:
    start: float           # monotonic
    end: float
    kind: str              # ok | 502 | reset | refused | timeout | truncated | bad
    long: bool
    backend: str = ""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, proc: subprocess.Popen, timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"backend exited {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"backend not listening on {port} after {timeout:.0f} s")


async def _request(port: int, path: str, timeout: float, long: bool) -> Outcome:
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    kind, backend = "ok", ""
    writer = None
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)
        writer.write(f"GET {path} HTTP/1.0\r\nHost: svc\r\n\r\n".encode())
        data = await asyncio.wait_for(reader.read(-1), timeout)
        head, _, body = data.partition(b"\r\n\r\n")
        status = head.split(b" ", 2)[1] if head.startswith(b"HTTP/") else b""
        length = 0
        for line in head.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            if k.strip().lower() == b"content-length":
                length = int(v)
        if status == b"200":
            if len(body) != length or not body.startswith(b"ok "):
                kind = "truncated"
            else:
                backend = body.split()[1].decode()
        elif status == b"502":
            kind = "502"
        elif not data:
            kind = "reset"       # closed without a byte
        else:
            kind = "bad"
    except asyncio.TimeoutError:
        kind = "timeout"
    except ConnectionRefusedError:
        kind = "refused"
    except (ConnectionError, OSError):
        kind = "reset"
    finally:
        if writer is not None:
            writer.close()
    return Outcome(t0, loop.time(), kind, long, backend)


async def _open_loop(port: int, rate: float, until: float, path: str, timeout: float,
                     long: bool, out: list[Outcome]) -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    tasks = []
    i = 0
    while True:
        t = start + i / rate
        if t >= until:
            break
        delay = t - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(_request(port, path, timeout, long)))
        i += 1
    out.extend(await asyncio.gather(*tasks))


def _read_status(path: Path) -> dict[str, float]:
    ev: dict[str, float] = {}
    try:
        for line in path.read_text().splitlines():
            k, _, v = line.partition(" ")
            ev.setdefault(k, int(v) / 1e9)
    except (OSError, ValueError):
        pass
    return ev


def run_scenario(cfg: Config, *, variant: str, warm: float, after: float, kubelet_grace: float,
                 rate: float = RATE, log=print) -> dict:
    """One run: start the backends and the balancer, load, delete backend 0's pod, count."""
    tmp = Path(tempfile.mkdtemp(prefix="graceinit-roll-"))
    ports = [_free_port(), _free_port()]
    procs: list[subprocess.Popen] = []
    lb = None
    marker = tmp / "post-hook-ran"
    res: dict = dict(config=cfg.name, variant=variant)
    try:
        for i, port in enumerate(ports):
            app = [PYTHON, str(HERE / "app.py"), "--port", str(port), "--name", f"b{i}",
                   "--status-file", str(tmp / f"b{i}.status")]
            if variant == "ignore":
                app.append("--ignore-sigterm")
            opts = list(cfg.options)
            if cfg.post_hook:
                opts += ["--post-hook",
                         f"sh -c {shlex.quote('echo $GRACEINIT_EXIT_CODE > ' + shlex.quote(str(marker)) + '.' + str(i))}"]
            argv = cfg.init.cmd(app, opts) if cfg.init else app
            procs.append(subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                          stderr=open(tmp / f"b{i}.log", "wb")))
        for port, p in zip(ports, procs):
            _wait_port(port, p)
        lb = subprocess.Popen([PYTHON, str(HERE / "lb.py"), *map(str, ports)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, bufsize=1)
        line = lb.stdout.readline().split()
        if not line or line[0] != "ready":
            raise RuntimeError(f"load balancer did not start: {line}")
        lb_port = int(line[1])

        victim = procs[0]
        exit_at: dict[str, float] = {}

        def watch() -> None:
            victim.wait()
            exit_at["t"] = time.monotonic()

        threading.Thread(target=watch, daemon=True).start()

        outcomes: list[Outcome] = []
        events: dict[str, float] = {}

        async def drive() -> None:
            loop = asyncio.get_running_loop()
            t_end = loop.time() + warm + after
            timeout = 10.0 + (LONG_MS / 1000 if variant == "long" else 0)
            jobs = [_open_loop(lb_port, rate, t_end, "/", timeout, False, outcomes)]
            if variant == "long":
                jobs.append(_open_loop(lb_port, LONG_RATE, t_end, f"/slow?ms={LONG_MS}", timeout, True, outcomes))

            async def pod_deletion() -> None:
                await asyncio.sleep(warm)
                events["sigterm"] = loop.time()
                os.kill(victim.pid, signal.SIGTERM)
                await asyncio.sleep(LAG)
                lb.stdin.write("remove 0\n")
                lb.stdin.flush()
                events["endpoint_removed"] = loop.time()

            await asyncio.gather(pod_deletion(), *jobs)

        asyncio.run(drive())
        t_term = events["sigterm"]
        # the "kubelet": SIGKILL whatever of the pod is left after its grace period
        killed_by_kubelet = False
        left = t_term + kubelet_grace - time.monotonic()
        try:
            victim.wait(timeout=max(left, 0.1))
        except subprocess.TimeoutExpired:
            kill_tree(victim)
            killed_by_kubelet = True
        rc = victim.wait()
        ev0 = _read_status(tmp / "b0.status")
        kinds = Counter(o.kind for o in outcomes)
        short = [o for o in outcomes if not o.long]
        long_ = [o for o in outcomes if o.long]
        failed = [o for o in outcomes if o.kind != "ok"]
        t_app_term = ev0.get("term")
        # long requests the victim was serving when the app itself saw SIGTERM (and completed);
        # a long request cut by the victim shows up as failed (reset/truncated) instead
        in_flight = [o for o in long_ if t_app_term and o.backend == "b0" and o.start < t_app_term < o.end]
        duration = max(o.start for o in outcomes) - min(o.start for o in outcomes) if outcomes else 0
        res.update(
            sent=len(outcomes), ok=kinds.get("ok", 0), failed=len(failed), kinds=dict(kinds),
            short_sent=len(short), short_failed=sum(o.kind != "ok" for o in short),
            long_sent=len(long_), long_failed=sum(o.kind != "ok" for o in long_),
            long_in_flight_completed=len(in_flight),
            # cut = broken after the app accepted it (reset / truncated); 502 = refused at connect
            long_cut=sum(1 for o in long_ if o.kind in ("reset", "truncated", "bad", "timeout")),
            long_kinds=dict(Counter(o.kind for o in long_)),
            rate=len(short) / duration if duration else 0,
            exit_status=(128 - rc if rc < 0 else rc), killed_by_kubelet=killed_by_kubelet,
            time_to_stop=(exit_at.get("t", time.monotonic()) - t_term),
            app_got_sigterm_after=(t_app_term - t_term) if t_app_term else None,
            app_drained_after=(ev0["drained"] - t_term) if "drained" in ev0 else None,
            failure_window=((min(o.start for o in failed) - t_term, max(o.start for o in failed) - t_term)
                            if failed else None),
            served_by_victim_after_sigterm=sum(1 for o in outcomes if o.backend == "b0" and o.start > t_term),
        )
        if cfg.post_hook:
            mk = Path(f"{marker}.0")
            res["post_hook_ran"] = mk.exists()
            res["post_hook_saw_exit_code"] = mk.read_text().strip() if mk.exists() else None
        try:
            lb.stdin.write("stats\n")
            lb.stdin.flush()
            for _ in range(5):  # skip the "ok" of the remove command
                line = lb.stdout.readline().strip()
                if line.startswith("{") or not line:
                    res["lb"] = line
                    break
        except OSError:
            pass
    except Exception as e:  # noqa: BLE001
        res["error"] = f"{type(e).__name__}: {e}"[:300]
        for i in range(len(procs)):
            logf = tmp / f"b{i}.log"
            if logf.exists():
                tail = logf.read_text(errors="replace").strip().splitlines()[-2:]
                if tail:
                    res["error"] += f" | b{i}: " + " / ".join(tail)[:200]
    finally:
        for p in procs:  # the victim is gone by now; the survivor needs no grace
            kill_tree(p)
        if lb is not None:
            try:
                lb.stdin.close()
            except OSError:
                pass
            stop(lb, timeout=2)
        reap_strays()
        for f in tmp.iterdir():
            f.unlink()
        tmp.rmdir()
    return res


def _configs(ctx: Context, variant: str) -> list[Config]:
    tini, dumb, grace = ctx.get("tini"), ctx.get("dumb-init"), ctx.get("graceinit")
    delay = f"graceinit --stop-delay {STOP_DELAY:g}"
    if variant == "ignore":
        return [c for c in [
            Config("no init", None),
            Config("tini", tini), Config("dumb-init", dumb),
            Config(f"{delay} --grace-period 3 --post-hook", grace,
                   ["--stop-delay", f"{STOP_DELAY:g}", "--grace-period", "3"], post_hook=True),
        ] if c.init is not None or c.name == "no init"]
    return [c for c in [
        Config("no init", None), Config("tini", tini), Config("dumb-init", dumb),
        Config("graceinit", grace), Config(delay, grace, ["--stop-delay", f"{STOP_DELAY:g}"]),
    ] if c.init is not None or c.name == "no init"]


def _run_variant(ctx: Context, variant: str, reps: int, warm: float, after: float,
                 kubelet_grace: float) -> tuple[list[Config], dict[str, list[dict]]]:
    configs = _configs(ctx, variant)
    runs: dict[str, list[dict]] = {c.name: [] for c in configs}
    for r in range(reps):
        for cfg in configs:  # interleaved
            if cfg.init is not None and not cfg.init.available:
                runs[cfg.name].append(dict(error=f"failed to run: {cfg.init.why_not}"))
                continue
            ctx.log(f"  {variant} rep {r + 1}/{reps}: {cfg.name}")
            res = run_scenario(cfg, variant=variant, warm=warm, after=after,
                               kubelet_grace=kubelet_grace, log=ctx.log)
            if "error" in res:
                ctx.log(f"    error: {res['error']}")
            else:
                ctx.log(f"    sent {res['sent']} failed {res['failed']} {res['kinds']} "
                        f"stop {res['time_to_stop']:.2f}s exit {res['exit_status']}")
            runs[cfg.name].append(res)
    return configs, runs


def _sum(runs: list[dict], key: str) -> int:
    return sum(r.get(key, 0) for r in runs if "error" not in r)


def _med(runs: list[dict], key: str) -> float | None:
    st = Stats.of([r[key] for r in runs if "error" not in r and r.get(key) is not None])
    return st.median if st else None


def _err(runs: list[dict]) -> str:
    errs = sorted({r["error"] for r in runs if "error" in r})
    return "; ".join(errs)[:300]


def run_rolling(ctx: Context) -> Section:
    sec = Section("rolling", "Rolling termination under load (the headline)")
    reps = 1 if ctx.quick else 5
    warm, after = (1.0, 3.5) if ctx.quick else (1.5, 4.0)
    configs, runs = _run_variant(ctx, "main", reps, warm, after, kubelet_grace=15)
    sec.add(f"{reps} interleaved run(s) per configuration. Load: {RATE} short requests/s, open "
            f"loop, one TCP connection per request, for {warm:g} s before and {after:g} s after "
            f"the SIGTERM; the balancer removes the endpoint {LAG:g} s after it. A request fails "
            "if it does not get a complete `200`: `502` = the balancer's connection to the "
            "backend was refused (its listener is closed); `reset` = the connection broke — "
            "typically one the kernel had queued in the listen backlog when the app closed its "
            "listener; `timeout` after 10 s. Times are taken when the client creates the request, "
            "so under load a request created just before the SIGTERM can reach the backend after it.")
    rows = []
    for c in configs:
        rs = runs[c.name]
        ok = [r for r in rs if "error" not in r]
        if not ok:
            rows.append([c.name, "failed to run: " + _err(rs), "", "", "", "", "", "", "", ""])
            continue
        sent, failed = _sum(ok, "sent"), _sum(ok, "failed")
        kinds = Counter()
        for r in ok:
            kinds.update(r["kinds"])
        kinds.pop("ok", None)
        fw = [r["failure_window"] for r in ok if r["failure_window"]]
        rows.append([c.name, f"**{failed}** / {sent}", f"{100 * failed / sent:.2f} %" if sent else "–",
                     ", ".join(str(r["failed"]) for r in ok),
                     ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())) or "–",
                     f"{min(w[0] for w in fw):.2f} … {max(w[1] for w in fw):.2f} s" if fw else "–",
                     fmt(_med(ok, "rate")), _sum(ok, "served_by_victim_after_sigterm"),
                     fmt(_med(ok, "time_to_stop")),
                     ",".join(str(r["exit_status"]) for r in ok)])
    sec.add("**failed requests** (all runs summed)\n\n" + table(
        ["configuration", "failed / sent", "failed %", "failed per run", "how they failed", "failures started … ended (after SIGTERM)",
         "req/s achieved", "served by the deleted backend after its SIGTERM", "SIGTERM → pod gone (s, median)",
         "exit status"], rows))
    per = {c.name: _sum([r for r in runs[c.name] if "error" not in r], "failed")
           if any("error" not in r for r in runs[c.name]) else None for c in configs}
    sec.head("rolling termination: failed requests (sum of runs)",
             {"no init": per.get("no init"), "tini": per.get("tini"), "dumb-init": per.get("dumb-init"),
              "graceinit": per.get("graceinit"),
              f"graceinit --stop-delay {STOP_DELAY:g}": per.get(f"graceinit --stop-delay {STOP_DELAY:g}")},
             "requests")
    dname = f"graceinit --stop-delay {STOP_DELAY:g}"
    d_ok = [r for r in runs.get(dname, []) if "error" not in r]
    sec.raw = dict(runs=runs)
    sec.raw["targets"] = [dict(
        target="rolling termination with --stop-delay: 0 failed requests (tini and dumb-init lose some)",
        graceinit=f"{_sum(d_ok, 'failed')} failed of {_sum(d_ok, 'sent')}" if d_ok else "failed to run",
        reference=f"tini {per.get('tini')}, dumb-init {per.get('dumb-init')}, no init {per.get('no init')}",
        met=(_sum(d_ok, "failed") == 0) if d_ok else None)]
    return sec


def run_rolling_long(ctx: Context) -> Section:
    sec = Section("rolling-long", f"Rolling termination with {LONG_MS / 1000:g} s requests in flight")
    reps = 1 if ctx.quick else 3
    warm, after = (1.5, 4.5) if ctx.quick else (2.5, 5.0)
    configs, runs = _run_variant(ctx, "long", reps, warm, after, kubelet_grace=20)
    sec.add(f"{reps} interleaved run(s). As above, plus {LONG_RATE} requests/s of "
            f"`GET /slow?ms={LONG_MS}` ({LONG_MS / 1000:g} s each), so about "
            f"{LONG_RATE * LONG_MS // 2000} long requests are in flight on the backend being "
            "deleted at any moment. *Across the app's SIGTERM*: long requests served by the deleted "
            "backend that started before the app itself saw SIGTERM (its status file) and ended "
            "after it — the drain must let them finish — against long requests cut in flight (reset, truncated or "
            "timed out; a `502` is a refused connection, counted in *failed* only).")
    rows = []
    for c in configs:
        ok = [r for r in runs[c.name] if "error" not in r]
        if not ok:
            rows.append([c.name, "failed to run: " + _err(runs[c.name]), "", "", "", ""])
            continue
        rows.append([c.name, f"{_sum(ok, 'long_failed')} / {_sum(ok, 'long_sent')}",
                     f"{_sum(ok, 'long_in_flight_completed')} / {_sum(ok, 'long_cut')}",
                     f"{_sum(ok, 'short_failed')} / {_sum(ok, 'short_sent')}",
                     fmt(_med(ok, "app_got_sigterm_after")), fmt(_med(ok, "time_to_stop"))])
    sec.add(table(["configuration", "long failed / sent", "completed across the app's SIGTERM / cut in flight",
                   "short failed / sent", "app saw SIGTERM after (s)", "pod gone after (s)"], rows))
    sec.raw = dict(runs=runs)
    d = [r for r in runs.get(f"graceinit --stop-delay {STOP_DELAY:g}", []) if "error" not in r]
    sec.head("long requests failed (sum)", {c.name: (_sum([r for r in runs[c.name] if "error" not in r], "long_failed")
                                                     if any("error" not in r for r in runs[c.name]) else None)
                                            for c in configs}, "requests")
    sec.raw["targets"] = [dict(
        target=f"{LONG_MS / 1000:g} s requests in flight at SIGTERM complete (with --stop-delay)",
        graceinit=(f"{_sum(d, 'long_failed')} long failed of {_sum(d, 'long_sent')}; "
                   f"{_sum(d, 'long_in_flight_completed')} completed across the app's SIGTERM; "
                   f"{_sum(d, 'short_failed')} short failed") if d else "failed to run",
        reference="", met=(_sum(d, "long_failed") + _sum(d, "short_failed") == 0) if d else None)]
    return sec


def run_rolling_ignore(ctx: Context) -> Section:
    sec = Section("rolling-ignore", "An app that ignores SIGTERM")
    reps = 1
    kubelet = 8.0 if ctx.quick else 10.0
    warm, after = 1.0, 2.0
    configs, runs = _run_variant(ctx, "ignore", reps, warm, after, kubelet_grace=kubelet)
    sec.add(f"The app ignores SIGTERM (a third-party program that cannot be changed). The "
            f"\"kubelet\" SIGKILLs whatever of the pod is left {kubelet:g} s after its SIGTERM "
            f"(a short terminationGracePeriodSeconds, to keep the run short). graceinit runs with "
            f"`--stop-delay {STOP_DELAY:g} --grace-period 3 --post-hook 'sh -c \"echo $GRACEINIT_EXIT_CODE > FILE\"'`: "
            f"it should SIGKILL the app itself at ≈ {STOP_DELAY + 3:g} s, then run the post hook "
            "(which the kubelet's SIGKILL would never let happen).")
    rows = []
    for c in configs:
        ok = [r for r in runs[c.name] if "error" not in r]
        if not ok:
            rows.append([c.name, "failed to run: " + _err(runs[c.name]), "", "", "", ""])
            continue
        r = ok[0]
        how = ("SIGKILL by the kubelet" if r["killed_by_kubelet"]
               else f"exited {r['exit_status']}" + (" (SIGKILL by graceinit's grace period)" if r["exit_status"] == 137 else ""))
        hook = ("ran, saw exit code " + str(r.get("post_hook_saw_exit_code")) if r.get("post_hook_ran")
                else ("did NOT run" if c.post_hook else "n/a (no such feature)"))
        rows.append([c.name, fmt(r["time_to_stop"]), how, hook, f"{r['failed']} / {r['sent']}"])
    sec.add(table(["configuration", "SIGTERM → pod gone (s)", "how it stopped", "post hook", "failed / sent"], rows))
    sec.raw = dict(runs=runs)
    g = [r for c in configs if c.post_hook for r in runs[c.name] if "error" not in r]
    sec.head("app ignoring SIGTERM: SIGTERM → pod gone", {c.name: _med([r for r in runs[c.name] if "error" not in r], "time_to_stop")
                                                          for c in configs}, "s")
    sec.raw["targets"] = [dict(
        target="app ignoring SIGTERM: SIGKILL escalation via --grace-period, post hook ran",
        graceinit=(f"stopped after {g[0]['time_to_stop']:.2f} s, exit {g[0]['exit_status']}, "
                   f"post hook {'ran' if g[0].get('post_hook_ran') else 'did not run'}") if g else "failed to run",
        reference=f"tini/dumb-init: killed by the kubelet after {kubelet:g} s",
        met=(g[0]["exit_status"] == 137 and bool(g[0].get("post_hook_ran")) and not g[0]["killed_by_kubelet"]) if g else None)]
    return sec
