"""Hooks: which commands a phase runs, checked before anything starts, and what they see."""

from __future__ import annotations

import os

from graceinit.config import Argv, ConfigError, Hooks, exit_status
from graceinit.log import DEBUG, INFO, WARNING
from graceinit.spawn import Environ, SpawnError, check_command
from graceinit.terminate import EXITED, NEVER, Procs, terminate

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs every container start: annotations only
    from typing import Any, List, Mapping, Optional, Sequence

    from graceinit.facts import Facts
    from graceinit.report import Reporter
    from graceinit.terminate import Escalation
    from graceinit.waits import Steps

HOOK_TIMED_OUT = 124
CANNOT_RUN = 126  # a hook that could not be started at all (no process slot, no descriptor)


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


def run(system: Any, facts: Facts, report: Reporter, phase: str, argv: Argv, environ: Environ,
        timeout: Optional[float]) -> Steps[int]:
    """Run one hook in its own process group to its end, or SIGKILL it (with its group) at
    `timeout`; returns its exit status (HOOK_TIMED_OUT, CANNOT_RUN). A failed stop or post
    hook is reported and the sequence goes on. During a pre hook a stop signal goes to the
    hook, so that it can abort."""
    shown = show(argv)
    report.emit(INFO, "hook_started", f"{phase} hook: {shown}", phase=phase, command=shown)
    try:
        hook = system.spawn_hook(argv, environ)
    except SpawnError as error:
        report.emit(WARNING, "hook_failed", f"{phase} hook: {error}", phase=phase, command=shown,
                    status=error.status)
        return error.status
    except OSError as error:  # no process slot or descriptor left: the sequence goes on
        report.emit(WARNING, "hook_failed", f"{phase} hook {shown}: cannot start: {error.strerror or error}",
                    phase=phase, command=shown, status=CANNOT_RUN)
        return CANNOT_RUN
    facts.procs[hook.pid] = hook
    facts.hook = hook
    deadline = None if timeout is None else system.now() + timeout
    escalation: Escalation = _StopSignalsToHook(facts) if phase == "pre" else NEVER

    def killing(reason: str) -> None:
        report.emit(WARNING, "hook_timed_out", f"{phase} hook {shown} still running after {timeout:g}s:"
                    " killing it", phase=phase, command=shown, seconds=timeout)

    try:
        outcome = yield from terminate(system.now, Procs(system, lambda: [hook]), None, deadline,
                                       escalation, killing)
    finally:
        facts.hook = None
    if outcome != EXITED:
        return HOOK_TIMED_OUT
    status = exit_status(hook.wait_status or 0)
    if status != 0 and phase != "pre":
        report.emit(WARNING, "hook_failed", f"{phase} hook {shown} failed with status {status}; going on",
                    phase=phase, command=shown, status=status)
    else:
        report.emit(DEBUG, "hook_finished", f"{phase} hook {shown} exited with status {status}",
                    phase=phase, command=shown, status=status)
    return status


class _StopSignalsToHook:
    """During a pre hook: each stop signal goes to the hook, so it can abort."""

    def __init__(self, facts: Facts) -> None:
        self._facts = facts
        self._seen = 0

    def pending(self) -> bool:
        return self._facts.stop_count > self._seen

    def take(self) -> Optional[int]:
        self._seen += 1
        return self._facts.stops[self._seen - 1].signum


def show(argv: Sequence[str]) -> str:
    """A command as a person would type it (quoting costs an import: only when it is shown)."""
    import shlex

    shown = " ".join(shlex.quote(arg) for arg in argv).replace("\n", "\\n")
    return shown if len(shown) <= 200 else shown[:197] + "..."
