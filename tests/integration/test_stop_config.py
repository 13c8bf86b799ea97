"""Issue 3, stop sequence: --termination-budget, bad configuration failing fast, and the
GRACEINIT_* environment variables. Real graceinit CLI, real processes."""
import os
import signal
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stop_helpers.fixtures import gi  # noqa: E402,F401  (fixture)
from helpers import wait_until  # noqa: E402


def is_sig(name):
    return lambda e: e["sig"] == name


def graceinit_lines(text):
    return [line for line in text.splitlines() if line.startswith("[graceinit]")]


@pytest.mark.timeout(20)
def test_termination_budget_warns_at_startup_when_settings_cannot_fit(gi):
    # 0.5 s delay + 5 s grace cannot fit in 2 s: a warning before anything is stopped.
    run = gi.start(["--termination-budget", "2", "--stop-delay", "0.5", "--grace-period", "5"],
                   gi.child("--on", "USR2=exit:0"))
    child = gi.wait_event("child", "start", run=run)
    wait_until(lambda: graceinit_lines(run.stderr_text()), 3,
               lambda: "a start-up warning about the termination budget" + run.describe())
    os.kill(child["pid"], signal.SIGUSR2)  # the child ends on its own (no stop sequence)
    assert run.wait(6) == 0, run.describe()

    # Control: the same kind of settings that do fit give no warning at all.
    ok = gi.start(["--termination-budget", "100", "--stop-delay", "0.5", "--grace-period", "1"],
                  gi.child("--exit-after", "0", name="fits"))
    assert ok.wait(10) == 0, ok.describe()
    assert graceinit_lines(ok.stderr_text()) == [], "warned although the settings fit the budget"


@pytest.mark.timeout(20)
def test_termination_budget_shortens_grace_so_post_hook_runs_within_budget(gi):
    # SIGKILL deadline = min(forward + grace(unlimited), stop + 3 - 1*1 (post hook) - 0.5) = +1.5 s
    run = gi.start(["--termination-budget", "3", "--stop-delay", "0.5", "--hook-timeout", "1",
                    "--leftover-grace", "0.5", "--post-hook", gi.hook("post")],
                   gi.child("--on", "TERM=log"))
    gi.wait_event("child", "start", run=run)
    t0 = run.signal(signal.SIGTERM)
    term = gi.wait_event("child", "signal", timeout=3, run=run, pred=is_sig("SIGTERM"))
    assert term["t"] - t0 >= 0.4, "stop delay not honoured"
    rc = run.wait(6)
    post = gi.wait_event("post", "hook")
    assert 1.2 <= post["t"] - t0 <= 3.0, \
        "post hook started %.2fs after SIGTERM; budget 3s, kill deadline ~1.5s" % (post["t"] - t0)
    assert post["exit_signal"] == "SIGKILL"
    assert rc == 137, run.describe()


MISSING = "/nonexistent/graceinit-stop-test"

BAD_CONFIG = {
    # id: (options builder(harness) -> list, strings of which the message must name one;
    #      "{tmp}" stands for the test's tmp dir)
    "missing-pre-hook-command": (lambda h: ["--pre-hook", MISSING + "/pre-hook"],
                                 [MISSING + "/pre-hook"]),
    "missing-stop-hook-command-on-PATH": (
        lambda h: ["--stop-hook", "graceinit-no-such-hook-command --flag"],
        ["graceinit-no-such-hook-command"]),
    "missing-post-hook-command": (lambda h: ["--post-hook", MISSING + "/post-hook"],
                                  [MISSING + "/post-hook"]),
    "missing-pre-hook-dir": (lambda h: ["--pre-hook-dir", MISSING + "/pre.d"],
                             [MISSING + "/pre.d", "--pre-hook-dir"]),
    "missing-post-hook-dir": (lambda h: ["--post-hook-dir", MISSING + "/post.d"],
                              [MISSING + "/post.d", "--post-hook-dir"]),
    "negative-stop-delay": (lambda h: ["--stop-delay=-1"], ["--stop-delay", "-1"]),
    "negative-grace-period": (lambda h: ["--grace-period=-2s"], ["--grace-period", "-2s"]),
    "bad-duration": (lambda h: ["--hook-timeout", "soon"], ["--hook-timeout", "soon"]),
    "bad-duration-unit": (lambda h: ["--stop-delay", "5x"], ["--stop-delay", "5x"]),
    "stdout-parent-missing": (lambda h: ["--stdout", MISSING + "/out.log"],
                              [MISSING + "/out.log", "--stdout"]),
    "stdout-is-a-directory": (lambda h: ["--stdout", str(h.tmp)], ["{tmp}", "--stdout"]),
    "stderr-parent-missing": (lambda h: ["--stderr", MISSING + "/err.log"],
                              [MISSING + "/err.log", "--stderr"]),
    "link-stdout-parent-missing": (lambda h: ["--link-stdout", MISSING + "/stdout.log"],
                                   [MISSING + "/stdout.log", "--link-stdout"]),
    "link-stderr-parent-missing": (lambda h: ["--link-stderr", MISSING + "/stderr.log"],
                                   [MISSING + "/stderr.log", "--link-stderr"]),
}


@pytest.mark.timeout(15)
@pytest.mark.parametrize("case", list(BAD_CONFIG))
def test_bad_configuration_fails_fast_with_one_line_and_exit_2(gi, case):
    build, names = BAD_CONFIG[case]
    names = [n.replace("{tmp}", str(gi.tmp)) for n in names]
    # Valid hooks around the bad option: none of them, nor the child, may run.
    opts = (["--pre-hook", gi.hook("pre-ok"), "--post-hook", gi.hook("post-ok")] + build(gi)
            + ["--stop-hook", gi.hook("stop-ok")])
    run = gi.start(opts, gi.child("--exit-after", "0"))
    rc = run.wait(10)
    lines = [line for line in run.stderr_text().splitlines() if line.strip()]
    assert rc == 2, run.describe()
    assert len(lines) == 1, "expected exactly one line on stderr, got:\n%s" % run.stderr_text()
    assert lines[0].startswith("[graceinit] "), lines[0]
    assert any(n in lines[0] for n in names), "message does not name %s: %s" % (names, lines[0])
    assert gi.events() == [], "something was spawned before the configuration was checked"


@pytest.mark.timeout(20)
def test_env_vars_stop_delay_and_newline_separated_post_hooks(gi):
    env = gi.env(GRACEINIT_STOP_DELAY="1",
                 GRACEINIT_POST_HOOK=gi.hook("postA") + "\n" + gi.hook("postB"))
    run = gi.start([], gi.child(), env=env)
    gi.wait_event("child", "start", run=run)
    t0 = run.signal(signal.SIGTERM)
    term = gi.wait_event("child", "signal", timeout=4, run=run)
    assert 0.9 <= term["t"] - t0 <= 4.0, "GRACEINIT_STOP_DELAY=1 ignored (%.2fs)" % (
        term["t"] - t0)
    assert run.wait(5) == 143, run.describe()
    assert [e["who"] for e in gi.events(ev="hook")] == ["postA", "postB"]


@pytest.mark.timeout(20)
def test_command_line_wins_over_env_vars(gi):
    env = gi.env(GRACEINIT_STOP_DELAY="30",
                 GRACEINIT_POST_HOOK=gi.hook("envA") + "\n" + gi.hook("envB"))
    run = gi.start(["--stop-delay", "0.3", "--post-hook", gi.hook("cli")], gi.child(), env=env)
    gi.wait_event("child", "start", run=run)
    t0 = run.signal(signal.SIGTERM)
    term = gi.wait_event("child", "signal", timeout=4, run=run)
    assert 0.25 <= term["t"] - t0 <= 3.0, "--stop-delay 0.3 must win over the env (%.2fs)" % (
        term["t"] - t0)
    assert run.wait(5) == 143, run.describe()
    assert [e["who"] for e in gi.events(ev="hook")] == ["cli"], \
        "--post-hook on the command line replaces GRACEINIT_POST_HOOK"
