"""The drain benchmark's processes: the backend app, the clients, and idle sockets.

    gunicorn -k gthread ... benchmarks.drain_apps:wsgi          # the app (WSGI)
    uvicorn ... benchmarks.drain_apps:asgi                       # the app (ASGI)
    python -m benchmarks.drain_apps load URL --mode MODE ...     # a client, until SIGINT
    python -m benchmarks.drain_apps hold CONNECTIONS             # idle sockets, until SIGTERM

A client writes one line per request to --out when it stops: `start end status backend`
(monotonic seconds; status 200, another HTTP status, or an error name; backend "A" or "B"
from the body). Modes:

- keepalive: each of --clients threads keeps one connection and sends --rate req/s;
- server-close: a new connection per request with `Connection: close` (the server closes);
- close-first: a new connection per request, closed by the client after the answer, with no
  `Connection: close` (curl against a keep-alive server: no TIME_WAIT on the server);
- probe: like server-close with the kubelet's User-Agent, from --source, every --period s (a missed
  tick is kept and the rest dropped, as Go's ticker does);
- burst: --size simultaneous HTTP/1.0 requests every --period s;
- upload: an --upload-mb MB POST on a connection of its own every --period s.

`--t0 T --start S --stop E` run the client from T+S to T+E (monotonic), else at once until SIGINT.
"""

from __future__ import annotations

import argparse
import http.client
import os
import resource
import signal
import socket
import sys
import threading
import time
from typing import List, Optional, Tuple
from urllib.parse import urlsplit

BODY = f"ok {os.environ.get('BENCH_NAME', '?')}\n".encode()


def wsgi(environ, start_response):  # type: ignore[no-untyped-def]
    length = int(environ.get("CONTENT_LENGTH") or 0)
    while length > 0:  # uploads: read the whole body before answering
        length -= len(environ["wsgi.input"].read(min(length, 1 << 16)) or b"x" * length)
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY)))])
    return [BODY]


async def asgi(scope, receive, send):  # type: ignore[no-untyped-def]
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(BODY)).encode())]})
    await send({"type": "http.response.body", "body": BODY})


# --- clients --------------------------------------------------------------------------------


def http10(address: Tuple[str, int], path: str, timeout: float, source: str = "") -> bytes:
    """One HTTP/1.0 GET on a connection of its own: everything the server sends until it
    closes (the bursts here, bench_ledger's slow requests)."""
    with socket.create_connection(address, timeout=timeout, source_address=(source, 0) if source else None) as sock:
        sock.sendall(b"GET " + path.encode() + b" HTTP/1.0\r\n\r\n")
        data = b""
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                return data
            data += chunk


Record = Tuple[float, float, str, str]  # start, end, status, backend


class Load:
    def __init__(self, args: argparse.Namespace) -> None:
        url = urlsplit(args.url)
        self.host, self.port = url.hostname or "127.0.0.1", url.port or 80
        self.args = args
        self.records: List[Record] = []
        self.lock = threading.Lock()
        self.halt = threading.Event()
        self.upload = b"x" * int(args.upload_mb * (1 << 20)) if args.mode == "upload" else b""

    def record(self, start: float, status: str, body: bytes = b"") -> None:
        backend = body.decode(errors="replace").split()[-1] if body.startswith(b"ok ") else "-"
        with self.lock:
            self.records.append((start, time.monotonic(), status, backend))

    def connect(self) -> http.client.HTTPConnection:
        connection = http.client.HTTPConnection(self.host, self.port, timeout=5,
                                                source_address=(self.args.source, 0) if self.args.source else None)
        connection.connect()
        return connection

    def one(self, connection: Optional[http.client.HTTPConnection]) -> Optional[http.client.HTTPConnection]:
        """One request; returns the connection to keep (keepalive) or None."""
        mode, start = self.args.mode, time.monotonic()
        try:
            conn = connection or self.connect()
            headers = {}
            if mode in ("server-close", "probe"):
                headers["Connection"] = "close"
            if mode == "probe":
                headers["User-Agent"] = "kube-probe/1.33"
            if mode == "upload":
                conn.request("POST", "/", body=self.upload, headers={"Connection": "close"})
            else:
                conn.request("GET", "/", headers=headers)
            answer = conn.getresponse()
            body = answer.read()
            self.record(start, str(answer.status), body)
            if mode == "keepalive" and not answer.will_close:
                return conn
            conn.close()
        except (OSError, http.client.HTTPException) as error:
            if connection is not None:
                connection.close()
                if isinstance(error, (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)):
                    # A kept-alive connection the server had closed meanwhile (nginx's reload
                    # closes its idle client connections): like every HTTP client, retry once
                    # on a new connection. Counted apart, not as a failure.
                    self.record(start, "stale", b"")
                    return self.one(None)
            self.record(start, type(error).__name__)
        return None

    def raw10(self) -> None:
        """One HTTP/1.0 request on a socket of its own (bursts)."""
        start = time.monotonic()
        try:
            data = http10((self.host, self.port), "/", 5, self.args.source)
            head, _, body = data.partition(b"\r\n\r\n")
            status = head.split(b" ")[1].decode() if head.startswith(b"HTTP/") else "garbled"
            self.record(start, status, body)
        except OSError as error:
            self.record(start, type(error).__name__)

    def paced(self, rate: float) -> None:
        connection = None
        interval, next_at = 1.0 / rate, time.monotonic()
        while not self.halt.is_set() and time.monotonic() < self.end:
            connection = self.one(connection)
            next_at += interval
            behind = time.monotonic() - next_at
            if self.args.mode == "probe" and behind > interval:
                # The kubelet's ticker (Go's time.Ticker) keeps one missed tick and drops the
                # rest: after a stall one probe goes at once, the next on the grid, never a
                # catch-up run of them.
                next_at += interval * int(behind / interval)
            self.halt.wait(max(0.0, next_at - time.monotonic()))

    def bursts(self) -> None:
        next_at = time.monotonic()
        while not self.halt.is_set() and time.monotonic() < self.end:
            if self.args.mode == "burst":
                threads = [threading.Thread(target=self.raw10) for _ in range(self.args.size)]
            else:
                threads = [threading.Thread(target=self.one, args=(None,))]
            for thread in threads:
                thread.start()
            next_at += self.args.period
            self.halt.wait(max(0.0, next_at - time.monotonic()))
        for thread in threading.enumerate():
            if thread is not threading.current_thread() and not thread.daemon:
                thread.join(10)

    def run(self) -> None:
        args = self.args
        begin = args.t0 + args.start if args.t0 is not None else time.monotonic()
        self.end = args.t0 + args.stop if args.t0 is not None and args.stop is not None else time.monotonic() + 600
        self.halt.wait(max(0.0, begin - time.monotonic()))
        if args.mode in ("burst", "upload"):
            workers = [threading.Thread(target=self.bursts)]
        elif args.mode == "probe":
            workers = [threading.Thread(target=self.paced, args=(1.0 / args.period,))]
        else:
            workers = [threading.Thread(target=self.paced, args=(args.rate,)) for _ in range(args.clients)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()


def load(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(prog="drain_apps load")
    parser.add_argument("url")
    parser.add_argument("--mode", required=True,
                        choices=["keepalive", "server-close", "close-first", "probe", "burst", "upload"])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rate", type=float, default=40.0, help="requests/s per client")
    parser.add_argument("--period", type=float, default=1.0)
    parser.add_argument("--size", type=int, default=20)
    parser.add_argument("--upload-mb", type=float, default=8.0)
    parser.add_argument("--source", default="")
    parser.add_argument("--t0", type=float)
    parser.add_argument("--start", type=float, default=0.0)
    parser.add_argument("--stop", type=float)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    client = Load(args)
    signal.signal(signal.SIGINT, lambda *_: client.halt.set())
    signal.signal(signal.SIGTERM, lambda *_: client.halt.set())
    runner = threading.Thread(target=client.run, daemon=True)
    runner.start()
    while runner.is_alive():
        runner.join(0.2)
    with open(args.out, "w") as out:
        for start, end, status, backend in sorted(client.records):
            out.write(f"{start:.6f} {end:.6f} {status} {backend}\n")
    return 0


def hold(argv: List[str]) -> int:
    """CONNECTIONS idle established loopback connections (2 sockets each) in this process's
    network namespace, until SIGTERM: the other pods of a node, for the sampler's cost."""
    count = int(argv[0])
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 2 * count + 64
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), max(hard, want)))
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4096)
    keep = []
    for _ in range(count):
        client = socket.create_connection(server.getsockname())
        accepted, _ = server.accept()
        keep += [client, accepted]
    print("ready", flush=True)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    return 0


if __name__ == "__main__":
    command, rest = sys.argv[1], sys.argv[2:]
    sys.exit({"load": load, "hold": hold}[command](rest))
