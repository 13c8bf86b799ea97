"""The option table as a click command, for people: --help, --version, shell completion.

Imported only when one of those is asked for (cli.py parses the same table on the
container's path). The command's callback builds the Config exactly as cli.py does, so both
readers of the table can be checked against each other.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Dict, List, Optional, Sequence, Union

import click

from graceinit import __version__, log
from graceinit.config import (
    build_config,
    BOOLEAN_SPELLINGS,
    MAX_DURATION_TEXT,
    MAX_VERBOSITY,
    USAGE_ERROR,
    Config,
    ConfigError,
)
from graceinit.options import (
    COMPLETION_VARIABLE,
    one_line,
    COUNT,
    EXIT_STATUSES,
    FLAG,
    HELP_FLAGS,
    MULTIPLE,
    SWITCH,
    TABLE,
    VERSION_FLAGS,
    Option,
)

_DESCRIPTION = """Run COMMAND as a container's main process and stop it gracefully.

graceinit forwards signals, reaps zombies and exits with COMMAND's status (128+N when killed
by signal N). On a stop signal (SIGTERM or SIGINT; see --stop-signals) it runs the stop
sequence: stop hooks, stop delay, the forwarded signal, the grace period, SIGKILL; then
leftover processes are stopped and post hooks run."""


def _epilog() -> str:
    import textwrap  # click has imported it already

    width = max(len(status) for status, _ in EXIT_STATUSES)
    rows = "\n".join(
        textwrap.fill(meaning, 78, initial_indent=f"  {status.ljust(width)}  ",
                      subsequent_indent=" " * (width + 4))
        for status, meaning in EXIT_STATUSES
    )
    return (
        "Every option also reads the variable shown with it; the command line wins. Boolean"
        f" variables take {BOOLEAN_SPELLINGS} (any case); GRACEINIT_VERBOSE takes a count"
        f" 0-{MAX_VERBOSITY} or a boolean. Durations are seconds (5, 1.5) or a number with ms, s,"
        f" m or h (500ms, 2m, 1h), at most {MAX_DURATION_TEXT}. Signals are TERM, SIGTERM or 15,"
        " any case, or RTMIN+N."
        "\n\n\b\nExit statuses:\n" + rows
    )


class _Parsed(click.ParamType):
    """Adapts a parser from the table to click, so errors name the option."""

    def __init__(self, option: Option) -> None:
        self.name = option.metavar or "value"
        self._parser = option.parser
        self.envvar_list_splitter = option.splitter

    def convert(self, value: Any, param: Optional[click.Parameter], ctx: Optional[click.Context]) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return self._parser(value)  # type: ignore[misc]
        except ConfigError as error:
            self.fail(str(error), param, ctx)


def _param(option: Option) -> click.Option:
    common: Dict[str, Any] = dict(
        help=option.help,
        envvar=option.envvar,
        show_envvar=True,
        show_default=option.shown_default,
        default=option.default,
    )
    if option.kind == FLAG:
        return click.Option([*option.flags, option.dest], is_flag=True, **common)
    if option.kind == SWITCH:
        pairs = [f"{on}/{off}" for on, off in zip(option.flags, option.off_flags)]
        return click.Option([*pairs, option.dest], **common)
    if option.kind == COUNT:
        return click.Option([*option.flags, option.dest], count=True,
                            type=click.IntRange(0, MAX_VERBOSITY, clamp=True), **common)
    return click.Option([*option.flags, option.dest], type=_Parsed(option), metavar=option.metavar,
                        multiple=option.kind == MULTIPLE, **common)


def _print_version(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(f"graceinit {__version__}")
        ctx.exit()


def _callback(command: Sequence[str], **values: Any) -> Config:
    try:
        return build_config(command, values, {option.dest: option.long for option in TABLE})
    except ConfigError as error:
        raise click.UsageError(str(error)) from None


def build_command() -> click.Command:
    params: List[click.Parameter] = [
        click.Argument(["command"], nargs=-1, required=True, type=click.UNPROCESSED,
                       metavar="-- COMMAND [ARG]..."),
        *(_param(option) for option in TABLE),
        click.Option(list(VERSION_FLAGS), is_flag=True, expose_value=False, is_eager=True,
                     callback=_print_version, help="Show the version and exit."),
    ]
    return click.Command(
        "graceinit",
        params=params,
        callback=_callback,
        help=_DESCRIPTION,
        epilog=_epilog(),
        options_metavar="[OPTIONS]",
        context_settings=dict(
            help_option_names=list(HELP_FLAGS),
            allow_interspersed_args=False,  # `graceinit myapp -c x` passes `-c x` to myapp
            max_content_width=100,
        ),
    )


def run_for_people(args: Sequence[str]) -> Union[Config, int]:
    """--help, --version or completion; an error in what was typed is one line and 2."""
    command = build_command()
    try:
        result = command.main(args=list(args), prog_name="graceinit", standalone_mode=False,
                              complete_var=COMPLETION_VARIABLE)
        sys.stdout.flush()
    except click.ClickException as error:
        log.error(one_line(error.format_message()), event="usage_error")
        return USAGE_ERROR
    except click.exceptions.Abort:
        return USAGE_ERROR
    except OSError as error:  # --help >/dev/full: one line, like coreutils
        _cannot_write(error)
        return USAGE_ERROR
    except SystemExit as done:  # shell completion ends this way
        try:
            sys.stdout.flush()
        except OSError as error:
            _cannot_write(error)
            return USAGE_ERROR
        return done.code if isinstance(done.code, int) else 0
    if isinstance(result, Config):
        return result
    return int(result or 0)


def _cannot_write(error: OSError) -> None:
    log.error(f"cannot write to standard output: {error.strerror or error}", event="stdout_error")
    # What is still buffered would fail again, with a traceback, when the interpreter
    # flushes it at exit: let that flush go to a sink.
    try:
        sink = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        _, sink = os.pipe()
    os.dup2(sink, 1)
    os.close(sink)
