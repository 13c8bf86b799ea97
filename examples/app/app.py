#!/usr/bin/env python3
"""A small HTTP service that terminates gracefully: the application half of graceinit's story.

graceinit (PID 1) owns the *timing* of a stop: ready file, stop hook, stop delay while the
load balancer catches up, grace period, SIGKILL. The application owns *draining*: when SIGTERM
finally reaches it, it stops accepting connections, lets the requests already in flight
finish, and exits 0. Nothing else is needed in the app; standard library only.

Endpoints:
  GET /              a quick answer
  GET /healthz       200 while serving, 503 once draining
  GET /slow?seconds=N    answers after N seconds (an in-flight request to watch drain)
  GET /demo/orphan?count=N&seconds=S
                     leaks N background processes the way `cmd &` in a shell-out does: they are
                     orphaned at once and re-parented to PID 1, which must reap them (graceinit
                     does; a bare python app as PID 1 would leave zombies)

Signals:
  SIGTERM / SIGINT   drain and exit 0
  SIGUSR1            logged (stand-in for "reopen logs" / "dump stats"); arrives through
                     graceinit's forwarding, e.g. `docker kill -s USR1 CONTAINER`

Environment:
  PORT               listen port (default 8080)
  HOST               listen address (default 0.0.0.0, every interface)
  APP_IGNORE_SIGTERM=1  misbehave: ignore SIGTERM (to watch graceinit's --grace-period SIGKILL)
"""

import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse


def log(msg: str) -> None:
    print(f"[app] {time.time():.3f} {msg}", flush=True)


class State:
    draining = False
    in_flight = 0
    lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "graceinit-example/1"

    def log_message(self, fmt, *args):  # quiet access log; the interesting lines are ours
        pass

    def _reply(self, code: int, body: str) -> None:
        data = (body + "\n").encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        if State.draining:
            # Tell keep-alive clients to reconnect elsewhere instead of reusing this connection.
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        with State.lock:
            State.in_flight += 1
        try:
            url = urlparse(self.path)
            query = parse_qs(url.query)
            if url.path == "/":
                self._reply(200, f"hello from pid {os.getpid()}")
            elif url.path == "/healthz":
                self._reply(503 if State.draining else 200, "draining" if State.draining else "ok")
            elif url.path == "/slow":
                seconds = min(float(query.get("seconds", ["2"])[0]), 60.0)
                log(f"slow request started ({seconds:g}s)")
                time.sleep(seconds)
                log(f"slow request finished ({seconds:g}s)")
                self._reply(200, f"slept {seconds:g}s")
            elif url.path == "/demo/orphan":
                count = min(int(query.get("count", ["1"])[0]), 100)
                seconds = min(float(query.get("seconds", ["0.5"])[0]), 60.0)
                # `sh -c 'sleep S & ...'` exits at once; its background sleeps lose their parent
                # and the kernel hands them to PID 1.
                script = "".join(f"sleep {seconds:g} & echo $!; " for _ in range(count))
                out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True)
                pids = out.stdout.split()
                log(f"leaked {len(pids)} orphan(s): {' '.join(pids)}")
                self._reply(200, " ".join(pids))
            else:
                self._reply(404, "not found")
        finally:
            with State.lock:
                State.in_flight -= 1


def main() -> int:
    port = int(os.environ.get("PORT", "8080"))
    server = ThreadingHTTPServer((os.environ.get("HOST", "0.0.0.0"), port), Handler)
    server.daemon_threads = False  # server_close() then waits for in-flight requests
    stopping = threading.Event()

    def on_stop(signum, _frame):
        if stopping.is_set():
            log(f"{signal.Signals(signum).name} again: still draining")
            return
        stopping.set()
        State.draining = True
        log(f"{signal.Signals(signum).name} received: draining, {State.in_flight} request(s) in flight")
        # shutdown() blocks until serve_forever() returns, so call it off the main thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    def on_usr1(signum, _frame):
        log(f"SIGUSR1 received (pid {os.getpid()}): {State.in_flight} request(s) in flight")

    if os.environ.get("APP_IGNORE_SIGTERM") == "1":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        log("misbehaving on purpose: SIGTERM is ignored")
    else:
        signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGUSR1, on_usr1)

    log(f"listening on :{port} (pid {os.getpid()}, uid {os.getuid()})")
    server.serve_forever(poll_interval=0.2)
    # The listener is no longer polled; close it, then wait for handler threads to finish.
    server.server_close()
    log("drained, exiting 0")
    return 0


if __name__ == "__main__":
    sys.exit(main())
