"""A TCP server for the ledger tests (issue 16), on 127.0.0.1:8080 of a network namespace
of the test's own.

Usage: ledger_app.py MODE READY_FILE. Writes READY_FILE once it listens.
  close-at-once  answers each connection (HTTP/1.0, then closes it); on SIGTERM closes its
                 listener at once and exits 1 s later (the grace period sees the refusals)
  clean          the same, exiting at once on SIGTERM
  hold           ignores SIGTERM; of the connections it accepts, the 1st has its request
                 read and never answered, the 2nd is never read, the 3rd is answered and
                 kept open (idle keep-alive): for SIGKILL to find
"""
import os
import signal
import socket
import sys
import time

ANSWER = b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"


def main():
    mode, ready = sys.argv[1], sys.argv[2]
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 8080))
    listener.listen(128)
    stopping = []

    def on_term(signum, frame):
        listener.close()
        stopping.append(time.monotonic())

    signal.signal(signal.SIGTERM, signal.SIG_IGN if mode == "hold" else on_term)
    with open(ready + ".tmp", "w") as f:
        f.write(str(os.getpid()))
    os.rename(ready + ".tmp", ready)
    held = []
    while not stopping:
        try:
            conn, _ = listener.accept()
        except OSError:
            break
        if mode == "hold":
            if len(held) % 3 != 1:
                conn.recv(1000)
            if len(held) % 3 == 2:
                conn.sendall(ANSWER)
            held.append(conn)
            continue
        conn.recv(1000)
        conn.sendall(ANSWER)
        conn.close()
    if mode == "close-at-once":
        time.sleep(1.0)


if __name__ == "__main__":
    main()
