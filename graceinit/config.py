"""The frozen configuration and the pure parsers that build it.

Nothing here touches the system: values in, values (or ConfigError) out. The checks that
need the file system (hooks exist, log paths writable) live with the code that uses them.
"""

from __future__ import annotations

import os
import re
import signal
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping, Optional, Tuple

Argv = Tuple[str, ...]


class ConfigError(ValueError):
    """Bad configuration: reported as one line, exit status 2, nothing spawned."""


USAGE_ERROR = 2


@dataclass(frozen=True)
class Hooks:
    """The hooks of one phase: the files of a directory (by name), then commands."""

    commands: Tuple[Argv, ...] = ()
    directory: Optional[str] = None

    def __bool__(self) -> bool:
        return bool(self.commands) or self.directory is not None


@dataclass(frozen=True)
class Listen:
    """A socket graceinit binds and hands to every generation of the child."""

    name: str
    kind: str  # "tcp" or "unix"
    host: str = ""
    port: int = 0
    path: str = ""

    def __str__(self) -> str:
        if self.kind == "unix":
            return f"unix:{self.path}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"tcp://{host}:{self.port}"


@dataclass(frozen=True)
class Config:
    command: Argv
    process_group: bool = True
    single_child: bool = False
    rewrite: Mapping[int, int] = field(default_factory=lambda: MappingProxyType({}))
    subreaper: Optional[bool] = None  # None: on unless graceinit is PID 1
    pdeathsig: Optional[int] = None
    remap_exit: Mapping[int, int] = field(default_factory=lambda: MappingProxyType({}))
    quiet: bool = False
    verbose: int = 0
    pre_hooks: Hooks = Hooks()
    stop_hooks: Hooks = Hooks()
    post_hooks: Hooks = Hooks()
    stop_delay: float = 0.0
    stop_delay_auto: bool = False  # --stop-delay auto: until requests stop, at most the max
    stop_delay_min: float = 0.0
    stop_delay_max: float = 30.0
    drain_ignore: Tuple[str, ...] = ()  # CIDRs whose requests do not count
    grace_period: Optional[float] = None  # None: wait for the child as long as it takes
    hook_timeout: float = 30.0
    leftover_grace: float = 5.0
    termination_budget: Optional[float] = None
    ready_file: Optional[str] = None
    stdout: Optional[str] = None
    stderr: Optional[str] = None
    link_stdout: Optional[str] = None
    link_stderr: Optional[str] = None
    listen: Tuple[Listen, ...] = ()
    notify: bool = False
    restart_signal: Optional[int] = None
    ready_timeout: float = 10.0


# --- signals -----------------------------------------------------------------------------

_RT_NAME = re.compile(r"^RTM(IN|AX)(?:([+-])(\d+))?$")


def parse_signal(text: str) -> int:
    """`TERM`, `SIGTERM`, `sigterm`, `15`, `RTMIN+3` -> signal number."""
    name = text.strip().upper()
    if name.isdigit():
        number = int(name)
        if number in signal.valid_signals():
            return number
        raise ConfigError(f"{text!r} is not a valid signal number")
    if name.startswith("SIG"):
        name = name[3:]
    rt = _RT_NAME.match(name)
    if rt:
        base = signal.SIGRTMIN if rt.group(1) == "IN" else signal.SIGRTMAX
        offset = int(rt.group(3) or 0) * (-1 if rt.group(2) == "-" else 1)
        number = int(base) + offset
        if signal.SIGRTMIN <= number <= signal.SIGRTMAX:
            return number
        raise ConfigError(f"{text!r} is outside the real-time signal range")
    member = getattr(signal.Signals, "SIG" + name, None) or _NAMES_PYTHON_LACKS.get(name)
    if member is None:
        raise ConfigError(f"unknown signal {text!r}")
    return int(member)


# Linux signals older Pythons have no name for (SIGSTKFLT arrived in 3.11).
_NAMES_PYTHON_LACKS = {"STKFLT": 16}


def signal_name(number: int) -> str:
    if signal.SIGRTMIN <= number <= signal.SIGRTMAX:
        if number == signal.SIGRTMIN:
            return "SIGRTMIN"
        if number == signal.SIGRTMAX:
            return "SIGRTMAX"
        return f"SIGRTMIN+{number - signal.SIGRTMIN}"
    try:
        return signal.Signals(number).name
    except ValueError:
        for name, known in _NAMES_PYTHON_LACKS.items():
            if known == number:
                return "SIG" + name
        return f"signal {number}"


def parse_rewrite(text: str) -> Tuple[int, int]:
    """`TERM:QUIT` -> (15, 3); `TO` may be 0, which drops the signal."""
    source, sep, target = text.partition(":")
    if not sep:
        raise ConfigError(f"{text!r} is not FROM:TO (for example TERM:QUIT, or HUP:0 to drop)")
    source_number = parse_signal(source)
    return source_number, 0 if target.strip() == "0" else parse_signal(target)


def parse_exit_remap(text: str) -> Tuple[int, int]:
    """`143:0` -> (143, 0); both sides 0..255."""
    source, sep, target = text.partition(":")
    try:
        pair = int(source), int(target)
    except ValueError:
        pair = (-1, -1)
    if not sep or not all(0 <= code <= 255 for code in pair):
        raise ConfigError(f"{text!r} is not FROM:TO with exit statuses 0-255 (for example 143:0)")
    return pair


# --- durations ---------------------------------------------------------------------------

_DURATION = re.compile(r"^(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h)?$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
UNLIMITED_WORDS = ("inf", "infinity", "unlimited", "none")


def parse_duration(text: str, *, allow_unlimited: bool = False) -> Optional[float]:
    """`5`, `1.5`, `500ms`, `5s`, `2m`, `1h` -> seconds; `inf` -> None where allowed."""
    value = text.strip().lower()
    if allow_unlimited and value in UNLIMITED_WORDS:
        return None
    match = _DURATION.match(value)
    if not match:
        hint = " or 'unlimited'" if allow_unlimited else ""
        if value.startswith("-"):
            raise ConfigError(f"{text!r}: a duration cannot be negative")
        raise ConfigError(f"{text!r} is not a duration (seconds, or with ms/s/m/h{hint})")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def parse_stop_delay(text: str) -> "float | str":
    """A duration, or `auto` (the drain by traffic)."""
    if text.strip().lower() == "auto":
        return "auto"
    seconds = parse_duration(text)
    assert seconds is not None
    return seconds


def parse_cidr(text: str) -> str:
    """`10.0.0.0/8`, `192.0.2.7`, `fd00::/8` -> the network in canonical form."""
    import ipaddress  # only when --drain-ignore is given

    try:
        return str(ipaddress.ip_network(text.strip(), strict=False))
    except ValueError:
        raise ConfigError(f"{text!r} is not an IP address or network (for example 10.0.0.0/8)") from None


# --- sockets -----------------------------------------------------------------------------

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,255}$")
_TCP = re.compile(r"^tcp://(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[^:/\[\]]*)):(?P<port>\d{1,5})/?$")


def parse_listen(text: str) -> Listen:
    """`[NAME=]tcp://HOST:PORT`, `tcp://[::]:PORT` or `unix:/PATH` (NAME defaults to
    `unknown`, as sd_listen_fds_with_names(3) reports unnamed sockets)."""
    name, sep, address = text.partition("=")
    if not sep or "://" in name or name.startswith("unix:"):
        name, address = "unknown", text
    if not _NAME.match(name):
        raise ConfigError(f"{text!r}: socket name {name!r} must be letters, digits, '_', '.', '-'")
    if address.startswith("unix:"):
        path = address[len("unix:"):]
        if path.startswith("//"):
            path = path[2:]
        if not path.startswith("/"):
            raise ConfigError(f"{text!r}: a unix socket needs an absolute path (unix:/run/app.sock)")
        return Listen(name=name, kind="unix", path=path)
    match = _TCP.match(address)
    if not match or not 0 <= int(match.group("port")) <= 65535:
        raise ConfigError(f"{text!r} is not tcp://HOST:PORT, tcp://[IPV6]:PORT or unix:/PATH")
    host = match.group("v6") or match.group("host") or "0.0.0.0"
    return Listen(name=name, kind="tcp", host=host, port=int(match.group("port")))


# --- hooks -------------------------------------------------------------------------------


def parse_hook(text: str) -> Argv:
    """Split like a shell word list; never run through a shell."""
    import shlex

    try:
        argv = tuple(shlex.split(text))
    except ValueError as error:
        raise ConfigError(f"hook {text!r}: {error}") from None
    if not argv:
        raise ConfigError("empty hook command")
    return argv


# --- exit statuses -----------------------------------------------------------------------


def exit_status(wait_status: int) -> int:
    """A wait(2) status as a shell reports it: the code, or 128+N for signal N."""
    code = os.waitstatus_to_exitcode(wait_status)
    return 128 - code if code < 0 else code


def death_signal(wait_status: int) -> Optional[int]:
    code = os.waitstatus_to_exitcode(wait_status)
    return -code if code < 0 else None
