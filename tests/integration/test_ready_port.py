"""--ready-port: graceinit answers readiness probes itself (issue 19 item 3).

A kubelet HTTP probe on graceinit's own port: 200 while the child is ready, 503 from the
stop signal on (while the child still serves the stop delay), /live 200 while graceinit
runs. It must never block PID 1 (idle connections, floods), never leak into the child, and
a port that cannot be bound is a usage error before anything starts. Real processes, real
sockets on loopback.
"""
import os
import signal
import socket
import time

import pytest

from helpers import procfs, py_helper, wait_until
from helpers.rawhttp import exchange


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _probe(port: int, path: str = "/ready", method: str = "GET", timeout: float = 2.0):
    """(status code, body) as the kubelet sees it: a new connection, Connection: close."""
    data = exchange(("127.0.0.1", port), f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                    "User-Agent: kube-probe/1.34\r\nAccept: */*\r\nConnection: close\r\n\r\n".encode(), timeout)
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body.decode()


def _answers(port: int):
    try:
        return _probe(port)
    except OSError:
        return None


@pytest.mark.timeout(30)
def test_ready_while_serving_then_503_from_the_stop_signal_while_the_child_still_serves(
        graceinit_bin, procs, pid1):
    port = _free_port()
    sup = procs.start([str(graceinit_bin), "--ready-port", f"127.0.0.1:{port}", "--stop-delay", "3",
                       "--", *py_helper("sigprinter.py", "--die-on", "TERM")], pid1=pid1)
    sup.stdout.expect("ready", timeout=15)
    assert wait_until(lambda: _answers(port), 5, "the ready port to answer") == (200, "ready\n")
    assert _probe(port, "/live") == (200, "alive\n")
    assert _probe(port, method="HEAD")[0] == 200

    t0 = sup.signal(signal.SIGTERM)
    status = wait_until(lambda: _probe(port)[0] == 503 and time.monotonic(), 2,
                        "503 after SIGTERM" + sup.describe())
    assert status - t0 < 1.0
    assert sup.exited() is False, "the child was stopped instead of serving the stop delay"
    assert _probe(port, "/live") == (200, "alive\n")  # liveness is not readiness
    assert sup.wait(timeout=15) == 128 + signal.SIGTERM


@pytest.mark.timeout(30)
def test_with_notify_not_ready_until_the_child_says_ready(graceinit_bin, procs, tmp_path):
    port = _free_port()
    go = tmp_path / "go"
    child = ("import os, socket, time\n"
             f"while not os.path.exists({str(go)!r}): time.sleep(0.02)\n"
             "s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n"
             "a = os.environ['NOTIFY_SOCKET']\n"
             "s.sendto(b'READY=1', '\\0' + a[1:] if a.startswith('@') else a)\n"
             "print('notified', flush=True)\n"
             "time.sleep(60)\n")
    sup = procs.start([str(graceinit_bin), "--notify", "--ready-port", f"127.0.0.1:{port}",
                       "--", "python3", "-c", child])
    assert wait_until(lambda: _answers(port), 5, "the ready port to answer") == (503, "not ready\n")
    go.touch()
    sup.stdout.expect("notified", timeout=10)
    wait_until(lambda: _probe(port)[0] == 200, 5, "200 after READY=1" + sup.describe())
    sup.signal(signal.SIGTERM)
    assert sup.wait(timeout=10) == 128 + signal.SIGTERM


@pytest.mark.timeout(40)
def test_idle_probe_connections_never_hold_pid1_and_time_out(graceinit_bin, procs):
    """A slowloris on the probe port: signals are still forwarded at once, a real probe is
    still answered once the idle ones time out, and the stop sequence runs as usual."""
    port = _free_port()
    sup = procs.start([str(graceinit_bin), "--ready-port", f"127.0.0.1:{port}", "--",
                       *py_helper("sigprinter.py", "--die-on", "TERM")], pid1=True)
    sup.stdout.expect("ready", timeout=15)
    wait_until(lambda: _answers(port), 5, "the ready port to answer")
    idle = [socket.create_connection(("127.0.0.1", port), timeout=2) for _ in range(40)]
    try:
        t0 = time.monotonic()
        sup.send(signal.SIGUSR1)
        sup.stdout.expect("SIGUSR1", timeout=2)
        assert time.monotonic() - t0 < 2
        assert wait_until(lambda: _answers(port), 15, "a probe answered despite 40 idle connections"
                          + sup.describe())[0] == 200
    finally:
        for sock in idle:
            sock.close()
    sup.signal(signal.SIGTERM)
    assert sup.wait(timeout=10) == 128 + signal.SIGTERM


@pytest.mark.timeout(30)
def test_idle_with_a_ready_port_means_idle(graceinit_bin, procs):
    """No timer while no probe connection is open: the init does not wake in 2 s."""
    port = _free_port()
    sup = procs.start([str(graceinit_bin), "--ready-port", f"127.0.0.1:{port}", "--",
                       *py_helper("sigprinter.py", "--die-on", "TERM")])
    sup.stdout.expect("ready", timeout=15)
    assert wait_until(lambda: _answers(port), 5, "the ready port to answer")[0] == 200

    def settled():
        before = procfs.ctxt_switches(sup.pid)
        time.sleep(0.1)
        return procfs.state(sup.pid) == "S" and procfs.ctxt_switches(sup.pid) == before
    wait_until(settled, 5, "graceinit to go to sleep")
    before = procfs.ctxt_switches(sup.pid)
    time.sleep(2.0)  # the measurement window: any periodic wake-up under 2 s shows
    assert procfs.ctxt_switches(sup.pid) == before
    sup.signal(signal.SIGTERM)
    assert sup.wait(timeout=10) == 128 + signal.SIGTERM


@pytest.mark.timeout(20)
def test_the_probe_socket_does_not_leak_into_the_child(graceinit_bin, procs):
    port = _free_port()
    rc, out, err = procs.run([str(graceinit_bin), "--ready-port", f"127.0.0.1:{port}", "--",
                              "sh", "-c", "ls -l /proc/$$/fd"])
    out, err = out.decode(), err.decode()
    assert rc == 0, err
    assert "socket:" not in out, out


@pytest.mark.timeout(20)
@pytest.mark.parametrize("how", ["option", "variable"])
def test_a_port_in_use_is_a_usage_error_naming_what_was_typed(graceinit_bin, procs, tmp_path, how):
    marker = tmp_path / "started"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        address = "127.0.0.1:%d" % taken.getsockname()[1]
        argv = [str(graceinit_bin)] + (["--ready-port", address] if how == "option" else [])
        env = procs.env(GRACEINIT_READY_PORT=address) if how == "variable" else procs.env()
        rc, out, err = procs.run(argv + ["--", "touch", str(marker)], env=env)
    out, err = out.decode(), err.decode()
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert ("--ready-port" if how == "option" else "GRACEINIT_READY_PORT") in lines[0]
    assert "in use" in lines[0]
    assert not marker.exists(), "the app started despite the usage error"


@pytest.mark.timeout(20)
@pytest.mark.parametrize("value", ["0", "65536", "http", "1.2.3.4:", ":", "-1"])
def test_bad_ready_port_values_are_refused(graceinit_bin, procs, value):
    rc, out, err = procs.run([str(graceinit_bin), "--ready-port", value, "--", "true"])
    out, err = out.decode(), err.decode()
    assert rc == 2
    assert len(err.strip().splitlines()) == 1 and "--ready-port" in err
