"""Where the child's output goes: files it writes itself, and links for programs that
insist on writing a log file (the seed's `ln -sf /proc/$$/fd/1 /log/stdout.log`)."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from typing import Optional, Tuple

from graceinit.config import Config, ConfigError

LOG_FILE_MODE = 0o640


@dataclass(frozen=True)
class ChildOutput:
    """Descriptors for the child's fds 0-2 (None: inherit graceinit's)."""

    stdout: Optional[int] = None
    stderr: Optional[int] = None

    @property
    def stdio(self) -> Tuple[Optional[int], Optional[int], Optional[int]]:
        return (None, self.stdout, self.stderr)


def prepare(config: Config) -> ChildOutput:
    """Open the log files and make the links now, so a bad path fails before any spawn."""
    for option, path in (("--link-stdout", config.link_stdout), ("--link-stderr", config.link_stderr)):
        if path is not None:
            _link(option, path, 1 if option == "--link-stdout" else 2)
    if config.ready_file is not None:
        _require_parent("--ready-file", config.ready_file)
    return ChildOutput(
        stdout=_open_log("--stdout", config.stdout) if config.stdout else None,
        stderr=_open_log("--stderr", config.stderr) if config.stderr else None,
    )


def _open_log(option: str, path: str) -> int:
    existed = os.path.lexists(path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, LOG_FILE_MODE)
    except OSError as error:
        raise ConfigError(f"{option} {path!r}: cannot open for writing: {error.strerror}") from None
    if not existed:
        os.fchmod(fd, LOG_FILE_MODE)  # exactly 0640, whatever the umask
    return fd


def _link(option: str, path: str, fd: int) -> None:
    _require_parent(option, path)
    if os.path.isdir(path) and not os.path.islink(path):
        raise ConfigError(f"{option} {path!r}: is a directory")
    # A name in /proc that every process of the container resolves to our descriptor;
    # /proc/self would resolve to whoever opens it.
    target = f"/proc/{os.getpid()}/fd/{fd}"
    try:
        if os.path.lexists(path):
            os.unlink(path)
        os.symlink(target, path)
    except OSError as error:
        raise ConfigError(f"{option} {path!r}: cannot create link: {error.strerror}") from None


def _require_parent(option: str, path: str) -> None:
    parent = os.path.dirname(os.path.abspath(path))
    try:
        if stat.S_ISDIR(os.stat(parent).st_mode):
            return
    except OSError:
        pass
    raise ConfigError(f"{option} {path!r}: directory {parent!r} does not exist")


def create_ready_file(path: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    os.close(fd)


def remove_file(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
