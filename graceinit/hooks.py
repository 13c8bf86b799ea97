"""Hooks: which commands a phase runs, checked before anything starts, and what they see."""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs every container start: annotations only
    from typing import List, Mapping, Optional

from graceinit.config import Argv, ConfigError, Hooks
from graceinit.spawn import Environ, SpawnError, check_command


def commands(hooks: Hooks) -> List[Argv]:
    """The phase's commands in the order they run: the directory's executable files by
    name (like s6-overlay's cont-init.d), then the --*-hook commands in the order given."""
    found: List[Argv] = []
    if hooks.directory is not None:
        try:
            names = sorted(os.listdir(hooks.directory))
        except OSError:
            names = []  # checked at start-up; if it vanished since, there is nothing to run
        for name in names:
            path = os.path.join(hooks.directory, name)
            if os.path.isfile(path) and os.access(path, os.X_OK):
                found.append((path,))
    found.extend(hooks.commands)
    return found


def validate(phase: str, hooks: Hooks, environ: Mapping[bytes, bytes]) -> None:
    if hooks.directory is not None:
        _check_directory(f"--{phase}-hook-dir", hooks.directory)
    for argv in hooks.commands:
        try:
            check_command(argv, environ)
        except SpawnError as error:
            raise ConfigError(f"--{phase}-hook: {error}") from None


def _check_directory(option: str, directory: str) -> None:
    """The directory must exist and graceinit's user must be able to list it and look at
    its files: otherwise every hook in it would be skipped without a word."""
    from graceinit.output import given_as

    name = given_as(option, directory)
    if not os.path.isdir(directory):
        raise ConfigError(f"{name} {directory!r}: no such directory")
    try:
        os.listdir(directory)
    except OSError as error:
        raise ConfigError(f"{name} {directory!r}: cannot read it: {error.strerror}") from None
    if not os.access(directory, os.X_OK, effective_ids=os.access in os.supports_effective_ids):
        raise ConfigError(f"{name} {directory!r}: cannot read it: no search (x) permission for uid {os.geteuid()}")


def environ_for(
    base: Mapping[bytes, bytes],
    phase: str,
    child_pid: Optional[int],
    exit_code: Optional[int] = None,
    exit_signal: Optional[str] = None,
) -> Environ:
    env = dict(base)
    env[b"GRACEINIT_PHASE"] = phase.encode()
    env[b"GRACEINIT_CHILD_PID"] = str(child_pid).encode() if child_pid else b""
    if exit_code is not None:
        env[b"GRACEINIT_EXIT_CODE"] = str(exit_code).encode()
    if exit_signal is not None:
        env[b"GRACEINIT_EXIT_SIGNAL"] = exit_signal.encode()
    return env
