"""Clients for the ledger tests (issue 16), run inside the test's network namespace.

Usage: ledger_client.py MODE SECONDS
  hammer  a new connection per request to 127.0.0.1:8080 every 5 ms for SECONDS (bounded:
          at most 5,000), reading each answer; prints "ok N refused N other N" at the end
  hold    3 connections, one request on each, one after the other; prints "sent" and holds
          them for SECONDS
"""
import socket
import sys
import time

from rawhttp import exchange  # (this script's own folder is first on sys.path)

REQUEST = b"GET / HTTP/1.0\r\n\r\n"


def hammer(seconds):
    counts = {"ok": 0, "refused": 0, "other": 0}
    deadline = time.monotonic() + seconds
    for _ in range(5000):
        if time.monotonic() >= deadline:
            break
        try:
            answer = exchange(("127.0.0.1", 8080), REQUEST, timeout=2)
            counts["ok" if answer.startswith(b"HTTP/1.0 200") else "other"] += 1
        except ConnectionRefusedError:
            counts["refused"] += 1
        except OSError:
            counts["other"] += 1
        time.sleep(0.005)
    print(" ".join(f"{key} {value}" for key, value in counts.items()), flush=True)


def hold(seconds):
    conns = []
    for _ in range(3):
        conn = socket.create_connection(("127.0.0.1", 8080), timeout=2)
        conn.sendall(REQUEST)
        conns.append(conn)
        time.sleep(0.1)  # accepted in this order
    conns[2].recv(1000)  # the answered one: idle from now on
    print("sent", flush=True)
    time.sleep(seconds)


if __name__ == "__main__":
    {"hammer": hammer, "hold": hold}[sys.argv[1]](float(sys.argv[2]))
