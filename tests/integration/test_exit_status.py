"""Issue 2, behaviour 4 -- exit statuses and the command line.

graceinit exits with the child's code, 128+N when the child died of signal
N, 127 (not found) / 126 (not executable) with one ``[graceinit]`` line on
stderr, remaps last with ``-e FROM:TO``; its own usage errors exit 2 with one
line naming the bad option or value and spawn nothing.  Option parsing stops
at the first non-option, and every option can come from ``GRACEINIT_<NAME>``
(the command line wins).
"""
import os
import signal

import pytest

pytestmark = pytest.mark.timeout(30)

from helpers import py_helper
from helpers.inits import init_params

PREFIX = "[graceinit] "


def one_line(stderr):
    """graceinit's stderr (bytes) as exactly one line, or fail."""
    lines = [l for l in stderr.decode("utf-8", "replace").splitlines() if l.strip()]
    assert len(lines) == 1, "expected exactly one stderr line, got %r" % lines
    return lines[0]


@pytest.mark.parametrize("code", [0, 1, 42, 255])
@pytest.mark.parametrize("init", init_params(), indirect=True)
def test_child_exit_code_is_passed_through(init, procs, code):
    rc, _, err = procs.run(init.cmd("--", "sh", "-c", "exit %d" % code))
    assert rc == code, err


@pytest.mark.parametrize("code", [42])
def test_child_exit_code_is_passed_through_as_pid1(init, procs, code, pid1_ok):
    rc, _, err = procs.run(init.cmd("--", "sh", "-c", "exit %d" % code), pid1=True)
    assert rc == code, err


@pytest.mark.parametrize("sig", ["KILL", "TERM", "HUP", "USR1"])
@pytest.mark.parametrize("init", init_params(), indirect=True)
def test_child_killed_by_signal_gives_128_plus_n(init, procs, sig, pid1):
    rc, _, err = procs.run(init.cmd("--", "sh", "-c", "kill -s %s $$" % sig), pid1=pid1)
    assert rc == 128 + getattr(signal, "SIG" + sig), err


@pytest.mark.parametrize("init", init_params(xfail={
    "naive": "does not forward SIGCONT"}), indirect=True)
def test_a_stopped_child_has_not_exited(init, procs, pid1):
    """The child stops itself (SIGSTOP); that is no exit.  SIGCONT sent to
    the init is forwarded, the child resumes and exits 5: the init's status
    is 5 (an init that took the stop for an exit would report something else)."""
    sup = procs.start(init.cmd("--", "sh", "-c", "kill -s STOP $$; exit 5"), pid1=pid1)
    child = sup.child(contains="kill -s STOP $$; exit 5")
    from helpers import procfs
    procfs.wait_until(lambda: procfs.state(child) in ("T", None, "Z"), 10, "the child to stop")
    sup.send(signal.SIGCONT)
    assert sup.wait(timeout=10) == 5, sup.stderr_text()


@pytest.mark.parametrize("command", ["gi-no-such-command-xyz", "/nonexistent/gi-cmd"])
def test_command_not_found_exits_127_with_one_line(init, procs, command):
    rc, out, err = procs.run(init.cmd("--", command, "arg"))
    assert rc == 127, err
    line = one_line(err)
    assert line.startswith(PREFIX) and command in line, line
    assert out == b""


@pytest.mark.parametrize("kind", ["file-without-x-bit", "directory"])
def test_command_not_executable_exits_126_with_one_line(init, procs, tmp_path, kind):
    if kind == "directory":
        target = tmp_path / "a-directory"
        target.mkdir()
    else:
        target = tmp_path / "script.sh"
        target.write_text("#!/bin/sh\nexit 0\n")
        target.chmod(0o644)
    rc, out, err = procs.run(init.cmd("--", str(target)))
    assert rc == 126, err
    line = one_line(err)
    assert line.startswith(PREFIX) and str(target) in line, line


@pytest.mark.parametrize("remaps, child, expected", [
    (["143:0"], "kill -s TERM $$", 0),
    (["3:0"], "exit 3", 0),
    (["3:0"], "exit 4", 4),
    (["3:10", "4:11"], "exit 4", 11),
])
def test_remap_exit_status(init, procs, remaps, child, expected):
    args = []
    for r in remaps:
        args += ["-e", r]
    rc, _, err = procs.run(init.cmd(*args, "--", "sh", "-c", child))
    assert rc == expected, err


def test_remap_applies_to_graceinits_own_statuses(init, procs):
    """-e is applied last, to whatever the status is -- also 127."""
    rc, _, err = procs.run(init.cmd("-e", "127:5", "--", "gi-no-such-command-xyz"))
    assert rc == 5, err


@pytest.mark.parametrize("args, names", [
    (["-r", "FOO:USR1"], ["FOO"]),
    (["-r", "USR1:NOPE"], ["NOPE"]),
    (["-r", "USR1"], ["USR1"]),
    (["--rewrite", "10-12"], ["10-12"]),
    (["-e", "x:0"], ["x:0"]),
    (["-e", "256:0"], ["256"]),
    (["--pdeathsig", "NOSUCHSIG"], ["NOSUCHSIG"]),
    (["--bogus-option"], ["--bogus-option"]),
    (["-Z"], ["-Z"]),
], ids=["unknown-signal-from", "unknown-signal-to", "no-colon", "bad-separator",
        "bad-exit-status", "exit-status-out-of-range", "bad-pdeathsig", "unknown-long-option", "unknown-short-option"])
def test_usage_error_exits_2_with_one_line_naming_it(init, procs, tmp_path, args, names):
    marker = tmp_path / "spawned"
    rc, out, err = procs.run(init.cmd(*args, "--", "touch", str(marker)))
    assert rc == 2, err
    line = one_line(err)
    assert line.startswith(PREFIX), line
    assert any(n in line for n in names), "%r does not name %r" % (line, names)
    assert not marker.exists(), "a usage error still spawned the command"
    assert out == b""


def test_missing_command_is_a_usage_error(init, procs):
    rc, _, err = procs.run(init.cmd())
    assert rc == 2, err
    assert one_line(err).startswith(PREFIX)


def test_options_after_the_command_belong_to_the_command(init, procs):
    # If graceinit parsed this -c, sh would get 'exit 7' as a script name: 127.
    rc, _, err = procs.run(init.cmd("sh", "-c", "exit 7"))
    assert rc == 7, err
    rc, out, err = procs.run(init.cmd("printf", "%s|", "-c", "x", "-r", "y", "--help",
                                      "--", "-e", "z"))
    assert (rc, out) == (0, b"-c|x|-r|y|--help|--|-e|z|"), err
    rc, out, err = procs.run(init.cmd("-c", "--", "printf", "%s|", "-c", "x"))
    assert (rc, out) == (0, b"-c|x|"), err


# -- GRACEINIT_* environment variables ----------------------------------------

def test_env_var_sets_an_option(init, procs):
    rc, _, err = procs.run(init.cmd("--", "sh", "-c", "exit 3"),
                           env=procs.env(GRACEINIT_REMAP_EXIT="3:0"))
    assert rc == 0, err


def test_env_var_for_a_repeatable_option_takes_a_comma_list(init, procs):
    env = procs.env(GRACEINIT_REMAP_EXIT="3:0,4:5")
    for code, expected in ((3, 0), (4, 5)):
        rc, _, err = procs.run(init.cmd("--", "sh", "-c", "exit %d" % code), env=env)
        assert rc == expected, err


def test_command_line_wins_over_env_var(init, procs):
    rc, _, err = procs.run(init.cmd("-e", "3:9", "--", "sh", "-c", "exit 3"),
                           env=procs.env(GRACEINIT_REMAP_EXIT="3:0"))
    assert rc == 9, err


def test_env_vars_for_rewrite_and_flags(init, procs):
    """GRACEINIT_REWRITE and the boolean GRACEINIT_SINGLE_CHILD."""
    env = procs.env(GRACEINIT_REWRITE="USR1:USR2,HUP:0", GRACEINIT_SINGLE_CHILD="1")
    sup = procs.start(init.cmd("--", *py_helper("sigprinter.py", "--grandchild")), env=env)
    sup.stdout.expect("grandchild: ready", timeout=15)
    sup.stdout.expect("child: ready", timeout=15)
    sup.send(signal.SIGHUP)          # dropped
    sup.send(signal.SIGUSR1)         # -> USR2, to the child only
    sup.stdout.expect("child: SIGUSR2", timeout=5)
    import psutil
    grandchild = psutil.Process(sup.child(contains="sigprinter.py")).children()[0].pid
    os.kill(grandchild, signal.SIGWINCH)   # sentinel: a pending USR2 would print first
    sup.stdout.expect("grandchild: SIGWINCH", timeout=5)
    assert "SIGHUP" not in " ".join(sup.stdout.seen), sup.stdout.seen
    assert "grandchild: SIGUSR2" not in sup.stdout.seen


def test_command_line_rewrite_wins_over_env_var(init, procs):
    env = procs.env(GRACEINIT_REWRITE="USR1:USR2")
    sup = procs.start(init.cmd("-r", "USR1:HUP", "--", *py_helper("sigprinter.py")), env=env)
    sup.stdout.expect("ready", timeout=15)
    sup.send(signal.SIGUSR1)
    sup.stdout.expect("SIGHUP", timeout=5)


def test_bad_env_var_value_is_a_usage_error(init, procs, tmp_path):
    marker = tmp_path / "spawned"
    rc, _, err = procs.run(init.cmd("--", "touch", str(marker)),
                           env=procs.env(GRACEINIT_REWRITE="FOO:BAR"))
    assert rc == 2, err
    line = one_line(err)
    assert "FOO" in line or "GRACEINIT_REWRITE" in line, line
    assert not marker.exists()
