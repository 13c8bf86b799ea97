"""Issue 3, stop sequence: --ready-file, --stdout/--stderr, --link-stdout/--link-stderr.
Real graceinit CLI, real processes."""
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stop_helpers.fixtures import gi  # noqa: E402,F401  (fixture)
from helpers import wait_until  # noqa: E402


def _alive(p):
    try:
        return p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.timeout(20)
def test_ready_file_created_after_spawn_and_removed_the_instant_sigterm_arrives(gi):
    ready = gi.tmp / "ready"
    run = gi.start(["--ready-file", ready, "--stop-delay", "1.5",
                    "--pre-hook", gi.hook("pre", "--check-file", ready, "--sleep", "0.3"),
                    "--stop-hook", gi.hook("stop", "--check-file", ready)],
                   gi.child())
    t_ready = wait_until(lambda: ready.exists() and time.monotonic(), 5,
                         lambda: "the ready file to appear" + run.describe(),
                         interval=0.005, max_interval=0.005)
    pre_pid = gi.wait_event("pre", "hook")["pid"]
    kids = [p for p in psutil.Process(run.pid).children()
            if p.pid != pre_pid and _alive(p)]
    assert kids, "ready file exists but the child has not been spawned"
    pre_end = gi.wait_event("pre", "hook-end")
    assert pre_end["t"] <= t_ready
    assert gi.wait_event("pre", "hook")["files"] == {str(ready): False}, \
        "ready file existed while the pre hook ran"
    gi.wait_event("child", "start", run=run)

    t0 = run.signal(signal.SIGTERM)
    t_gone = wait_until(lambda: not ready.exists() and time.monotonic(), 1.0,
                        lambda: "the ready file to be removed after SIGTERM" + run.describe(),
                        interval=0.002, max_interval=0.002)
    assert t_gone - t0 < 0.5
    stop = gi.wait_event("stop", "hook", run=run)
    assert stop["files"] == {str(ready): False}, "ready file still there when stop hooks ran"
    term = gi.wait_event("child", "signal", timeout=4, run=run)
    assert term["t"] - t0 >= 1.4, "stop delay not honoured"
    assert t_gone < term["t"]
    assert run.wait(5) == 143, run.describe()
    assert not ready.exists()


@pytest.mark.timeout(20)
def test_stdout_stderr_paths_receive_the_child_output_only(gi):
    out = gi.tmp / "child.out"
    err = gi.tmp / "child.err"
    out.write_text("previous\n")
    # --no-subreaper makes graceinit warn (neither PID 1 nor subreaper), so it has a message
    # of its own that must land on its own stderr, not in the child's files.
    run = gi.start(["-v", "--no-subreaper", "--stdout", out, "--stderr", err,
                    "--post-hook", gi.hook("post", "--print-out", "hook-out",
                                           "--print-err", "hook-err")],
                   gi.child("--print-out", "child-out", "--print-err", "child-err",
                            "--exit-after", "0"))
    assert run.wait(10) == 0, run.describe()
    start = gi.wait_event("child", "start")
    assert start["fd1"] == os.path.realpath(out), "child's fd 1 is not the file itself"
    assert start["fd2"] == os.path.realpath(err), "child's fd 2 is not the file itself"
    assert out.read_text() == "previous\nchild-out\n", "--stdout must append"
    assert err.read_text() == "child-err\n"
    assert stat.S_IMODE(err.stat().st_mode) == 0o640, oct(err.stat().st_mode)
    assert "[graceinit]" in run.stderr_text(), "expected graceinit's own warning on its stderr"
    gi_out, gi_err = run.stdout_text().splitlines(), run.stderr_text().splitlines()
    assert "child-out" not in gi_out and "child-err" not in gi_err, \
        "child output reached graceinit's own streams"
    assert "hook-out" in gi_out and "hook-err" in gi_err, \
        "hook output goes to graceinit's stdout/stderr"


@pytest.mark.timeout(20)
@pytest.mark.parametrize("stream", ["stdout", "stderr"])
def test_link_path_is_a_symlink_to_graceinits_own_stream(gi, stream):
    (gi.tmp / "log").mkdir()
    link = gi.tmp / "log" / ("%s.log" % stream)
    pipe = {stream: subprocess.PIPE}
    # The child points its own fd 1/2 at /dev/null first, so text written through the link
    # reaches graceinit's stream only if the link names graceinit's fd (not /proc/self/...).
    run = gi.start(["--link-%s" % stream, link],
                   gi.child("--stdout-devnull", "--write", link, "through-the-link",
                            "--exit-after", "0"),
                   **pipe)
    assert run.wait(10) == 0, run.describe()
    data = run.stdout_text(timeout=5) if stream == "stdout" else run.stderr_text(timeout=5)
    start = gi.wait_event("child", "start")
    (w,) = start["writes"]
    assert w["ok"], "writing through %s failed: %s" % (link, w)
    assert w["link"] is not None, "%s is not a symlink" % link
    assert "through-the-link" in data, "text written through the link not on graceinit's %s: %r" % (
        stream, data)
