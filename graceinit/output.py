"""Where the child's output goes: files it writes itself, and links for programs that
insist on writing a log file (the seed's `ln -sf /proc/$$/fd/1 /log/stdout.log`); and the
ready file's start-up checks."""

from __future__ import annotations

import errno
import os
import stat

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs every container start: annotations only
    from typing import FrozenSet, List, Optional, Tuple

from graceinit import log
from graceinit.config import Config, ConfigError, signal_name

LOG_FILE_MODE = 0o640


class ChildOutput:
    """Descriptors for the child's fds 0-2 (None: inherit graceinit's)."""

    __slots__ = ("stdout", "stderr")

    def __init__(self, stdout: Optional[int] = None, stderr: Optional[int] = None) -> None:
        self.stdout = stdout
        self.stderr = stderr

    @property
    def stdio(self) -> Tuple[Optional[int], Optional[int], Optional[int]]:
        return (None, self.stdout, self.stderr)


def given_as(option: str, value: str) -> str:
    """What the user typed: the option, or the GRACEINIT_* variable that set `value`."""
    from graceinit.options import envvar_for  # loaded already: cli.py parses with it

    variable = envvar_for(option)
    return variable if os.environ.get(variable) == value else option


def prepare(config: Config) -> ChildOutput:
    """Check the paths, make the links and open the log files now, so a bad path fails
    before anything starts (ConfigError: exit 2)."""
    _refuse_shared_paths(config)
    for option, path in (("--link-stdout", config.link_stdout), ("--link-stderr", config.link_stderr)):
        if path is not None:
            _link(option, path, 1 if option == "--link-stdout" else 2)
    if config.ready_file is not None:
        _check_ready_file(config.ready_file)
    stdout = stderr = None
    if config.stdout:
        stdout = _open_log("--stdout", config.stdout, config.stop_signals)
        if stdout is None:  # a stop signal ended the wait for a reader: nothing will start
            return ChildOutput()
    if config.stderr:
        stderr = _open_log("--stderr", config.stderr, config.stop_signals)
    return ChildOutput(stdout=stdout, stderr=stderr)


# --- the files the child writes -------------------------------------------------------------


def _open_log(option: str, path: str, stop_signals: FrozenSet[int]) -> Optional[int]:
    """The log file, opened for appending. A FIFO without a reader yet (a log collector
    that starts after the app) is waited for, and a stop signal ends the wait: then None,
    with the signal pending again for the supervisor (the app is not started)."""
    existed = os.path.lexists(path)
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
    try:
        # Non-blocking first: opening a FIFO for writing would wait for a reader with every
        # signal still blocked, and only SIGKILL could end that.
        fd = os.open(path, flags | os.O_NONBLOCK, LOG_FILE_MODE)
    except OSError as error:
        if error.errno != errno.ENXIO or not _is_fifo(path):
            raise ConfigError(f"{given_as(option, path)} {path!r}: cannot open for writing: {error.strerror}") from None
        names = " or ".join(sorted(signal_name(signum) for signum in stop_signals))
        log.warning(f"{given_as(option, path)} {path!r} is a FIFO with no reader yet: waiting for one"
                    f" ({names} stops graceinit)", event="fifo_waiting", path=path)
        opened = _open_unless_stopped(path, flags & ~os.O_CREAT, stop_signals)
        if opened is None:
            return None
        fd = opened
    else:
        os.set_blocking(fd, True)  # the child expects a plain, blocking stdout
    if not existed:
        os.fchmod(fd, LOG_FILE_MODE)  # exactly 0640, whatever the umask
    return fd


def _is_fifo(path: str) -> bool:
    try:
        return stat.S_ISFIFO(os.stat(path).st_mode)
    except OSError:
        return False


class _StopWhileWaiting(Exception):
    pass


def _open_unless_stopped(path: str, flags: int, stop_signals: FrozenSet[int]) -> Optional[int]:
    """A blocking open that a stop signal interrupts (every other signal stays blocked
    and pending, for the child). Returns None when stopped, after making the stop signals
    pending again, so they are handled like any stop signal during start-up."""
    import _signal as signal

    stopping = tuple(stop_signals)
    received: List[int] = []

    def interrupt(signum: int, frame: object) -> None:
        received.append(signum)
        if len(received) == 1:
            raise _StopWhileWaiting()  # ends the open's EINTR retry (PEP 475); only once

    previous = {signum: signal.signal(signum, interrupt) for signum in stopping}
    try:
        try:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, stopping)
            return os.open(path, flags)
        finally:
            signal.pthread_sigmask(signal.SIG_BLOCK, stopping)
    except _StopWhileWaiting:
        # A stop in the instant between the open succeeding and the signals being blocked
        # again loses the descriptor just opened; graceinit is stopping anyway.
        for signum in dict.fromkeys(received):
            os.kill(os.getpid(), signum)  # blocked now: it waits for the supervisor
        return None
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


# --- links ---------------------------------------------------------------------------------


def _link(option: str, path: str, fd: int) -> None:
    name = given_as(option, path)
    _require_parent(name, path)
    mode = _mode_if_there(name, path)
    if mode is not None and not stat.S_ISLNK(mode):
        kind = "a directory" if stat.S_ISDIR(mode) else "not a symlink"
        raise ConfigError(f"{name} {path!r}: is {kind}; graceinit replaces only a symlink (remove it first)")
    # A name in /proc that every process of the container resolves to our descriptor;
    # /proc/self would resolve to whoever opens it.
    target = f"/proc/{os.getpid()}/fd/{fd}"
    try:
        if mode is not None:
            os.unlink(path)
        os.symlink(target, path)
    except OSError as error:
        raise ConfigError(f"{name} {path!r}: cannot create link: {error.strerror}") from None


def _mode_if_there(name: str, path: str) -> Optional[int]:
    """What is at `path` itself (a symlink is not followed), or None when nothing is."""
    try:
        return os.lstat(path).st_mode
    except FileNotFoundError:
        return None
    except OSError as error:
        raise ConfigError(f"{name} {path!r}: {error.strerror}") from None


def _require_parent(name: str, path: str) -> str:
    parent = os.path.dirname(os.path.abspath(path))
    try:
        if stat.S_ISDIR(os.stat(parent).st_mode):
            return parent
    except OSError:
        pass
    raise ConfigError(f"{name} {path!r}: directory {parent!r} does not exist")


# --- the ready file ------------------------------------------------------------------------


def _check_ready_file(path: str) -> None:
    """Everything that would make the ready file fail later, found now: a directory in its
    place, a stale one graceinit cannot remove, a directory it cannot create files in
    (missing, not writable by graceinit's user, read-only, full)."""
    name = given_as("--ready-file", path)
    parent = _require_parent(name, path)
    mode = _mode_if_there(name, path)
    if mode is not None:
        if stat.S_ISDIR(mode):
            raise ConfigError(f"{name} {path!r}: is a directory")
        try:
            os.unlink(path)  # a stale one from an earlier run: not ready yet
        except FileNotFoundError:
            pass
        except OSError as error:
            raise ConfigError(f"{name} {path!r}: cannot remove the stale ready file: {error.strerror}") from None
    # Try for real what will be done later: permissions alone miss read-only mounts, a full
    # disk and root squashed on a network filesystem.
    probe = os.path.join(parent, f".{os.path.basename(path)}.graceinit-{os.urandom(4).hex()}")
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except OSError as error:
        raise ConfigError(
            f"{name} {path!r}: cannot create files in {parent!r} as uid {os.geteuid()}: {error.strerror}"
        ) from None
    os.close(fd)
    try:
        os.unlink(probe)
    except OSError:
        pass


def _refuse_shared_paths(config: Config) -> None:
    """The ready file and the links are removed and replaced by graceinit: one sharing a
    path with another output would delete the app's log (or its link)."""
    replaced = [("--ready-file", config.ready_file), ("--link-stdout", config.link_stdout),
                ("--link-stderr", config.link_stderr)]
    written = [("--stdout", config.stdout), ("--stderr", config.stderr)]
    seen: List[Tuple[str, str, str]] = []
    for option, path in replaced + written:
        if path is None:
            continue
        # Log files are opened through symlinks; replaced paths are the names themselves.
        where = os.path.realpath(path) if (option, path) in written else _name_of(path)
        for other_option, other_path, other_where in seen:
            if where == other_where and not {option, other_option} == {"--stdout", "--stderr"}:
                raise ConfigError(
                    f"{given_as(other_option, other_path)} {other_path!r} is the same file as"
                    f" {given_as(option, path)} {path!r}"
                )
        seen.append((option, path, where))


def _name_of(path: str) -> str:
    """The path with its directories resolved but not its last component."""
    absolute = os.path.abspath(path)
    return os.path.join(os.path.realpath(os.path.dirname(absolute)), os.path.basename(absolute))
