"""The ledger's proof (issue 16): what the termination report counted vs. what clients saw.

    python -m benchmarks.bench_ledger [--trials N] [--scenario NAME ...] [--budget SECONDS]

The drain benchmark's stack (bench_drain.py: gunicorn backends A and B, an iptables DNAT
Service VIP in chains of our own, nginx with upstream keepalive, hey), all inside a network
namespace of the benchmark's own (it re-executes itself under `unshare --net`), except that
backend A now runs as a pod does:

- a "sandbox" process holds A's network namespace (`unshare --net`), joined to the
  benchmark's by a veth pair (A = 10.99.0.2, the node side 10.99.0.1); it outlives A's init,
  like a pod's sandbox, so traffic after the init's exit is refused, not lost in a void;
- A's init (graceinit, `--log-format json`) runs as PID 1 of its own PID namespace inside
  it; B listens on 10.98.0.1 in the benchmark's namespace; the VIP is 10.96.0.100:80.

A trial: SIGTERM to A's init at t0; A leaves the VIP / nginx at t0 + L, L uniform in
[2, 8] s, unknown to the init. Rows: `--stop-delay 0`, `--stop-delay 1` (shorter than every
L), `--stop-delay auto`, and `--stop-delay 9 --grace-period 1` with 3 slow requests (12 s
each) in flight at A (the grace period is too short for them).

What clients saw, while A's init ran (the report cannot count what comes after its exit:
the pod is gone; that is shown in a column of its own):
- dnat: failed requests of a client with a new connection per request to the VIP, each
  timestamped (a small asyncio client: hey gives no time per failure);
- nginx: upstream failures at A in nginx's access log ($msec: timestamped), and hey's
  failures on the ingress;
- the slow requests that got no answer.
The report's count is refused + aborted + open_at_sigkill (dropped SYNs are retried by the
client: a delay, listed apart).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from benchmarks import bench_drain as drain
from benchmarks.bench_drain import Nginx, app_argv, in_own_netns, init_pid, missing, stop_group, vip, wait_for_http
from benchmarks.drain_apps import http10
from benchmarks.drain_apps import wsgi as drain_wsgi


def hey(url: str, keepalive: bool) -> subprocess.Popen:
    """The load: hey at CLIENTS x RATE_PER_CLIENT requests/s, for at most 120 s."""
    argv = ["hey", "-z", "120s", "-c", str(drain.CLIENTS), "-q", str(drain.RATE_PER_CLIENT), "-t", "5"]
    if not keepalive:
        argv.append("-disable-keepalive")
    return subprocess.Popen([*argv, url], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def hey_result(proc: subprocess.Popen) -> tuple:
    """(sent, failed) from hey's report after SIGINT."""
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    ok = sum(int(n) for n in re.findall(r"\[200\]\s+(\d+) responses", out))
    other = sum(int(n) for code, n in re.findall(r"\[(\d+)\]\s+(\d+) responses", out) if code != "200")
    errors = sum(int(n) for n in re.findall(r"^\s+\[(\d+)\]\s+(?:Get|Post|dial|read)", out, re.M))
    return ok + other + errors, other + errors

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
GRACEINIT = drain.GRACEINIT
A, NODE, B = "10.99.0.2", "10.99.0.1", "10.98.0.1"
VIP = "10.96.0.100"
VETH = "gl-a"
LAG = (2.0, 8.0)
SLOW_S, SLOW_COUNT = 12.0, 3
DNAT_RATE = 150  # requests/s of the timestamped client (one process, asyncio)
# bench_drain's stack reads these module globals when it builds the VIP and nginx's config:
# A leaves loopback for a network namespace of its own, B gets an address A's traffic can
# be told apart from, and the VIP a routable address (a DNAT from 127.0.0.0/8 to another
# namespace would be dropped as martian).
drain.A, drain.B, drain.VIP = A, B, VIP
# A's init joins the sandbox's network namespace with nsenter: only a PID namespace of its own
# here (bench_drain's wrapper also makes a network namespace, which would leave A unreachable).
PID1 = ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child", "--"]


def wsgi(environ, start_response):  # type: ignore[no-untyped-def]
    """Backend A: drain_apps' answer, and /slow, which takes SLOW_S seconds."""
    if environ.get("PATH_INFO") == "/slow":
        time.sleep(SLOW_S)
    return drain_wsgi(environ, start_response)


@dataclass(frozen=True)
class Row:
    name: str
    options: Tuple[str, ...]
    slow: int = 0


ROWS = (
    Row("--stop-delay 0", ("--stop-delay", "0")),
    Row("--stop-delay 1 (shorter than L)", ("--stop-delay", "1")),
    Row("--stop-delay auto", ("--stop-delay", "auto", "--stop-delay-max", "15")),
    Row(f"--stop-delay 9 --grace-period 1, {SLOW_COUNT} slow requests", ("--stop-delay", "9", "--grace-period", "1"),
        slow=SLOW_COUNT),
)


@dataclass
class Trial:
    scenario: str
    row: str
    lag: float
    report: Dict[str, Any]
    seen_during: int  # failures clients saw while A's init ran (upstream at A for nginx)
    seen_after: int  # ... after its exit (the pod was gone: nobody can count those)
    hey_failed: int = 0  # nginx: what hey saw on the ingress
    sent: int = 0
    slow_failed: int = 0
    exit_s: float = 0.0  # t0 -> the init's exit
    straddling: int = 0  # dnat: failures under way at the report's last read

    @property
    def counted(self) -> Optional[int]:
        values = [self.report.get(k) for k in ("refused", "aborted", "open_at_sigkill")]
        return None if any(v is None for v in values) else sum(values)  # type: ignore[arg-type]

    @property
    def lost(self) -> int:
        return self.seen_during + self.slow_failed

    def holds(self) -> bool:
        counted = self.counted
        if counted is None:
            return False
        if self.lost == 0:
            return self.report.get("losses") == "none"
        if self.lost >= 10:
            return abs(counted - self.lost) <= 0.1 * self.lost
        return counted > 0


# --- the pod: a sandbox holding A's network namespace, the init inside ---------------------


def sh(*argv: str) -> None:
    subprocess.run(argv, check=True)


class Pod:
    def __init__(self, row: Row, log_path: Path) -> None:
        self.sandbox = subprocess.Popen(["unshare", "--net", "--", "sleep", "600"], start_new_session=True)
        netns = f"/proc/{self.sandbox.pid}/ns/net"
        deadline = time.monotonic() + 10
        while os.readlink(netns) == os.readlink("/proc/self/ns/net"):
            if time.monotonic() > deadline:
                raise RuntimeError("the sandbox's network namespace did not appear")
            time.sleep(0.01)
        sh("ip", "link", "add", VETH, "type", "veth", "peer", "name", "eth0", "netns", str(self.sandbox.pid))
        sh("ip", "addr", "add", f"{NODE}/24", "dev", VETH)
        sh("ip", "link", "set", VETH, "up")
        sh("nsenter", f"--net={netns}", "sh", "-c", f"ip link set lo up && ip addr add {A}/24 dev eth0"
           f" && ip link set eth0 up && ip route add default via {NODE}")
        app = app_argv(A, drain.PORT)
        app[-1] = "benchmarks.bench_ledger:wsgi"
        self.log_path = log_path
        with open(log_path, "w") as log:
            self.wrapper = subprocess.Popen(["nsenter", f"--net={netns}", *PID1, GRACEINIT, "--log-format",
                                             "json", *row.options, "--", *app],
                                            env={**os.environ, "BENCH_NAME": "A"}, stdout=log, stderr=log,
                                            start_new_session=True)
        self.pid = init_pid(self.wrapper)

    def report(self) -> Dict[str, Any]:
        for line in self.log_path.read_text(errors="replace").splitlines():
            if line.startswith("{") and '"termination_report"' in line:
                return json.loads(line)
        return {}

    def close(self) -> None:
        for proc in (self.wrapper, self.sandbox):
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            proc.wait(10)
        # the veth pair goes with the sandbox's namespace
        subprocess.run(["ip", "link", "del", VETH], stderr=subprocess.DEVNULL)


# --- clients --------------------------------------------------------------------------------

CLIENT = r"""
import asyncio, json, sys, time
host, port, rate, limit, out = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
results = []
async def one():
    started = time.monotonic()
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 5)
        writer.write(b"GET / HTTP/1.0\r\nHost: vip\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        results.append((started, time.monotonic(), answer.startswith(b"HTTP/1.1 200") or answer.startswith(b"HTTP/1.0 200")))
    except (OSError, asyncio.TimeoutError):
        results.append((started, time.monotonic(), False))
async def main():
    tasks, stop = [], asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(2, stop.set)
    end = time.monotonic() + limit
    while not stop.is_set() and time.monotonic() < end:
        tasks.append(asyncio.ensure_future(one()))
        try:
            await asyncio.wait_for(stop.wait(), 1 / rate)
        except asyncio.TimeoutError:
            pass
    await asyncio.gather(*tasks)
    with open(out, "w") as f:
        json.dump(results, f)
asyncio.run(main())
"""


class TimestampedClient:
    def __init__(self, out: Path) -> None:
        self.out = out
        self.proc = subprocess.Popen([PYTHON, "-c", CLIENT, VIP, "80", str(DNAT_RATE), "90", str(out)],
                                     start_new_session=True)

    def results(self) -> List[Tuple[float, float, bool]]:
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(30)
        return [tuple(r) for r in json.loads(self.out.read_text())]  # type: ignore[misc]


class SlowRequests:
    """Requests to A that take SLOW_S seconds; which got no answer."""

    def __init__(self, count: int) -> None:
        self.failed = 0
        self.threads = [threading.Thread(target=self._one, daemon=True) for _ in range(count)]
        for thread in self.threads:
            thread.start()

    def _one(self) -> None:
        try:
            answer = http10((A, drain.PORT), "/slow", SLOW_S + 10)
            ok = answer.startswith(b"HTTP/1.1 200") or answer.startswith(b"HTTP/1.0 200")
        except OSError:
            ok = False
        if not ok:
            self.failed += 1

    def join(self) -> int:
        for thread in self.threads:
            thread.join(SLOW_S + 15)
        return self.failed


def report_time(report: Dict[str, Any]) -> Optional[float]:
    """The report's wall time (its `ts`, ms) as seconds since the epoch."""
    import calendar

    stamp = report.get("ts")
    if not stamp:
        return None
    whole, _, millis = stamp.rstrip("Z").partition(".")
    return calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S")) + int(millis or 0) / 1000


def upstream_failures_at_a(nginx: Nginx, offset: int) -> List[float]:
    """The wall times ($msec) of requests whose attempt at A got no good answer."""
    times = []
    with open(nginx.dir / "access.log", "rb") as log:
        log.seek(offset)
        for line in log.read().decode(errors="replace").splitlines():
            match = re.match(r'(\S+) (\d+) "([^"]*)" "([^"]*)"', line)
            if not match:
                continue
            addrs = [a.strip() for a in re.split(r"[,:]\s", match.group(3)) if a.strip()]
            statuses = [s.strip() for s in re.split(r"[,:]\s*", match.group(4)) if s.strip()]
            if any(addr.startswith(A) and status != "200" for addr, status in zip(addrs, statuses)):
                times.append(float(match.group(1)))
    return times


# --- one trial ------------------------------------------------------------------------------


def trial(scenario: str, row: Row, lag: float, nginx: Optional[Nginx], work: Path) -> Trial:
    pod = Pod(row, work / "a.log")
    try:
        wait_for_http(f"http://{A}:{drain.PORT}/", 30)
        if nginx is not None:
            nginx.reload(with_a=True)
            time.sleep(1.0)
            offset = nginx.log_offset()
            load: Any = hey(f"http://{drain.INGRESS}:{drain.INGRESS_PORT}/", True)
        else:
            vip(with_a=True)
            load = TimestampedClient(work / "client.json")
        time.sleep(1.5)  # warm-up
        slow = SlowRequests(row.slow) if row.slow else None
        if slow:
            time.sleep(0.5)  # the slow requests are in
        wall_minus_mono = time.time() - time.monotonic()
        t0 = time.monotonic()
        os.kill(pod.pid, signal.SIGTERM)
        removed = False
        exited_at: Optional[float] = None
        while time.monotonic() < t0 + lag + 60:
            now = time.monotonic()
            if not removed and now >= t0 + lag:
                nginx.reload(with_a=False) if nginx is not None else vip(with_a=False)
                removed = True
            if exited_at is None and pod.wrapper.poll() is not None:
                exited_at = now
            if removed and exited_at is not None:
                break
            time.sleep(0.01)
        time.sleep(0.5)
        if exited_at is None:
            raise RuntimeError("A's init did not exit within 60 s after L")
        report = pod.report()
        result = Trial(scenario, row.name, lag, report, 0, 0, exit_s=exited_at - t0)
        # The report's last read of the counters: just before its own time stamp (ms).
        cutoff_wall = report_time(report) or (exited_at + wall_minus_mono)
        if nginx is not None:
            result.sent, result.hey_failed = hey_result(load)
            times = upstream_failures_at_a(nginx, offset)  # $msec: when nginx logged the request
            result.seen_during = sum(1 for t in times if t <= cutoff_wall)
            result.seen_after = len(times) - result.seen_during
        else:
            results = load.results()
            cutoff = cutoff_wall - wall_minus_mono
            result.sent = len(results)
            # A failure observed by the cutoff was the kernel's before its last read; one
            # under way across it may fall on either side: counted as seen after.
            result.seen_during = sum(1 for _, end, ok in results if not ok and end <= cutoff)
            result.seen_after = sum(1 for _, end, ok in results if not ok and end > cutoff)
            result.straddling = sum(1 for start, end, ok in results if not ok and start <= cutoff < end)
        if slow:
            result.slow_failed = slow.join()
        return result
    finally:
        pod.close()


# --- the run --------------------------------------------------------------------------------


def run_scenario(scenario: str, trials: int, deadline: float, seed: int, work: Path) -> List[Trial]:
    b_log = open(work / "b.log", "w")
    b = subprocess.Popen(app_argv(B, drain.B_PORT), env={**os.environ, "BENCH_NAME": "B"}, stdout=b_log,
                         stderr=b_log, start_new_session=True)
    nginx = None
    results: List[Trial] = []
    try:
        wait_for_http(f"http://{B}:{drain.B_PORT}/", 20)
        if scenario == "nginx-keepalive":
            nginx = Nginx(work)
        rng = random.Random(seed)
        for number in range(trials):
            if time.monotonic() > deadline:
                print(f"[ledger] {scenario}: budget reached after {number} round(s)", file=sys.stderr)
                break
            lag = rng.uniform(*LAG)
            order = ROWS[number % len(ROWS):] + ROWS[:number % len(ROWS)]
            for row in order:
                result = trial(scenario, row, lag, nginx, work)
                results.append(result)
                r = result.report
                print(f"[ledger] {scenario} #{number + 1} {row.name}: L={lag:.2f} exit={result.exit_s:.2f}s"
                      f" report: refused={r.get('refused')} aborted={r.get('aborted')} dropped={r.get('dropped')}"
                      f" open@kill={r.get('open_at_sigkill')} ({r.get('losses')}) | seen: during={result.seen_during}"
                      f" after={result.seen_after} (straddling {result.straddling}) slow={result.slow_failed} hey={result.hey_failed}/{result.sent}"
                      f" | {'ok' if result.holds() else 'DOES NOT HOLD'}", file=sys.stderr, flush=True)
    finally:
        if nginx is not None:
            nginx.stop()
        stop_group(b)
        b_log.close()
    return results


def table(scenario: str, results: List[Trial]) -> str:
    truth = "upstream failures at A (nginx log)" if scenario == "nginx-keepalive" else "failed requests on the VIP"
    lines = [f"### {scenario}", "",
             f"Per trial: what the report counted (refused + aborted + open at SIGKILL, by phase) vs. what"
             f" clients saw while A's init ran ({truth}, + slow requests unanswered).", "",
             "| row | L (s) | report: refused / aborted / open at SIGKILL (dropped) | report's phases | counted |"
             " clients lost | within ±10 % / none = none | after the init's exit (uncountable) |"
             + (" hey failed / sent (ingress) |" if scenario == "nginx-keepalive" else " sent |"),
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        rep = r.report
        phases = rep.get("losses_by_phase") or {}
        where = ", ".join(f"{phase}: {'/'.join(str(v) for v in counts.values())}" for phase, counts in phases.items()
                          if any(counts.values())) or "—"
        lines.append(
            f"| {r.row} | {r.lag:.2f} | {rep.get('refused')} / {rep.get('aborted')} / {rep.get('open_at_sigkill')}"
            f" ({rep.get('dropped')}) | {where} | {r.counted} | {r.lost}"
            f"{f' ({r.slow_failed} slow)' if r.slow_failed else ''} | {'yes' if r.holds() else '**no**'} |"
            f" {r.seen_after} |" + (f" {r.hey_failed} / {r.sent} |" if scenario == "nginx-keepalive" else f" {r.sent} |"))
    held = sum(r.holds() for r in results)
    lines += ["", f"Held in {held} of {len(results)} trials."]
    return "\n".join(lines)


SCENARIOS = ("dnat-close", "nginx-keepalive")


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=10, help="rounds per scenario (each runs every row)")
    parser.add_argument("--scenario", action="append", choices=SCENARIOS, help="default: both")
    parser.add_argument("--budget", type=float, default=3600.0, help="seconds; no new round after it")
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--out", default=str(Path(__file__).with_name("RESULTS-ledger.md")))
    args = parser.parse_args(argv)
    # everything below happens in a network namespace of our own, and A's in another
    in_own_netns("GILEDGER_NETNS", "benchmarks.bench_ledger", argv)
    if missing("bench_ledger", ("hey", "nginx", "iptables-restore", "unshare", "nsenter", "ip")):
        return 2
    # SIGTERM (or Ctrl-C) ends the run through the finally clauses: no pod, VIP rule or
    # nginx left behind
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    sh("ip", "link", "set", "lo", "up")
    sh("ip", "addr", "add", f"{B}/32", "dev", "lo")
    sh("ip", "route", "add", f"{VIP}/32", "dev", "lo", "src", B)  # routed, then DNATed
    started = time.monotonic()
    deadline = started + args.budget
    sections = []
    drain.vip_create()
    try:
        for scenario in args.scenario or SCENARIOS:
            with tempfile.TemporaryDirectory(prefix="giledger-") as work:
                results = run_scenario(scenario, args.trials, deadline, args.seed, Path(work))
            sections.append(table(scenario, results))
            Path(args.out + ".partial").write_text("\n\n".join(sections) + "\n")
    finally:
        drain.vip_remove()
    load = os.getloadavg()
    commit = os.environ.get("BENCH_COMMIT") or subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    header = (f"# Ledger benchmark (issue 16)\n\nRun `{' '.join(['python -m benchmarks.bench_ledger', *sys.argv[1:]])}`"
              f" on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {time.monotonic() - started:.0f} s,"
              f" graceinit at {commit or '?'}, {os.cpu_count()} cores (load average at the end {load[0]:.1f}); L uniform in [{LAG[0]:g}, {LAG[1]:g}] s.\n")
    Path(args.out).write_text(header + "\n" + "\n\n".join(sections) + "\n")
    Path(args.out + ".partial").unlink(missing_ok=True)
    print(Path(args.out).read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
