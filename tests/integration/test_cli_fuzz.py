"""Property-based fuzzing of the command line (issue 10, "Also"): random option lists and
GRACEINIT_* values.

- In process, many examples: the container path's parser either builds a Config or raises
  ConfigError with one line naming an option or a variable; nothing else, ever.
- In process: the parser and the click command built from the same table agree (same
  Config, or both refuse), so the table really is the one definition.
- As real processes, a bounded number: `graceinit OPTIONS -- true` exits 0 (or what -e
  makes of it), or 2 with one line; never a traceback, never 70, never a hang.
- As real processes (issue 18 item 2): random PYTHON* variables and a PYTHONPATH of modules
  shadowing what graceinit imports never change what graceinit does (its exit status and its
  lines), and none of those modules is ever imported by graceinit.

Failures the fuzzer found, and the attack run's repros, are kept as explicit cases below.
Bounded: about 10-20 s on a loaded 2-core machine.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from graceinit import cli  # noqa: E402
from graceinit.config import Config, ConfigError  # noqa: E402
from graceinit.options import FLAG, HELP_FLAGS, MULTIPLE, TABLE, VALUE, VERSION_FLAGS  # noqa: E402

GRACEINIT = str(Path(sys.executable).with_name("graceinit"))

INTERESTING = [
    "", " ", "0", "1", "5", "1.5", ".5", "5.", "500ms", "5s", "2m", "1h", "168h", "169h", "597h",
    "99999999999999999999", "100000000000h", "1e400", "1e3", "nan", "inf", "-1", "-0", "+5",
    "٥", "５", "1_0", "0x10", "auto", "AUTO", "unlimited", "none", "TERM", "SIGTERM", "15", "0:0",
    "KILL", "RTMIN+3", "RTMAX-1", "RTMIN+99", "SIG_DFL", "HUP", "USR1", "usr2", "TERM:QUIT",
    "HUP:0", "143:0", "256:0", "1:2,3:4", "text", "json", "JSON", "xml", "yes", "no", "on", "off",
    "true", "false", "maybe", "3", "4", "10.0.0.0/8", "10.1.2.3", "::1", "fd00::/8,127.0.0.1",
    "10.0.0.0/33", "tcp://127.0.0.1:0", "unix:relative", "a=b", "--", "-", "-v", "--help", "\n",
    "a\nb", "x" * 300, "é", "\u202e", "'", "\"",
]
FLAGS = [flag for option in TABLE for flag in (*option.flags, *option.off_flags)]
PEOPLE = set(HELP_FLAGS + VERSION_FLAGS)

# Options a real process may be given: nothing that writes files, binds sockets or runs hooks
# (their values still go through the in-process properties).
PROCESS_SAFE = [option for option in TABLE if option.dest in {
    "process_group", "single_child", "rewrite", "subreaper", "pdeathsig", "remap_exit", "stop_delay",
    "stop_delay_min", "stop_delay_max", "drain_ignore", "grace_period", "hook_timeout",
    "leftover_grace", "termination_budget", "restart_signal", "ready_timeout", "log_format",
    "verbose", "quiet", "ledger",
}]

text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12)
value = st.one_of(st.sampled_from(INTERESTING), text)


def option_words(options) -> st.SearchStrategy[List[str]]:
    """One option as the words a user types: `--name VALUE`, `--name=VALUE`, `-xVALUE`, a flag."""
    def words(option, chosen: str, style: int) -> List[str]:
        flags = (*option.flags, *option.off_flags)
        flag = flags[style % len(flags)]
        if not option.takes_value:
            return [flag]
        if flag.startswith("--") and style % 3 == 1:
            return [f"{flag}={chosen}"]
        if not flag.startswith("--") and style % 3 == 2:
            return [flag + chosen]
        return [flag, chosen]

    return st.builds(words, st.sampled_from(options), value, st.integers(0, 5))


def argv(options=TABLE, junk: bool = True) -> st.SearchStrategy[List[str]]:
    piece = option_words(options)
    if junk:
        piece = st.one_of(piece, piece, piece, st.sampled_from(FLAGS + ["--bogus", "-x"]).map(lambda f: [f]))
    return st.lists(piece, max_size=6).map(lambda pieces: [word for words in pieces for word in words])


def environment(options=TABLE) -> st.SearchStrategy[Dict[str, str]]:
    names = [option.envvar for option in options] + ["GRACEINIT_STOP_DELEY", "GRACEINIT_PHASE"]
    return st.dictionaries(st.sampled_from(names), value, max_size=5)


def _outcome(args: List[str], environ: Dict[str, str]) -> Tuple[Optional[Config], Optional[str]]:
    try:
        return cli.read(args, environ), None
    except ConfigError as error:
        return None, str(error)


def _names_what_was_typed(message: str) -> bool:
    return ("--" in message or "GRACEINIT_" in message or "COMMAND" in message
            or message.startswith(("no such option: -", "option -")))


FUZZ = settings(max_examples=400, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


@FUZZ
@given(argv(), environment(), st.booleans())
def test_parser_gives_a_config_or_one_line_naming_the_input(args, environ, dashdash) -> None:
    args = args + (["--", "true"] if dashdash else ["true"])
    try:
        config, message = _outcome(args, environ)
    except cli._ForPeople:
        assert any(word.partition("=")[0] in PEOPLE or (word[:1] == "-" and word[1:2] != "-" and "h" in word)
                   for word in args), args
        return
    if config is None:
        assert message and "\n" not in cli.one_line(message)
        assert _names_what_was_typed(message), message
    else:
        assert config.command[-1] == "true", args  # options end at COMMAND or --


CLICK_AGREES = settings(max_examples=250, deadline=None, database=None,
                        suppress_health_check=[HealthCheck.too_slow])


@CLICK_AGREES
@given(argv())
def test_the_parser_and_the_click_command_agree(args) -> None:
    if PEOPLE & set(args) or any(a.startswith("-") and not a.startswith("--") and "h" in a for a in args):
        return  # click prints help for these: not a parse to compare
    args = args + ["true"]
    import click

    from graceinit.clickapp import build_command

    config, message = _outcome(args, {})
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("GRACEINIT_")}
    try:
        clicked = build_command().main(args=list(args), prog_name="graceinit", standalone_mode=False)
        click_error = None
    except click.ClickException as error:
        clicked, click_error = None, error.format_message()
    finally:
        os.environ.update(saved)
    assert (config is None) == (clicked is None), (args, message, click_error)
    if config is not None:
        assert config == clicked, args


def _expected_status(args: List[str], environ: Dict[str, str]) -> int:
    config, _ = _outcome(args, environ)
    return 2 if config is None else config.remap_exit.get(0, 0)


def _run(args: List[str], environ: Dict[str, str]) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRACEINIT_")}
    env.update(environ)
    return subprocess.run([GRACEINIT, *args], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, env=env, timeout=20)


def _check_process(args: List[str], environ: Dict[str, str]) -> None:
    expected = _expected_status(args, environ)
    done = _run(args, environ)
    err = done.stderr.decode("utf-8", "replace")
    assert "Traceback" not in err, err
    assert done.returncode != 70, err
    assert done.returncode == expected, (args, environ, err)
    if expected == 2:
        assert err.count("\n") == 1 and err.startswith("[graceinit] error: "), err


PROCESSES = settings(max_examples=20, deadline=None, database=None,
                     suppress_health_check=[HealthCheck.too_slow])


@PROCESSES
@given(argv(PROCESS_SAFE, junk=False), environment(PROCESS_SAFE))
def test_real_processes_exit_0_2_or_the_childs_status(args, environ) -> None:
    if PEOPLE & set(args) or any(not a.startswith("--") and a.startswith("-") and "h" in a for a in args):
        return
    _check_process(args + ["--", "true"], environ)


# Seeds: the attack run's repros (issue 10 item 2) and what this fuzzer found while written.
SEEDS = [
    (["--stop-delay", "597h"], {}),
    (["--stop-delay", "99999999999999999999"], {}),
    (["--stop-delay", "100000000000h"], {}),
    (["--hook-timeout", "1e400"], {}),
    (["--grace-period", "nan"], {}),
    (["--stop-delay", "٥"], {}),
    (["-e", "٥:0"], {}),
    ([], {"GRACEINIT_STOP_DELAY": "597h"}),
    ([], {"GRACEINIT_VERBOSE": "true"}),
    ([], {"GRACEINIT_VERBOSE": "99999999999999999999"}),
    ([], {"GRACEINIT_PROCESS_GROUP": "maybe"}),
    (["--stop-delay-min", "40"], {}),
    ([], {"GRACEINIT_DRAIN_IGNORE": "10.0.0.0/33"}),
    (["--drain-ignore", ","], {}),
    (["-e", "0:3", "-vvvvvvvv"], {}),
    (["--restart-signal", "SEGV"], {}),
    (["--pdeathsig", "RTMIN+٣"], {}),
]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("args, environ", SEEDS, ids=[" ".join(a) or next(iter(e)) for a, e in SEEDS])
def test_seeds(args, environ) -> None:
    _check_process(args + ["--", "true"], environ)


# --- the app's Python settings (issue 18 item 2) ---------------------------------------------

from helpers import pyenv  # noqa: E402

# Not PYTHONVERBOSE and PYTHONPROFILEIMPORTTIME: the interpreter reports its own start-up
# before graceinit's first line can run (test_faults checks that none of graceinit's follows).
_SETTINGS = [(name, value) for name, values in pyenv.INTERPRETER_VARIABLES.items() for value in values
             if name not in ("PYTHONVERBOSE", "PYTHONPROFILEIMPORTTIME")]


def _normalised(err: bytes) -> List[str]:
    """graceinit's lines with what differs between two runs anyway (pids, times) blanked."""
    import re

    return [re.sub(r"[0-9]+", "N", line) for line in err.decode("utf-8", "replace").splitlines()]


@settings(max_examples=12, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(argv(PROCESS_SAFE, junk=False), environment(PROCESS_SAFE),
       st.lists(st.sampled_from(_SETTINGS), max_size=4).map(dict),
       st.lists(st.sampled_from(pyenv.SHADOWED), max_size=8, unique=True))
def test_the_apps_python_settings_never_change_graceinits_behaviour(args, environ, settings_, shadowed) -> None:
    import tempfile

    if PEOPLE & set(args) or any(not a.startswith("--") and a.startswith("-") and "h" in a for a in args):
        return
    args = args + ["--", "true"]
    plain = _run(args, environ)
    with tempfile.TemporaryDirectory(prefix="gitest-pyenv-") as directory:
        extra = dict(settings_)
        if shadowed:
            extra["PYTHONPATH"] = str(pyenv.shadow_dir(Path(directory), shadowed))
        polluted = _run(args, {**environ, **extra})
        reached = pyenv.reached(Path(directory)) if shadowed else []
    err = polluted.stderr.decode("utf-8", "replace")
    assert reached == [], (args, environ, extra, err)
    assert polluted.returncode == plain.returncode, (args, environ, extra, err)
    assert _normalised(polluted.stderr) == _normalised(plain.stderr), (args, environ, extra, err)
