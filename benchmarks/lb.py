"""A small L4 load balancer on 127.0.0.1 — the "Service" of the rolling-termination benchmark.

Like kube-proxy (iptables mode) it picks a backend per *connection*, at random among the
endpoints it currently knows, and does not retry: if the chosen backend refuses the connection the client
gets ``502`` (a failed request), if the backend resets mid-response the client's connection is
aborted.  Endpoints are removed/added by commands on stdin, so the harness can model the
propagation lag between "pod deleted" and "endpoint removed".

    python lb.py BACKEND_PORT [BACKEND_PORT ...]
    stdout: "ready PORT"; stdin commands: "remove I", "add I", "stats" (→ one JSON line)
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
from collections import Counter


async def main(ports: list[int]) -> None:
    backends = [("127.0.0.1", p) for p in ports]
    active = set(range(len(backends)))
    stats: Counter = Counter()

    async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Copy until EOF; False if the source connection broke (reset)."""
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            return False
        try:
            if writer.can_write_eof():
                writer.write_eof()
        except (ConnectionError, OSError):
            pass
        return True

    async def handle(cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        live = sorted(active)
        idx = random.choice(live) if live else None
        stats["connections"] += 1
        bw = None
        try:
            if idx is None:
                raise ConnectionRefusedError("no endpoints")
            try:
                br, bw = await asyncio.wait_for(asyncio.open_connection(*backends[idx]), 3)
            except (OSError, asyncio.TimeoutError) as e:
                stats[f"backend{idx}_connect_failed"] += 1
                body = f"backend {idx} unavailable: {type(e).__name__}\n".encode()
                cw.write(b"HTTP/1.0 502 Bad Gateway\r\nContent-Length: %d\r\n"
                         b"Connection: close\r\n\r\n%s" % (len(body), body))
                await cw.drain()
                return
            stats[f"backend{idx}_connections"] += 1
            up = asyncio.ensure_future(pump(cr, bw))
            ok = await asyncio.wait_for(pump(br, cw), 120)
            if not ok:  # backend reset: make the client see a broken connection too
                stats[f"backend{idx}_reset"] += 1
                cw.transport.abort()
            up.cancel()
        except (ConnectionError, OSError, asyncio.TimeoutError):
            stats["client_errors"] += 1
        finally:
            for w in (bw, cw):
                if w is not None:
                    try:
                        w.close()
                    except Exception:  # noqa: BLE001
                        pass

    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=4096, reuse_address=True)
    port = server.sockets[0].getsockname()[1]
    print(f"ready {port}", flush=True)

    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    while True:
        line = await stdin.readline()
        if not line:
            break
        cmd, _, arg = line.decode().strip().partition(" ")
        if cmd == "remove":
            active.discard(int(arg))
            print("ok", flush=True)
        elif cmd == "add":
            active.add(int(arg))
            print("ok", flush=True)
        elif cmd == "stats":
            print(json.dumps(dict(stats, active=sorted(active))), flush=True)
        elif cmd == "quit":
            break
    server.close()


if __name__ == "__main__":
    asyncio.run(main([int(p) for p in sys.argv[1:]]))
