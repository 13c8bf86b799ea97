"""The frozen configuration and the pure parsers that build it.

Nothing here touches the system: values in, values (or ConfigError) out. The checks that
need the file system (hooks exist, log paths writable) live with the code that uses them.

This module is on every container's start-up path, so it imports nothing that is not
already loaded by the interpreter itself: no `re` (parsers are written by hand, which also
keeps them to ASCII digits), no `dataclasses`, no `typing` at run time, no `signal` (whose
`enum` import alone costs milliseconds; `_signal` is built in).
"""

from __future__ import annotations

import _signal
import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, FrozenSet, List, Mapping, Optional, Sequence, Tuple

    Argv = Tuple[str, ...]
else:
    Argv = tuple

# `types.MappingProxyType` without importing `types`.
MappingProxyType = type(type.__dict__)


class ConfigError(ValueError):
    """Bad configuration: reported as one line, exit status 2, nothing spawned."""


USAGE_ERROR = 2

# The longest duration any option accepts. One week is far beyond any sensible stop delay,
# grace period or hook, and far below what poll(2) can wait in one call (2**31-1 ms, about
# 24.8 days) even when two of them add up. Longer means "no limit", which is spelled
# `unlimited` where it makes sense (--grace-period).
MAX_DURATION = 7 * 24 * 3600.0
MAX_DURATION_TEXT = "7 days (168h)"
MAX_VERBOSITY = 3
# Longer than any sensible number or name: rejected before any conversion work.
_MAX_WORD = 64


class _Frozen:
    """Keyword construction, equality, repr and read-only attributes over `__slots__`,
    at the cost of a class statement (a frozen dataclass imports `inspect`)."""

    __slots__ = ()
    _defaults: Dict[str, Any] = {}

    def __init__(self, **values: Any) -> None:
        unknown = set(values) - set(self.__slots__)
        if unknown:
            raise TypeError(f"{type(self).__name__}: unknown field(s) {', '.join(sorted(unknown))}")
        for name in self.__slots__:
            if name in values:
                value = values[name]
            elif name in self._defaults:
                value = self._defaults[name]
            else:
                raise TypeError(f"{type(self).__name__}: missing field {name!r}")
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is frozen")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is frozen")

    def replace(self, **changes: Any) -> Any:
        """A copy with some fields changed, like `dataclasses.replace`."""
        values = {name: getattr(self, name) for name in self.__slots__}
        values.update(changes)
        return type(self)(**values)

    def _values(self) -> Tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._values() == other._values()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"{type(self).__name__}({fields})"


class Hooks(_Frozen):
    """The hooks of one phase: the files of a directory (by name), then commands."""

    __slots__ = ("commands", "directory")
    _defaults = {"commands": (), "directory": None}
    commands: Tuple[Argv, ...]
    directory: Optional[str]

    def __bool__(self) -> bool:
        return bool(self.commands) or self.directory is not None


class Listen(_Frozen):
    """A socket graceinit binds and hands to every generation of the child."""

    __slots__ = ("name", "kind", "host", "port", "path")
    _defaults = {"host": "", "port": 0, "path": ""}
    name: str
    kind: str  # "tcp" or "unix"
    host: str
    port: int
    path: str

    def __str__(self) -> str:
        if self.kind == "unix":
            return f"unix:{self.path}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"tcp://{host}:{self.port}"


# The signals that run the stop sequence unless --stop-signals says otherwise.
DEFAULT_STOP_SIGNALS = frozenset({_signal.SIGTERM, _signal.SIGINT})


class Config(_Frozen):
    """Everything graceinit was told. The supervisor reads `config.<name>`."""

    __slots__ = (
        "command", "process_group", "single_child", "rewrite", "subreaper", "pdeathsig",
        "remap_exit", "quiet", "verbose", "log_format", "pre_hooks", "stop_hooks", "post_hooks",
        "stop_delay", "stop_delay_auto", "stop_delay_min", "stop_delay_max", "grace_period",
        "hook_timeout", "leftover_grace", "termination_budget", "ready_file", "stdout", "stderr",
        "link_stdout", "link_stderr", "listen", "notify", "restart_signal", "ready_timeout",
        "drain_ignore", "stop_signals", "ready_port", "ledger",
    )
    _defaults = {
        "process_group": True,
        "single_child": False,
        "rewrite": MappingProxyType({}),
        "subreaper": None,  # None: on unless graceinit is PID 1
        "pdeathsig": None,
        "remap_exit": MappingProxyType({}),
        "quiet": False,
        "verbose": 0,
        "log_format": "text",
        "pre_hooks": Hooks(),
        "stop_hooks": Hooks(),
        "post_hooks": Hooks(),
        "stop_delay": 0.0,
        "stop_delay_auto": False,  # the delay is measured at stop time; stop_delay is then 0
        "stop_delay_min": 0.0,
        "stop_delay_max": 30.0,
        "grace_period": None,  # None: wait for the child as long as it takes
        "hook_timeout": 30.0,
        "leftover_grace": 5.0,
        "termination_budget": None,
        "ready_file": None,
        "stdout": None,
        "stderr": None,
        "link_stdout": None,
        "link_stderr": None,
        "listen": (),
        "notify": False,
        "restart_signal": None,
        "ready_timeout": 10.0,
        "drain_ignore": (),  # normalized CIDR strings and :PORTs
        "stop_signals": DEFAULT_STOP_SIGNALS,
        "ready_port": None,  # (host, port): graceinit answers readiness probes there
        "ledger": True,  # the loss fields of the termination report (ledger.py)
    }
    command: Argv
    process_group: bool
    single_child: bool
    rewrite: Mapping[int, int]
    subreaper: Optional[bool]
    pdeathsig: Optional[int]
    remap_exit: Mapping[int, int]
    quiet: bool
    verbose: int
    log_format: str
    pre_hooks: Hooks
    stop_hooks: Hooks
    post_hooks: Hooks
    stop_delay: float
    stop_delay_auto: bool
    stop_delay_min: float
    stop_delay_max: float
    grace_period: Optional[float]
    hook_timeout: float
    leftover_grace: float
    termination_budget: Optional[float]
    ready_file: Optional[str]
    stdout: Optional[str]
    stderr: Optional[str]
    link_stdout: Optional[str]
    link_stderr: Optional[str]
    listen: Tuple[Listen, ...]
    notify: bool
    restart_signal: Optional[int]
    ready_timeout: float
    drain_ignore: Tuple[str, ...]
    stop_signals: FrozenSet[int]
    ready_port: Optional[Tuple[str, int]]
    ledger: bool

    @property
    def wanted_stop_delay(self) -> float:
        """The stop delay asked for: --stop-delay, or with auto its maximum."""
        return self.stop_delay_max if self.stop_delay_auto else self.stop_delay


# --- numbers -----------------------------------------------------------------------------


def _ascii_digits(text: str) -> bool:
    """`isdigit` alone accepts `٥` and `²`, and `int` accepts `1_000` and spaces."""
    return text.isascii() and text.isdigit() and len(text) <= _MAX_WORD


def parse_small_int(text: str, low: int, high: int) -> int:
    value = text.strip()
    if not _ascii_digits(value):
        raise ConfigError(f"not a whole number from {low} to {high}")
    number = int(value)
    if not low <= number <= high:
        raise ConfigError(f"not a whole number from {low} to {high}")
    return number


# --- booleans ----------------------------------------------------------------------------

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")
BOOLEAN_SPELLINGS = "1/0, true/false, yes/no, on/off"


def parse_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"not a boolean ({BOOLEAN_SPELLINGS})")


def parse_verbosity(text: str) -> int:
    """GRACEINIT_VERBOSE: a count 0-3, or a boolean (true = 1)."""
    value = text.strip().lower()
    if _ascii_digits(value):
        number = int(value)
        if number <= MAX_VERBOSITY:
            return number
    elif value in _TRUE or value in _FALSE:
        return int(value in _TRUE)
    raise ConfigError(f"not a count from 0 to {MAX_VERBOSITY} or a boolean ({BOOLEAN_SPELLINGS})")


# --- signals -----------------------------------------------------------------------------

_SIGRTMIN = int(_signal.SIGRTMIN)
_SIGRTMAX = int(_signal.SIGRTMAX)
# Linux signals older Pythons have no name for (SIGSTKFLT arrived in 3.11).
_NAMES_PYTHON_LACKS = {"STKFLT": 16}
_by_name: Dict[str, int] = {}
_by_number: Dict[int, str] = {}


def _signal_tables() -> None:
    """Names from `_signal`; where two names share a number, the first alphabetically wins,
    as `signal.Signals` chooses (SIGABRT over SIGIOT, SIGCHLD over SIGCLD)."""
    for name in sorted(vars(_signal)):
        value = getattr(_signal, name)
        if not (name.startswith("SIG") and name[3:].isalnum() and name.isupper() and isinstance(value, int)):
            continue
        if name in ("SIGRTMIN", "SIGRTMAX"):
            continue
        _by_name[name[3:]] = int(value)
        _by_number.setdefault(int(value), name)
    for name, number in _NAMES_PYTHON_LACKS.items():
        _by_name.setdefault(name, number)
        _by_number.setdefault(number, "SIG" + name)


def _valid_signal(number: int) -> bool:
    return 0 < number < 65 and number in _signal.valid_signals()


# Never catchable.
UNCATCHABLE = frozenset({_signal.SIGKILL, _signal.SIGSTOP})
# Raised by the CPU for a fault in graceinit itself. A handler that returns would re-run the
# faulting instruction forever, so these stay blocked (signals.py): a real fault still kills
# graceinit (the kernel forces it), and a kill(2) of one stays pending instead of being forwarded.
SYNCHRONOUS = frozenset({_signal.SIGSEGV, _signal.SIGBUS, _signal.SIGFPE, _signal.SIGILL})


def handled(number: int) -> bool:
    """graceinit catches it (and so can act on it or pass it on)."""
    return _valid_signal(number) and number not in UNCATCHABLE and number not in SYNCHRONOUS


def parse_signal(text: str) -> int:
    """`TERM`, `SIGTERM`, `sigterm`, `15`, `RTMIN+3` -> signal number."""
    name = text.strip().upper()
    if _ascii_digits(name):
        number = int(name)
        if _valid_signal(number):
            return number
        raise ConfigError("not a valid signal number")
    if name.startswith("SIG"):
        name = name[3:]
    if name.startswith(("RTMIN", "RTMAX")):
        base = _SIGRTMIN if name[3:5] == "IN" else _SIGRTMAX
        rest = name[5:]
        offset = 0
        if rest:
            if rest[0] not in "+-" or not _ascii_digits(rest[1:]):
                raise ConfigError("not a signal (RTMIN+N or RTMAX-N)")
            offset = int(rest[1:]) * (-1 if rest[0] == "-" else 1)
        number = base + offset
        if _SIGRTMIN <= number <= _SIGRTMAX:
            return number
        raise ConfigError("outside the real-time signal range")
    if not _by_name:
        _signal_tables()
    number = _by_name.get(name) if name.isascii() else None
    if number is None or not _valid_signal(number):
        raise ConfigError("unknown signal")
    return number


def parse_stop_signals(text: str) -> FrozenSet[int]:
    """`TERM,INT,QUIT` -> the signals that run the stop sequence (each one graceinit can catch,
    and not SIGCHLD, which it consumes itself)."""
    numbers = set()
    for item in text.split(","):
        if not item.strip():
            continue
        try:
            number = parse_signal(item)
        except ConfigError as error:
            raise ConfigError(f"{item.strip()!r}: {error}") from None
        if not handled(number) or number == _signal.SIGCHLD:
            raise ConfigError(f"{signal_name(number)} cannot be a stop signal")
        numbers.add(number)
    if not numbers:
        raise ConfigError("needs at least one signal")
    return frozenset(numbers)


def signal_name(number: int) -> str:
    if _SIGRTMIN <= number <= _SIGRTMAX:
        if number == _SIGRTMIN:
            return "SIGRTMIN"
        if number == _SIGRTMAX:
            return "SIGRTMAX"
        return f"SIGRTMIN+{number - _SIGRTMIN}"
    if not _by_number:
        _signal_tables()
    return _by_number.get(number, f"signal {number}")


def parse_rewrite(text: str) -> Tuple[int, int]:
    """`TERM:QUIT` -> (15, 3); `TO` may be 0, which drops the signal."""
    source, sep, target = text.partition(":")
    if not sep:
        raise ConfigError("not FROM:TO (for example TERM:QUIT, or HUP:0 to drop)")
    source_number = parse_signal(source)
    return source_number, 0 if target.strip() == "0" else parse_signal(target)


def parse_exit_remap(text: str) -> Tuple[int, int]:
    """`143:0` -> (143, 0); both sides 0..255."""
    source, sep, target = text.partition(":")
    if not sep or not _ascii_digits(source) or not _ascii_digits(target):
        raise ConfigError("not FROM:TO with exit statuses 0-255 (for example 143:0)")
    pair = int(source), int(target)
    if not all(0 <= code <= 255 for code in pair):
        raise ConfigError("not FROM:TO with exit statuses 0-255 (for example 143:0)")
    return pair


# --- durations ---------------------------------------------------------------------------

_UNIT_SECONDS = (("ms", 0.001), ("s", 1.0), ("m", 60.0), ("h", 3600.0))
UNLIMITED_WORDS = ("inf", "infinity", "unlimited", "none")
AUTO = "auto"


def _decimal(text: str) -> bool:
    """ASCII `5`, `1.5`, `5.`, `.5`; no sign, exponent, underscore, `nan` or `inf`."""
    whole, _, fraction = text.partition(".")
    if not whole and not fraction:
        return False
    return all(not part or _ascii_digits(part) for part in (whole, fraction))


def parse_duration(text: str, *, allow_unlimited: bool = False) -> Optional[float]:
    """`5`, `1.5`, `500ms`, `5s`, `2m`, `1h` -> seconds, at most MAX_DURATION;
    `unlimited` (or `inf`, `infinity`, `none`) -> None where allowed."""
    value = text.strip().lower()
    if allow_unlimited and value in UNLIMITED_WORDS:
        return None
    return _seconds(value, ", or 'unlimited'" if allow_unlimited else "",
                    "; use 'unlimited' for no limit" if allow_unlimited else "")


def _seconds(value: str, other_words: str, over_hint: str) -> float:
    number, scale = value, 1.0
    for unit, seconds in _UNIT_SECONDS:
        if value.endswith(unit):
            number, scale = value[: -len(unit)].rstrip(), seconds
            break
    if value.startswith("-"):
        raise ConfigError("a duration cannot be negative")
    if len(number) > _MAX_WORD or not _decimal(number):
        raise ConfigError(f"not a duration (seconds, or a number with ms, s, m or h{other_words})")
    seconds = float(number) * scale
    if seconds > MAX_DURATION:
        raise ConfigError(f"longer than the maximum of {MAX_DURATION_TEXT}{over_hint}")
    return seconds


def parse_grace(text: str) -> Optional[float]:
    return parse_duration(text, allow_unlimited=True)


def parse_stop_delay(text: str) -> Any:
    """A duration, or `auto`: the delay is measured when the stop signal arrives."""
    value = text.strip().lower()
    return AUTO if value == AUTO else _seconds(value, ", or 'auto'", "")


# --- log format --------------------------------------------------------------------------

LOG_FORMATS = ("text", "json")


def parse_log_format(text: str) -> str:
    value = text.strip().lower()
    if value not in LOG_FORMATS:
        raise ConfigError("not one of " + ", ".join(LOG_FORMATS))
    return value


# --- networks ----------------------------------------------------------------------------


def parse_cidrs(text: str) -> Tuple[str, ...]:
    """--drain-ignore: `10.0.0.0/8,192.168.1.5,::1,:8081` -> normalized items: CIDRs (a bare
    address is /32 or /128) and `:PORT`s (connections to the app's own port PORT). `ipaddress`
    is imported only when the option is given."""
    import ipaddress

    items = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        if not item.isascii() or len(item) > 64:
            raise ConfigError(f"{item[:64]!r}{'...' if len(item) > 64 else ''} is not an IP address, network (CIDR) or :PORT")
        if item.startswith(":") and item[1:].isdigit():
            port = int(item[1:])
            if not 1 <= port <= 65535:
                raise ConfigError(f"{item!r}: a port is 1 to 65535")
            items.append(f":{port}")
            continue
        try:
            network = ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ConfigError(f"{item!r} is not an IP address, network (CIDR) or :PORT") from None
        items.append(str(network))
    if not items:
        raise ConfigError("no IP address, network or port given")
    return tuple(items)


# --- sockets -----------------------------------------------------------------------------

_NAME_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
_HOST_FORBIDDEN = frozenset(":/[]")
_V6_CHARACTERS = frozenset("0123456789abcdefABCDEF:.")


def _tcp_address(address: str) -> Optional[Tuple[str, int]]:
    """`tcp://HOST:PORT`, `tcp://[V6]:PORT`, an optional trailing `/` -> (host, port)."""
    if not address.startswith("tcp://"):
        return None
    rest = address[len("tcp://"):]
    if rest.endswith("/"):
        rest = rest[:-1]
    if rest.startswith("["):
        host, bracket, port = rest[1:].partition("]:")
        if not bracket or not host or not set(host) <= _V6_CHARACTERS:
            return None
    else:
        host, colon, port = rest.rpartition(":")
        if not colon or _HOST_FORBIDDEN & set(host):
            return None
    if not 1 <= len(port) <= 5 or not _ascii_digits(port) or int(port) > 65535:
        return None
    return host, int(port)


def parse_ready_port(text: str) -> Tuple[str, int]:
    """`PORT`, `HOST:PORT` or `[IPV6]:PORT` (HOST defaults to 0.0.0.0: the kubelet probes the
    pod's address)."""
    value = text.strip()
    if _ascii_digits(value):
        value = "0.0.0.0:" + value
    tcp = _tcp_address(value if value.startswith("tcp://") else "tcp://" + value)
    if tcp is None or tcp[1] == 0:
        raise ConfigError("is not PORT, HOST:PORT or [IPV6]:PORT with a port from 1 to 65535")
    host, port = tcp
    return host or "0.0.0.0", port


def parse_listen(text: str) -> Listen:
    """`[NAME=]tcp://HOST:PORT`, `tcp://[::]:PORT` or `unix:/PATH` (NAME defaults to
    `unknown`, as sd_listen_fds_with_names(3) reports unnamed sockets)."""
    name, sep, address = text.partition("=")
    if not sep or "://" in name or name.startswith("unix:"):
        name, address = "unknown", text
    if not 1 <= len(name) <= 255 or not set(name) <= _NAME_CHARACTERS:
        raise ConfigError(f"socket name {name[:40]!r} must be 1-255 letters, digits, '_', '.', '-'")
    if address.startswith("unix:"):
        path = address[len("unix:"):]
        if path.startswith("//"):
            path = path[2:]
        if not path.startswith("/"):
            raise ConfigError("a unix socket needs an absolute path (unix:/run/app.sock)")
        return Listen(name=name, kind="unix", path=path)
    tcp = _tcp_address(address)
    if tcp is None:
        raise ConfigError("is not tcp://HOST:PORT, tcp://[IPV6]:PORT or unix:/PATH")
    host, port = tcp
    return Listen(name=name, kind="tcp", host=host or "0.0.0.0", port=port)


# --- hooks -------------------------------------------------------------------------------


def parse_hook(text: str) -> Argv:
    """Split like a shell word list; never run through a shell."""
    import shlex

    try:
        argv = tuple(shlex.split(text))
    except ValueError as error:
        raise ConfigError(f"hook: {error}") from None
    if not argv:
        raise ConfigError("empty hook command")
    return argv


def parse_optional_hook(text: str) -> Optional[Argv]:
    """A blank line in GRACEINIT_*_HOOK (or an empty --*-hook) is no hook, not an error."""
    return parse_hook(text) if text.strip() else None


def parse_path(text: str) -> str:
    if "\0" in text:
        raise ConfigError("a path cannot contain a NUL character")
    return text


# --- exit statuses -----------------------------------------------------------------------


def exit_status(wait_status: int) -> int:
    """A wait(2) status as a shell reports it: the code, or 128+N for signal N."""
    code = os.waitstatus_to_exitcode(wait_status)
    return 128 - code if code < 0 else code


def death_signal(wait_status: int) -> Optional[int]:
    code = os.waitstatus_to_exitcode(wait_status)
    return -code if code < 0 else None


# --- values -> Config --------------------------------------------------------------------

# Never catchable, or already the stop sequence's own.
_NOT_FOR_RESTART = frozenset({"SIGKILL", "SIGSTOP", "SIGTERM", "SIGINT", "SIGCHLD"})


def build_config(command: Sequence[str], values: Mapping[str, Any], named: Mapping[str, str]) -> Config:
    """Checks across options, then the Config. `named` says how to name each value in an
    error: the option as typed, or the variable and its value. click's callback shares it."""
    restart = values["restart_signal"]
    if restart is not None:
        if signal_name(restart) in _NOT_FOR_RESTART or not handled(restart):
            raise ConfigError(f"{named['restart_signal']}: {signal_name(restart)} cannot be the restart signal")
    if restart is not None and restart in values["stop_signals"]:
        raise ConfigError(f"{named['restart_signal']}: {signal_name(restart)} is also a stop signal"
                          f" ({named['stop_signals']})")
    if values["stop_delay_min"] > values["stop_delay_max"]:
        raise ConfigError(f"{named['stop_delay_min']} is more than {named['stop_delay_max']}")
    stop_delay = values["stop_delay"]
    auto = stop_delay == AUTO
    # the first of each, in order; a dict, not a list scan: 40,000 items once took 7 s
    drain_ignore = list(dict.fromkeys(item for items in values["drain_ignore"] for item in items))
    return Config(
        command=tuple(command),
        process_group=values["process_group"],
        single_child=values["single_child"],
        rewrite=MappingProxyType(dict(values["rewrite"])),
        subreaper=values["subreaper"],
        pdeathsig=values["pdeathsig"],
        remap_exit=MappingProxyType(dict(values["remap_exit"])),
        quiet=values["quiet"],
        verbose=values["verbose"],
        log_format=values["log_format"],
        pre_hooks=_hooks(values["pre_hook"], values["pre_hook_dir"]),
        stop_hooks=_hooks(values["stop_hook"], None),
        post_hooks=_hooks(values["post_hook"], values["post_hook_dir"]),
        stop_delay=0.0 if auto else stop_delay,
        stop_delay_auto=auto,
        stop_delay_min=values["stop_delay_min"],
        stop_delay_max=values["stop_delay_max"],
        grace_period=values["grace_period"],
        hook_timeout=values["hook_timeout"],
        leftover_grace=values["leftover_grace"],
        termination_budget=values["termination_budget"],
        ready_file=values["ready_file"],
        stdout=values["stdout"],
        stderr=values["stderr"],
        link_stdout=values["link_stdout"],
        link_stderr=values["link_stderr"],
        listen=tuple(values["listen"]),
        notify=values["notify"],
        restart_signal=restart,
        ready_timeout=values["ready_timeout"],
        drain_ignore=tuple(drain_ignore),
        stop_signals=values["stop_signals"],
        ready_port=values["ready_port"],
        ledger=values["ledger"],
    )


def _hooks(commands: Sequence[Any], directory: Optional[str]) -> Hooks:
    return Hooks(commands=tuple(argv for argv in commands if argv), directory=directory)
