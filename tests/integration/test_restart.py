"""Issue 5, zero-downtime restart: --listen (systemd socket activation), --notify (sd_notify),
--restart-signal, --ready-timeout. The real graceinit CLI with real servers -- a small
socket-activated Python HTTP server (restart_helpers/app.py) and gunicorn -- restarted while a
bounded client loop sends requests to 127.0.0.1.

Every wait is bounded; every test has a timeout and kills whatever it started (psutil).
"""
import os
import shutil
import signal
import socket
import stat
import sys
import time
from pathlib import Path

import psutil
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from restart_helpers.harness import (  # noqa: E402
    Harness, Load, RequestFailed, SlowRequest, alive, gunicorn_argv, http_get, socket_inodes)
from helpers import wait_until  # noqa: E402


@pytest.fixture
def h(tmp_path, procs):
    harness = Harness(tmp_path, procs)
    try:
        yield harness
    finally:
        harness.cleanup()


needs_pid1 = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None,
                                reason="the PID-1 case needs root and unshare")


def _ipv6_loopback():
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def try_get(address, path="/"):
    try:
        return http_get(address, path, timeout=2)[0]
    except RequestFailed:
        return None


def serving(h, run, address=None, pid=None, timeout=10):
    """Bounded wait until a request on address is answered (by pid, if given)."""
    address = address or h.address
    got = wait_until(lambda: (lambda p: p if p and (pid is None or p == pid) else None)(
        try_get(address)) or (run.exited() and "exited"), timeout, lambda: (
        "something serving on %s (pid %s)%s" % (address, pid, run.describe())),
        interval=0.005, max_interval=0.02)
    assert got != "exited", "nothing serving on %s (pid %s)%s" % (
        address, pid, run.describe())
    return got


def is_sig(name):
    return lambda e: e["sig"] == name


def restart_options(h, *extra):
    return ["--listen", "tcp://127.0.0.1:%d" % h.port, "--restart-signal", "HUP", "-v"] + \
        list(extra)


# ------------------------------------------------------------------------------ protocol

@pytest.mark.timeout(30)
def test_socket_activation_protocol_two_listeners_in_order(h):
    """LISTEN_FDS/LISTEN_FDNAMES/LISTEN_PID, fds 3 and 4 in --listen order, nothing else
    inherited; the same two sockets (same inodes, graceinit's own) for every generation; a
    non-restart signal (HUP) is still forwarded when another one (USR1) restarts."""
    sock_path = str(h.tmp / "app.sock")
    run = h.start(["--listen", "web=tcp://127.0.0.1:%d" % h.port, "--listen", "unix:" + sock_path,
                   "--restart-signal", "USR1", "--ready-timeout", "0.5", "-v"], h.app())
    gens = []
    for n in (1, 2):
        if n == 2:
            run.signal(signal.SIGHUP)
            h.wait_event("app", "signal", pid=gens[0]["pid"], pred=is_sig("SIGHUP"), run=run)
            run.signal(signal.SIGUSR1)
        gen = h.wait_event("app", "start", count=n, run=run)
        gens.append(gen)
        pid = gen["pid"]
        assert gen["env"] == {"LISTEN_FDS": "2", "LISTEN_FDNAMES": "web:unknown",
                              "LISTEN_PID": str(pid), "NOTIFY_SOCKET": None}, gen
        assert gen["fds"] == [0, 1, 2, 3, 4], "fds 3.. must be the only extra descriptors"
        tcp, unix = gen["sockets"]
        assert (tcp["fd"], tcp["family"], tcp["type"], tcp["address"], tcp["listening"]) == \
            (3, "AF_INET", "SOCK_STREAM", ["127.0.0.1", h.port], True), tcp
        assert (unix["fd"], unix["family"], unix["type"], unix["address"], unix["listening"]) == \
            (4, "AF_UNIX", "SOCK_STREAM", sock_path, True), unix
        assert stat.S_ISSOCK(os.stat(sock_path).st_mode)
        serving(h, run, pid=pid)
        serving(h, run, address=sock_path, pid=pid)
    assert not h.events("app", "bad-env"), "an app saw LISTEN_PID != its own pid"

    # Every generation holds the very sockets graceinit bound (never re-bound, never closed).
    mine = set(socket_inodes(run.pid).values())
    inodes = [[s["inode"] for s in gen["sockets"]] for gen in gens]
    assert inodes[0] == inodes[1] and set(inodes[0]) <= mine, (inodes, mine)

    old, new = gens[0]["pid"], gens[1]["pid"]
    h.wait_event("app", "drained", pid=old, run=run)
    assert [e["sig"] for e in h.events("app", "signal", pid=old)] == ["SIGHUP", "SIGTERM"], \
        "old generation: HUP forwarded, then SIGTERM once the new one was ready; never USR1"
    assert not h.events("app", "signal", pid=new)
    run.signal(signal.SIGTERM)
    assert run.wait(10) == 0, run.describe()
    h.assert_nothing_left()


@pytest.mark.timeout(30)
@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback")
def test_notify_socket_and_ipv6_listener(h):
    """With --notify the child gets NOTIFY_SOCKET (a datagram socket of graceinit's, removed
    when graceinit exits) but still no descriptor beyond the listener; tcp://[::1]:PORT."""
    run = h.start(["--listen", "api=tcp://[::1]:%d" % h.port, "--notify", "-v"], h.app())
    gen = h.wait_event("app", "start", run=run)
    env = gen["env"]
    assert (env["LISTEN_FDS"], env["LISTEN_FDNAMES"], env["LISTEN_PID"]) == \
        ("1", "api", str(gen["pid"]))
    notify_path = env["NOTIFY_SOCKET"]
    assert notify_path and stat.S_ISSOCK(os.stat(notify_path).st_mode), env
    assert gen["fds"] == [0, 1, 2, 3], "the notify socket must not leak into the child"
    (sock,) = gen["sockets"]
    assert (sock["family"], sock["address"][:2], sock["listening"]) == \
        ("AF_INET6", ["::1", h.port], True), sock
    serving(h, run, address=("::1", h.port), pid=gen["pid"])
    run.wait_line("pid %d is ready" % gen["pid"])
    run.wait_line("pid %d status: app serving" % gen["pid"])  # STATUS= is logged
    run.signal(signal.SIGTERM)
    assert run.wait(10) == 0, run.describe()
    assert not os.path.exists(notify_path), "notify socket left behind"


# ------------------------------------------------------------------------------ under load

def _restart_under_load(h, run, who, restarts, slow_ms, gen1):
    """Restart `restarts` times while a client loop runs; before each restart a slow request
    is accepted by the serving generation, and must complete (from that generation) after the
    generation has been told to stop. Returns (load, generations)."""
    load = Load(h.address, threads=2, interval=0.004, max_seconds=60).start()
    gens = [gen1]
    try:
        load.wait_for_pid(gen1["pid"], 10)
        for i in range(restarts):
            old = gens[-1]["pid"]
            slow = SlowRequest(h.address, slow_ms, "slow%d" % i)
            begin = h.wait_event(who, "slow-begin", pred=lambda e: e["id"] == "slow%d" % i,
                                 run=run)
            assert begin.get("master", begin["pid"]) == old
            t_hup = run.signal(signal.SIGHUP)
            new = h.wait_event(who, "start", count=i + 2, run=run)
            gens.append(new)
            first = load.wait_for_pid(new["pid"], 15, after=t_hup)
            assert first.t1 - t_hup < 10
            slow.join(30)
            assert not slow.is_alive()
            assert not isinstance(slow.result, Exception), \
                "in-flight slow request on the old generation failed: %s%s" % (
                    slow.result, run.describe())
            assert slow.result[0] == old, "slow request answered by %s, not the old %s" % (
                slow.result[0], old)
            end = h.wait_event(who, "slow-end", pred=lambda e: e["id"] == "slow%d" % i)
            if who == "app":
                term = h.wait_event("app", "term", pid=old, run=run)
                ready = h.wait_event("app", "ready-sent", pid=new["pid"], run=run)
                assert ready["t_send"] < term["t"], "old generation stopped before the new was ready"
                assert term["t"] < end["t"], "the slow request was not in flight at SIGTERM"
                h.wait_event("app", "drained", pid=old, run=run)
            else:
                ready = h.wait_event("gunicorn", "arbiter-ready", pid=new["pid"], run=run)
                gone = h.wait_event("gunicorn", "exit", pid=old, run=run)
                assert ready["t"] < end["t"] < gone["t"], \
                    "the slow request must be in flight when the old arbiter is told to stop"
            run.wait_line("old child %d exited" % old, timeout=10)  # reaped by graceinit
            # the socket kept accepting through the switch: requests sent meanwhile succeeded
            during = [r for r in load.snapshot() if t_hup <= r.t0 <= end["t"]]
            assert during and all(r.ok for r in during), during[:5]
        load.wait_for_pid(gens[-1]["pid"], 10, after=time.monotonic())
    finally:
        load.stop()
    return load, gens


@pytest.mark.timeout(40)
def test_python_server_restarted_under_load_loses_nothing(h):
    restarts = 3
    h.set_mode(term_exit=11)  # the first generation's status must not become graceinit's
    run = h.start(restart_options(h, "--notify", "--grace-period", "15"), h.app())
    gen1 = h.wait_event("app", "start", run=run)
    h.set_mode()
    load, gens = _restart_under_load(h, run, "app", restarts, 1200, gen1)

    results = load.snapshot()
    print("python server: %d failed of %d requests over %d restarts" % (
        len(load.failures), len(results), restarts))
    assert not load.failures, "%d of %d requests failed over %d restarts: %s" % (
        len(load.failures), len(results), restarts, load.failures[:10])
    assert len(results) > 100, "load too small to mean anything: %d requests" % len(results)
    pids = [g["pid"] for g in gens]
    assert len(set(pids)) == restarts + 1
    served = [r.pid for r in results]
    assert set(served) == set(pids), "every generation served, and only they"
    # generations take over in order: once a newer generation has answered, an older one only
    # answers requests it accepted before it stopped accepting
    for old in pids[:-1]:
        stopped = h.wait_event("app", "stopped-accepting", pid=old)["t"]
        late = [r for r in results if r.pid == old and r.t0 > stopped]
        assert not late, late
    inodes = {g["sockets"][0]["inode"] for g in gens}
    assert len(inodes) == 1, "the listening socket changed: %s" % inodes
    for old in pids[:-1]:
        assert [line for line in run.gi_lines()
                if line.endswith("sending SIGTERM to child %d" % old)], run.describe()
    assert not run.gi_lines("error"), run.describe()
    run.signal(signal.SIGTERM)
    assert run.wait(10) == 0, "exit status is the current generation's" + run.describe()
    h.assert_nothing_left()


@pytest.mark.timeout(45)
def test_gunicorn_restarted_under_load_loses_nothing(h):
    gunicorn = pytest.importorskip("gunicorn")
    restarts = 3
    run = h.start(restart_options(h, "--notify", "--grace-period", "20"), gunicorn_argv())
    gen1 = h.wait_event("gunicorn", "start", run=run, timeout=15)
    load, gens = _restart_under_load(h, run, "gunicorn", restarts, 1200, gen1)

    results = load.snapshot()
    print("gunicorn %s: %d failed of %d requests over %d restarts" % (
        gunicorn.__version__, len(load.failures), len(results), restarts))
    assert not load.failures, "gunicorn %s: %d of %d requests failed over %d restarts: %s" % (
        gunicorn.__version__, len(load.failures), len(results), restarts, load.failures[:10])
    assert len(results) > 100
    for gen in gens:
        # gunicorn took the socket the systemd way (it unsets the variables itself afterwards)
        assert gen["env"]["LISTEN_PID"] == str(gen["pid"]) and gen["env"]["LISTEN_FDS"] == "1"
        assert h.wait_event("gunicorn", "arbiter-ready", pid=gen["pid"])["systemd"] is True
    assert len({g["sockets"]["3"] for g in gens}) == 1, "the listening socket changed"
    pids = [g["pid"] for g in gens]
    assert set(r.pid for r in results) == set(pids)
    for pid in pids:  # READY=1 came from each arbiter over NOTIFY_SOCKET
        run.wait_line("pid %d is ready" % pid)
    assert not run.gi_lines("error"), run.describe()
    run.signal(signal.SIGTERM)
    assert run.wait(30) == 0, run.describe()
    h.assert_nothing_left()


# ------------------------------------------------------------------------------ failures

@pytest.mark.timeout(30)
def test_failed_restart_new_child_exits_at_once_old_keeps_serving(h):
    run = h.start(restart_options(h, "--notify"), h.app())
    gen1 = h.wait_event("app", "start", run=run)
    old = gen1["pid"]
    load = Load(h.address, threads=2, interval=0.005, max_seconds=30).start()
    try:
        load.wait_for_pid(old, 10)
        h.set_mode(exit_now=3)  # a broken deploy
        t_hup = run.signal(signal.SIGHUP)
        bad = h.wait_event("app", "start", count=2, run=run)
        line = run.wait_line("restart failed")
        assert line == "[graceinit] error: restart failed: pid %d exited with status 3; " \
            "pid %d keeps serving" % (bad["pid"], old), line
        assert len([x for x in run.gi_lines() if "error" in x]) == 1
        after = time.monotonic()
        load.wait_for_pid(old, 5, after=after)
        run.assert_running("after a failed restart")
        assert not h.events("app", "signal", pid=old), "the old generation was disturbed"

        # the next deploy works
        h.set_mode()
        run.signal(signal.SIGHUP)
        good = h.wait_event("app", "start", count=3, run=run)
        load.wait_for_pid(good["pid"], 10)
        h.wait_event("app", "drained", pid=old, run=run)
    finally:
        load.stop()
    assert not load.failures, load.failures[:10]
    assert {r.pid for r in load.snapshot() if r.t0 > t_hup and r.t1 < after} == {old}
    run.signal(signal.SIGTERM)
    assert run.wait(10) == 0, run.describe()
    h.assert_nothing_left()


@pytest.mark.timeout(30)
def test_not_ready_in_time_with_notify_new_child_stopped_old_keeps_serving(h):
    """--ready-timeout 1: the new generation never sends READY=1 (and ignores SIGTERM); it is
    stopped after 1 s (SIGKILL after --grace-period) and the old one never sees a signal. A
    READY=1 from a process that is not a descendant (this test) does not count."""
    run = h.start(restart_options(h, "--notify", "--ready-timeout", "1", "--grace-period", "1"),
                  h.app())
    gen1 = h.wait_event("app", "start", run=run)
    old = gen1["pid"]
    serving(h, run, pid=old)
    h.set_mode(ready="never", ignore_term=True)
    t_hup = run.signal(signal.SIGHUP)
    bad = h.wait_event("app", "start", count=2, run=run)
    # a stranger's READY=1 on the notify socket must be ignored
    spoof = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    spoof.sendto(b"READY=1", bad["env"]["NOTIFY_SOCKET"])
    spoof.close()
    line = run.wait_line("restart failed", timeout=6)
    t_err = time.monotonic()
    assert line == "[graceinit] error: restart failed: pid %d not ready after 1s; stopping " \
        "it, pid %d keeps serving" % (bad["pid"], old), line
    assert 0.9 <= t_err - t_hup <= 4, "failed %.2fs after the restart signal" % (t_err - t_hup)
    term = h.wait_event("app", "signal", pid=bad["pid"], pred=is_sig("SIGTERM"), run=run)
    assert term["t"] - t_hup >= 0.9
    wait_until(lambda: not alive(bad["pid"]), 5,
               "the new child to be SIGKILLed after the grace period")
    assert time.monotonic() - term["t"] >= 0.9
    assert try_get(h.address) == old
    assert not h.events("app", "signal", pid=old)
    run.assert_running()
    run.signal(signal.SIGTERM)
    assert run.wait(10) == 0, run.describe()
    h.assert_nothing_left()


@pytest.mark.timeout(30)
def test_without_notify_new_child_must_stay_alive_for_ready_timeout(h):
    run = h.start(restart_options(h, "--ready-timeout", "1.5"), h.app())
    old = h.wait_event("app", "start", run=run)["pid"]
    serving(h, run, pid=old)
    # a new generation that dies 0.3 s in: not ready
    h.set_mode(exit_after=0.3, exit_code=4)
    t_hup = run.signal(signal.SIGHUP)
    bad = h.wait_event("app", "start", count=2, run=run)
    line = run.wait_line("restart failed")
    assert "pid %d exited with status 4; pid %d keeps serving" % (bad["pid"], old) in line
    assert time.monotonic() - t_hup < 1.5
    # one that stays: promoted once it has been alive 1.5 s, not before
    h.set_mode()
    t_hup = run.signal(signal.SIGHUP)
    new = h.wait_event("app", "start", count=3, run=run)
    term = h.wait_event("app", "term", pid=old, run=run, timeout=10)
    assert 1.4 <= term["t"] - t_hup <= 5, "old stopped %.2fs after the signal, --ready-timeout " \
        "1.5" % (term["t"] - t_hup)
    assert term["t"] - new["t"] >= 1.3
    serving(h, run, pid=new["pid"])
    run.signal(signal.SIGTERM)
    assert run.wait(10) == 0, run.describe()
    h.assert_nothing_left()


# ------------------------------------------------------------------------------ concurrency

@pytest.mark.timeout(30)
def test_restart_signals_during_a_restart_coalesce_into_one_more(h):
    """Two more restart signals while generation 2 is not ready yet: exactly one more restart,
    started only once generation 2 is ready. With -r TERM:USR1 old generations get USR1."""
    run = h.start(restart_options(h, "--notify", "--ready-timeout", "10", "-r", "TERM:USR1"),
                  h.app(drain_signal="USR1"))
    gen1 = h.wait_event("app", "start", run=run)
    serving(h, run, pid=gen1["pid"])
    h.set_mode(ready="usr2")
    run.signal(signal.SIGHUP)
    gen2 = h.wait_event("app", "start", count=2, run=run)
    h.set_mode()
    run.signal(signal.SIGHUP)
    run.wait_line("one more restart queued")
    run.signal(signal.SIGHUP)
    wait_until(lambda: len(run.gi_lines("one more restart queued")) == 2, 5,
               lambda: "a second 'one more restart queued' line" + run.describe())
    assert len(h.events("app", "start")) == 2, "a restart started while one was running"
    assert not h.events("app", "signal", pid=gen1["pid"]), "generation 1 stopped too early"
    # other signals go to both the serving and the starting generation
    run.signal(signal.SIGWINCH)
    for gen in (gen1, gen2):
        h.wait_event("app", "signal", pid=gen["pid"], pred=is_sig("SIGWINCH"), run=run)
    os.kill(gen2["pid"], signal.SIGUSR2)  # generation 2 is ready now
    ready2 = h.wait_event("app", "ready-sent", pid=gen2["pid"], run=run)
    gen3 = h.wait_event("app", "start", count=3, run=run)
    assert gen3["t"] > ready2["t_send"]
    h.wait_event("app", "drained", pid=gen1["pid"], run=run)
    h.wait_event("app", "drained", pid=gen2["pid"], run=run)
    serving(h, run, pid=gen3["pid"])
    for gen in (gen1, gen2):
        assert [e["sig"] for e in h.events("app", "signal", pid=gen["pid"])
                if e["sig"] not in ("SIGUSR2", "SIGWINCH")] == ["SIGUSR1"], \
            "-r TERM:USR1 applies to retiring generations"
    run.signal(signal.SIGTERM)
    assert run.wait(10) == 0, run.describe()
    assert len(h.events("app", "start")) == 3, "three signals during one restart: 1 more, not 2"
    h.assert_nothing_left()


@pytest.mark.timeout(30)
@pytest.mark.parametrize("stubborn", [False, True], ids=["both-drain", "new-ignores-term"])
def test_sigterm_during_a_restart_stops_both_generations(h, stubborn):
    """SIGTERM while generation 2 is still starting: both get the stop sequence (SIGKILL
    after --grace-period for one that ignores it), nothing is left, post hooks run once, and
    the exit status is generation 1's (the current one: generation 2 was never promoted)."""
    post = str(h.tmp / "post.txt")
    hook = "sh -c 'echo \"$GRACEINIT_EXIT_CODE\" >> %s'" % post
    h.set_mode(term_exit=5)
    run = h.start(restart_options(h, "--notify", "--ready-timeout", "20", "--grace-period", "1",
                                  "--post-hook", hook), h.app())
    gen1 = h.wait_event("app", "start", run=run)
    serving(h, run, pid=gen1["pid"])
    h.set_mode(ready="never", term_exit=7, ignore_term=stubborn)
    run.signal(signal.SIGHUP)
    gen2 = h.wait_event("app", "start", count=2, run=run)
    t_term = run.signal(signal.SIGTERM)
    for gen in (gen1, gen2):
        h.wait_event("app", "signal", pid=gen["pid"], pred=is_sig("SIGTERM"), run=run)
    rc = run.wait(10)
    assert rc == 5, "exit status must be generation 1's (5)" + run.describe()
    if stubborn:
        assert run.t_exit - t_term >= 0.9, "generation 2 was not given its grace period"
    else:
        h.wait_event("app", "drained", pid=gen2["pid"])
    assert not run.gi_lines("now the main child")
    with open(post) as f:
        assert f.read().split() == ["5"], "post hooks run once, with the final status"
    for gen in (gen1, gen2):
        assert not alive(gen["pid"])
    h.assert_nothing_left(timeout=1)


@pytest.mark.timeout(30)
def test_old_generation_ignoring_sigterm_is_killed_in_the_background(h):
    """The old generation ignores SIGTERM: SIGKILL after --grace-period while the new one
    serves on; when the new (current) generation exits on its own, its status is graceinit's."""
    h.set_mode(ignore_term=True)
    run = h.start(restart_options(h, "--notify", "--grace-period", "1"), h.app())
    gen1 = h.wait_event("app", "start", run=run)
    serving(h, run, pid=gen1["pid"])
    h.set_mode(exit_after=4, exit_code=6)
    run.signal(signal.SIGHUP)
    gen2 = h.wait_event("app", "start", count=2, run=run)
    term = h.wait_event("app", "signal", pid=gen1["pid"], pred=is_sig("SIGTERM"), run=run)
    run.wait_line("old child %d still running after the grace period: SIGKILL" % gen1["pid"])
    run.wait_line("old child %d exited with status 137" % gen1["pid"])
    killed = time.monotonic() - term["t"]
    assert 0.9 <= killed <= 3.5, "SIGKILL %.2fs after SIGTERM, --grace-period 1" % killed
    assert not h.events("app", "exit", pid=gen2["pid"]), "generation 2 must still be running"
    assert try_get(h.address) == gen2["pid"]
    run.assert_running()
    rc = run.wait(15)
    assert rc == 6, "generation 2 exited 6 on its own: that is the exit status" + run.describe()
    h.assert_nothing_left()


# ------------------------------------------------------------------------------ readiness

@pytest.mark.timeout(30)
def test_ready_file_follows_ready_notifications(h):
    ready_file = h.tmp / "ready"
    h.set_mode(ready="usr2")
    run = h.start(restart_options(h, "--notify", "--ready-file", ready_file, "--stop-delay",
                                  "1"), h.app())
    gen1 = h.wait_event("app", "start", run=run)
    serving(h, run, pid=gen1["pid"])
    assert not ready_file.exists(), "ready file created before READY=1"
    os.kill(gen1["pid"], signal.SIGUSR2)
    wait_until(ready_file.exists, 5, "the ready file to be created on READY=1")
    # during a restart the old generation is ready: the file stays
    run.signal(signal.SIGHUP)
    gen2 = h.wait_event("app", "start", count=2, run=run)
    assert ready_file.exists()
    os.kill(gen2["pid"], signal.SIGUSR2)
    h.wait_event("app", "drained", pid=gen1["pid"], run=run)
    assert ready_file.exists()
    # stop: the file goes at once, while the app still serves through the stop delay
    t = run.signal(signal.SIGTERM)
    wait_until(lambda: not ready_file.exists(), 0.8, "the ready file to go after SIGTERM",
               interval=0.005, max_interval=0.005)
    assert time.monotonic() - t < 0.8
    assert not h.events("app", "term", pid=gen2["pid"]), "the stop delay did not keep it serving"
    assert run.wait(10) == 0, run.describe()


@pytest.mark.timeout(30)
def test_ready_from_a_descendant_counts_for_its_generation(h):
    """READY=1 sent by a grandchild (as by a worker process) makes the generation ready."""
    run = h.start(restart_options(h, "--notify", "--ready-timeout", "10"), h.app())
    gen1 = h.wait_event("app", "start", run=run)
    serving(h, run, pid=gen1["pid"])
    h.set_mode(ready="grandchild")
    t_hup = run.signal(signal.SIGHUP)
    gen2 = h.wait_event("app", "start", count=2, run=run)
    sent = h.wait_event("app-notifier", "ready-sent", run=run)
    assert sent["parent"] == gen2["pid"] and sent["pid"] != gen2["pid"]
    term = h.wait_event("app", "term", pid=gen1["pid"], run=run)
    assert term["t"] - t_hup < 5, "the grandchild's READY=1 did not count"
    run.signal(signal.SIGTERM)
    assert run.wait(10) == 0, run.describe()
    h.assert_nothing_left()


@pytest.mark.timeout(30)
def test_ready_from_a_descendant_that_exits_at_once_counts(h):
    """`systemd-notify --ready` from a script: the notifier sends READY=1 and exits, and is
    reaped by its parent before graceinit reads the datagram. graceinit attributes a message
    by walking /proc/<sender>/stat up to a generation, which is gone by then: the READY=1 is
    dropped and the restart fails. Made deterministic by holding graceinit with SIGSTOP while
    the notifier runs (a busy machine does the same, by chance)."""
    run = h.start(restart_options(h, "-v", "--notify", "--ready-timeout", "3"), h.app())
    gen1 = h.wait_event("app", "start", run=run)
    serving(h, run, pid=gen1["pid"])
    h.set_mode(ready="usr2-grandchild-exit")
    t_hup = run.signal(signal.SIGHUP)
    gen2 = h.wait_event("app", "start", count=2, run=run)
    gi = psutil.Process(run.pid)
    gi.suspend()
    try:
        wait_until(lambda: gi.status() == psutil.STATUS_STOPPED, 2, "graceinit to be stopped")
        os.kill(gen2["pid"], signal.SIGUSR2)
        reaped = h.wait_event("app", "notifier-reaped", pid=gen2["pid"])
        assert not psutil.pid_exists(reaped["notifier"])
    finally:
        gi.resume()
    sent = h.wait_event("app-notifier", "ready-sent")
    assert sent["sent"] and sent["parent"] == gen2["pid"]
    term = wait_until(lambda: h.events("app", "term", pid=gen1["pid"])
                      or run.gi_lines("restart failed"), 8,
                      lambda: "generation 1's SIGTERM or 'restart failed'" + run.describe())
    assert not run.gi_lines("restart failed"), \
        "READY=1 from generation 2's (already reaped) notifier was dropped%s" % run.describe()
    assert term[0]["t"] - t_hup < 3
    run.signal(signal.SIGTERM)
    assert run.wait(10) == 0, run.describe()


# ------------------------------------------------------------------------------ bad options

def _blocker():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    return s


@pytest.mark.timeout(20)
@pytest.mark.parametrize("listen,expected", [
    ("IN-USE", "Address already in use"),
    ("tcp://127.0.0.1", "is not tcp://HOST:PORT"),
    ("http://127.0.0.1:8080", "is not tcp://HOST:PORT"),
    ("tcp://127.0.0.1:70000", "is not tcp://HOST:PORT"),
    ("unix:relative.sock", "absolute path"),
    ("a:b=tcp://127.0.0.1:8080", "socket name"),
    ("unix:/nonexistent-dir-xyz/app.sock", "No such file or directory"),
], ids=["port-in-use", "no-port", "scheme", "port-range", "unix-relative", "bad-name",
        "unix-no-dir"])
def test_bad_listen_exits_2_with_one_line_and_starts_nothing(h, listen, expected):
    blocker = None
    if listen == "IN-USE":
        blocker = _blocker()
        listen = "tcp://127.0.0.1:%d" % blocker.getsockname()[1]
    marker = h.tmp / "started"
    try:
        run = h.start(["--listen", "tcp://127.0.0.1:%d" % h.port, "--listen", listen,
                       "--pre-hook", "touch %s" % marker],
                      ["sh", "-c", "touch %s" % marker])
        rc = run.wait(10)
    finally:
        if blocker:
            blocker.close()
    err = run.stderr_text().splitlines()
    assert rc == 2, run.describe()
    assert len(err) == 1 and err[0].startswith("[graceinit] error: ") and expected in err[0], err
    assert not marker.exists(), "something was started"
    # the first, good --listen was released again: the port can be bound
    with socket.socket() as s:
        s.bind(("127.0.0.1", h.port))


@pytest.mark.timeout(20)
@pytest.mark.parametrize("sig", ["TERM", "INT", "CHLD", "KILL", "STOP", "SEGV"])
def test_restart_signal_that_cannot_work_is_a_usage_error(h, sig):
    """TERM/INT are stop signals, CHLD is graceinit's own; KILL and STOP cannot be caught and
    SEGV (like BUS, FPE, ILL) stays blocked in graceinit: a restart on them can never
    happen, so they must be refused like the others instead of silently doing nothing."""
    run = h.start(["--restart-signal", sig], ["true"])
    rc = run.wait(10)
    err = run.stderr_text().splitlines()
    assert rc == 2 and len(err) == 1 and "restart signal" in err[0], (rc, err)


# ------------------------------------------------------------------------------ PID 1

@pytest.mark.pid1
@needs_pid1
@pytest.mark.timeout(40)
def test_pid1_restart_under_load(h):
    run = h.start(restart_options(h, "--notify", "--grace-period", "10"), h.app(), pid1=True)
    gen1 = h.wait_event("app", "start", run=run, timeout=15)
    assert gen1["ppid"] == 1, "graceinit is not PID 1 in the new namespace"
    load, gens = _restart_under_load(h, run, "app", 2, 800, gen1)
    print("PID 1: %d failed of %d requests over 2 restarts" % (
        len(load.failures), len(load.snapshot())))
    assert not load.failures, load.failures[:10]
    assert len(load.snapshot()) > 50
    for gen in gens:
        assert gen["env"]["LISTEN_PID"] == str(gen["pid"]) and gen["ppid"] == 1
    assert len({g["sockets"][0]["inode"] for g in gens}) == 1
    run.signal(signal.SIGTERM)
    assert run.wait(10) == 0, run.describe()
    h.assert_nothing_left()
