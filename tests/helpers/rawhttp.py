"""A raw HTTP exchange for tests: one new connection, the request as bytes, everything the
server sends until it closes (how a kubelet probe and an HTTP/1.0 client behave)."""
from __future__ import annotations

import socket
from typing import Optional, Tuple


def exchange(address: Tuple[str, int], request: bytes, timeout: float = 5.0,
             source: Optional[str] = None) -> bytes:
    with socket.create_connection(address, timeout=timeout,
                                  source_address=(source, 0) if source else None) as sock:
        sock.sendall(request)
        data = b""
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                return data
            data += chunk
