"""The rebuilt stop sequence (issue 8) and the sequence-level faults of issue 10, with the real
graceinit CLI and real processes; PID-1 cases under unshare."""
import os
import shlex
import signal
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stop_helpers.fixtures import gi, needs_pid1  # noqa: E402,F401  (fixtures)
from stop_helpers.harness import sleeps_alive, unique_sleep  # noqa: E402
from helpers import wait_until  # noqa: E402


def proc_state(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


@pytest.mark.timeout(20)
@pytest.mark.parametrize("pid1", [False, pytest.param(True, marks=[pytest.mark.pid1, needs_pid1])],
                         ids=["plain", "pid1"])
def test_two_stop_signals_back_to_back_forward_at_once(gi, pid1):
    # The repro: `--stop-delay 10`, then `kill -TERM $P; kill -INT $P` back to back.
    run = gi.start(["--stop-delay", "10"], gi.child(), pid1=pid1)
    gi.wait_event("child", "start", run=run)
    t0 = run.signal(signal.SIGTERM)
    os.kill(run.pid, signal.SIGINT)
    first = gi.wait_event("child", "signal", timeout=5, run=run)
    assert first["t"] - t0 < 3.0, "forwarded %.2fs after two stop signals" % (first["t"] - t0)
    assert run.wait(5) == 128 + signal.SIGTERM, run.describe()


@pytest.mark.timeout(30)
@pytest.mark.parametrize("pid1", [False, pytest.param(True, marks=[pytest.mark.pid1, needs_pid1])],
                         ids=["plain", "pid1"])
def test_impatience_works_during_a_stop_hook(gi, pid1):
    # Issue 18 item 3: a 20 s stop hook and an app that both ignore SIGTERM. The second stop
    # signal must end the hook and forward at once, the third SIGKILL the app and the hook;
    # everything used to wait for the hook's 20 s.
    m = unique_sleep()
    hook = "sh -c " + shlex.quote("trap '' TERM; sleep %s & sleep %s" % (m, m))
    run = gi.start(["--stop-hook", hook, "--hook-timeout", "20", "--stop-delay", "5"],
                   gi.child("--on", "TERM=log"), pid1=pid1)
    gi.wait_event("child", "start", run=run)
    run.signal(signal.SIGTERM)
    wait_until(lambda: len(sleeps_alive(m)) == 2, 5, "the stop hook to start (2 sleeps)")
    second = run.signal(signal.SIGTERM)
    term = gi.wait_event("child", "signal", timeout=5, run=run)
    assert term["sig"] == "SIGTERM" and term["t"] - second < 2.0, (
        "forwarded %.2fs after the second stop signal" % (term["t"] - second))
    third = run.signal(signal.SIGTERM)
    assert run.wait(5) == 128 + signal.SIGKILL, run.describe()
    assert time.monotonic() - third < 5.0
    wait_until(lambda: not sleeps_alive(m), 5, "the stop hook's group to be SIGKILLed")


@pytest.mark.timeout(20)
def test_a_stopped_child_is_continued_so_the_stop_signal_can_end_it(gi):
    # Issue 10 item 9: SIGSTOP the app, SIGTERM graceinit, unlimited grace period.
    run = gi.start([], gi.child())
    child = gi.wait_event("child", "start", run=run)
    os.kill(child["pid"], signal.SIGSTOP)
    wait_until(lambda: proc_state(child["pid"]) == "T", 5, "the child to be stopped")
    run.signal(signal.SIGTERM)
    assert run.wait(5) == 128 + signal.SIGTERM, run.describe()


@pytest.mark.timeout(20)
def test_a_signal_during_a_pre_hook_goes_to_the_hook_not_to_the_child(gi):
    # Issue 10 item 3: `--pre-hook 'sleep 1'`, kill -HUP during the hook.
    run = gi.start(["--pre-hook", gi.hook("pre", "--sleep", "10", "--signal-exit", "0")],
                   gi.child())
    gi.wait_event("pre", "hook", run=run)
    run.signal(signal.SIGHUP)
    gi.wait_event("pre", "signal", run=run, timeout=5)
    gi.wait_event("child", "start", run=run, timeout=5)
    run.signal(signal.SIGTERM)
    assert run.wait(5) == 128 + signal.SIGTERM, run.describe()
    assert [e["sig"] for e in gi.signals("child")] == ["SIGTERM"], "the HUP was replayed"
    assert [e["sig"] for e in gi.signals("pre")] == ["SIGHUP"]


@pytest.mark.timeout(30)
def test_a_daemon_started_by_a_post_hook_does_not_outlive_graceinit(gi, tmp_path):
    # Issue 10 item 12: not PID 1 (a subreaper), a post hook leaves a daemon behind.
    pidfile = tmp_path / "daemon.pid"
    post = ("sh -c 'setsid sh -c \"echo \\$\\$ > %s; exec sleep 300\" </dev/null >/dev/null 2>&1 &'"
            % pidfile)
    run = gi.start(["--post-hook", post, "--leftover-grace", "2"], gi.child("--exit-after", "0.2"))
    assert run.wait(15) == 0, run.describe()
    assert pidfile.exists(), run.describe()
    daemon = int(pidfile.read_text())
    assert proc_state(daemon) in (None, "Z"), "the post hook's daemon outlived graceinit"


@pytest.mark.timeout(20)
def test_the_delay_the_budget_leaves_is_what_the_log_says(gi):
    # Issue 10 item 16: --termination-budget 4 with --stop-delay 10.
    run = gi.start(["-v", "--stop-delay", "10", "--termination-budget", "4", "--leftover-grace", "1",
                    "--hook-timeout", "1"], gi.child())
    gi.wait_event("child", "start", run=run)
    run.signal(signal.SIGTERM)
    assert run.wait(10) in (128 + signal.SIGTERM, 128 + signal.SIGKILL), run.describe()
    err = run.stderr_text()
    assert "keeps serving for 10s" not in err, err
    assert "keeps serving for 3s (cut from 10s by --termination-budget)" in err, err


@pytest.mark.timeout(20)
def test_termination_report_is_one_line_at_default_verbosity_and_silenced_by_q(gi):
    run = gi.start(["--stop-delay", "0.3"], gi.child())
    gi.wait_event("child", "start", run=run)
    run.signal(signal.SIGTERM)
    assert run.wait(5) == 143, run.describe()
    reports = [line for line in run.stderr_text().splitlines() if "termination report" in line]
    assert len(reports) == 1, run.stderr_text()
    assert reports[0].startswith("[graceinit] termination report: SIGTERM -> exit 143 in ")
    assert "ended by signal" in reports[0] and "stop delay 0.3" in reports[0]

    quiet = gi.start(["-q", "--stop-delay", "0.3"], gi.child(name="quiet"))
    gi.wait_event("quiet", "start", run=quiet)
    quiet.signal(signal.SIGTERM)
    assert quiet.wait(5) == 143
    assert quiet.stderr_text() == "", quiet.stderr_text()


@pytest.mark.timeout(30)
def test_a_full_stderr_pipe_never_stops_forwarding(gi, tmp_path):
    # Issue 10 item 5: nobody reads graceinit's stderr; it must drop its own lines, not block.
    r, w = os.pipe()
    try:
        run = gi.start(["-vv", "--stop-delay", "0"], gi.child(), stderr=w)
        child = gi.wait_event("child", "start", run=run)
        # Fill the pipe from the test side, through a description of its own (O_NONBLOCK on
        # `w` itself would be graceinit's too): graceinit's next line would block on it.
        filler = os.open("/proc/self/fd/%d" % w, os.O_WRONLY | os.O_NONBLOCK)
        try:
            while True:
                os.write(filler, b"x" * 4096)
        except BlockingIOError:
            pass
        finally:
            os.close(filler)
        for _ in range(200):  # debug lines graceinit would write for each forwarded signal
            os.kill(run.pid, signal.SIGUSR1)
        run.signal(signal.SIGTERM)
        assert run.wait(10) == 143
        assert "SIGTERM" in [e["sig"] for e in gi.signals("child")]
        assert child
    finally:
        os.close(r)
        os.close(w)


NOTIFY_APP = r'''
import os, socket, sys, time
addr = os.environ["NOTIFY_SOCKET"]
if addr.startswith("@"):
    addr = "\0" + addr[1:]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.sendto(b"STATUS=\x1b[2J\x1b[31mred\n[graceinit] forged line\nREADY=1", addr)
time.sleep(float(sys.argv[1]))
'''


@pytest.mark.timeout(20)
def test_child_text_cannot_forge_or_colour_graceinit_lines(gi):
    # Issue 10 item 15: STATUS= from the app is logged with control characters escaped.
    run = gi.start(["-v", "--notify"], [sys.executable, "-S", "-c", NOTIFY_APP, "0.5"])
    assert run.wait(10) == 0, run.describe()
    err = run.stderr_text()
    assert "\x1b" not in err, err
    assert not any(line.startswith("[graceinit] forged") for line in err.splitlines()), err
    assert "status: \\x1b[2J\\x1b[31mred" in err, err


@pytest.mark.timeout(20)
@pytest.mark.parametrize("pid1", [False, pytest.param(True, marks=[pytest.mark.pid1, needs_pid1])],
                         ids=["plain", "pid1"])
def test_json_log_every_line_is_an_event_and_the_report_closes_it(gi, pid1):
    import json

    run = gi.start(["--log-format", "json", "-vv", "--stop-delay", "0.2", "--post-hook", gi.hook("post")],
                   gi.child(), pid1=pid1)
    gi.wait_event("child", "start", run=run)
    run.signal(signal.SIGTERM)
    assert run.wait(10) == 143, run.describe()
    records = [json.loads(line) for line in run.stderr_text().splitlines()]
    for record in records:
        assert {"ts", "level", "event", "msg"} <= set(record), record
        assert record["ts"].endswith("Z")
        assert record["logger"] == "graceinit", record  # issue 19 item 6: one stream, two loggers
    names = [record["event"] for record in records]
    for name in ("child_started", "stop_signal", "stop_delay", "stop_forwarded", "child_exited",
                 "hook_started", "exiting", "termination_report"):
        assert name in names, names
    report = records[-1]
    assert report["event"] == "termination_report" and report["status"] == 143
    assert report["ended_by"] == "signal" and report["signal"] == "SIGTERM"
    assert report["level"] == "notice"  # shown by default, so not "info" (issue 19 item 6)


@pytest.mark.timeout(10)
def test_json_usage_error_is_one_json_line(gi):
    import json

    run = gi.start(["--stop-delay", "abc"], gi.child(), env=gi.env(GRACEINIT_LOG_FORMAT="json"))
    assert run.wait(5) == 2
    [line] = run.stderr_text().splitlines()
    record = json.loads(line)
    assert record["event"] == "usage_error" and "--stop-delay" in record["msg"]


@pytest.mark.timeout(20)
def test_log_wording_reads_naturally(gi):
    # Issue 12 item 7: "SIGTERM received during running" and "listening on unknown=..." read badly.
    run = gi.start(["-v", "--listen", "tcp://127.0.0.1:0", "--listen", "web=tcp://127.0.0.1:0"], gi.child())
    gi.wait_event("child", "start", run=run)
    run.signal(signal.SIGTERM)
    assert run.wait(5) == 143, run.describe()
    err = run.stderr_text()
    assert "unknown=" not in err and "during running" not in err, err
    assert "(fd 3, no name)" in err and "(fd 4, named web)" in err, err
    assert "SIGTERM received while the child runs (stop signal #1)" in err, err
