"""Pod deletion behind a Service VIP or an ingress, with an endpoint-removal lag nobody knows.

    python -m benchmarks.bench_drain [--trials N] [--scenario NAME ...] [--budget SECONDS]

Everything runs in a network namespace of the benchmark's own (it re-executes itself under
`unshare --net`), so nothing leaves the machine:

- backend A (deleted each trial) runs under the init as PID 1 of its own PID namespace, in a
  **network namespace of its own** (a pod's: a veth pair, A at 10.0.1.1; on the node's side
  10.0.1.254 for nginx and the attacks, 10.0.1.253 for the probe, 10.0.1.252 for the
  harness's own readiness polls); backend B (stays) on 127.0.1.2:8001. Both gunicorn
  (gthread, keep-alive 5 s);
- a Service VIP 10.96.0.10:80 made with iptables DNAT and `statistic` rules like
  kube-proxy's, in chains of our own (GIDRAIN-*), removed at exit even on error;
- nginx on 127.0.0.10:8080 as an ingress with upstream keepalive, reloaded without A;
- clients from drain_apps.py (8 × 40 req/s; keep-alive, a connection per request that the
  server closes, or one that the client closes first), recording every request, so that
  requests/s to A and B can be plotted around the deletion;
- a kubelet-like probe of A from 10.0.1.253 (`Connection: close`, `kube-probe/1.33`) every
  1 or 10 s, for --probe-before seconds before the deletion and on;
- a sidecar (Istio's 127.0.0.6, inside A's network namespace): the kubelet-like probe and the
  mesh's requests on kept-alive connections from that one address, the requests stopping at L
  (the mesh's own endpoint removal);
- the attacks of issue 15 straight at A: bursts of 20 HTTP/1.0 requests every 3 s from
  0.2 s after SIGTERM, an 8 MB upload every 2.5 s, one peer with two kinds of client;
- with --node-sockets N: N idle established sockets in 8 other network namespaces (the
  other pods of a node), which every socket dump walks.

A trial deletes the pod: SIGTERM to A's init at t0, and A leaves the VIP / nginx at t0 + L,
L uniform in [0.2, 8] s and unknown to the init. Per trial: requests that failed, graceinit's
forward (its "stop delay over after X s") minus L, the forward minus the last request A
answered, how the wait ended, and the init's CPU while it waited. Scenarios run interleaved
(round 1 of each, then round 2, ...). The first trial of each scenario is plotted
(benchmarks/drain-SCENARIO.png, with the `bench` extra: matplotlib).
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
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
GRACEINIT = os.environ.get("BENCH_GRACEINIT") or str(Path(PYTHON).with_name("graceinit"))
A, NODE, PROBE_FROM, HARNESS = "10.0.1.1", "10.0.1.254", "10.0.1.253", "10.0.1.252"
SIDECAR, SIDECAR_TO = "127.0.0.6", "127.0.0.1"  # Istio's sidecar, inside A's network namespace
B = "127.0.1.2"
PORT, B_PORT = 8000, 8001
VIP, VIP_PORT = "10.96.0.10", 80
INGRESS, INGRESS_PORT = "127.0.0.10", 8080
CHAIN_SVC, CHAIN_A, CHAIN_B = "GIDRAIN-SVC", "GIDRAIN-SEP-A", "GIDRAIN-SEP-B"
LAG = (0.2, 8.0)
CLIENTS, RATE_PER_CLIENT = 8, 40
PID1 = ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child", "--net", "--"]


@dataclass(frozen=True)
class Scenario:
    name: str
    path: str  # "dnat", "nginx", "sidecar" (from 127.0.0.6 in A's namespace), or "direct" (attacks straight at A)
    mode: str = ""  # the load client's mode (drain_apps.py)
    probe: float = 0.0  # kubelet-like probe period, 0: none
    attack: str = ""  # "burst", "upload", "mix"
    node_sockets: bool = False  # with --node-sockets idle sockets in other namespaces
    server: str = "gunicorn"  # A's server: "gunicorn" (gthread) or "uvicorn" (asyncio, keep-alive)


SCENARIOS = {s.name: s for s in (
    Scenario("nginx-keepalive", "nginx", "keepalive"),
    Scenario("dnat-server-close", "dnat", "server-close"),
    Scenario("dnat-close-first", "dnat", "close-first"),
    Scenario("nginx-keepalive+probe1s", "nginx", "keepalive", probe=1.0),
    Scenario("dnat-close-first+probe1s", "dnat", "close-first", probe=1.0),
    Scenario("dnat-server-close+probe10s", "dnat", "server-close", probe=10.0),
    Scenario("nginx-keepalive+probe10s", "nginx", "keepalive", probe=10.0),
    Scenario("bursts", "direct", attack="burst"),
    Scenario("uploads", "direct", attack="upload"),
    Scenario("two-clients-one-peer", "direct", attack="mix"),
    Scenario("dnat-close-first+node-sockets", "dnat", "close-first", node_sockets=True),
    Scenario("uvicorn-dnat-close-first", "dnat", "close-first", server="uvicorn"),
    Scenario("uvicorn-nginx-keepalive+probe1s", "nginx", "keepalive", probe=1.0, server="uvicorn"),
    Scenario("sidecar-keepalive+probe1s", "sidecar", "keepalive", probe=1.0),
    Scenario("sidecar-keepalive+probe10s", "sidecar", "keepalive", probe=10.0),
)}


@dataclass
class Trial:
    scenario: str
    lag: float
    sent: int
    failed: int
    failed_at_a: int
    forward_minus_lag: Optional[float]
    forward_minus_last: Optional[float]  # the forward minus the last request A answered
    ended: str
    cpu_share: Optional[float]
    seconds: float
    sampling_share: Optional[float] = None  # the samples' own CPU (graceinit's -vv count) over the wait
    probe_known: Optional[bool] = None  # probe rows: was the probe taken for one


# --- the stack ------------------------------------------------------------------------------


def sh(*argv: str, check: bool = True) -> None:
    subprocess.run(list(argv), check=check, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def app_argv(host: str, port: int, server: str = "gunicorn") -> List[str]:
    if server == "uvicorn":  # keep-alive 5 s as gunicorn's; stops on SIGTERM, finishing what is in flight
        return [str(Path(PYTHON).with_name("uvicorn")), "--host", host, "--port", str(port), "--workers", "2",
                "--timeout-keep-alive", "5", "--no-access-log", "--app-dir", str(ROOT), "benchmarks.drain_apps:asgi"]
    return [str(Path(PYTHON).with_name("gunicorn")), "-k", "gthread", "--threads", "8", "-w", "2",
            "--keep-alive", "5", "--graceful-timeout", "20", "-b", f"{host}:{port}", "--chdir", str(ROOT),
            "--no-control-socket", "benchmarks.drain_apps:wsgi"]


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
    access_log off;
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
            proxy_next_upstream off;  # a failure at A is the client's failure: counted
        }}
    }}
}}
"""


class Nginx:
    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.conf = directory / "nginx.conf"
        self.write(with_a=False)
        self.proc = subprocess.Popen(["nginx", "-c", str(self.conf), "-g", "daemon off;"], start_new_session=True)
        wait_for_http(f"http://{INGRESS}:{INGRESS_PORT}/", 10)

    def write(self, with_a: bool) -> None:
        servers = (f"server {A}:{PORT};\n        " if with_a else "") + f"server {B}:{B_PORT};"
        self.conf.write_text(NGINX_CONF.format(dir=self.dir, servers=servers, ingress=INGRESS, port=INGRESS_PORT))

    def reload(self, with_a: bool) -> None:
        self.write(with_a)
        self.proc.send_signal(signal.SIGHUP)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


def wait_for_http(url: str, timeout: float, source: str = "") -> None:
    """Until `url` answers 200; from `source` when given (A is polled from an address of the
    harness's own: from the ingress's, its requests would be part of the ingress's rhythm)."""
    import http.client
    from urllib.parse import urlsplit

    where = urlsplit(url)
    deadline = time.monotonic() + timeout
    while True:
        try:
            connection = http.client.HTTPConnection(where.hostname or "", where.port or 80, timeout=1,
                                                    source_address=(source, 0) if source else None)
            try:
                connection.request("GET", where.path or "/")
                if connection.getresponse().status == 200:
                    return
            finally:
                connection.close()
        except (OSError, http.client.HTTPException):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer within {timeout:g}s")
        time.sleep(0.05)


def stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM a backend's process group; SIGKILL it if it is not gone within 15 s."""
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


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


def wire_pod(pid: int) -> None:
    """A veth pair between the benchmark's namespace (the node) and A's (the pod)."""
    sh("ip", "link", "del", "vnode", check=False)
    sh("ip", "link", "add", "name", "vnode", "type", "veth", "peer", "name", "vpod", "netns", str(pid))
    sh("ip", "addr", "add", f"{NODE}/24", "dev", "vnode")
    sh("ip", "addr", "add", f"{PROBE_FROM}/24", "dev", "vnode")
    sh("ip", "addr", "add", f"{HARNESS}/24", "dev", "vnode")
    sh("ip", "link", "set", "vnode", "up")
    inside = ["nsenter", "-t", str(pid), "-n"]
    sh(*inside, "ip", "link", "set", "lo", "up")
    sh(*inside, "ip", "addr", "add", f"{A}/24", "dev", "vpod")
    sh(*inside, "ip", "link", "set", "vpod", "up")
    sh(*inside, "ip", "route", "add", "default", "via", NODE)


def cpu_seconds(pid: int) -> Optional[float]:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def client(url: str, mode: str, out: Path, *extra: str, netns_of: Optional[int] = None) -> subprocess.Popen:
    inside = ["nsenter", "-t", str(netns_of), "-n"] if netns_of else []
    return subprocess.Popen(inside + [PYTHON, "-m", "benchmarks.drain_apps", "load", url, "--mode", mode, "--out", str(out),
                                      *extra], cwd=ROOT, start_new_session=True)


def stop_client(proc: subprocess.Popen, out: Path) -> List[Tuple[float, float, str, str]]:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)
    records = []
    if out.exists():
        for line in out.read_text().splitlines():
            start, end, status, backend = line.split()
            records.append((float(start), float(end), status, backend))
    return records


class NodeSockets:
    """Idle established sockets in 8 network namespaces of their own."""

    def __init__(self, total: int) -> None:
        self.procs = []
        for _ in range(8):
            proc = subprocess.Popen(["unshare", "--net", "--", "sh", "-c",
                                     f"ip link set lo up && exec {PYTHON} -m benchmarks.drain_apps hold {total // 16}"],
                                    cwd=ROOT, stdout=subprocess.PIPE, text=True, start_new_session=True)
            self.procs.append(proc)
        for proc in self.procs:
            if proc.stdout is None or proc.stdout.readline().strip() != "ready":
                raise RuntimeError("a socket holder did not start")

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


# --- one trial ------------------------------------------------------------------------------


def trial(scenario: Scenario, lag: float, nginx: Nginx, work: Path, auto_max: float,
          probe_before: float) -> Tuple[Trial, Dict[str, object]]:
    log_path = work / "a.log"
    with open(log_path, "w") as log:
        wrapper = subprocess.Popen(PID1 + [GRACEINIT, os.environ.get("GIDRAIN_VERBOSITY", "-vv"), "--stop-delay", "auto", "--stop-delay-max", f"{auto_max:g}",
                                           "--"] + app_argv("0.0.0.0", PORT, scenario.server), env={**os.environ, "BENCH_NAME": "A"},
                                   stdout=log, stderr=log, start_new_session=True)
    clients: List[Tuple[subprocess.Popen, Path]] = []
    try:
        pid = init_pid(wrapper)
        wire_pod(pid)
        wait_for_http(f"http://{A}:{PORT}/", 30, HARNESS)
        sidecar = scenario.path == "sidecar"  # Istio's: probes and the mesh's requests from one address
        if scenario.probe:
            out = work / "probe.txt"
            clients.append((client(f"http://{SIDECAR_TO if sidecar else A}:{PORT}/", "probe", out,
                                   "--period", f"{scenario.probe:g}", "--source", SIDECAR if sidecar else PROBE_FROM,
                                   netns_of=pid if sidecar else None), out))
            time.sleep(probe_before)
        if scenario.path == "nginx":
            nginx.reload(with_a=True)
            time.sleep(1.0)  # the old workers' connections close
        elif scenario.path == "dnat":
            vip(with_a=True)
        warm_up = 1.5  # pooled connections to A and B in use
        planned_t0 = time.monotonic() + warm_up
        if scenario.mode:
            url = f"http://{INGRESS}:{INGRESS_PORT}/" if scenario.path == "nginx" else f"http://{VIP}:{VIP_PORT}/"
            out = work / "load.txt"
            if sidecar:  # the mesh stops sending at L: the client stops itself then
                clients.append((client(f"http://{SIDECAR_TO}:{PORT}/", scenario.mode, out, "--clients", str(CLIENTS),
                                       "--rate", str(RATE_PER_CLIENT), "--source", SIDECAR, "--t0", f"{planned_t0}",
                                       "--start", f"{-warm_up}", "--stop", f"{lag}", netns_of=pid), out))
            else:
                clients.append((client(url, scenario.mode, out, "--clients", str(CLIENTS), "--rate",
                                       str(RATE_PER_CLIENT)), out))
        time.sleep(max(0.0, planned_t0 - time.monotonic()))
        t0 = time.monotonic()
        if scenario.attack:
            clients += attack(scenario.attack, t0, work)
        cpu0 = cpu_seconds(pid)
        os.kill(pid, signal.SIGTERM)
        removed = False
        exited_at: Optional[float] = None
        cpu_last, cpu_at = cpu0, t0
        end = t0 + auto_max + lag + 30.0
        while time.monotonic() < end:
            now = time.monotonic()
            if not removed and now >= t0 + lag:
                if scenario.path == "nginx":
                    nginx.reload(with_a=False)
                elif scenario.path == "dnat":
                    vip(with_a=False)
                removed = True
            if exited_at is None and wrapper.poll() is not None:
                exited_at = now
            if exited_at is None:
                cpu = cpu_seconds(pid)
                if cpu is not None:
                    cpu_last, cpu_at = cpu, now
            if removed and exited_at is not None:
                break
            time.sleep(0.01)
        time.sleep(0.5)  # requests in flight get their answers (or errors)
        records = {out.name: stop_client(proc, out) for proc, out in clients}
        clients = []
        text = log_path.read_text()
        if os.environ.get("GIDRAIN_KEEP_LOGS"):
            shutil.copy(log_path, Path(os.environ["GIDRAIN_KEEP_LOGS"]) / f"{scenario.name}-{lag:.2f}.log")
        found = re.search(r"stop delay over after ([\d.]+)s \((\w[\w ]*)\)", text)
        forward = t0 + float(found.group(1)) if found else None
        load = [r for name, rs in records.items() if name != "probe.txt" for r in rs if r[2] != "stale"]
        after = [r for r in load if r[0] >= t0 - 1.0]  # from just before the deletion on
        answered_by_a = [r[0] for r in load if r[3] == "A" and r[2] == "200"]
        failed = [r for r in after if r[2] != "200"]
        cpu_share = None
        if cpu0 is not None and cpu_last is not None and cpu_at > t0:
            cpu_share = (cpu_last - cpu0) / (cpu_at - t0)
        sampled = re.search(r"samples \(\d+ complete(?:, \d+ unreadable)?\) of \d+ source\(s\) cost (\d+) ms", text)
        sampling_share = float(sampled.group(1)) / 1000 / float(found.group(1)) if sampled and found else None
        probe_known = (f"{SIDECAR if sidecar else PROBE_FROM} every" in text) if scenario.probe else None
        result = Trial(scenario.name, lag, len(after), len(failed),
                       sum(1 for r in failed if r[3] != "B"),
                       None if forward is None else forward - t0 - lag,
                       None if forward is None or not answered_by_a else forward - max(answered_by_a),
                       found.group(2) if found else "?", cpu_share,
                       (exited_at or time.monotonic()) - t0, sampling_share, probe_known)
        timeline = {"t0": t0, "lag": lag, "forward": None if forward is None else forward - t0,
                    "exit": None if exited_at is None else exited_at - t0, "records": records}
        return result, timeline
    finally:
        for proc, out in clients:
            stop_client(proc, out)
        if scenario.path == "nginx":
            nginx.reload(with_a=False)
        elif scenario.path == "dnat":
            vip(with_a=False)
        if wrapper.poll() is None:
            try:
                os.killpg(wrapper.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        wrapper.wait(10)
        sh("ip", "link", "del", "vnode", check=False)


def attack(kind: str, t0: float, work: Path) -> List[Tuple[subprocess.Popen, Path]]:
    """The shapes that once ended the wait early, straight at A, on a clock from t0."""
    url = f"http://{A}:{PORT}/"
    at = ["--t0", f"{t0:.6f}"]
    if kind == "burst":
        return [(client(url, "burst", work / "burst.txt", *at, "--start", "0.2", "--stop", "9.3", "--period", "3",
                        "--size", "20"), work / "burst.txt")]
    if kind == "upload":
        return [(client(url, "upload", work / "upload.txt", *at, "--start", "0.2", "--stop", "10.1", "--period", "2.5"),
                 work / "upload.txt")]
    return [(client(url, "server-close", work / "mix10.txt", *at, "--stop", "1.5", "--clients", "4", "--rate", "5"),
             work / "mix10.txt"),
            (client(url, "close-first", work / "mix11.txt", *at, "--stop", "6.0", "--clients", "4", "--rate", "10"),
             work / "mix11.txt")]


# --- the run --------------------------------------------------------------------------------


def _fmt(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:+.2f}s"


def _pct(value: Optional[float]) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def plot(name: str, timeline: Dict[str, object], path: Path) -> bool:
    """Requests/s answered by A and by B around the deletion, with SIGTERM, L, the forward
    and the exit marked. Needs the `bench` extra (matplotlib); False without it."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    t0 = float(timeline["t0"])  # type: ignore[arg-type]
    records = [r for name_, rs in timeline["records"].items() if name_ != "probe.txt" for r in rs]  # type: ignore[union-attr]
    probes = timeline["records"].get("probe.txt", [])  # type: ignore[union-attr]
    start, stop, width = -3.0, max(10.0, (timeline["exit"] or 10.0) + 2.0), 0.1  # type: ignore[operator]
    bins = [start + width * i for i in range(int((stop - start) / width) + 1)]
    figure, axis = plt.subplots(figsize=(9, 3.2))
    for backend, colour in (("A", "tab:red"), ("B", "tab:blue")):
        times = [r[1] - t0 for r in records if r[3] == backend and r[2] == "200"]
        axis.hist(times, bins=bins, weights=[1 / width] * len(times), histtype="step", color=colour,
                  label=f"answered by {backend} (req/s)")
    failed = [r[1] - t0 for r in records if r[2] not in ("200", "stale")]  # (stale: retried, not lost)
    if failed:
        axis.hist(failed, bins=bins, weights=[1 / width] * len(failed), color="black", label="failed (req/s)")
    for r in probes:
        axis.axvline(r[0] - t0, color="tab:green", alpha=0.25, linewidth=0.8)
    marks = [(0.0, "SIGTERM", "black"), (float(timeline["lag"]), "L: A removed", "tab:orange")]  # type: ignore[arg-type]
    if timeline["forward"] is not None:
        marks.append((float(timeline["forward"]), "forward", "tab:purple"))  # type: ignore[arg-type]
    if timeline["exit"] is not None:
        marks.append((float(timeline["exit"]), "A exits", "grey"))  # type: ignore[arg-type]
    for x, label, colour in marks:
        axis.axvline(x, color=colour, linestyle="--", linewidth=1.2, label=f"{label} ({x:+.2f} s)")
    axis.set_xlim(start, stop)
    axis.set_xlabel("seconds from SIGTERM" + (" (green: probes)" if probes else ""))
    axis.set_title(name)
    axis.legend(fontsize=7, loc="upper right")
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return True


def table(results: List[Trial]) -> str:
    lines = ["| scenario | trials | failed / sent | forward − L: median / max | forward − L ≤ 1 s"
             " | forward − last request at A: median / max | ended | probe known"
             " | init CPU while waiting: median / max | sampling CPU: median / max |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name in SCENARIOS:
        mine = [r for r in results if r.scenario == name]
        if not mine:
            continue
        lags = [r.forward_minus_lag for r in mine if r.forward_minus_lag is not None]
        lasts = [r.forward_minus_last for r in mine if r.forward_minus_last is not None]
        cpus = [r.cpu_share for r in mine if r.cpu_share is not None]
        sampling = [r.sampling_share for r in mine if r.sampling_share is not None]
        known = [r.probe_known for r in mine if r.probe_known is not None]
        ended: Dict[str, int] = {}
        for r in mine:
            ended[r.ended] = ended.get(r.ended, 0) + 1
        lines.append(
            f"| {name} | {len(mine)} | {sum(r.failed for r in mine)} / {sum(r.sent for r in mine)}"
            f" | {_fmt(statistics.median(lags)) if lags else '—'} / {_fmt(max(lags)) if lags else '—'}"
            f" | {sum(1 for lag in lags if lag <= 1.0)} / {len(lags)}"
            f" | {_fmt(statistics.median(lasts)) if lasts else '—'} / {_fmt(max(lasts)) if lasts else '—'}"
            f" | {', '.join(f'{k} ×{v}' for k, v in ended.items())}"
            f" | {f'{sum(known)} / {len(known)}' if known else '—'}"
            f" | {_pct(statistics.median(cpus)) if cpus else '—'} / {_pct(max(cpus)) if cpus else '—'}"
            f" | {_pct(statistics.median(sampling)) if sampling else '—'} / {_pct(max(sampling)) if sampling else '—'} |")
    return "\n".join(lines)


def in_own_netns(flag: str, module: str, argv: Optional[List[str]]) -> None:
    """Run the rest of `python -m module` in a network namespace of its own: the first time
    (the environment variable `flag` unset), re-execute it under `unshare --net`. An exec,
    not a child: a signal to this pid reaches the run itself."""
    if os.environ.get(flag) != "1":
        os.environ[flag] = "1"
        os.chdir(ROOT)
        os.execvp("unshare", ["unshare", "--net", "--", PYTHON, "-m", module,
                              *(argv if argv is not None else sys.argv[1:])])


def missing(prog: str, tools: Sequence[str]) -> bool:
    """Say which of `tools` is not installed, if one is not."""
    absent = [tool for tool in tools if shutil.which(tool) is None]
    for tool in absent:
        print(f"{prog}: {tool} is not installed", file=sys.stderr)
    return bool(absent)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=20, help="rounds (each runs every scenario once)")
    parser.add_argument("--scenario", action="append", choices=sorted(SCENARIOS), help="default: all")
    parser.add_argument("--budget", type=float, default=3600.0, help="seconds; no new round after it")
    parser.add_argument("--auto-max", type=float, default=30.0, help="--stop-delay-max")
    parser.add_argument("--probe-before", type=float, default=60.0, help="seconds of probing before the deletion")
    parser.add_argument("--node-sockets", type=int, default=100_000, help="idle sockets in other namespaces")
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--out", default=str(Path(__file__).with_name("RESULTS-drain.md")))
    args = parser.parse_args(argv)
    in_own_netns("GIDRAIN_NETNS", "benchmarks.bench_drain", argv)
    # SIGTERM, and SIGINT even where a shell started us in the background with it ignored:
    # unwind, so that every `finally` stops what it started and removes its rules
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda number, frame: sys.exit(128 + number))
    if missing("bench_drain", ("nginx", "iptables-restore", "unshare", "nsenter", "ip")):
        return 2
    names = args.scenario or list(SCENARIOS)
    servers = {SCENARIOS[name].server for name in names}
    if missing("bench_drain", [str(Path(PYTHON).with_name(server)) for server in sorted(servers)]):
        return 2  # gunicorn and uvicorn come with the `test` extra
    sh("ip", "link", "set", "lo", "up")
    sh("ip", "addr", "add", f"{VIP}/32", "dev", "lo")
    started = time.monotonic()
    deadline = started + args.budget
    results: List[Trial] = []
    plotted: Dict[str, str] = {}
    rng = random.Random(args.seed)
    vip_create()
    vip(with_a=False)
    node: Optional[NodeSockets] = None
    with tempfile.TemporaryDirectory(prefix="gidrain-") as temp:
        work = Path(temp)
        b_log = open(work / "b.log", "w")
        b = subprocess.Popen(app_argv(B, B_PORT), env={**os.environ, "BENCH_NAME": "B"}, stdout=b_log, stderr=b_log,
                             start_new_session=True)
        nginx: Optional[Nginx] = None
        try:
            wait_for_http(f"http://{B}:{B_PORT}/", 30)
            nginx = Nginx(work)
            for round_number in range(args.trials):
                if time.monotonic() > deadline:
                    print(f"[drain] deadline reached after {round_number} round(s)", file=sys.stderr)
                    break
                for name in names:
                    scenario = SCENARIOS[name]
                    lag = rng.uniform(*LAG)
                    if scenario.node_sockets and node is None and args.node_sockets:
                        node = NodeSockets(args.node_sockets)
                    if not scenario.node_sockets and node is not None:
                        node.stop()
                        node = None
                    result, timeline = trial(scenario, lag, nginx, work, args.auto_max, args.probe_before)
                    results.append(result)
                    if name not in plotted:
                        png = Path(__file__).with_name(f"drain-{name.replace('+', '-')}.png")
                        if plot(f"{name}, L = {lag:.2f} s", timeline, png):
                            plotted[name] = png.name
                    failures = sorted({(status, round(end - float(timeline["t0"]), 1))  # type: ignore[arg-type]
                                       for rs in timeline["records"].values() for _, end, status, _ in rs  # type: ignore[union-attr]
                                       if status != "200"})[:6]
                    print(f"[drain] {name} #{round_number + 1}: L={lag:.2f} fwd-L={_fmt(result.forward_minus_lag)}"
                          f" fwd-last@A={_fmt(result.forward_minus_last)} failed={result.failed}/{result.sent}"
                          f" (at A {result.failed_at_a}) cpu={_pct(result.cpu_share)} sampling={_pct(result.sampling_share)}"
                          f" {result.ended}{'' if result.probe_known is None else ' probe known' if result.probe_known else ' probe NOT known'}"
                          f"{' ' + str(failures) if failures else ''}", file=sys.stderr, flush=True)
                Path(args.out + ".partial").write_text(table(results) + "\n")
        finally:
            if node is not None:
                node.stop()
            if nginx is not None:
                nginx.stop()
            stop_group(b)
            b_log.close()
            vip_remove()
    rounds = max((sum(1 for r in results if r.scenario == name) for name in names), default=0)
    header = (f"Run `{' '.join(['python -m benchmarks.bench_drain', *sys.argv[1:]])}` on"
              f" {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {time.monotonic() - started:.0f} s,"
              f" {os.cpu_count()} cores, up to {rounds} trial(s) per scenario; L uniform in [{LAG[0]}, {LAG[1]}] s,"
              f" {CLIENTS}×{RATE_PER_CLIENT} req/s; --stop-delay-max {args.auto_max:g}.\n")
    plots = "\n".join(f"![{name}]({png})" for name, png in plotted.items())
    Path(args.out).write_text(header + "\n" + table(results) + "\n\n" + plots + "\n")
    Path(args.out + ".partial").unlink(missing_ok=True)
    print(Path(args.out).read_text())
    return 0


def run_drain(ctx) -> "object":  # type: ignore[no-untyped-def]
    """The suite's entry (`python -m benchmarks --only drain`): a smoke round with --quick,
    else the full run, written to benchmarks/RESULTS-drain-run.md."""
    from .common import Section

    section = Section("drain", "Pod deletion with an unknown endpoint-removal lag (--stop-delay auto)")
    out = Path(__file__).with_name("RESULTS-drain-quick.md" if ctx.quick else "RESULTS-drain-run.md")
    argv = ["--trials", "1", "--scenario", "nginx-keepalive"] if ctx.quick else ["--trials", "20"]
    code = subprocess.call([PYTHON, "-m", "benchmarks.bench_drain", *argv, "--out", str(out)], cwd=ROOT)
    if code != 0 or not out.exists():
        section.error = f"bench_drain exited with status {code}"
        return section
    section.add(out.read_text().split("\n", 2)[2])
    return section


if __name__ == "__main__":
    sys.exit(main())
