"""Issue 3, stop sequence: leftover processes (a double-forked, setsid'd daemon that escaped the
child's group) get SIGTERM, then SIGKILL after --leftover-grace, and are waited for before the
post hooks run -- as real PID 1 and as a subreaper. Real graceinit CLI, real processes."""
import signal
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stop_helpers.fixtures import gi, needs_pid1  # noqa: E402,F401  (fixtures)
from helpers import wait_until  # noqa: E402


@pytest.mark.timeout(30)
@pytest.mark.parametrize("pid1", [
    pytest.param(True, marks=[pytest.mark.pid1, needs_pid1], id="pid1"),
    pytest.param(False, id="subreaper"),
])
def test_leftover_daemons_are_terminated_killed_and_waited_for_before_post_hooks(gi, pid1):
    run = gi.start(["--leftover-grace", "1",
                    "--post-hook", gi.hook("post", "--check-gone", "polite",
                                           "--check-gone", "stubborn")],
                   gi.child("--daemon", "polite:polite", "--daemon", "stubborn:stubborn",
                            "--exit-after", "0.2"),
                   pid1=pid1)
    child = gi.wait_event("child", "start", timeout=10, run=run)
    polite = gi.wait_event("polite", "start")
    stubborn = gi.wait_event("stubborn", "start")
    for d in (polite, stubborn):
        assert d["sid"] != child["sid"] and d["pgid"] != child["pgid"], "daemon did not escape"
    child_exit = gi.wait_event("child", "exit", run=run)
    rc = run.wait(10)
    assert rc == 0, run.describe()

    polite_term = [e for e in gi.signals("polite") if e["sig"] == "SIGTERM"]
    stubborn_term = [e for e in gi.signals("stubborn") if e["sig"] == "SIGTERM"]
    for name, got in (("polite", polite_term), ("stubborn", stubborn_term)):
        assert got, ("leftover daemon %s saw no SIGTERM (never sent, or SIGKILLed before it "
                     "could handle it)" % name) + run.describe()
    assert polite_term[0]["t"] > child_exit["t"]

    post = gi.wait_event("post", "hook")
    assert post["gone"] == {"polite": "gone", "stubborn": "gone"}, \
        "post hooks ran before the leftovers were killed and reaped: %s" % (post["gone"],)
    waited = post["t"] - stubborn_term[0]["t"]
    assert 0.9 <= waited <= 4.0, "SIGKILL %.2fs after SIGTERM, --leftover-grace 1" % waited
    if not pid1:
        wait_until(lambda: not gi.tagged(), 2,
                   lambda: "no process to survive graceinit: %s" % gi.tagged())


@pytest.mark.timeout(30)
def test_stop_signals_still_arrive_while_leftovers_are_watched(gi):
    """While graceinit waits for leftovers it also watches their pidfds, so it sleeps in
    poll(2) instead of sigtimedwait(2) (system.py): the signals it held blocked until then
    must reach it there too. A third stop signal SIGKILLs a leftover that ignores SIGTERM
    at once, not after --leftover-grace."""
    run = gi.start(["-v", "--leftover-grace", "60"],
                   gi.child("--daemon", "stubborn:stubborn", "--exit-after", "0.2"))
    gi.wait_event("stubborn", "start", timeout=10)
    gi.wait_event("stubborn", "signal", timeout=10, pred=lambda e: e["sig"] == "SIGTERM")
    for count in (1, 2, 3):  # one at a time: a standard signal sent twice before it is taken is one
        run.signal(signal.SIGTERM)
        run.wait_line("(stop signal #%d)" % count, timeout=5)
    t2 = time.monotonic()
    assert run.wait(10) == 0, run.describe()
    assert run.t_exit - t2 < 5, "third stop signal: leftovers killed %.2fs later" % (run.t_exit - t2)
