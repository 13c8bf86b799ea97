"""Starting processes: fork, set the child up, exec — and report a failed exec clearly.

A hand-written fork/exec rather than subprocess: the child must get an empty signal mask and
default dispositions (graceinit blocks and handles everything), may need a new session that
takes the terminal, and must not be waited for by anyone but the event loop, which reaps
every process with waitpid(-1).
"""

from __future__ import annotations

import errno
import os

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs every container start: annotations only
    from typing import Dict, Mapping, Optional, Sequence

from graceinit import signals, terminal
from graceinit.config import ConfigError
from graceinit.proc import Environ, Proc, SpawnError

LISTEN_FDS_START = 3  # sd_listen_fds(3): passed sockets start at fd 3
NOT_FOUND = 127
NOT_EXECUTABLE = 126
# sysexits.h EX_OSERR ("cannot fork", "cannot create pipe"): the system refused a process or
# a descriptor. Not 70, which says graceinit has a bug.
OS_REFUSED = 71


def close_inherited_on_exec() -> None:
    """Descriptors graceinit inherited from whoever started it must not reach the child:
    the child gets 0, 1, 2 and only what graceinit passes on purpose (--listen sockets).
    Python opens its own descriptors close-on-exec; mark the inherited ones too."""
    try:
        fds = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        fds = list(range(3, 1024))
    for fd in fds:
        if fd > 2:
            try:
                os.set_inheritable(fd, False)
            except OSError:
                pass  # the listdir's own descriptor, already closed


# Descriptors graceinit opens after its start-up checks: the signal pipe (2) and hooks'
# stdin (1) for good; at any one time, a spawn's report pipe (2) or a file being read (1).
# A child given --listen sockets also needs one copy of each while it moves them to fd 3+.
DESCRIPTORS_NEEDED_LATER = 5
# Above this open-file limit there is room enough; below it, count (a few fstat calls).
_LIMIT_WORTH_COUNTING = 256


def check_open_file_limit(passed_sockets: int = 0) -> None:
    """Raise ConfigError now if the open-file limit (`ulimit -n`) leaves graceinit too few
    descriptors to run: better one line at start-up than a failure at the first hook."""
    limit = os.sysconf("SC_OPEN_MAX")  # the soft RLIMIT_NOFILE; -1: unlimited
    if limit < 0 or limit >= _LIMIT_WORTH_COUNTING:
        return
    in_use = 0
    for fd in range(limit):
        try:
            os.fstat(fd)
            in_use += 1
        except OSError:
            pass
    needed = DESCRIPTORS_NEEDED_LATER + passed_sockets
    if limit - in_use < needed:
        raise ConfigError(
            f"the open-file limit (ulimit -n) is {limit}: {in_use} descriptors are open and"
            f" graceinit needs {needed} more"
        )


def resolve(name: str, environ: Mapping[bytes, bytes]) -> bytes:
    """Find a command the way a shell does, to report 127 and 126 before forking."""
    target = os.fsencode(name)
    if b"/" in target:
        return target
    denied = None
    for directory in environ.get(b"PATH", os.defpath.encode()).split(b":"):
        candidate = os.path.join(directory or b".", target)
        if os.path.isfile(candidate):
            if os.access(candidate, os.X_OK):
                return candidate
            denied = denied or candidate
    if denied:
        raise SpawnError(NOT_EXECUTABLE, f"cannot run {name!r}: {os.fsdecode(denied)} is not executable")
    raise SpawnError(NOT_FOUND, f"cannot run {name!r}: command not found")


def check_command(argv: Sequence[str], environ: Mapping[bytes, bytes]) -> None:
    """Raise SpawnError now if argv[0] could not be executed later."""
    path = resolve(argv[0], environ)
    if not os.path.exists(path):
        raise SpawnError(NOT_FOUND, f"cannot run {argv[0]!r}: no such file")
    if os.path.isdir(path) or not os.access(path, os.X_OK):
        raise SpawnError(NOT_EXECUTABLE, f"cannot run {argv[0]!r}: not executable")


def spawn(
    argv: Sequence[str],
    environ: Mapping[bytes, bytes],
    session: terminal.Session,
    stdio: Sequence[Optional[int]] = (None, None, None),
    pass_fds: Sequence[int] = (),
) -> Proc:
    """Start argv; returns once the child has exec'd (or raises SpawnError).

    `stdio` gives, for fds 0-2, a descriptor to put there or None to inherit graceinit's.
    `pass_fds` become fds 3, 4, ... with LISTEN_PID set to the child's own pid (the
    socket-activation protocol: it can only be known after fork).
    """
    executable = resolve(argv[0], environ)
    args = [os.fsencode(a) for a in argv]
    env = dict(environ)
    try:
        report_r, report_w = os.pipe()  # close-on-exec: EOF tells the parent exec succeeded
    except OSError as error:
        raise _refused(argv[0], error) from None
    if pass_fds:
        import fcntl  # noqa: F401  now: in the child, importing could need a descriptor too many
    mask = signals.block_all()  # the child must not run our handlers before exec
    try:
        pid = os.fork()
        if pid == 0:
            _become(executable, args, env, session, stdio, pass_fds, report_w)  # never returns
    except OSError as error:
        os.close(report_r)
        os.close(report_w)
        raise _refused(argv[0], error) from None
    finally:
        signals.restore(mask)
    os.close(report_w)
    try:
        report = _read_all(report_r)
    finally:
        os.close(report_r)
    if report:
        os.waitpid(pid, 0)  # it is ours to collect: it never became the program
        stage, _, code = report.decode(errors="replace").partition(":")
        raise _exec_error(argv[0], stage, int(code) if code.isdigit() else 0)
    pgid = 0 if session is terminal.Session.SHARED else pid
    return Proc(pid=pid, pgid=pgid, argv=tuple(argv))


def _become(
    executable: bytes,
    args: Sequence[bytes],
    env: Mapping[bytes, bytes],
    session: terminal.Session,
    stdio: Sequence[Optional[int]],
    pass_fds: Sequence[int],
    report_w: int,
) -> None:
    stage = "setup"
    try:
        terminal.enter_in_child(session)
        for target, source in enumerate(stdio):
            if source is not None and source != target:
                os.dup2(source, target)
        if pass_fds:
            _place_fds(pass_fds, first=LISTEN_FDS_START)
            env = {**env, b"LISTEN_PID": str(os.getpid()).encode()}
        signals.reset_for_exec()
        stage = "exec"
        os.execve(executable, args, env)
    except OSError as error:
        _report(report_w, f"{stage}:{error.errno or 0}")
    except BaseException:
        _report(report_w, f"{stage}:0")
    finally:
        os._exit(NOT_FOUND)


def _place_fds(fds: Sequence[int], first: int) -> None:
    """dup2 fds[i] to first+i. Sources may sit among the targets (fd 4 must become 3 while
    fd 3 must become 4), so move them all above the targets first."""
    import fcntl

    moved = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, first + len(fds)) for fd in fds]
    for offset, fd in enumerate(moved):
        os.dup2(fd, first + offset)  # inheritable: the one fd besides 0-2 that exec keeps


def _report(fd: int, text: str) -> None:
    try:
        os.write(fd, text.encode())
    except OSError:
        pass


def _read_all(fd: int) -> bytes:
    chunks = []
    while True:
        chunk = os.read(fd, 512)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _refused(name: str, error: OSError) -> SpawnError:
    """The system would not give a process (fork: EAGAIN, ENOMEM) or a descriptor (EMFILE,
    ENFILE) to start `name` with."""
    reason = error.strerror or str(error)
    if error.errno == errno.EAGAIN:
        reason += " (process limit reached: RLIMIT_NPROC or the pids cgroup's pids.max)"
    elif error.errno in (errno.EMFILE, errno.ENFILE):
        reason += " (open-file limit reached)"
    return SpawnError(OS_REFUSED, f"cannot start {name!r}: {reason}")


def empty_stdin() -> int:
    """A descriptor that reads as end of file, for hooks' stdin: /dev/null, or where there
    is none (a tmpfs over /dev), a pipe nobody will ever write to. Close-on-exec; raises
    SpawnError when even a pipe cannot be had."""
    try:
        return os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        pass
    try:
        read_end, write_end = os.pipe()
    except OSError as error:
        raise _refused("a hook", error) from None
    os.close(write_end)
    return read_end


def _exec_error(name: str, stage: str, code: int) -> SpawnError:
    reason = os.strerror(code) if code else "unexpected error"
    if stage == "exec" and code in (errno.ENOENT, errno.ENOTDIR):
        return SpawnError(NOT_FOUND, f"cannot run {name!r}: {reason}")
    if stage == "exec" and code == errno.ENOEXEC:
        reason += " (a script without a #! line?)"
    return SpawnError(NOT_EXECUTABLE, f"cannot run {name!r}: {reason}")
