"""Zero-downtime restart (issue 5): graceinit restarting the app under load, next to what users
do without it -- restarting the whole container.

    .venv/bin/python -m benchmarks.restart [--quick] [--out FILE] [--restarts N]
                                           [--container-restarts N] [--rate R]

A steady open-loop load (``--rate`` requests/s, default 250, every request on a new
connection to 127.0.0.1) runs while the app is restarted, and every request's outcome is
recorded. Each response carries the pid of the process graceinit (or the init) started --
for gunicorn the arbiter's, i.e. the worker's parent -- so the client sees the generation
change.

1. **graceinit restarts**: ``graceinit --listen tcp://127.0.0.1:PORT --notify
   --restart-signal HUP -- APP``, ``--restarts`` (50) SIGHUPs, each once the previous old
   generation has exited. Apps: the small Python server (socket-activated, READY=1 on the
   notify socket) and gunicorn (LISTEN_FDS/LISTEN_PID, READY=1 from its arbiter); gunicorn also
   without --notify (``--ready-timeout 1``: the new generation counts as ready after 1 s alive).
2. **container restarts**, what users do without it: the app binds the port itself and runs
   under tini, dumb-init, graceinit, or no init; "restart" = SIGTERM to the init, wait for it
   to exit, start it again (what ``docker restart`` does to the processes -- without the
   runtime's own teardown and set-up, so these numbers are a lower bound).

Measured per restart: failed requests (refused, reset, timed out, bad response), the time from
the signal to the first response from the new generation, and the longest interval in which
no request completed successfully. The report is Markdown (default
benchmarks/RESULTS-restart.md) with the machine and date.

The server used here is in this file (``python benchmarks/restart.py --serve [--bind
HOST:PORT]``; gunicorn imports ``restart:wsgi_app``), so the benchmark depends on nothing in
tests/.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PYTHON = sys.executable
GRACEINIT = os.environ.get("BENCH_GRACEINIT") or str(Path(PYTHON).with_name("graceinit"))
TINI = shutil.which("tini") or "/usr/bin/tini"
DUMB_INIT = shutil.which("dumb-init") or "/usr/bin/dumb-init"

RATE = 250            # requests/s, open loop
REQUEST_TIMEOUT = 10  # s; a request that takes longer counts as failed
MAX_IN_FLIGHT = 2000  # the client never holds more connections than this
SETTLE = 0.3          # s of plain steady load between two restarts
GRACE = 30            # --grace-period / gunicorn --graceful-timeout


# ============================================================================ the app

def _notify(message: str) -> bool:
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.connect(address)
        sock.sendall(message.encode())
    return True


def serve(bind: str | None) -> None:
    """A small threaded HTTP server: socket-activated (LISTEN_PID == our pid: fd 3) or bound
    to --bind itself. READY=1 once accepting; on SIGTERM it stops accepting (closes its own
    copy of the socket, never shutdown(2)), finishes the requests in flight and exits 0."""
    pid = os.getpid()
    if os.environ.get("LISTEN_PID") == str(pid) and os.environ.get("LISTEN_FDS"):
        listener = socket.socket(fileno=3)
    else:
        host, _, port = (bind or "127.0.0.1:8080").rpartition(":")
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, int(port)))
        listener.listen(1024)
    listener.setblocking(False)
    body = b"%d\n" % pid
    response = (b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
                b"X-Pid: %d\r\nConnection: close\r\n\r\n%s" % (len(body), pid, body))
    threads: set[threading.Thread] = set()
    lock = threading.Lock()

    def handle(conn: socket.socket) -> None:
        try:
            conn.settimeout(10)
            data = b""
            while b"\r\n\r\n" not in data and len(data) < 65536:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                data += chunk
            conn.sendall(response)
        except OSError:
            pass
        finally:
            conn.close()
            with lock:
                threads.discard(threading.current_thread())

    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGTERM, lambda *_: None)
    signal.signal(signal.SIGINT, lambda *_: None)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    selector.register(wake_r, selectors.EVENT_READ)
    _notify("READY=1\nSTATUS=serving as pid %d" % pid)
    stopping = False
    while not stopping:
        for key, _ in selector.select():
            if key.fileobj == wake_r:
                received = os.read(wake_r, 64)
                if signal.SIGTERM in received or signal.SIGINT in received:
                    stopping = True
                continue
            try:
                conn, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                continue  # another generation took it: they share the accept queue
            conn.setblocking(True)
            thread = threading.Thread(target=handle, args=(conn,))
            with lock:
                threads.add(thread)
            thread.start()
    selector.unregister(listener)
    listener.close()
    with lock:
        in_flight = list(threads)
    for thread in in_flight:
        thread.join()
    os._exit(0)


def wsgi_app(environ, start_response):  # gunicorn: restart:wsgi_app (--chdir benchmarks)
    """The same answer from a gunicorn worker; X-Pid is the arbiter's pid (the generation)."""
    master = os.getppid()
    body = b"%d\n" % master
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body))),
                              ("X-Pid", str(master))])
    return [body]


# ============================================================================ the client

class Result:
    __slots__ = ("t0", "t1", "ok", "pid", "error")

    def __init__(self, t0: float, t1: float, ok: bool, pid: int, error: str) -> None:
        self.t0, self.t1, self.ok, self.pid, self.error = t0, t1, ok, pid, error


class Load:
    """An open-loop load: a request every 1/rate s whatever the server does, each on a new
    connection, in an asyncio loop on its own thread. Bounded by stop() and max_seconds."""

    def __init__(self, port: int, rate: float, max_seconds: float) -> None:
        self.port = port
        self.rate = rate
        self.max_seconds = max_seconds
        self.results: list[Result] = []
        self.saturated = 0  # requests not sent because MAX_IN_FLIGHT were open
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self.t_start = self.t_end = 0.0

    def start(self) -> "Load":
        self._thread.start()
        return self

    def stop(self) -> "Load":
        self._stop.set()
        self._thread.join(REQUEST_TIMEOUT + 10)
        return self

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        tasks: set[asyncio.Task] = set()
        self.t_start = time.monotonic()
        start = loop.time()
        i = 0
        while not self._stop.is_set() and loop.time() - start < self.max_seconds:
            delay = start + i / self.rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            i += 1
            if len(tasks) >= MAX_IN_FLIGHT:
                self.saturated += 1
                continue
            task = loop.create_task(self._one(loop))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        self.t_end = time.monotonic()
        if tasks:
            await asyncio.wait(tasks, timeout=REQUEST_TIMEOUT + 5)

    async def _one(self, loop: asyncio.AbstractEventLoop) -> None:
        t0 = time.monotonic()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            data = await asyncio.wait_for(self._exchange(loop, sock), REQUEST_TIMEOUT)
            head, _, body = data.partition(b"\r\n\r\n")
            pid = 0
            for line in head.split(b"\r\n")[1:]:
                if line.lower().startswith(b"x-pid:"):
                    pid = int(line.split(b":", 1)[1])
            if not head.startswith(b"HTTP/1.") or b" 200 " not in head.split(b"\r\n", 1)[0] + b" " \
                    or not pid or not body:
                self.results.append(Result(t0, time.monotonic(), False, 0, "bad response"))
            else:
                self.results.append(Result(t0, time.monotonic(), True, pid, ""))
        except asyncio.TimeoutError:
            self.results.append(Result(t0, time.monotonic(), False, 0, "timeout"))
        except ConnectionRefusedError:
            self.results.append(Result(t0, time.monotonic(), False, 0, "refused"))
        except ConnectionResetError:
            self.results.append(Result(t0, time.monotonic(), False, 0, "reset"))
        except OSError as error:
            self.results.append(Result(t0, time.monotonic(), False, 0, type(error).__name__))
        finally:
            sock.close()

    async def _exchange(self, loop: asyncio.AbstractEventLoop, sock: socket.socket) -> bytes:
        await loop.sock_connect(sock, ("127.0.0.1", self.port))
        await loop.sock_sendall(sock, b"GET / HTTP/1.0\r\nHost: bench\r\n\r\n")
        chunks = []
        while True:
            chunk = await loop.sock_recv(sock, 65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)

    def first_success(self, pred, timeout: float) -> Result | None:
        """Bounded wait for the first successful result matching pred (by completion time)."""
        deadline = time.monotonic() + timeout
        seen = 0
        best = None
        while time.monotonic() < deadline:
            results = self.results
            for r in results[seen:len(results)]:
                if r.ok and pred(r) and (best is None or r.t1 < best.t1):
                    best = r
            seen = len(results)
            if best is not None:
                return best
            time.sleep(0.002)
        return None


# ============================================================================ processes

def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def probe(port: int, timeout: float = 2.0) -> int | None:
    """One GET; the X-Pid of a 200 answer, or None."""
    # Imported here: this file also runs as the server script (`--serve`), without the
    # repository on its path.
    from benchmarks.drain_apps import http10

    try:
        data = http10(("127.0.0.1", port), "/", timeout)
    except OSError:
        return None
    for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        if line.lower().startswith(b"x-pid:"):
            return int(line.split(b":", 1)[1])
    return None


def wait_serving(port: int, proc: subprocess.Popen, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid = probe(port, 1.0)
        if pid:
            return pid
        if proc.poll() is not None:
            raise RuntimeError("exited with %s before serving: %s" % (proc.returncode, proc.args))
        time.sleep(0.01)
    raise RuntimeError("nothing serving on port %d after %.0fs: %s" % (port, timeout, proc.args))


def gone(pid: int) -> bool:
    """True once pid has exited (reaped, or a zombie)."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            state = f.read().rpartition(b")")[2].split()[0]
    except (OSError, IndexError):
        return True
    return state in (b"Z", b"X")


def wait_gone(pid: int, timeout: float) -> float | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if gone(pid):
            return time.monotonic()
        time.sleep(0.002)
    return None


class Procs:
    """Everything the benchmark started; killed (with descendants) at the end, whatever
    happens. Each runs in its own session so a whole tree can be found and killed."""

    def __init__(self, logdir: Path) -> None:
        self.logdir = logdir
        self.procs: list[subprocess.Popen] = []

    def start(self, argv: list[str], name: str) -> subprocess.Popen:
        log = open(self.logdir / ("%02d-%s.log" % (len(self.procs), name)), "wb")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GRACEINIT_", "LISTEN_"))}
        env.pop("NOTIFY_SOCKET", None)
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
                                start_new_session=True, cwd=str(self.logdir))
        log.close()
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen, timeout: float = 60) -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        self.kill(proc)

    def kill(self, proc: subprocess.Popen) -> None:
        import psutil

        try:
            victims = [psutil.Process(proc.pid)] + psutil.Process(proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            victims = []
        for p in victims:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        psutil.wait_procs(victims, timeout=5)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            pass

    def kill_all(self) -> None:
        for proc in self.procs:
            self.kill(proc)


# ============================================================================ apps and inits

def _gunicorn_version() -> tuple[int, ...] | None:
    try:
        import gunicorn
    except ImportError:
        return None
    return tuple(gunicorn.version_info)


class App:
    def __init__(self, name: str, kind: str) -> None:
        self.name = name
        self.kind = kind

    def argv(self, port: int, socket_activated: bool) -> list[str]:
        if self.kind == "python":
            argv = [PYTHON, "-S", str(Path(__file__).resolve()), "--serve"]
            return argv if socket_activated else argv + ["--bind", "127.0.0.1:%d" % port]
        argv = [PYTHON, "-m", "gunicorn", "--chdir", str(HERE), "--workers", "2",
                "--worker-class", "sync", "--graceful-timeout", str(GRACE),
                "--log-level", "warning"]
        if (_gunicorn_version() or (0,)) >= (25, 1):
            argv.append("--no-control-socket")  # two generations would share its default path
        if not socket_activated:
            argv += ["--bind", "127.0.0.1:%d" % port]
        return argv + ["restart:wsgi_app"]


PY_APP = App("Python server", "python")
GUNICORN = App("gunicorn (2 sync workers)", "gunicorn")

INITS = {
    "no init": [],
    "tini": [TINI, "-s", "--"],
    "dumb-init": [DUMB_INIT, "--"],
    "graceinit": [GRACEINIT, "--"],
}


# ============================================================================ scenarios

class Outcome:
    def __init__(self, method: str, app: App, init: str) -> None:
        self.method = method
        self.app = app
        self.init = init
        self.cycles: list[dict] = []
        self.results: list[Result] = []
        self.duration = 0.0
        self.saturated = 0
        self.error = ""

    @property
    def failed(self) -> list[Result]:
        return [r for r in self.results if not r.ok]

    def summary(self) -> dict:
        ok = [r for r in self.results if r.ok]
        lat = sorted(r.t1 - r.t0 for r in ok)
        to_serving = sorted(c["to_serving"] for c in self.cycles if c.get("to_serving") is not None)
        gaps = sorted(c["gap"] for c in self.cycles if c.get("gap") is not None)
        kinds: dict[str, int] = {}
        for r in self.failed:
            kinds[r.error] = kinds.get(r.error, 0) + 1
        return {
            "method": self.method, "app": self.app.name, "init": self.init,
            "restarts": len(self.cycles), "requests": len(self.results),
            "rate": len(self.results) / self.duration if self.duration else 0.0,
            "failed": len(self.failed), "failed_kinds": kinds,
            "failed_per_restart": len(self.failed) / len(self.cycles) if self.cycles else 0.0,
            "to_serving_p50": pct(to_serving, 50), "to_serving_p99": pct(to_serving, 99),
            "to_serving_max": to_serving[-1] if to_serving else None,
            "gap_p50": pct(gaps, 50), "gap_max": gaps[-1] if gaps else None,
            "latency_p50": pct(lat, 50), "latency_p99": pct(lat, 99),
            "latency_max": lat[-1] if lat else None,
            "saturated": self.saturated, "error": self.error,
        }


def pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    k = (len(values) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def _gap(results: list[Result], start: float, end: float) -> float:
    """The longest interval in [start, end] in which no request completed successfully."""
    times = sorted(r.t1 for r in results if r.ok and start <= r.t1 <= end)
    points = [start] + times + [end]
    return max(b - a for a, b in zip(points, points[1:]))


def _finish(outcome: Outcome, load: Load, windows: list[tuple[float, float]]) -> None:
    load.stop()
    outcome.results = list(load.results)
    outcome.duration = max(1e-9, load.t_end - load.t_start)
    outcome.saturated = load.saturated
    for cycle, (start, end) in zip(outcome.cycles, windows):
        cycle["failed"] = sum(1 for r in outcome.results if not r.ok and start <= r.t0 < end)
        cycle["gap"] = _gap(outcome.results, start, end)


def graceinit_restarts(procs: Procs, app: App, restarts: int, rate: float, notify: bool,
                       say) -> Outcome:
    method = "graceinit restart" + (" (--notify)" if notify else " (--ready-timeout 1)")
    outcome = Outcome(method, app, "graceinit")
    port = free_port()
    options = ["-v", "--listen", "tcp://127.0.0.1:%d" % port, "--restart-signal", "HUP",
               "--grace-period", str(GRACE)]
    options += ["--notify"] if notify else ["--ready-timeout", "1"]
    proc = procs.start([GRACEINIT, *options, "--", *app.argv(port, True)], "graceinit-" + app.kind)
    windows = []
    load = None
    try:
        current = wait_serving(port, proc, 30)
        seen = {current}
        load = Load(port, rate, max_seconds=restarts * 20 + 60).start()
        time.sleep(SETTLE * 2)  # steady load before the first restart
        for i in range(restarts):
            t_signal = time.monotonic()
            proc.send_signal(signal.SIGHUP)
            first = load.first_success(lambda r: r.pid not in seen, 30)
            if first is None:
                raise RuntimeError("restart %d: no response from a new generation in 30s" % (i + 1))
            seen.add(first.pid)
            t_old_gone = wait_gone(current, GRACE + 10)
            if t_old_gone is None:
                raise RuntimeError("restart %d: old generation %d still running" % (i + 1, current))
            outcome.cycles.append({"to_serving": first.t1 - t_signal, "new_pid": first.pid,
                                   "old_gone": t_old_gone - t_signal})
            current = first.pid
            time.sleep(SETTLE)
            windows.append((t_signal, time.monotonic()))
            if (i + 1) % 10 == 0:
                say("    %d/%d restarts" % (i + 1, restarts))
        if proc.poll() is not None:
            raise RuntimeError("graceinit exited with %s" % proc.returncode)
    except RuntimeError as error:
        outcome.error = str(error)
    finally:
        if load is not None:
            _finish(outcome, load, windows)
        procs.stop(proc)
    return outcome


def container_restarts(procs: Procs, app: App, init: str, restarts: int, rate: float,
                       say) -> Outcome:
    outcome = Outcome("container restart", app, init)
    port = free_port()
    argv = INITS[init] + app.argv(port, False)
    proc = procs.start(argv, "%s-%s" % (init.replace(" ", ""), app.kind))
    windows = []
    load = None
    try:
        current = wait_serving(port, proc, 30)
        seen = {current}
        load = Load(port, rate, max_seconds=restarts * 40 + 60).start()
        time.sleep(SETTLE * 2)
        for i in range(restarts):
            t_signal = time.monotonic()
            proc.send_signal(signal.SIGTERM)  # docker restart: stop ...
            try:
                proc.wait(GRACE + 10)
            except subprocess.TimeoutExpired:
                raise RuntimeError("restart %d: %s did not stop" % (i + 1, init))
            t_stopped = time.monotonic()
            procs.kill(proc)
            proc = procs.start(argv, "%s-%s" % (init.replace(" ", ""), app.kind))  # ... start
            first = load.first_success(lambda r: r.pid not in seen and r.t0 >= t_stopped, 60)
            if first is None:
                raise RuntimeError("restart %d: the new instance never served" % (i + 1))
            seen.add(first.pid)
            outcome.cycles.append({"to_serving": first.t1 - t_signal, "new_pid": first.pid,
                                   "stopped": t_stopped - t_signal})
            time.sleep(SETTLE)
            windows.append((t_signal, time.monotonic()))
    except RuntimeError as error:
        outcome.error = str(error)
    finally:
        if load is not None:
            _finish(outcome, load, windows)
        procs.stop(proc)
    return outcome


# ============================================================================ report

def machine() -> dict[str, str]:
    from .common import machine_info

    info = machine_info()

    def version(argv: list[str]) -> str:
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
            return (out.stdout or out.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "not available"

    gv = _gunicorn_version()
    return {
        "cpu": "%s, %s cores available" % (info["cpu"], info["nproc"]),
        "kernel": info["kernel"],
        "python": info["python"],
        "graceinit": version([GRACEINIT, "--version"]),
        "gunicorn": ".".join(map(str, gv)) if gv else "not installed",
        "tini": version([TINI, "--version"]),
        "dumb-init": version([DUMB_INIT, "--version"]),
        "load average at the start": " ".join("%.2f" % x for x in os.getloadavg()),
    }


def ms(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    return "%.0f ms" % (seconds * 1000) if seconds >= 0.0995 else "%.1f ms" % (seconds * 1000)


def render(outcomes: list[Outcome], meta: dict) -> str:
    out = ["# Zero-downtime restart: graceinit vs restarting the container", ""]
    out.append("Run on **%s** with `%s` (%s)." % (meta["date"], meta["command"], meta["elapsed"]))
    out.append("")
    out.append("| machine | |")
    out.append("|---|---|")
    for key, value in meta["machine"].items():
        out.append("| %s | %s |" % (key, value))
    out.append("| load average at the end | %s |" % meta["load_end"])
    out.append("")
    out.append(
        "Open-loop load of **%d requests/s** on 127.0.0.1, every request on a new connection, "
        "%d s timeout; a request fails when it is refused, reset, times out or gets no complete "
        "200 answer. *To serving*: from the signal to the first answer from the new "
        "generation's pid. *Longest gap*: the longest interval, from the signal to the next "
        "restart, in which no request completed successfully (at this rate, ~%.0f ms is the "
        "normal spacing). The machine is shared (2 cores; see the load average): times are "
        "noisy, counts of failed requests much less so."
        % (meta["rate"], REQUEST_TIMEOUT, 1000.0 / meta["rate"]))
    out.append("")
    out.append("| method | app | init | restarts | requests (req/s) | failed | failed per "
               "restart | to serving p50 / p99 | longest gap p50 / max | latency p50 / p99 / max |")
    out.append("|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for o in outcomes:
        s = o.summary()
        kinds = ", ".join("%s %d" % kv for kv in sorted(s["failed_kinds"].items()))
        out.append("| %s | %s | %s | %d | %d (%.0f) | **%d**%s | %.1f | %s / %s | %s / %s | "
                   "%s / %s / %s |" % (
                       s["method"], s["app"], s["init"], s["restarts"], s["requests"], s["rate"],
                       s["failed"], " (%s)" % kinds if kinds else "", s["failed_per_restart"],
                       ms(s["to_serving_p50"]), ms(s["to_serving_p99"]),
                       ms(s["gap_p50"]), ms(s["gap_max"]),
                       ms(s["latency_p50"]), ms(s["latency_p99"]), ms(s["latency_max"])))
    errors = [(o, o.error) for o in outcomes if o.error]
    saturated = [o for o in outcomes if o.saturated]
    if errors or saturated:
        out.append("")
        for o, error in errors:
            out.append("- **%s / %s / %s did not complete**: %s" % (o.method, o.app.name, o.init,
                                                                     error))
        for o in saturated:
            out.append("- %s / %s / %s: the client skipped %d requests (%d already open)" % (
                o.method, o.app.name, o.init, o.saturated, MAX_IN_FLIGHT))
    g = [o.summary() for o in outcomes if o.method.startswith("graceinit restart")]
    c = [o.summary() for o in outcomes if o.method == "container restart"]
    out.append("")
    out.append("**Lost requests:** graceinit restarts lost **%d of %d** requests over **%d** "
               "restarts; container restarts lost %d of %d over %d restarts (%.0f per restart)."
               % (sum(s["failed"] for s in g), sum(s["requests"] for s in g),
                  sum(s["restarts"] for s in g), sum(s["failed"] for s in c),
                  sum(s["requests"] for s in c), sum(s["restarts"] for s in c),
                  sum(s["failed"] for s in c) / max(1, sum(s["restarts"] for s in c))))
    out.append("")
    out.append(
        "How it was measured: *graceinit restart* = `graceinit --listen tcp://127.0.0.1:PORT "
        "--notify --restart-signal HUP --grace-period %d -- APP` (graceinit holds the socket; "
        "the app takes fd 3 via LISTEN_FDS/LISTEN_PID), one SIGHUP per restart once the "
        "previous old generation has exited and %.1f s of plain load have passed. gunicorn "
        "sends READY=1 from its arbiter *before* it forks its workers, so with --notify the old "
        "generation is told to stop while the new one's workers may still be booting: "
        "connections then wait in the shared accept queue until they are up (the longest-gap "
        "and latency columns), none is refused. Without --notify the new generation is "
        "promoted after 1 s alive. "
        "*container restart* = the app binds the port itself; SIGTERM to the init (or to the "
        "app when there is no init), wait for it to exit, start it again -- the process part "
        "of `docker restart`, without the container runtime's own teardown and set-up (add "
        "those for a real container: these numbers are a lower bound)."
        % (GRACE, SETTLE))
    out.append("")
    out.append("Reproduce: `.venv/bin/python -m benchmarks.restart` (full, ~4 min) or "
               "`--quick` (~1 min); `--restarts`, `--container-restarts`, `--rate` change the "
               "counts. Source: [`benchmarks/restart.py`](restart.py).")
    return "\n".join(out) + "\n"


# ============================================================================ main

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.restart",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="5 graceinit restarts per app, "
                        "2 container restarts per init and app")
    parser.add_argument("--out", default=str(HERE / "RESULTS-restart.md"),
                        help="Markdown report (default: benchmarks/RESULTS-restart.md)")
    parser.add_argument("--json", help="also write the summaries and per-restart data as JSON")
    parser.add_argument("--restarts", type=int, help="graceinit restarts per app (default 50)")
    parser.add_argument("--container-restarts", type=int,
                        help="container restarts per init and app (default 10)")
    parser.add_argument("--rate", type=float, default=RATE, help="requests/s (default %d)" % RATE)
    parser.add_argument("-q", "--quiet", action="store_true")
    args = parser.parse_args(argv)
    restarts = args.restarts or (5 if args.quick else 50)
    container = args.container_restarts or (2 if args.quick else 10)

    def say(text: str) -> None:
        if not args.quiet:
            print(text, file=sys.stderr, flush=True)

    if not os.path.exists(GRACEINIT):
        print("graceinit not found at %s (BENCH_GRACEINIT)" % GRACEINIT, file=sys.stderr)
        return 2
    apps = [PY_APP] + ([GUNICORN] if _gunicorn_version() else [])
    if GUNICORN not in apps:
        say("gunicorn is not installed: only the Python server is measured")
    inits = [name for name, prefix in INITS.items() if not prefix or os.path.exists(prefix[0])]

    started = time.monotonic()
    machine_info = machine()
    outcomes: list[Outcome] = []
    logdir = Path(tempfile.mkdtemp(prefix="bench-restart-"))
    procs = Procs(logdir)
    try:
        plan = []
        for app in apps:
            plan.append(("graceinit", app, True))
        if GUNICORN in apps:
            plan.append(("graceinit", GUNICORN, False))
        for app in apps:
            for init in inits:
                plan.append(("container", app, init))
        for kind, app, extra in plan:
            if kind == "graceinit":
                say("graceinit restart x%d: %s%s" % (restarts, app.name,
                                                    "" if extra else " (no --notify)"))
                outcome = graceinit_restarts(procs, app, restarts, args.rate, extra, say)
            else:
                say("container restart x%d: %s under %s" % (container, app.name, extra))
                outcome = container_restarts(procs, app, extra, container, args.rate, say)
            s = outcome.summary()
            say("    %d failed of %d requests, to serving p50 %s%s" % (
                s["failed"], s["requests"], ms(s["to_serving_p50"]),
                ("; ERROR " + outcome.error) if outcome.error else ""))
            outcomes.append(outcome)
    finally:
        procs.kill_all()
    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python -m benchmarks.restart" + (" " + " ".join(argv if argv is not None
                                                                   else sys.argv[1:])).rstrip(),
        "elapsed": "%.0f s" % (time.monotonic() - started),
        "machine": machine_info,
        "load_end": " ".join("%.2f" % x for x in os.getloadavg()),
        "rate": args.rate,
    }
    report = render(outcomes, meta)
    Path(args.out).write_text(report)
    say("wrote %s (process logs in %s)" % (args.out, logdir))
    if args.json:
        Path(args.json).write_text(json.dumps({
            "meta": meta,
            "outcomes": [dict(o.summary(), cycles=o.cycles) for o in outcomes]}, indent=1))
    print(report)
    errors = [o for o in outcomes if o.error]
    return 1 if errors else 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        bind = sys.argv[sys.argv.index("--bind") + 1] if "--bind" in sys.argv else None
        serve(bind)
    else:
        sys.exit(main())
