"""A small HTTP app that drains on SIGTERM, the way SEEDS.md section 3 asks of business code:
stop taking new connections, finish what is in flight, exit 0."""

import http.server
import os
import signal
import sys
import threading
import time


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def do_GET(self) -> None:
        if self.path.startswith("/slow"):
            time.sleep(2.0)  # a long request, in flight when the stop signal comes
        body = f"served by pid {os.getpid()} {self.path}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def main() -> None:
    port = int(sys.argv[1])
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = False  # in-flight requests are waited for on close
    server.block_on_close = True

    def drain(signum: int, frame: object) -> None:
        print(f"app: got {signal.Signals(signum).name}, draining", flush=True)
        threading.Thread(target=server.shutdown).start()

    signal.signal(signal.SIGTERM, drain)
    print(f"app: listening on 127.0.0.1:{port}", flush=True)
    server.serve_forever()
    server.server_close()  # joins the request threads: in-flight requests finish
    print("app: drained, exiting 0", flush=True)


if __name__ == "__main__":
    main()
