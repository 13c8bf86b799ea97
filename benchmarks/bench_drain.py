"""Pod deletion behind a Service VIP and an ingress, with an endpoint-removal lag nobody knows.

    python -m benchmarks.bench_drain [--trials N] [--scenario NAME ...] [--budget SECONDS]

The real stack of issue 9, on loopback addresses inside a network namespace of its own
(the script re-executes itself under `unshare --net`):

- backend A (deleted each trial) and backend B (stays), each gunicorn (gthread, keep-alive)
  or uvicorn; A runs under each init as PID 1 of its own PID namespace;
- a Service VIP 127.0.0.100:80 made with iptables DNAT and `statistic` rules like
  kube-proxy's, in chains of our own (GIDRAIN-*), removed at exit even on error;
- nginx on 127.0.0.10:8080 as an ingress with upstream keepalive, reloaded without A;
- hey as the client, rate-limited, keep-alive or a new connection per request.

A trial: start A, put it behind the VIP / nginx, start the client, then delete the pod:
SIGTERM to A's init (after a preStop `sleep 8` for that row) at t0, and A removed from the
VIP / nginx at t0 + L, L uniform in [0.2, 8] s and unknown to the init. Rows are interleaved
and share each round's L. Per row: failed requests / sent, (t0 -> init exit) - L, and the
init's CPU while it waited. The control row removes A at L and never signals it: what fails
there is the stack's own doing (nginx's reload resets a few kept-alive client connections).
Upstream failures at A (nginx's access log: an attempt at A that got no answer, even when
retried on B) are counted separately from what the client saw.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
GRACEINIT = os.environ.get("BENCH_GRACEINIT") or str(Path(PYTHON).with_name("graceinit"))
A, B = "127.0.1.1", "127.0.1.2"
PORT = 8000
# B on another port: in a cluster A and B are in network namespaces of their own; here they
# share one, and graceinit under A would see B's connections on the same port.
B_PORT = 8001
VIP, VIP_PORT = "127.0.0.100", 80
INGRESS, INGRESS_PORT = "127.0.0.10", 8080
CHAIN_SVC, CHAIN_A, CHAIN_B = "GIDRAIN-SVC", "GIDRAIN-SEP-A", "GIDRAIN-SEP-B"
PRESTOP = 8.0
LAG = (0.2, 8.0)
CLIENTS, RATE_PER_CLIENT = 8, 40  # hey: 8 workers x 40 req/s = 320 req/s
PID1 = ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child", "--"]


@dataclass(frozen=True)
class Row:
    name: str
    init: List[str]  # argv before `-- APP`; empty: the control (never signalled)
    prestop: float = 0.0


def rows(auto_max: float) -> List[Row]:
    return [
        Row("tini", ["tini", "-s"]),
        Row("tini + preStop sleep 8", ["tini", "-s"], prestop=PRESTOP),
        Row("graceinit --stop-delay 2", [GRACEINIT, "--stop-delay", "2"]),
        Row("graceinit --stop-delay 8", [GRACEINIT, "--stop-delay", "8"]),
        Row("graceinit --stop-delay auto", [GRACEINIT, "-v", "--stop-delay", "auto", "--stop-delay-max", f"{auto_max:g}"]),
        Row("control: removed, never signalled", []),
    ]


@dataclass(frozen=True)
class Scenario:
    name: str
    path: str  # "dnat" or "nginx"
    keepalive: bool
    app: str = "gunicorn"


SCENARIOS = {
    s.name: s for s in (
        Scenario("dnat-close", "dnat", False),
        Scenario("nginx-keepalive", "nginx", True),
        Scenario("nginx-close", "nginx", False),
        Scenario("dnat-keepalive", "dnat", True),
        Scenario("uvicorn-nginx-keepalive", "nginx", True, app="uvicorn"),
        Scenario("uvicorn-dnat-close", "dnat", False, app="uvicorn"),
    )
}


@dataclass
class Trial:
    row: str
    lag: float
    exit_minus_lag: Optional[float]
    sent: int
    failed: int  # what the client saw: errors and non-200 answers
    upstream_failed: int  # nginx: attempts at A that failed (retried or not)
    cpu_share: Optional[float]  # the init's CPU / wall time from t0 to its exit
    drain: str = ""
    forward_minus_lag: Optional[float] = None  # auto: when graceinit forwarded, minus L


# --- the stack ------------------------------------------------------------------------------


def app_argv(app: str, host: str) -> List[str]:
    port = B_PORT if host == B else PORT
    if app == "gunicorn":
        return [str(Path(PYTHON).with_name("gunicorn")), "-k", "gthread", "--threads", "8", "-w", "2",
                "--keep-alive", "5", "--graceful-timeout", "20", "-b", f"{host}:{port}", "--chdir", str(ROOT),
                "--no-control-socket", "benchmarks.drain_apps:wsgi"]
    return [str(Path(PYTHON).with_name("uvicorn")), "--host", host, "--port", str(port), "--app-dir", str(ROOT),
            "--timeout-graceful-shutdown", "20", "--log-level", "warning", "benchmarks.drain_apps:asgi"]


def iptables_restore(rules: str) -> None:
    subprocess.run(["iptables-restore", "--noflush"], input=f"*nat\n{rules}COMMIT\n", text=True, check=True)


def vip(with_a: bool) -> None:
    """The Service's endpoints, swapped atomically like kube-proxy's iptables-restore."""
    rules = f"-F {CHAIN_SVC}\n"
    if with_a:
        rules += f"-A {CHAIN_SVC} -m statistic --mode random --probability 0.5 -j {CHAIN_A}\n"
    rules += f"-A {CHAIN_SVC} -j {CHAIN_B}\n"
    iptables_restore(rules)


def vip_create() -> None:
    iptables_restore(
        f":{CHAIN_SVC} - [0:0]\n:{CHAIN_A} - [0:0]\n:{CHAIN_B} - [0:0]\n"
        f"-A OUTPUT -d {VIP}/32 -p tcp --dport {VIP_PORT} -j {CHAIN_SVC}\n"
        f"-A {CHAIN_A} -p tcp -j DNAT --to-destination {A}:{PORT}\n"
        f"-A {CHAIN_B} -p tcp -j DNAT --to-destination {B}:{B_PORT}\n"
    )


def vip_remove() -> None:
    for args in (["-D", "OUTPUT", "-d", f"{VIP}/32", "-p", "tcp", "--dport", str(VIP_PORT), "-j", CHAIN_SVC],
                 ["-F", CHAIN_SVC], ["-F", CHAIN_A], ["-F", CHAIN_B],
                 ["-X", CHAIN_SVC], ["-X", CHAIN_A], ["-X", CHAIN_B]):
        subprocess.run(["iptables", "-t", "nat", *args], stderr=subprocess.DEVNULL)


NGINX_CONF = """
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    log_format up '$msec $status "$upstream_addr" "$upstream_status"';
    access_log {dir}/access.log up;
    client_body_temp_path {dir}/body; proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fcgi; uwsgi_temp_path {dir}/uwsgi; scgi_temp_path {dir}/scgi;
    upstream app {{
        {servers}
        keepalive 32;
        keepalive_timeout 4s;  # under the backends' 5 s: nginx never reuses one they are closing
    }}
    server {{
        listen {ingress}:{port};
        location / {{
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""


class Nginx:
    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.conf = directory / "nginx.conf"
        self.write(with_a=True)
        self.proc = subprocess.Popen(["nginx", "-c", str(self.conf), "-g", "daemon off;"], start_new_session=True)
        wait_for_http(f"http://{INGRESS}:{INGRESS_PORT}/", 10)

    def write(self, with_a: bool) -> None:
        servers = (f"server {A}:{PORT};\n        " if with_a else "") + f"server {B}:{B_PORT};"
        self.conf.write_text(NGINX_CONF.format(dir=self.dir, servers=servers, ingress=INGRESS, port=INGRESS_PORT))

    def reload(self, with_a: bool) -> None:
        self.write(with_a)
        self.proc.send_signal(signal.SIGHUP)

    def log_offset(self) -> int:
        path = self.dir / "access.log"
        return path.stat().st_size if path.exists() else 0

    def upstream_failures_at_a(self, offset: int) -> int:
        """Requests whose attempt at A got no good answer (502/504, or a retry on B)."""
        failed = 0
        with open(self.dir / "access.log", "rb") as log:
            log.seek(offset)
            for line in log.read().decode(errors="replace").splitlines():
                match = re.match(r'\S+ (\d+) "([^"]*)" "([^"]*)"', line)
                if not match:
                    continue
                addrs = [a.strip() for a in re.split(r"[,:]\s", match.group(2)) if a.strip()]
                statuses = [s.strip() for s in re.split(r"[,:]\s*", match.group(3)) if s.strip()]
                for addr, status in zip(addrs, statuses):
                    if addr.startswith(A) and status != "200":
                        failed += 1
                        break
        return failed

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


def wait_for_http(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer within {timeout:g}s")
        time.sleep(0.05)


def init_pid(wrapper: subprocess.Popen, timeout: float = 10.0) -> int:
    """The init behind `unshare --fork` (its child, once exec'd)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            kids = Path(f"/proc/{wrapper.pid}/task/{wrapper.pid}/children").read_text().split()
            if kids:
                cmd = Path(f"/proc/{kids[0]}/cmdline").read_bytes().split(b"\0")[0]
                if not cmd.endswith(b"unshare"):
                    return int(kids[0])
        except OSError:
            pass
        time.sleep(0.01)
    raise RuntimeError("the init did not start")


def cpu_seconds(pid: int) -> Optional[float]:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def hey(url: str, keepalive: bool) -> subprocess.Popen:
    argv = ["hey", "-z", "120s", "-c", str(CLIENTS), "-q", str(RATE_PER_CLIENT), "-t", "5"]
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


# --- one trial ------------------------------------------------------------------------------


def trial(scenario: Scenario, row: Row, lag: float, nginx: Optional[Nginx], work: Path) -> Trial:
    app = app_argv(scenario.app, A)
    env = {**os.environ, "BENCH_NAME": "A"}
    log_path = work / "a.log"
    with open(log_path, "w") as log:
        wrapper = subprocess.Popen(PID1 + (row.init + ["--"] if row.init else []) + app, env=env,
                                   stdout=log, stderr=log, start_new_session=True)
    try:
        pid = init_pid(wrapper)
        wait_for_http(f"http://{A}:{PORT}/", 20)
        if nginx is not None:
            nginx.reload(with_a=True)
            time.sleep(1.0)  # the old workers' connections close
        else:
            vip(with_a=True)
        offset = nginx.log_offset() if nginx is not None else 0
        url = f"http://{INGRESS}:{INGRESS_PORT}/" if nginx is not None else f"http://{VIP}:{VIP_PORT}/"
        client = hey(url, scenario.keepalive)
        time.sleep(1.5)  # warm-up: pooled connections to A and B in use
        t0 = time.monotonic()
        cpu0 = cpu_seconds(pid)
        signalled = removed = False
        exited_at: Optional[float] = None
        cpu_last, cpu_at = cpu0, t0
        end = t0 + lag + 60.0
        while time.monotonic() < end:
            now = time.monotonic()
            if row.init and not signalled and now >= t0 + row.prestop:
                os.kill(pid, signal.SIGTERM)
                signalled = True
            if not removed and now >= t0 + lag:
                if nginx is not None:
                    nginx.reload(with_a=False)
                else:
                    vip(with_a=False)
                removed = True
            if exited_at is None and wrapper.poll() is not None:
                exited_at = now
            if exited_at is None:
                cpu = cpu_seconds(pid)
                if cpu is not None:
                    cpu_last, cpu_at = cpu, now
            if removed and (exited_at is not None or (not row.init and now >= t0 + lag + 1.5)):
                break
            time.sleep(0.01)
        time.sleep(0.5)  # requests still in flight get answered
        sent, failed = hey_result(client)
        upstream = nginx.upstream_failures_at_a(offset) if nginx is not None else 0
        cpu_share = None
        if row.init and row.init[0] == GRACEINIT and cpu0 is not None and cpu_last is not None and cpu_at > t0:
            cpu_share = (cpu_last - cpu0) / (cpu_at - t0)
        drain, forward = "", None
        if "auto" in row.name:
            found = re.search(r"stop delay over after ([\d.]+)s: (\w+[\w ]*)", log_path.read_text())
            drain = f"{found.group(2)} {found.group(1)}s" if found else "?"
            forward = float(found.group(1)) - lag if found else None
        return Trial(row.name, lag, None if exited_at is None or not row.init else exited_at - t0 - lag,
                     sent, failed, upstream, cpu_share, drain, forward)
    finally:
        if wrapper.poll() is None:
            try:
                os.killpg(wrapper.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, UnboundLocalError):
            pass
        wrapper.wait(10)


# --- the run --------------------------------------------------------------------------------


def run_scenario(scenario: Scenario, trials: int, deadline: float, auto_max: float, seed: int,
                 work: Path) -> List[Trial]:
    results: List[Trial] = []
    b_log = open(work / "b.log", "w")
    b = subprocess.Popen(app_argv(scenario.app, B), env={**os.environ, "BENCH_NAME": "B"}, stdout=b_log,
                         stderr=b_log, start_new_session=True)
    nginx = None
    try:
        wait_for_http(f"http://{B}:{B_PORT}/", 20)
        if scenario.path == "nginx":
            nginx = Nginx(work)
        rng = random.Random(seed)
        all_rows = rows(auto_max)
        for round_number in range(trials):
            if time.monotonic() > deadline:
                print(f"[drain] {scenario.name}: deadline reached after {round_number} round(s)", file=sys.stderr)
                break
            lag = rng.uniform(*LAG)
            order = all_rows[round_number % len(all_rows):] + all_rows[:round_number % len(all_rows)]
            for row in order:
                result = trial(scenario, row, lag, nginx, work)
                results.append(result)
                print(f"[drain] {scenario.name} #{round_number + 1} {row.name}: L={lag:.2f}"
                      f" exit-L={_fmt(result.exit_minus_lag)} fwd-L={_fmt(result.forward_minus_lag)} failed={result.failed}/{result.sent}"
                      f" upstream@A={result.upstream_failed} cpu={_pct(result.cpu_share)} {result.drain}",
                      file=sys.stderr, flush=True)
    finally:
        if nginx is not None:
            nginx.stop()
        os.killpg(b.pid, signal.SIGTERM)
        try:
            b.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(b.pid, signal.SIGKILL)
            b.wait(5)
        b_log.close()
    return results


def _fmt(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:+.2f}s"


def _pct(value: Optional[float]) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def table(scenario: Scenario, results: List[Trial], auto_max: float) -> str:
    lines = [f"### {scenario.name}: {scenario.app}, {'nginx ingress' if scenario.path == 'nginx' else 'iptables DNAT VIP'},"
             f" {'keep-alive' if scenario.keepalive else 'a new connection per request'}", "",
             "| row | trials | failed / sent (client) | upstream failures at A | (exit − L) median / p90 / max | auto: (forward − L) median / max | init CPU while waiting (max) | drain ended |",
             "|---|---|---|---|---|---|---|---|"]
    for row in rows(auto_max):
        mine = [r for r in results if r.row == row.name]
        if not mine:
            continue
        exits = [r.exit_minus_lag for r in mine if r.exit_minus_lag is not None]
        spread = (f"{statistics.median(exits):+.2f} / {_quantile(exits, 0.9):+.2f} / {max(exits):+.2f} s"
                  if exits else "—")
        cpus = [r.cpu_share for r in mine if r.cpu_share is not None]
        forwards = [r.forward_minus_lag for r in mine if r.forward_minus_lag is not None]
        forward = f"{statistics.median(forwards):+.2f} / {max(forwards):+.2f} s" if forwards else "—"
        ended: Dict[str, int] = {}
        for r in mine:
            if r.drain:
                ended[r.drain.split()[0]] = ended.get(r.drain.split()[0], 0) + 1
        lines.append(
            f"| {row.name} | {len(mine)} | {sum(r.failed for r in mine)} / {sum(r.sent for r in mine)}"
            f" | {sum(r.upstream_failed for r in mine) if scenario.path == 'nginx' else '—'} | {spread} | {forward}"
            f" | {_pct(max(cpus)) if cpus else '—'} | {', '.join(f'{k} ×{v}' for k, v in ended.items()) or '—'} |")
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=20, help="rounds per scenario (each runs every row)")
    parser.add_argument("--scenario", action="append", choices=sorted(SCENARIOS), help="default: all")
    parser.add_argument("--budget", type=float, default=3600.0, help="seconds; no new round after it")
    parser.add_argument("--auto-max", type=float, default=30.0, help="--stop-delay-max of the auto row")
    parser.add_argument("--seed", type=int, default=9)
    parser.add_argument("--out", default=str(Path(__file__).with_name("RESULTS-drain.md")))
    args = parser.parse_args(argv)
    if os.environ.get("GIDRAIN_NETNS") != "1":
        # everything below happens in a network namespace of our own: loopback only
        os.environ["GIDRAIN_NETNS"] = "1"
        return subprocess.call(["unshare", "--net", "--", PYTHON, "-m", "benchmarks.bench_drain",
                                *(argv if argv is not None else sys.argv[1:])], cwd=ROOT)
    for tool in ("hey", "nginx", "iptables-restore", "tini", "unshare"):
        if shutil.which(tool) is None:
            print(f"bench_drain: {tool} is not installed", file=sys.stderr)
            return 2
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    started = time.monotonic()
    deadline = started + args.budget
    names = args.scenario or list(SCENARIOS)
    sections = []
    vip_create()
    try:
        for name in names:
            scenario = SCENARIOS[name]
            with tempfile.TemporaryDirectory(prefix="gidrain-") as work:
                results = run_scenario(scenario, args.trials, deadline, args.auto_max, args.seed, Path(work))
            sections.append(table(scenario, results, args.auto_max))
            Path(args.out + ".partial").write_text("\n\n".join(sections) + "\n")
    finally:
        vip_remove()
    header = (f"# Drain benchmark (issue 9)\n\nRun `{' '.join(['python -m benchmarks.bench_drain', *sys.argv[1:]])}`"
              f" on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {time.monotonic() - started:.0f} s,"
              f" {os.cpu_count()} cores; L uniform in [{LAG[0]}, {LAG[1]}] s, {CLIENTS}×{RATE_PER_CLIENT} req/s (hey);"
              f" auto row: --stop-delay-max {args.auto_max:g}.\n")
    Path(args.out).write_text(header + "\n" + "\n\n".join(sections) + "\n")
    Path(args.out + ".partial").unlink(missing_ok=True)
    print(Path(args.out).read_text())
    return 0


def run_drain(ctx) -> "object":  # type: ignore[no-untyped-def]
    """The suite's entry (`python -m benchmarks --only drain`): a smoke round with --quick,
    else the full run (about 2 hours), written to benchmarks/RESULTS-drain.md."""
    from .common import Section

    section = Section("drain", "Pod deletion with an unknown endpoint-removal lag (--stop-delay auto)")
    out = Path(__file__).with_name("RESULTS-drain.md" if not ctx.quick else "RESULTS-drain-quick.md")
    argv = ["--trials", "1", "--scenario", "nginx-keepalive"] if ctx.quick else ["--trials", "20"]
    code = subprocess.call([PYTHON, "-m", "benchmarks.bench_drain", *argv, "--out", str(out)], cwd=ROOT)
    if code != 0 or not out.exists():
        section.error = f"bench_drain exited with status {code}"
        return section
    section.add(out.read_text().split("\n", 2)[2])
    return section


if __name__ == "__main__":
    sys.exit(main())
