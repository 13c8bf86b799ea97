"""Hooks: which commands a phase runs, what they see, and running one to its end."""

from __future__ import annotations

import _signal as signal  # the C module: `signal` would import enum (every start pays)

from graceinit.config import Argv, Hooks, exit_status
from graceinit.log import DEBUG, INFO, WARNING
from graceinit.proc import Environ, SpawnError
from graceinit.terminate import EXITED, NEVER, Children, terminate
from graceinit.waits import Wait

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs every container start: annotations only
    from typing import Any, Callable, List, Mapping, Optional, Sequence

    from graceinit.facts import Facts
    from graceinit.report import Reporter
    from graceinit.terminate import Escalation
    from graceinit.waits import Steps

HOOK_TIMED_OUT = 124
CANNOT_RUN = 126  # a hook that could not be started at all (no process slot, no descriptor)
CUT_SHORT = 128 + signal.SIGTERM  # a stop hook a second stop signal ended (what it was sent)


def commands(hooks: Hooks, files: Sequence[str] = ()) -> List[Argv]:
    """The phase's commands in the order they run: the directory's executable `files` by
    name, as `System.hook_files` lists them (like s6-overlay's cont-init.d), then the
    --*-hook commands in the order given."""
    return [(path,) for path in files] + list(hooks.commands)


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


def run(
    system: Any,
    facts: Facts,
    report: Reporter,
    phase: str,
    argv: Argv,
    environ: Environ,
    timeout: Optional[float],
    escalation: Escalation = NEVER,
    cut_short: Optional[Callable[[], bool]] = None,
    beside: Optional[Callable[[Steps[Any]], None]] = None,
) -> Steps[int]:
    """Run one hook in its own process group to its end, or SIGKILL it (with its group) at
    `timeout`; returns its exit status (HOOK_TIMED_OUT, CANNOT_RUN, CUT_SHORT). A failed stop
    or post hook is reported and the sequence goes on. Further stop signals act on the hook as
    `escalation` says (the life cycle's table). Once `cut_short()` holds, the hook is sent
    SIGTERM and left to end `beside` the sequence, which goes on at once."""
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
    facts.children[hook.pid] = hook
    facts.hook = hook
    deadline = None if timeout is None else system.now() + timeout
    targets = Children(system, lambda: [hook])

    def killing(reason: str) -> None:
        if reason == "escalation":
            report.emit(WARNING, "sigkill", f"{phase} hook {shown}: a third stop signal: SIGKILL now",
                        phase=phase, command=shown, reason="third stop signal")
        else:
            report.emit(WARNING, "hook_timed_out", f"{phase} hook {shown} still running after {timeout:g}s:"
                        " killing it", phase=phase, command=shown, seconds=timeout)

    try:
        if cut_short is not None and beside is not None:
            yield Wait(lambda: not hook.running or cut_short(), deadline)
            if hook.running and cut_short():
                report.emit(WARNING, "hook_cut_short", f"{phase} hook {shown} cut short by a second stop"
                            " signal: SIGTERM to it, going on", phase=phase, command=shown)
                targets.signal(signal.SIGTERM)
                beside(terminate(system.now, targets, None, deadline, escalation, killing))
                return CUT_SHORT
        outcome = yield from terminate(system.now, targets, None, deadline, escalation, killing)
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


def show(argv: Sequence[str]) -> str:
    """A command as a person would type it (quoting costs an import: only when it is shown)."""
    import shlex

    shown = " ".join(shlex.quote(arg) for arg in argv).replace("\n", "\\n")
    return shown if len(shown) <= 200 else shown[:197] + "..."
