"""Issue 16, the ledger: the real graceinit, a real server and real clients in a network
namespace of the test's own (`unshare --net`, gone with its last process), and the
termination report's count of what the kernel turned away, by phase."""
import json
import shutil
import signal
import subprocess

import pytest

from helpers.launch import py_helper
from helpers.procfs import wait_until

pytestmark = pytest.mark.skipif(shutil.which("nsenter") is None or shutil.which("ip") is None,
                                reason="needs nsenter and ip (iproute2)")


@pytest.fixture
def netns_ok():
    ok = subprocess.run(["unshare", "--net", "ip", "link", "set", "lo", "up"],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=10).returncode == 0
    if not ok:
        pytest.skip("cannot create a network namespace here (needs root)")


class Pod:
    """graceinit and its app in a fresh network namespace, and clients sent into it."""

    def __init__(self, procs, graceinit_bin, tmp_path, mode, *options, pid1=False):
        self.procs, self.ready = procs, tmp_path / "ready"
        inner = " ".join([str(graceinit_bin), "--log-format", "json", *options, "--",
                          *py_helper("ledger_app.py", mode, self.ready)])
        self.run = procs.start(["unshare", "--net", "sh", "-c", f"ip link set lo up && exec {inner}"],
                               pid1=pid1)
        wait_until(self.ready.exists, 10, lambda: "the app to listen; stderr: " + self.run.stderr_text())
        self.netns = f"/proc/{self.run.pid}/ns/net"

    def client(self, mode, seconds):
        return self.procs.popen(["nsenter", f"--net={self.netns}", *py_helper("ledger_client.py", mode, seconds)],
                                stdout=subprocess.PIPE, text=True)

    def events(self, name):
        lines = [json.loads(line) for line in self.run.stderr_text().splitlines() if line.startswith("{")]
        return [line for line in lines if line.get("event") == name]

    def report(self):
        [report] = self.events("termination_report")
        return report


@pytest.mark.timeout(40)
def test_an_app_that_closes_its_listener_at_once_shows_refused_after_the_forward(
        procs, graceinit_bin, tmp_path, netns_ok, pid1):
    pod = Pod(procs, graceinit_bin, tmp_path, "close-at-once", "--stop-delay", "0.5", pid1=pid1)
    client = pod.client("hammer", 3.0)
    wait_until(lambda: pod.events("child_started") or True, 1)
    pod.run.signal(signal.SIGTERM)
    assert pod.run.wait(10) == 0
    out, _ = client.communicate(timeout=10)
    refused_seen = int(out.split()[3])
    report = pod.report()
    phases = report["losses_by_phase"]
    # The app listened through the stop delay: nothing refused before the forward. It closed
    # its listener when the stop signal reached it and lived 1 s more: the grace period.
    assert phases["stop_delay"] == {"refused": 0, "aborted": 0, "dropped": 0}, report
    assert phases["grace"]["refused"] >= 20, report
    assert report["refused"] <= refused_seen, (report, out)
    assert report["losses"] == "some"
    [warning] = pod.events("losses")
    assert warning["msg"].startswith(f"{report['refused']} connection(s) refused after the app closed its"
                                     " listener"), warning


@pytest.mark.timeout(40)
def test_an_app_killed_with_requests_in_flight_shows_them_open_at_sigkill(
        procs, graceinit_bin, tmp_path, netns_ok, pid1):
    pod = Pod(procs, graceinit_bin, tmp_path, "hold", "--grace-period", "1", pid1=pid1)
    client = pod.client("hold", 20)
    assert client.stdout.readline().strip() == "sent"
    pod.run.signal(signal.SIGTERM)
    assert pod.run.wait(10) == 128 + signal.SIGKILL
    report = pod.report()
    # One request read and unanswered, one never read; the answered keep-alive connection
    # loses nothing. The unread one is reset by the kernel (TCPAbortOnClose): counted once.
    assert report["open_at_sigkill"] == 2, report
    assert report["aborted"] == 0 and report["refused"] == 0, report
    [warning] = pod.events("losses")
    assert warning["msg"] == "2 connection(s) open at SIGKILL with a request in flight: raise --grace-period"


@pytest.mark.timeout(40)
def test_a_clean_stop_shows_none(procs, graceinit_bin, tmp_path, netns_ok, pid1):
    pod = Pod(procs, graceinit_bin, tmp_path, "clean", pid1=pid1)
    client = pod.client("hammer", 0.5)
    out, _ = client.communicate(timeout=10)
    assert int(out.split()[1]) >= 20 and "refused 0 other 0" in out, out
    pod.run.signal(signal.SIGTERM)
    assert pod.run.wait(10) == 0
    report = pod.report()
    assert report["losses"] == "none", report
    assert (report["refused"], report["aborted"], report["dropped"], report["open_at_sigkill"]) == (0, 0, 0, 0)
    assert pod.events("losses") == []
    assert report["msg"].endswith("; losses: none")


@pytest.mark.timeout(40)
def test_a_listener_no_process_of_graceinit_holds_makes_the_counts_unknown(
        procs, graceinit_bin, tmp_path, netns_ok):
    pod = Pod(procs, graceinit_bin, tmp_path, "clean")
    # A process outside graceinit's tree listens in the same namespace, as the node's daemons
    # do for a hostNetwork pod.
    stranger = procs.popen(["nsenter", f"--net={pod.netns}", "python3", "-c",
                            "import socket,sys,time; s=socket.socket(); s.bind(('127.0.0.1',9090));"
                            " s.listen(); print('up', flush=True); time.sleep(30)"],
                           stdout=subprocess.PIPE, text=True)
    assert stranger.stdout.readline().strip() == "up"
    pod.run.signal(signal.SIGTERM)
    assert pod.run.wait(10) == 0
    report = pod.report()
    assert report["losses"] == "unknown" and report["refused"] is None, report
    assert report["losses_unknown"].startswith("the network namespace is shared: 1 listening socket(s)")
