"""Issue 9, --stop-delay auto: a real HTTP server under the real graceinit, real requests on
127.0.0.1, and the kernel's own view of them (netlink sock_diag).

The app prints `TERM <monotonic time>` when the stop signal reaches it; the client records
when its last request was answered. CLOCK_MONOTONIC is the same clock in every process.
"""
import http.client
import os
import re
import signal
import threading
import time

import pytest

from helpers.launch import py_helper
from helpers.procfs import wait_until

TERM_LINE = re.compile(r"^TERM (\S+)$")


class Client(threading.Thread):
    """Keep-alive GET requests every `interval` seconds until stopped (bounded in time)."""

    def __init__(self, port, interval=0.01, limit=15.0):
        super().__init__(daemon=True)
        self.port, self.interval, self.limit = port, interval, limit
        self.halt = threading.Event()
        self.answered = 0
        self.failures = []
        self.last_answer = None

    def run(self):
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        deadline = time.monotonic() + self.limit
        while not self.halt.is_set() and time.monotonic() < deadline:
            try:
                connection.request("GET", "/")
                connection.getresponse().read()
                self.answered += 1
                self.last_answer = time.monotonic()
            except (OSError, http.client.HTTPException) as error:
                self.failures.append(repr(error))
                return
            self.halt.wait(self.interval)
        connection.close()

    def stop(self):
        self.halt.set()
        self.join(10)


def start_app(procs, graceinit_bin, tmp_path, *options, pid1=False):
    port_file = tmp_path / "port"
    run = procs.start([graceinit_bin, "-v", "--stop-delay", "auto", *options, "--",
                       *py_helper("drain_app.py", port_file)], pid1=pid1)
    port = wait_until(lambda: port_file.exists() and int(port_file.read_text()), 10,
                      lambda: "the app to listen; stderr: " + run.stderr_text())
    return run, port


def term_time(run, timeout):
    line = run.stdout.wait_for(TERM_LINE, timeout=timeout)
    return float(TERM_LINE.match(line).group(1))


@pytest.mark.timeout(30)
def test_traffic_stops_and_the_stop_signal_follows_soon(procs, graceinit_bin, tmp_path, pid1):
    run, port = start_app(procs, graceinit_bin, tmp_path, "--stop-delay-max", "15", pid1=pid1)
    client = Client(port)
    client.start()
    wait_until(lambda: client.answered >= 20, 5, "the first requests")
    run.send(signal.SIGTERM)
    time.sleep(1.0)  # the traffic goes on after the stop signal: that is the point
    client.stop()
    assert client.failures == [], "requests failed while draining"
    waited = term_time(run, 10) - client.last_answer
    assert 0.3 <= waited <= 1.5, f"stop signal forwarded {waited:.2f}s after the last request"
    assert run.wait(10) == 0
    assert re.search(r"stop delay over after .*\(quiet\)", run.stderr_text()), run.stderr_text()


@pytest.mark.timeout(30)
def test_traffic_that_never_stops_gets_the_stop_signal_at_the_max(procs, graceinit_bin, tmp_path):
    run, port = start_app(procs, graceinit_bin, tmp_path, "--stop-delay-max", "3")
    client = Client(port)
    client.start()
    wait_until(lambda: client.answered >= 20, 5, "the first requests")
    sent = time.monotonic()
    run.send(signal.SIGTERM)
    try:
        forwarded = term_time(run, 10) - sent
    finally:
        client.stop()
    assert 2.9 <= forwarded <= 3.6, f"forwarded {forwarded:.2f}s after the stop signal; max 3s"
    assert client.last_answer >= sent + 2.5, "the app stopped serving before the max"
    assert run.wait(10) == 0
    assert "stop delay over after" in run.stderr_text() and "(max)" in run.stderr_text()


@pytest.mark.timeout(30)
def test_no_traffic_proves_nothing_and_waits_for_the_max(procs, graceinit_bin, tmp_path):
    run, _ = start_app(procs, graceinit_bin, tmp_path, "--stop-delay-max", "2")
    sent = time.monotonic()
    run.send(signal.SIGTERM)
    forwarded = term_time(run, 10) - sent
    assert 1.9 <= forwarded <= 2.6, f"forwarded {forwarded:.2f}s after the stop signal; max 2s"
    assert run.wait(10) == 0
    assert "watching requests to TCP port" in run.stderr_text()


@pytest.mark.timeout(30)
def test_a_second_sigterm_forwards_at_once(procs, graceinit_bin, tmp_path):
    run, port = start_app(procs, graceinit_bin, tmp_path, "--stop-delay-max", "20")
    client = Client(port)
    client.start()
    wait_until(lambda: client.answered >= 20, 5, "the first requests")
    run.send(signal.SIGTERM)
    run.stderr and wait_until(lambda: "watching requests" in run.stderr_text(), 5, "the drain to start")
    second = time.monotonic()
    run.send(signal.SIGTERM)
    try:
        forwarded = term_time(run, 10) - second
    finally:
        client.stop()
    assert forwarded <= 0.5, f"forwarded {forwarded:.2f}s after the second SIGTERM"
    assert run.wait(10) == 0
    assert "hurried" in run.stderr_text()


@pytest.mark.timeout(20)
def test_a_bad_drain_ignore_is_a_usage_error_naming_it(procs, graceinit_bin):
    rc, _, err = procs.run([graceinit_bin, "--stop-delay", "auto", "--drain-ignore", "10.0.0.0/33",
                            "--", "true"])
    assert rc == 2
    lines = err.decode().strip().splitlines()
    assert len(lines) == 1 and "--drain-ignore" in lines[0] and "10.0.0.0/33" in lines[0], lines


@pytest.mark.timeout(20)
def test_no_tcp_listener_warns_once_and_waits_the_max(procs, graceinit_bin):
    run = procs.start([graceinit_bin, "--stop-delay", "auto", "--stop-delay-max", "1.5", "--",
                       "sleep", "30"])
    run.child()
    sent = time.monotonic()
    run.send(signal.SIGTERM)
    assert run.wait(10) == 128 + signal.SIGTERM
    took = time.monotonic() - sent
    assert 1.4 <= took <= 3.0, took
    warnings = [line for line in run.stderr_lines() if "--stop-delay auto" in line]
    assert len(warnings) == 1 and "no TCP listening socket" in warnings[0], run.stderr_lines()


def _listener(host, port=0):
    import socket
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(16)
    return sock


@pytest.mark.timeout(20)
def test_the_sampler_sees_only_this_apps_connections_and_not_ignored_peers():
    """The kernel's view, read directly: connections to our listener's address and port, by
    peer, with data counters; another server on the same port, and ignored peers, left out."""
    import socket

    from graceinit import traffic

    ours = _listener("127.0.0.2")
    port = ours.getsockname()[1]
    other = _listener("127.0.0.3", port)  # same port, another address: not ours
    watch = traffic.watch(os.getpid(), ["127.0.0.9/32"],
                          [(socket.AF_INET, port, traffic.packed(socket.AF_INET, "127.0.0.2"))])
    opened = []
    try:
        for source, server in (("127.0.0.5", ours), ("127.0.0.9", ours), ("127.0.0.5", other)):
            client = socket.create_connection((server.getsockname()[0], port), source_address=(source, 0))
            accepted, _ = server.accept()
            client.sendall(b"GET / HTTP/1.1\r\n\r\n")
            opened += [client, accepted]
        wait_until(lambda: all(c.segs_in for c in watch.sample(0).conns.values()), 5, "data to arrive")
        sample = watch.sample(time.monotonic())
        assert [conn.peer for conn in sample.conns.values()] == ["127.0.0.5"], sample
        assert [conn.segs_in for conn in sample.conns.values()] == [1]
        assert "127.0.0.9/32" in watch.describe() and str(port) in watch.describe()
    finally:
        watch.close()
        for sock in opened + [ours, other]:
            sock.close()
