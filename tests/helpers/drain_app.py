"""A small HTTP/1.1 keep-alive server for the drain tests.

Usage: drain_app.py PORT_FILE [EXTRA_LISTENERS]. Listens on 127.0.0.1 (a free port, written
to PORT_FILE), answers every GET with 200 "ok" (closing the connection for HTTP/1.0 or
`Connection: close`, keeping it open otherwise), and on SIGTERM prints `TERM <monotonic
time>` and exits 0. EXTRA_LISTENERS more TCP sockets listen on free ports, never used
(an app with thousands of listening ports).
"""
import os
import resource
import signal
import socket
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # one request per round trip, not per delayed ACK

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


class Server(ThreadingHTTPServer):
    request_queue_size = 128  # like a real server's backlog: a burst of 20 is not dropped


def main():
    server = Server(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    extra = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    if extra:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, extra + 256)), hard))
    listeners = []
    for _ in range(extra):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        listeners.append(sock)

    def on_term(signum, frame):
        os.write(1, b"TERM %.6f\n" % time.monotonic())
        os._exit(0)

    signal.signal(signal.SIGTERM, on_term)
    path = sys.argv[1]
    with open(path + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    os.rename(path + ".tmp", path)
    server.serve_forever()


if __name__ == "__main__":
    main()
