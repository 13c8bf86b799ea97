"""From a Config to a running supervisor: check what can be checked before anything starts,
take over signals and the terminal, wire the real system to the supervisor, and return
graceinit's exit status. Called by boot.py once every signal is blocked."""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:  # `typing` is not imported at run time: it costs every container start
    from typing import Any, List, Mapping, Optional, Tuple

from graceinit import log, output, reaper, signals, spawn, terminal
from graceinit.boot import original_environ
from graceinit.cli import parse, unknown_variables
from graceinit.config import USAGE_ERROR, Config, ConfigError, Hooks
from graceinit.proc import SpawnError
from graceinit.signals import SignalInbox
from graceinit.lifecycle import INTERNAL_ERROR, Lifecycle
from graceinit.report import LogReporter
from graceinit.supervisor import Supervisor
from graceinit.system import LinuxSystem


def run(args: List[str]) -> int:
    """The whole program after boot: parse, check, take over signals, supervise."""
    parent_at_start = os.getppid()
    _ensure_standard_fds()
    parsed = parse(args)
    if not isinstance(parsed, Config):
        return parsed
    config: Config = parsed
    log.configure(config.quiet, config.verbose, config.log_format)
    for warning, fields in unknown_variables(os.environ):
        log.warning(warning, event="unknown_variable", **fields)
    if config.drain_ignore:
        _check_drain_ignore(config)

    environ = original_environ()  # the block as received (boot.py)
    spawn.close_inherited_on_exec()
    signals.reset_inherited_ignores()
    try:
        for phase, phase_hooks in (("pre", config.pre_hooks), ("stop", config.stop_hooks), ("post", config.post_hooks)):
            _check_hooks(phase, phase_hooks, environ)
        child_output = output.prepare(config)
        listeners, notify = _sockets(config)
        ready_port = _ready_port(config)
        spawn.check_open_file_limit(len(config.listen))
    except ConfigError as error:
        log.error(str(error), event="usage_error")
        return USAGE_ERROR

    _adopt_orphans(config)
    session, early_signals = terminal.prepare(config.process_group)
    inbox = SignalInbox(early_signals)
    if config.pdeathsig:
        reaper.set_parent_death_signal(config.pdeathsig, parent_at_start)
    inbox.open()
    system = LinuxSystem(inbox, session, child_output, listeners, notify, config.ready_file, ready_port)
    lifecycle = Lifecycle(config, system, LogReporter(), environ)
    try:
        return Supervisor(system, lifecycle).run()
    except BaseException:  # a bug outside the sequence's own recovery: never leave the child
        log.exception("internal error; killing the child and exiting with status 70")
        lifecycle.kill_children()
        return INTERNAL_ERROR
    finally:
        if notify is not None:
            notify.close()


def _check_hooks(phase: str, hooks: Hooks, environ: Mapping[bytes, bytes]) -> None:
    if hooks.directory is not None:
        _check_directory(f"--{phase}-hook-dir", hooks.directory)
    for argv in hooks.commands:
        try:
            spawn.check_command(argv, environ)
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


def _ensure_standard_fds() -> None:
    """With fd 0, 1 or 2 closed, the next pipe graceinit opens would take its number and the
    child would write its output into graceinit's plumbing: fill the gaps with /dev/null.

    Without /dev/null (a tmpfs over /dev): a closed stdin becomes an empty pipe (it reads as
    end of file, as /dev/null does); a closed stdout or stderr stays closed for the child,
    as graceinit got it, its number held by a close-on-exec placeholder."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            try:
                _fill_standard_fd(fd)
            except OSError:
                pass  # not even a pipe to be had: the open-file limit check says so later


def _fill_standard_fd(fd: int) -> None:
    inheritable = True
    try:
        filler = os.open(os.devnull, os.O_RDWR)
    except OSError:
        if fd == 0:
            filler, write_end = os.pipe()
            os.close(write_end)
        else:
            filler = os.open("/", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)  # writes: EBADF
            inheritable = False
    if filler == fd:
        os.set_inheritable(fd, inheritable)
    else:
        os.dup2(filler, fd, inheritable=inheritable)
        os.close(filler)


def _sockets(config: Config) -> Tuple[Optional[Any], Optional[Any]]:
    """Bind --listen sockets and make the notify socket (socket's import is paid only here)."""
    if not config.listen and not config.notify:
        return None, None
    from graceinit.sockets import NotifySocket, bind, describe

    listeners = None
    if config.listen:
        listeners = bind(config.listen)
        log.info("listening on " + ", ".join(describe(listeners)), event="listening")
    try:
        notify = NotifySocket() if config.notify else None
    except OSError as error:
        raise ConfigError(f"--notify: cannot create the notify socket: {error.strerror}") from None
    return listeners, notify


def _check_drain_ignore(config: Config) -> None:
    """Warn when --drain-ignore holds this pod's own address (only when it is given: the
    check reads /proc/net)."""
    try:
        from graceinit.podnet import ignored_own_addresses

        found = ignored_own_addresses(config.drain_ignore)
    except Exception:  # a check, not a reason to stop
        return
    for item, address in found:
        log.warning(f"--drain-ignore {item} holds this pod's own address {address}: it ignores the pods"
                    " around it too (an ingress, every client in the cluster), and --stop-delay auto may"
                    " forward while they still send; ignore the probe's own address or port instead",
                    event="drain_ignore_holds_pod", item=item, address=address)


def _ready_port(config: Config) -> Optional[Any]:
    """Bind --ready-port now, so a port in use fails before anything starts."""
    if config.ready_port is None:
        return None
    from graceinit.config import parse_ready_port
    from graceinit.readyport import ReadyPort, ReadyPortError

    host, port = config.ready_port
    try:
        ready_port = ReadyPort(host, port)
    except ReadyPortError as error:
        text = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        variable = os.environ.get("GRACEINIT_READY_PORT")
        try:  # the option wins over the variable: name the variable only if it was the one
            from_variable = variable is not None and parse_ready_port(variable) == config.ready_port
        except ConfigError:
            from_variable = False
        name = f"GRACEINIT_READY_PORT={variable!r}:" if from_variable else "--ready-port"
        raise ConfigError(f"{name} {text}: cannot listen: {error}") from None
    if log.enabled(log.INFO):
        log.info(f"answering readiness probes on port {ready_port.port}", event="ready_port",
                 port=ready_port.port)
    return ready_port


def _adopt_orphans(config: Config) -> None:
    if os.getpid() == 1:
        return
    if config.subreaper is False:
        log.warning("not PID 1 and --no-subreaper: orphaned grandchildren will not be reaped by graceinit",
                    event="not_a_subreaper")
        return
    try:
        reaper.become_subreaper()
    except OSError as error:
        log.warning(f"cannot become a child subreaper ({error.strerror}): orphans will not be reaped",
                    event="not_a_subreaper")
