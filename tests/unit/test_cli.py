"""The command line's container path (cli.py) and its one definition (options.py): bounds,
errors that name what was typed, the environment, the new options, and what the path does not
import. No process is started except where the import cost or stdout itself is the subject."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from graceinit import cli
from graceinit.config import (
    MAX_DURATION,
    USAGE_ERROR,
    Config,
    ConfigError,
    Hooks,
    parse_duration,
    parse_exit_remap,
    parse_listen,
    parse_signal,
    signal_name,
)
from graceinit.options import SET_FOR_HOOKS, TABLE

REPO = Path(__file__).resolve().parents[2]
GRACEINIT = str(Path(sys.executable).with_name("graceinit"))


def read(args, **env):
    return cli.read(args, env)


def error_of(args, **env) -> str:
    with pytest.raises(ConfigError) as raised:
        cli.read(args, env)
    return str(raised.value)


# --- durations: bounded, ASCII, no float spellings --------------------------------------

# Issue 10 item 2: each of these was accepted and crashed the loop, or was not a number.
@pytest.mark.parametrize("text", [
    "597h", "99999999999999999999", "100000000000h", "169h", "604801", "10081m",
    "1e400", "1e3", "nan", "inf", "-inf", "infinity", "٥", "５", "²", "1_0", "0x10", "+5",
    "5 5", "5.5.5", ".", "ms", "", " ", "9" * 5000, "1" + "0" * 400, "5\n", "5\x00",
])
def test_durations_outside_the_grammar_or_the_bound_are_refused(text: str) -> None:
    if text == "5\n":  # surrounding whitespace is trimmed, as before
        assert parse_duration(text) == 5.0
        return
    with pytest.raises(ConfigError):
        parse_duration(text)


@pytest.mark.parametrize("text, seconds", [
    ("168h", MAX_DURATION), ("604800", MAX_DURATION), ("10080m", MAX_DURATION), ("5.", 5.0),
    ("0.001", 0.001), ("5 ms", 0.005), ("1.5H", 5400.0),
])
def test_durations_up_to_the_bound(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_unlimited_is_none_and_only_for_the_grace_period() -> None:
    for word in ("unlimited", "INF", "infinity", "none"):
        assert read(["--grace-period", word, "app"]).grace_period is None
        assert "--hook-timeout" in error_of(["--hook-timeout", word, "app"])
    message = error_of(["--grace-period", "200h", "app"])
    assert "--grace-period '200h'" in message and "unlimited" in message and "7 days" in message


@pytest.mark.parametrize("option", [o.long for o in TABLE if o.metavar.startswith("SECONDS")])
def test_every_duration_option_is_bounded(option: str) -> None:
    assert option in error_of([option, "597h", "app"])
    assert option in error_of([option, "٥", "app"])


# --- other numbers -----------------------------------------------------------------------

@pytest.mark.parametrize("text", ["٥", "1_5", " 15", "+15", "0", "65", "9" * 100, "RTMIN+٣", "SIG_DFL",
                                  "_DFL", "DFL", "SIG_BLOCK", "RTMIN+", "RTMIN3", "RTMAX+1", "ＴＥＲＭ"])
def test_signals_are_ascii_and_real(text: str) -> None:
    if text == " 15":
        assert parse_signal(text) == 15
        return
    with pytest.raises(ConfigError):
        parse_signal(text)


def test_signal_names_match_the_signal_module() -> None:
    for number in signal.valid_signals():
        number = int(number)
        if signal.SIGRTMIN <= number <= signal.SIGRTMAX:
            continue
        try:
            expected = signal.Signals(number).name
        except ValueError:
            continue
        assert signal_name(number) == expected
        assert parse_signal(expected) == number
    assert parse_signal("IOT") == signal.SIGABRT and parse_signal("cld") == signal.SIGCHLD
    assert parse_signal("STKFLT") == 16 and signal_name(16) == "SIGSTKFLT"


@pytest.mark.parametrize("text", ["٥:0", "1_4_3:0", "143:٠", "+143:0", "143: 0", "9" * 100 + ":0"])
def test_exit_remap_is_ascii(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_exit_remap(text)


@pytest.mark.parametrize("text", ["tcp://:٨٠", "tcp://:+80", "tcp://:1_0", "tcp://[::1]80", "tcp://[]:80",
                                  "tcp://a:b:80", "ünï=tcp://:1", "x" * 256 + "=tcp://:1", "tcp://:"])
def test_listen_is_ascii(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_listen(text)


def test_listen_forms_that_worked_still_work() -> None:
    assert str(parse_listen("tcp://127.0.0.1:8080/")) == "tcp://127.0.0.1:8080"
    assert str(parse_listen("tcp://localhost:80")) == "tcp://localhost:80"
    assert parse_listen("unix:///run/x.sock").path == "/run/x.sock"


def test_verbosity_is_bounded() -> None:
    assert read(["-vvvvvvv", "app"]).verbose == 3
    assert read(["app"], GRACEINIT_VERBOSE="3").verbose == 3
    for bad in ("4", "99999999999999999999", "٣", "-1", "2.0", "loud"):
        message = error_of(["app"], GRACEINIT_VERBOSE=bad)
        assert message.startswith(f"GRACEINIT_VERBOSE={bad!r}: "), message


# --- errors name what the user typed -----------------------------------------------------

def test_environment_errors_name_the_variable_and_its_value() -> None:
    message = error_of(["app"], GRACEINIT_STOP_DELAY="abc")
    assert message.startswith("GRACEINIT_STOP_DELAY='abc': "), message
    assert "--stop-delay" not in message
    assert error_of(["app"], GRACEINIT_REWRITE="TERM:QUIT,NOPE:0").startswith(
        "GRACEINIT_REWRITE='TERM:QUIT,NOPE:0': ")
    assert error_of(["app"], GRACEINIT_NOTIFY="maybe").startswith("GRACEINIT_NOTIFY='maybe': ")


def test_command_line_errors_name_the_option_and_the_value() -> None:
    assert error_of(["--stop-delay", "abc", "app"]).startswith("--stop-delay 'abc': ")
    assert error_of(["-r", "NOPE:0", "app"]).startswith("--rewrite 'NOPE:0': ")
    assert error_of(["-eX", "app"]).startswith("--remap-exit 'X': ")


def test_a_bad_variable_is_not_read_when_the_option_is_given() -> None:
    assert read(["--stop-delay", "1", "app"], GRACEINIT_STOP_DELAY="abc").stop_delay == 1.0


@pytest.mark.parametrize("args, expected", [
    (["--bogus", "app"], "no such option: --bogus"),
    (["--stop-dealy", "1", "app"], "did you mean --stop-delay?"),
    (["-x", "app"], "no such option: -x"),
    (["--notify=1", "app"], "option --notify takes no value"),
    (["-G=1", "app"], "no such option: -="),
    (["--stop-delay"], "option --stop-delay needs a value"),
    (["-r"], "option -r needs a value"),
    (["--"], "missing COMMAND"),
    ([], "missing COMMAND"),
    (["-v"], "missing COMMAND"),
])
def test_grammar_errors(args, expected) -> None:
    assert expected in error_of(args)


def test_usage_errors_are_one_line_on_stderr(capfd: pytest.CaptureFixture) -> None:
    assert cli.parse(["--pre-hook", "echo 'a\nb", "app"]) == 2
    err = capfd.readouterr().err
    assert err.count("\n") == 1 and err.startswith("[graceinit] error: --pre-hook "), err


# --- the environment ---------------------------------------------------------------------

@pytest.mark.parametrize("text, value", [
    (text, value)
    for spellings, value in ((("1", "true", "yes", "on"), True), (("0", "false", "no", "off"), False))
    for word in spellings
    for text in (word, word.upper(), word.capitalize(), f" {word} ")
])
def test_boolean_spellings(text: str, value: bool) -> None:
    config = read(["app"], GRACEINIT_PROCESS_GROUP=text, GRACEINIT_NOTIFY=text, GRACEINIT_QUIET=text,
                  GRACEINIT_SINGLE_CHILD=text, GRACEINIT_SUBREAPER=text, GRACEINIT_VERBOSE=text)
    assert (config.process_group, config.notify, config.quiet, config.single_child, config.subreaper) == (value,) * 5
    assert config.verbose == int(value)


@pytest.mark.parametrize("text", ["y", "n", "t", "f", "2", "enable", "١"])
def test_other_boolean_spellings_are_refused(text: str) -> None:
    assert error_of(["app"], GRACEINIT_NOTIFY=text).startswith(f"GRACEINIT_NOTIFY={text!r}: ")


def test_the_command_line_switch_wins_over_the_variable() -> None:
    assert read(["-g", "app"], GRACEINIT_PROCESS_GROUP="off").process_group is True
    assert read(["-S", "app"], GRACEINIT_SUBREAPER="on").subreaper is False
    assert read(["app"]).subreaper is None


def test_an_empty_variable_is_unset() -> None:
    assert read(["app"], GRACEINIT_STOP_DELAY="", GRACEINIT_NOTIFY="").stop_delay == 0.0


def test_hook_variables_skip_blank_lines_and_comma_lists_skip_empty_items() -> None:
    config = read(["app"], GRACEINIT_PRE_HOOK="\n  \ntrue\n\nfalse x\n", GRACEINIT_REMAP_EXIT="143:0,,1:2,")
    assert config.pre_hooks == Hooks(commands=(("true",), ("false", "x")))
    assert dict(config.remap_exit) == {143: 0, 1: 2}


def test_misspelled_variables_get_one_warning_with_a_suggestion() -> None:
    warnings = cli.unknown_variables({"GRACEINIT_STOP_DELEY": "3", "GRACEINIT_STOP_DELAY": "1", "HOME": "/"})
    assert warnings == [("unknown variable GRACEINIT_STOP_DELEY ignored (did you mean GRACEINIT_STOP_DELAY?)",
                         {"variable": "GRACEINIT_STOP_DELEY", "suggestion": "GRACEINIT_STOP_DELAY"})]
    assert cli.unknown_variables({"GRACEINIT_WHATEVER": "1"}) == [
        ("unknown variable GRACEINIT_WHATEVER ignored", {"variable": "GRACEINIT_WHATEVER"})]


def test_variables_graceinit_sets_for_hooks_and_every_option_variable_are_not_warned_about() -> None:
    environ = {name: "1" for name in SET_FOR_HOOKS}
    environ.update({option.envvar: "1" for option in TABLE})
    assert cli.unknown_variables(environ) == []


# --- new options -------------------------------------------------------------------------

def test_log_format() -> None:
    assert read(["app"]).log_format == "text"
    assert read(["--log-format", "json", "app"]).log_format == "json"
    assert read(["app"], GRACEINIT_LOG_FORMAT="JSON").log_format == "json"
    assert error_of(["app"], GRACEINIT_LOG_FORMAT="xml").startswith("GRACEINIT_LOG_FORMAT='xml': ")
    assert error_of(["--log-format=xml", "app"]).startswith("--log-format 'xml': ")


def test_stop_delay_auto_and_its_bounds() -> None:
    config = read(["app"])
    assert (config.stop_delay, config.stop_delay_auto, config.stop_delay_min, config.stop_delay_max) == (0.0, False, 0.0, 30.0)
    config = read(["--stop-delay", "auto", "--stop-delay-min", "2", "--stop-delay-max", "1m", "app"])
    assert (config.stop_delay, config.stop_delay_auto, config.stop_delay_min, config.stop_delay_max) == (0.0, True, 2.0, 60.0)
    config = read(["app"], GRACEINIT_STOP_DELAY="AUTO")
    assert config.stop_delay_auto is True and isinstance(config.stop_delay, float)
    assert read(["--stop-delay", "5", "app"], GRACEINIT_STOP_DELAY="auto").stop_delay_auto is False


def test_stop_delay_min_above_max_is_refused_naming_both() -> None:
    message = error_of(["--stop-delay-min", "40", "app"])
    assert "--stop-delay-min '40'" in message and "--stop-delay-max (default 30)" in message
    message = error_of(["--stop-delay-max", "1", "app"], GRACEINIT_STOP_DELAY_MIN="2")
    assert "GRACEINIT_STOP_DELAY_MIN='2'" in message and "--stop-delay-max '1'" in message


def test_drain_ignore_is_normalized_cidrs() -> None:
    config = read(["--drain-ignore", "10.1.2.3/8, 192.168.0.7", "--drain-ignore=::1,10.0.0.0/8", "app"])
    assert config.drain_ignore == ("10.0.0.0/8", "192.168.0.7/32", "::1/128")
    assert read(["app"], GRACEINIT_DRAIN_IGNORE="fd00::/8,127.0.0.1").drain_ignore == ("fd00::/8", "127.0.0.1/32")
    assert read(["app"]).drain_ignore == ()
    for bad in ("10.0.0.0/33", "nope", ",", "١٠.0.0.1", "10.0.0.1/-1"):
        assert error_of(["--drain-ignore", bad, "app"]).startswith(f"--drain-ignore {bad!r}: ")


def test_restart_signal_checks() -> None:
    for bad in ("TERM", "int", "KILL", "STOP", "CHLD", "SEGV"):
        assert "cannot be the restart signal" in error_of(["--restart-signal", bad, "app"])
    assert read(["--restart-signal", "USR2", "app"]).restart_signal == signal.SIGUSR2


def test_stop_signals_option_and_variable() -> None:
    # Issue 19 item 9: nginx's STOPSIGNAL, `docker run --stop-signal`, KEP-4960.
    assert read(["app"]).stop_signals == {signal.SIGTERM, signal.SIGINT}
    assert read(["--stop-signals", "TERM,INT,QUIT", "app"]).stop_signals == {
        signal.SIGTERM, signal.SIGINT, signal.SIGQUIT}
    assert read(["app"], GRACEINIT_STOP_SIGNALS="sigquit").stop_signals == {signal.SIGQUIT}
    for bad in ("KILL", "TERM,STOP", "SEGV", "CHLD", "BUS"):
        assert error_of(["--stop-signals", bad, "app"]) == (
            f"--stop-signals {bad!r}: SIG{bad.split(',')[-1]} cannot be a stop signal")
    assert error_of(["app"], GRACEINIT_STOP_SIGNALS="NOPE").startswith("GRACEINIT_STOP_SIGNALS='NOPE': ")
    assert error_of(["--stop-signals", ",", "app"]) == "--stop-signals ',': needs at least one signal"
    assert error_of(["--stop-signals", "QUIT", "--restart-signal", "QUIT", "app"]) == (
        "--restart-signal 'QUIT': SIGQUIT is also a stop signal (--stop-signals 'QUIT')")


# --- Config stays what the supervisor reads ----------------------------------------------

def test_config_is_frozen_with_keyword_construction_and_equality() -> None:
    config = Config(command=("app",), remap_exit={137: 0})
    assert config == Config(command=("app",), remap_exit={137: 0})
    assert config != Config(command=("app",))
    assert config.hook_timeout == 30.0 and config.grace_period is None and config.drain_ignore == ()
    with pytest.raises(AttributeError):
        config.stop_delay = 3.0  # type: ignore[misc]
    with pytest.raises(TypeError):
        Config(command=("app",), no_such_field=1)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Config()  # type: ignore[call-arg]
    assert not Hooks() and Hooks(directory="/x")


def test_every_table_option_has_a_field_or_feeds_one() -> None:
    feeds = {"pre_hook": "pre_hooks", "pre_hook_dir": "pre_hooks", "stop_hook": "stop_hooks",
             "post_hook": "post_hooks", "post_hook_dir": "post_hooks"}
    for option in TABLE:
        assert feeds.get(option.dest, option.dest) in Config.__slots__, option.dest


# --- cost: what the container path imports -----------------------------------------------

def test_the_container_path_imports_neither_click_nor_re_nor_dataclasses() -> None:
    probe = (
        "import sys; from graceinit import cli\n"
        "cli.read(['-v', '--stop-delay', '5', '-e', '143:0', '-r', 'TERM:QUIT', 'app'],"
        " {'GRACEINIT_GRACE_PERIOD': '10', 'GRACEINIT_NOTIFY': 'yes'})\n"
        "print(' '.join(sorted(m for m in ('click', 're', 'enum', 'typing', 'dataclasses', 'inspect',"
        " 'difflib', 'ipaddress', 'signal', 'types', 'textwrap') if m in sys.modules)))\n"
    )
    # -S: without site (and an editable install's finder, which imports re and more itself).
    done = subprocess.run([sys.executable, "-S", "-c", probe], capture_output=True, text=True, timeout=30,
                          env={"PYTHONPATH": str(REPO), "PATH": os.environ.get("PATH", "/usr/bin")})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == []


# --- people: --help, --version, completion (click, from the same table) -------------------

def _run(args, **kw):
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRACEINIT_")}
    env.update(kw.pop("env", {}))
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.PIPE)
    return subprocess.run([GRACEINIT, *args], text=True, timeout=30, env=env, stdin=subprocess.DEVNULL, **kw)


def test_help_is_complete_on_its_own() -> None:
    done = _run(["--help"], env={"COLUMNS": "100"})
    assert done.returncode == 0 and done.stderr == ""
    text = done.stdout
    assert "Usage: graceinit [OPTIONS] -- COMMAND [ARG]..." in text
    for option in TABLE:
        assert option.long in text and option.envvar in text, option.long
    squeezed = " ".join(text.split())
    for status in ("128+N", " 2 ", " 70 ", " 71 ", " 124 ", " 126 ", " 127 ", "the app's status"):
        assert status in squeezed, status
    assert "README" not in text and "7 days" in text and "yes/no" in text


def test_help_lists_every_exit_status_graceinit_itself_chooses() -> None:
    from graceinit import hooks, lifecycle, spawn
    from graceinit.options import EXIT_STATUSES

    listed = {status for status, _ in EXIT_STATUSES}
    chosen = {USAGE_ERROR, lifecycle.INTERNAL_ERROR, spawn.OS_REFUSED, hooks.HOOK_TIMED_OUT,
              spawn.NOT_EXECUTABLE, spawn.NOT_FOUND}
    assert {str(status) for status in chosen} <= listed, listed


def test_version() -> None:
    from graceinit import __version__

    done = _run(["--version"])
    assert (done.returncode, done.stdout, done.stderr) == (0, f"graceinit {__version__}\n", "")


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
@pytest.mark.parametrize("args", [["--help"], ["--version"], ["-h", "--stop-delay", "x", "app"]])
def test_help_and_version_to_a_full_device_fail_with_one_line(args) -> None:
    with open("/dev/full", "w") as full:
        done = _run(args, stdout=full, stderr=subprocess.PIPE)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("[graceinit] error: cannot write"), done.stderr


def test_shell_completion_comes_from_click() -> None:
    done = _run([], env={"_GRACEINIT_COMPLETE": "bash_source"})
    assert done.returncode == 0 and "_GRACEINIT_COMPLETE" in done.stdout, done.stderr
    done = _run([], env={"_GRACEINIT_COMPLETE": "bash_complete", "COMP_WORDS": "graceinit --stop-de",
                         "COMP_CWORD": "1"})
    assert done.returncode == 0 and "--stop-delay" in done.stdout, done.stderr


def test_a_misspelled_variable_is_warned_about_once_at_start(tmp_path) -> None:
    done = _run(["true"], env={"GRACEINIT_STOP_DELEY": "3"})
    assert done.returncode == 0
    assert done.stderr == ("[graceinit] warning: unknown variable GRACEINIT_STOP_DELEY ignored"
                           " (did you mean GRACEINIT_STOP_DELAY?)\n")
    done = _run(["true"], env={"GRACEINIT_PHASE": "post", "GRACEINIT_EXIT_CODE": "0"})
    assert (done.returncode, done.stderr) == (0, "")


def test_a_misspelled_variable_in_json_names_the_variable_and_the_suggestion() -> None:
    done = _run(["--log-format", "json", "true"], env={"GRACEINIT_STOP_DELEY": "3", "GRACEINIT_WHATEVER": "1"})
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stderr.splitlines()]
    assert [(r["event"], r.get("variable"), r.get("suggestion")) for r in records] == [
        ("unknown_variable", "GRACEINIT_STOP_DELEY", "GRACEINIT_STOP_DELAY"),
        ("unknown_variable", "GRACEINIT_WHATEVER", None)], done.stderr


def test_a_huge_value_is_shortened_in_the_message() -> None:
    message = error_of(["app"], GRACEINIT_STOP_DELAY="x" * 100_000)
    assert message.startswith("GRACEINIT_STOP_DELAY='xxxx") and "(100000 characters)" in message
    assert len(message) < 300
    assert len(error_of(["--listen", "y" * 5000 + "=tcp://:1", "app"])) < 300


def test_config_replace_changes_only_what_is_named() -> None:
    config = read(["--stop-delay", "5", "app"])
    changed = config.replace(stop_delay=1.0)
    assert changed.stop_delay == 1.0 and config.stop_delay == 5.0 and changed.command == ("app",)
    with pytest.raises(TypeError):
        config.replace(no_such_field=1)


@pytest.mark.parametrize("args, command", [
    (["-gcv", "app", "-x"], ("app", "-x")),
    (["-rTERM:QUIT", "-e143:0", "--", "-app"], ("-app",)),
    (["--stop-delay=5", "-", "x"], ("-", "x")),
    (["", "-v"], ("", "-v")),
    (["--pre-hook", "--", "app"], ("app",)),
])
def test_grammar_like_click(args, command) -> None:
    assert read(args).command == command
