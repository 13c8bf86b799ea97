"""The command line: options and GRACEINIT_* variables -> a frozen Config.

Every option also reads GRACEINIT_<NAME> (dashes become underscores); the command line wins.
Nothing here touches the system; startup.py takes the Config from here.
"""

from __future__ import annotations

import signal
from types import MappingProxyType
from typing import Any, Iterable, List, Optional, Sequence, Tuple

import click

from graceinit import __version__, log
from graceinit.signals import HANDLED_SIGNALS, STOP_SIGNALS
from graceinit.config import (
    USAGE_ERROR,
    Config,
    ConfigError,
    Hooks,
    parse_duration,
    parse_exit_remap,
    parse_cidr,
    parse_hook,
    parse_listen,
    parse_rewrite,
    parse_signal,
    parse_stop_delay,
    signal_name,
)


class _Parsed(click.ParamType):
    """Adapts a pure parser from config.py to click, so errors name the option."""

    def __init__(self, name: str, parser: Any, splitter: Optional[str] = None) -> None:
        self.name = name
        self._parser = parser
        self.envvar_list_splitter = splitter

    def convert(self, value: Any, param: Optional[click.Parameter], ctx: Optional[click.Context]) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return self._parser(value)
        except ConfigError as error:
            self.fail(str(error), param, ctx)


SIGNAL = _Parsed("signal", parse_signal)
REWRITE = _Parsed("FROM:TO", parse_rewrite, splitter=",")
EXIT_REMAP = _Parsed("FROM:TO", parse_exit_remap, splitter=",")
DURATION = _Parsed("seconds", parse_duration)
STOP_DELAY = _Parsed("seconds", parse_stop_delay)
CIDR = _Parsed("CIDR", parse_cidr, splitter=",")
GRACE = _Parsed("seconds", lambda text: _or_unlimited(parse_duration(text, allow_unlimited=True)))
LISTEN = _Parsed("address", parse_listen, splitter=",")
HOOK = _Parsed("command", lambda text: parse_hook(text) if text.strip() else None, splitter="\n")


class _Unlimited:
    """Stands for 'no grace period limit' (a parsed None would mean 'not given')."""


def _or_unlimited(seconds: Optional[float]) -> Any:
    return _Unlimited if seconds is None else seconds


_HOOK_HELP = "Repeatable; in the environment variable, one command per line."

_settings = dict(
    help_option_names=["-h", "--help"],
    allow_interspersed_args=False,  # `graceinit myapp -c x` passes `-c x` to myapp
    auto_envvar_prefix="GRACEINIT",
    max_content_width=100,
)


@click.command(context_settings=_settings, epilog="Docs and exit statuses: see README.md.")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.option("-g/-G", "--process-group/--no-process-group", default=True,
              help="Run the child in its own session and process group; forward signals to the group."
              "  [default: on]")
@click.option("-c", "--single-child", is_flag=True, help="Forward signals to the direct child only.")
@click.option("-r", "--rewrite", type=REWRITE, multiple=True, metavar="FROM:TO",
              help="Rewrite a signal before forwarding it; TO=0 drops it. Repeatable.")
@click.option("-s/-S", "--subreaper/--no-subreaper", default=None,
              help="Become a child subreaper when not PID 1 (default: on when not PID 1).")
@click.option("--pdeathsig", type=SIGNAL, metavar="SIG", help="Receive SIG when graceinit's parent dies.")
@click.option("-e", "--remap-exit", type=EXIT_REMAP, multiple=True, metavar="FROM:TO",
              help="Rewrite the final exit status, e.g. 143:0. Repeatable.")
@click.option("--pre-hook", type=HOOK, multiple=True, metavar="CMD",
              help="Run before the child; non-zero exit: the child is not started. " + _HOOK_HELP)
@click.option("--pre-hook-dir", metavar="DIR", help="Run every executable file in DIR, in name order, before the child.")
@click.option("--stop-hook", type=HOOK, multiple=True, metavar="CMD",
              help="Run as soon as the stop signal arrives, before the stop delay. " + _HOOK_HELP)
@click.option("--stop-delay", type=STOP_DELAY, default="0", metavar="SECONDS|auto", show_default=True,
              help="Keep the child serving this long after the stop signal, then forward it;"
              " auto: until requests to it stop arriving.")
@click.option("--stop-delay-min", type=DURATION, default="0", metavar="SECONDS", show_default=True,
              help="With --stop-delay auto: wait at least this long.")
@click.option("--stop-delay-max", type=DURATION, default="30", metavar="SECONDS", show_default=True,
              help="With --stop-delay auto: wait at most this long.")
@click.option("--drain-ignore", type=CIDR, multiple=True, metavar="CIDR[,...]",
              help="With --stop-delay auto: requests from these peers do not count (probes).")
@click.option("--grace-period", type=GRACE, metavar="SECONDS", show_default="unlimited",
              help="After forwarding the stop signal, SIGKILL the child's group after this long.")
@click.option("--post-hook", type=HOOK, multiple=True, metavar="CMD",
              help="Run after the child has exited, whatever the cause. " + _HOOK_HELP)
@click.option("--post-hook-dir", metavar="DIR", help="Run every executable file in DIR, in name order, after the child.")
@click.option("--hook-timeout", type=DURATION, default="30", metavar="SECONDS", show_default=True,
              help="Kill a hook (and its children) running longer than this; it counts as failed.")
@click.option("--leftover-grace", type=DURATION, default="5", metavar="SECONDS", show_default=True,
              help="After the child exits, leftover processes get SIGTERM, then SIGKILL after this long.")
@click.option("--termination-budget", type=DURATION, metavar="SECONDS",
              help="Your terminationGracePeriodSeconds: cut the grace period short so post hooks fit.")
@click.option("--ready-file", metavar="PATH",
              help="Created once the child runs; removed the instant the stop signal arrives.")
@click.option("--stdout", "stdout_path", metavar="PATH", envvar="GRACEINIT_STDOUT",
              help="The child's stdout goes to PATH (append; created 0640).")
@click.option("--stderr", "stderr_path", metavar="PATH", envvar="GRACEINIT_STDERR",
              help="The child's stderr goes to PATH (append; created 0640).")
@click.option("--link-stdout", metavar="PATH", help="Make PATH a symlink to graceinit's stdout.")
@click.option("--link-stderr", metavar="PATH", help="Make PATH a symlink to graceinit's stderr.")
@click.option("--listen", type=LISTEN, multiple=True, metavar="[NAME=]ADDRESS",
              help="Bind tcp://HOST:PORT, tcp://[::]:PORT or unix:/PATH and pass it to the child as"
              " fd 3, 4, ... (systemd socket activation: LISTEN_FDS, LISTEN_FDNAMES, LISTEN_PID).")
@click.option("--notify", is_flag=True,
              help="Give the child a NOTIFY_SOCKET (sd_notify); READY=1 makes it ready.")
@click.option("--restart-signal", type=SIGNAL, metavar="SIG",
              help="On SIG, start a new child on the same sockets and stop the old one once the"
              " new one is ready (zero-downtime restart).")
@click.option("--ready-timeout", type=DURATION, default="10", metavar="SECONDS", show_default=True,
              help="On restart: how long to wait for READY=1 (with --notify), or how long the new"
              " child must stay up to count as ready (without).")
@click.option("-v", "--verbose", count=True, help="Say more (repeat for debug output).")
@click.option("-q", "--quiet", is_flag=True, help="Only errors.")
@click.version_option(__version__, "--version", prog_name="graceinit", message="%(prog)s %(version)s")
def command(**options: Any) -> Config:
    """Run COMMAND as a container's main process and stop it gracefully.

    graceinit forwards signals, reaps zombies and exits with COMMAND's status (128+N when
    killed by signal N). On SIGTERM or SIGINT it runs the stop sequence: stop hooks, stop
    delay, the forwarded signal, the grace period, SIGKILL; then leftover processes are
    stopped and post hooks run.
    """
    return _config(**options)


def _hooks(commands: Iterable[Optional[Tuple[str, ...]]], directory: Optional[str]) -> Hooks:
    return Hooks(commands=tuple(argv for argv in commands if argv), directory=directory)


def _config(
    command: Sequence[str],
    rewrite: Sequence[Tuple[int, int]],
    remap_exit: Sequence[Tuple[int, int]],
    grace_period: Any,
    pre_hook: Sequence[Any],
    pre_hook_dir: Optional[str],
    stop_hook: Sequence[Any],
    post_hook: Sequence[Any],
    post_hook_dir: Optional[str],
    stdout_path: Optional[str],
    stderr_path: Optional[str],
    restart_signal: Optional[int],
    stop_delay: Any,
    drain_ignore: Sequence[str],
    **rest: Any,
) -> Config:
    if restart_signal is not None and restart_signal not in HANDLED_SIGNALS:
        raise click.BadParameter(
            f"{signal_name(restart_signal)} cannot be the restart signal (it cannot be caught)",
            param_hint="'--restart-signal'",
        )
    if restart_signal in (*STOP_SIGNALS, signal.SIGCHLD):
        raise click.BadParameter(
            f"{signal_name(restart_signal)} cannot be the restart signal", param_hint="'--restart-signal'"
        )
    auto = stop_delay == "auto"
    return Config(
        stop_delay=rest["stop_delay_max"] if auto else stop_delay,
        stop_delay_auto=auto,
        drain_ignore=tuple(drain_ignore),
        restart_signal=restart_signal,
        command=tuple(command),
        rewrite=MappingProxyType(dict(rewrite)),
        remap_exit=MappingProxyType(dict(remap_exit)),
        grace_period=None if grace_period in (None, _Unlimited) else grace_period,
        pre_hooks=_hooks(pre_hook, pre_hook_dir),
        stop_hooks=_hooks(stop_hook, None),
        post_hooks=_hooks(post_hook, post_hook_dir),
        stdout=stdout_path,
        stderr=stderr_path,
        listen=tuple(rest.pop("listen")),
        **rest,
    )


def parse(args: List[str]) -> "Config | int":
    """A Config, or the exit status to leave with (--help, --version, usage errors)."""
    try:
        result = command.main(args=args, prog_name="graceinit", standalone_mode=False)
    except click.ClickException as error:
        log.error(_one_line(error.format_message()))
        return USAGE_ERROR
    except click.exceptions.Abort:
        return USAGE_ERROR
    return result if isinstance(result, Config) else int(result or 0)


def _one_line(message: str) -> str:
    return " ".join(message.split())
