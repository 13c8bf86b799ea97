"""The command line on the container's path: argv and GRACEINIT_* variables -> a frozen Config.

Reads only the option table (options.py). click, which defines the same table for people
(--help, --version, completion), is imported only when one of those is asked for: it and
what it pulls in cost more than the rest of graceinit's start-up together.

The grammar is click's, for the subset graceinit uses: `--name VALUE`, `--name=VALUE`, `-x
VALUE`, `-xVALUE`, grouped short flags (`-gcv`), `--` ends the options, and so does the first
argument that is not an option (`graceinit myapp -c x` passes `-c x` to myapp). Each option
also reads GRACEINIT_<NAME>; the command line wins. An error names what the user typed: the
option, or the variable and its value.
"""

from __future__ import annotations

import os

from graceinit.config import (
    MAX_VERBOSITY,
    USAGE_ERROR,
    Config,
    ConfigError,
    parse_bool,
    parse_verbosity,
)
from graceinit.config import build_config
from graceinit.options import (
    COMPLETION_VARIABLE,
    COUNT,
    ENV_PREFIX,
    FLAG,
    HELP_FLAGS,
    MULTIPLE,
    SET_FOR_HOOKS,
    SWITCH,
    TABLE,
    VERSION_FLAGS,
    Option,
    one_line,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, List, Mapping, Sequence, Tuple, Union


# flag -> (option, what the flag sets for a SWITCH)
_FLAGS: Dict[str, Tuple[Option, bool]] = {}
for _option in TABLE:
    for _flag in _option.flags:
        _FLAGS[_flag] = (_option, True)
    for _flag in _option.off_flags:
        _FLAGS[_flag] = (_option, False)
del _option, _flag
_FOR_PEOPLE = frozenset(HELP_FLAGS + VERSION_FLAGS)


class _ForPeople(Exception):
    """--help, --version or shell completion: click's job."""


def parse(args: List[str]) -> Union[Config, int]:
    """A Config, or the exit status to leave with (--help, --version, usage errors)."""
    try:
        return read(args, os.environ)
    except _ForPeople:
        from graceinit.clickapp import run_for_people

        return run_for_people(args)
    except ConfigError as error:
        from graceinit import log  # startup.py has imported it already

        if _asks_for_json(args, os.environ):  # the Config never came: honour it by hand
            log.set_format("json")
        log.error(one_line(str(error)), event="usage_error")
        return USAGE_ERROR


def _asks_for_json(args: Sequence[str], environ: Mapping[str, str]) -> bool:
    options = list(args[: args.index("--")] if "--" in args else args)
    for index, arg in enumerate(options):
        if arg == "--log-format" and index + 1 < len(options):
            return options[index + 1].strip().lower() == "json"
        if arg.startswith("--log-format="):
            return arg.split("=", 1)[1].strip().lower() == "json"
    return environ.get("GRACEINIT_LOG_FORMAT", "").strip().lower() == "json"


def read(args: Sequence[str], environ: Mapping[str, str]) -> Config:
    """The container path: raises ConfigError (one line), or _ForPeople."""
    if COMPLETION_VARIABLE in environ:
        raise _ForPeople()
    given, command = _read_argv(args)
    values: Dict[str, Any] = {}
    named: Dict[str, str] = {}
    for option in TABLE:
        if option.dest in given:
            raw = given[option.dest]
            values[option.dest] = _from_argv(option, raw)
            named[option.dest] = _argv_name(option, raw)
            continue
        text = environ.get(option.envvar)
        if text:  # an empty variable is unset, as in click
            values[option.dest] = _from_environment(option, text)
            named[option.dest] = f"{option.envvar}={_shown(text)}"
        else:
            values[option.dest] = option.default
            named[option.dest] = f"{option.long} (default {option.shown_default})"
    return build_config(command, values, named)


def _read_argv(args: Sequence[str]) -> Tuple[Dict[str, Any], List[str]]:
    """Options (raw text, or counts and booleans) by dest, and COMMAND. Only the grammar is
    checked here; values are converted afterwards, so `--help` wins over a bad value as it
    does in click."""
    given: Dict[str, Any] = {}
    rest = list(args)
    rest.reverse()  # popped from the end: the next word is rest[-1]
    for_people = False
    while rest:
        arg = rest.pop()
        if arg == "--":
            break
        if arg.startswith("--"):
            name, equals, attached = arg.partition("=")
            if name in _FOR_PEOPLE:
                for_people = True
                continue
            option, on = _lookup(name)
            if option.takes_value:
                _store(given, option, attached if equals else _next_word(name, option, rest))
            elif equals:
                raise ConfigError(f"option {name} takes no value")
            else:
                _store(given, option, on)
        elif arg.startswith("-") and arg != "-":
            for position in range(1, len(arg)):  # grouped short flags: -gcv, -rTERM:QUIT
                name = "-" + arg[position]
                if name in _FOR_PEOPLE:
                    for_people = True
                    continue
                option, on = _lookup(name)
                if option.takes_value:
                    attached = arg[position + 1:]
                    _store(given, option, attached or _next_word(name, option, rest))
                    break
                _store(given, option, on)
        else:
            rest.append(arg)  # the first word that is not an option is COMMAND
            break
    if for_people:
        raise _ForPeople()
    if not rest:
        raise ConfigError("missing COMMAND: graceinit [OPTIONS] -- COMMAND [ARG]...")
    rest.reverse()
    return given, rest


def _next_word(name: str, option: Option, rest: List[str]) -> str:
    if not rest:
        raise ConfigError(f"option {name} needs a value ({option.metavar})")
    return rest.pop()


def _lookup(name: str) -> Tuple[Option, bool]:
    found = _FLAGS.get(name)
    if found is None:
        import difflib

        close = difflib.get_close_matches(name, [*_FLAGS, *_FOR_PEOPLE], n=1, cutoff=0.75)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise ConfigError(f"no such option: {name}{hint}")
    return found


def _store(given: Dict[str, Any], option: Option, value: Any) -> None:
    if option.kind == MULTIPLE:
        given.setdefault(option.dest, []).append(value)
    elif option.kind == COUNT:
        given[option.dest] = given.get(option.dest, 0) + 1
    else:  # the last one wins
        given[option.dest] = value


def _shown(text: str) -> str:
    """The value as typed, quoted and escaped (one line whatever it holds), and shortened:
    a message about a 100 kB variable should still fit on a screen."""
    return repr(text) if len(text) <= 80 else repr(text[:60]) + f"... ({len(text)} characters)"


def _argv_name(option: Option, raw: Any) -> str:
    if isinstance(raw, str):
        return f"{option.long} {_shown(raw)}"
    return option.long


def _from_argv(option: Option, raw: Any) -> Any:
    if option.kind == COUNT:
        return min(raw, MAX_VERBOSITY)
    if option.kind in (FLAG, SWITCH):
        return raw
    if option.kind == MULTIPLE:
        return tuple(_convert(option, text, f"{option.long} {_shown(text)}") for text in raw)
    return _convert(option, raw, f"{option.long} {_shown(raw)}")


def _from_environment(option: Option, text: str) -> Any:
    where = f"{option.envvar}={_shown(text)}"
    if option.kind == COUNT:
        return _checked(parse_verbosity, text, where)
    if option.kind in (FLAG, SWITCH):
        return _checked(parse_bool, text, where)
    if option.kind == MULTIPLE:
        items = text.split(option.splitter) if option.splitter else [text]
        return tuple(_convert(option, item, where) for item in items if item.strip())
    return _convert(option, text, where)


def _convert(option: Option, text: str, where: str) -> Any:
    assert option.parser is not None
    return _checked(option.parser, text, where)


def _checked(parser: Any, text: str, where: str) -> Any:
    try:
        return parser(text)
    except ConfigError as error:
        raise ConfigError(f"{where}: {error}") from None


# --- the environment ---------------------------------------------------------------------


def unknown_variables(environ: Mapping[str, str]) -> List[Tuple[str, Dict[str, str]]]:
    """One warning per GRACEINIT_* variable no option reads (a typo is otherwise silently
    ignored), with the closest known name when there is one: (message, the event's fields:
    `variable`, and `suggestion` only when there is one)."""
    known = {option.envvar for option in TABLE}
    unknown = [name for name in environ
               if name.startswith(ENV_PREFIX) and name not in known and name not in SET_FOR_HOOKS]
    if not unknown:
        return []
    import difflib

    warnings = []
    suffixes = sorted(name[len(ENV_PREFIX):] for name in known)
    for name in sorted(unknown):
        close = difflib.get_close_matches(name[len(ENV_PREFIX):], suffixes, n=1, cutoff=0.75)
        fields = {"variable": name}
        if close:
            fields["suggestion"] = ENV_PREFIX + close[0]
        hint = f" (did you mean {fields['suggestion']}?)" if close else ""
        warnings.append((f"unknown variable {name} ignored{hint}", fields))
    return warnings
