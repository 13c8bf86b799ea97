#!/usr/bin/env python3
"""stdio_probe: binary-safe stdio check.

Reads stdin to EOF, then writes to stdout ``ALL + data + ALL`` where ALL is
bytes 0..255 (so NUL, CR, 0xff, invalid UTF-8 ...), and ``STDERR_PAYLOAD`` to
stderr; exits 0.  Nothing is decoded, everything goes through os.read/os.write
on fds 0, 1, 2.  Tests import ALL and STDERR_PAYLOAD to build the expected bytes.
"""
import os
import sys

ALL = bytes(range(256))
STDERR_PAYLOAD = b"err\x00\xff\xfe\r\nline2\x00\n"


def expected_stdout(data):
    return ALL + data + ALL


def _write_all(fd, data):
    while data:
        n = os.write(fd, data)
        data = data[n:]


def main():
    chunks = []
    while True:
        chunk = os.read(0, 65536)
        if not chunk:
            break
        chunks.append(chunk)
    _write_all(1, expected_stdout(b"".join(chunks)))
    _write_all(2, STDERR_PAYLOAD)
    return 0


if __name__ == "__main__":
    sys.exit(main())
