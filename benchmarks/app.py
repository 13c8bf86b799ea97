"""A small HTTP backend that drains on SIGTERM — the app of the rolling-termination benchmark.

What the seeds ask of business code: on SIGTERM stop taking new work, finish what is in
flight, then exit.  Here: the stdlib ``ThreadingHTTPServer`` (a thread per request), and on
SIGTERM ``shutdown()`` stops the accept loop, ``server_close()`` closes the listening socket
(connections that arrive from now on are refused) and joins every request thread still
running, then the process exits 0.

    GET /            → 200 "ok NAME /"
    GET /slow?ms=N   → the same after N ms (the long-request variant)

``--ignore-sigterm`` makes it a third-party program that cannot be changed: SIGTERM is
ignored and it serves until SIGKILL.  ``--status-file`` records CLOCK_MONOTONIC (ns) at
"start", "term" (SIGTERM seen) and "drained" so the harness can line events up.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    server_version = "bench-app/1"

    def do_GET(self) -> None:  # noqa: N802
        url = urlparse(self.path)
        if url.path == "/slow":
            ms = float(parse_qs(url.query).get("ms", ["2000"])[0])
            time.sleep(min(ms, 60_000) / 1000)
        body = f"ok {self.server.name} {url.path}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


class Server(ThreadingHTTPServer):
    daemon_threads = False      # in-flight requests are finished, not dropped …
    block_on_close = True       # … server_close() joins their threads
    request_queue_size = 1024   # listen backlog
    allow_reuse_address = True
    name = "app"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--name", default="app")
    ap.add_argument("--ignore-sigterm", action="store_true")
    ap.add_argument("--status-file")
    args = ap.parse_args()

    status = open(args.status_file, "a", buffering=1) if args.status_file else None

    def note(event: str) -> None:
        if status:
            status.write(f"{event} {time.clock_gettime_ns(time.CLOCK_MONOTONIC)}\n")

    srv = Server(("127.0.0.1", args.port), Handler)
    srv.name = args.name

    def on_term(signum: int, frame: object) -> None:
        note("term")
        # shutdown() blocks until serve_forever() has returned: call it from another thread
        threading.Thread(target=srv.shutdown, daemon=True).start()

    if args.ignore_sigterm:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    else:
        signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    note("start")
    srv.serve_forever(poll_interval=0.05)
    srv.server_close()  # close the listener, then wait for in-flight requests
    note("drained")
    print(f"[{args.name}] drained, exiting (pid {os.getpid()})", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
