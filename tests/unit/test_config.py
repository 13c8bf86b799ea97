"""Pure parsers and the command line -> Config mapping (no process is started)."""

from __future__ import annotations

import signal

import pytest

from graceinit.cli import parse
from graceinit.config import (
    Config,
    ConfigError,
    parse_duration,
    parse_exit_remap,
    parse_hook,
    parse_rewrite,
    parse_signal,
    signal_name,
)


@pytest.mark.parametrize("text", ["TERM", "SIGTERM", "sigterm", "term", "15", " Term "])
def test_signal_spellings(text: str) -> None:
    assert parse_signal(text) == signal.SIGTERM


def test_realtime_signals() -> None:
    assert parse_signal("RTMIN") == signal.SIGRTMIN
    assert parse_signal("SIGRTMIN+3") == signal.SIGRTMIN + 3
    assert parse_signal("rtmax-1") == signal.SIGRTMAX - 1
    assert signal_name(signal.SIGRTMIN + 3) == "SIGRTMIN+3"


@pytest.mark.parametrize("text", ["TREM", "0", "65", "RTMIN+99", "", "SIG"])
def test_bad_signals(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_signal(text)


def test_rewrite() -> None:
    assert parse_rewrite("TERM:QUIT") == (signal.SIGTERM, signal.SIGQUIT)
    assert parse_rewrite("HUP:0") == (signal.SIGHUP, 0)
    for bad in ("TERM", "TERM:", "FOO:TERM", "TERM:FOO"):
        with pytest.raises(ConfigError):
            parse_rewrite(bad)


def test_exit_remap() -> None:
    assert parse_exit_remap("143:0") == (143, 0)
    for bad in ("143", "143:x", "256:0", "-1:0", "1:300"):
        with pytest.raises(ConfigError):
            parse_exit_remap(bad)


@pytest.mark.parametrize(
    "text, seconds",
    [("5", 5.0), ("1.5", 1.5), ("500ms", 0.5), ("5s", 5.0), ("2m", 120.0), ("1h", 3600.0), ("0", 0.0), (".5", 0.5)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["-1", "five", "5x", "", "1e3", "inf"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_duration(text)


def test_unlimited_only_where_allowed() -> None:
    assert parse_duration("unlimited", allow_unlimited=True) is None
    assert parse_duration("INF", allow_unlimited=True) is None


def test_hooks_split_like_a_shell_but_run_without_one() -> None:
    assert parse_hook("sh -c 'echo $HOME; exit 1'") == ("sh", "-c", "echo $HOME; exit 1")
    with pytest.raises(ConfigError):
        parse_hook("echo 'unterminated")


def test_options_stop_at_the_command(monkeypatch: pytest.MonkeyPatch) -> None:
    config = parse(["-g", "myapp", "-c", "x"])
    assert isinstance(config, Config)
    assert config.command == ("myapp", "-c", "x")
    assert config.single_child is False


def test_environment_variables_and_command_line_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRACEINIT_STOP_DELAY", "3s")
    monkeypatch.setenv("GRACEINIT_REWRITE", "TERM:QUIT,HUP:0")
    monkeypatch.setenv("GRACEINIT_POST_HOOK", "echo one\necho 'two words'\n")
    monkeypatch.setenv("GRACEINIT_PROCESS_GROUP", "0")
    config = parse(["app"])
    assert isinstance(config, Config)
    assert config.stop_delay == 3.0
    assert dict(config.rewrite) == {signal.SIGTERM: signal.SIGQUIT, signal.SIGHUP: 0}
    assert config.post_hooks.commands == (("echo", "one"), ("echo", "two words"))
    assert config.process_group is False
    config = parse(["--stop-delay", "1", "-r", "INT:TERM", "app"])
    assert isinstance(config, Config)
    assert config.stop_delay == 1.0
    assert dict(config.rewrite) == {signal.SIGINT: signal.SIGTERM}


def test_grace_period_zero_is_not_unlimited() -> None:
    config = parse(["--grace-period", "0", "app"])
    assert isinstance(config, Config) and config.grace_period == 0.0
    config = parse(["--grace-period", "unlimited", "app"])
    assert isinstance(config, Config) and config.grace_period is None


@pytest.mark.parametrize(
    "args, named",
    [
        (["--pdeathsig", "NOPE", "app"], "--pdeathsig"),
        (["-r", "TERM", "app"], "--rewrite"),
        (["-e", "143", "app"], "--remap-exit"),
        (["--stop-delay", "-1", "app"], "--stop-delay"),
        (["--bogus", "app"], "--bogus"),
        ([], "COMMAND"),
    ],
)
def test_usage_errors_exit_2_with_one_line(args: list, named: str, capfd: pytest.CaptureFixture) -> None:
    assert parse(args) == 2
    err = capfd.readouterr().err
    assert err.count("\n") == 1 and err.startswith("[graceinit] error: ")
    assert named in err


def test_listen_addresses() -> None:
    from graceinit.config import parse_listen

    assert str(parse_listen("tcp://0.0.0.0:8080")) == "tcp://0.0.0.0:8080"
    web = parse_listen("web=tcp://[::]:8080")
    assert (web.name, web.kind, web.host, web.port) == ("web", "tcp", "::", 8080)
    sock = parse_listen("unix:/run/app.sock")
    assert (sock.name, sock.kind, sock.path) == ("unknown", "unix", "/run/app.sock")
    assert parse_listen("tcp://:0").host == "0.0.0.0"
    for bad in ("tcp://x", "udp://:53", "unix:relative", "bad name=tcp://:1", "tcp://:99999"):
        with pytest.raises(ConfigError):
            parse_listen(bad)


def test_restart_signal_cannot_be_a_stop_signal(capfd: pytest.CaptureFixture) -> None:
    assert parse(["--restart-signal", "TERM", "app"]) == 2
    assert "--restart-signal" in capfd.readouterr().err
    config = parse(["--restart-signal", "hup", "app"])
    assert isinstance(config, Config) and config.restart_signal == signal.SIGHUP
    config = parse(["--listen", "a=tcp://:0", "--listen", "b=unix:/tmp/x.sock", "app"])
    assert isinstance(config, Config) and [spec.name for spec in config.listen] == ["a", "b"]


def test_listen_from_the_environment_is_a_comma_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRACEINIT_LISTEN", "a=tcp://:0,b=unix:/tmp/x.sock")
    config = parse(["app"])
    assert isinstance(config, Config) and [spec.name for spec in config.listen] == ["a", "b"]
