"""Small, dependency-free readers for /proc (and, re-exported, the bounded `wait_until`).

Everything here reads the kernel's view directly, so tests observe what the
kernel observes (not what a process says about itself).  All functions take
pids as seen from *this* process's PID namespace (the test's), which is what
psutil and `Popen.pid` return even when the process under test runs as PID 1
in a nested namespace.
"""
import os

from .waiting import WaitTimeout, wait_until  # noqa: F401  (re-exported: procfs.wait_until)

__all__ = [
    "WaitTimeout", "wait_until", "status", "sigset", "sigmask_names",
    "stat", "state", "ppid", "ctxt_switches", "fds", "fd_targets",
    "children", "zombies_of", "environ_bytes", "blocked_in_open", "wchan",
    "exists",
]


def _read(path, mode="r"):
    with open(path, mode) as f:
        return f.read()


def exists(pid):
    """True while /proc/<pid> exists (including as a zombie)."""
    return os.path.exists("/proc/%d" % pid)


def status(pid):
    """/proc/<pid>/status as a dict of str -> str (values stripped)."""
    out = {}
    for line in _read("/proc/%d/status" % pid).splitlines():
        key, _, value = line.partition(":")
        out[key] = value.strip()
    return out


def sigset(pid, field):
    """A signal-set field of /proc/<pid>/status (SigBlk, SigIgn, SigCgt,
    SigPnd, ShdPnd) as a set of signal numbers."""
    mask = int(status(pid)[field], 16)
    return {n for n in range(1, 65) if mask & (1 << (n - 1))}


def sigmask_names(numbers):
    """Readable names for a set of signal numbers (for assertion messages)."""
    from .sigprinter import signame
    return sorted(signame(n) for n in numbers)


def stat(pid):
    """/proc/<pid>/stat split into fields; fields[0] is the pid, fields[1]
    the comm (parentheses stripped, may contain spaces), fields[2] the state,
    and so on with the same 0-based numbering as proc(5) minus one."""
    raw = _read("/proc/%d/stat" % pid)
    lpar, rpar = raw.index("("), raw.rindex(")")
    return [raw[:lpar].strip(), raw[lpar + 1:rpar]] + raw[rpar + 2:].split()


def state(pid):
    """One-letter process state (R, S, D, T, t, Z, ...), or None if gone."""
    try:
        return stat(pid)[2]
    except (FileNotFoundError, ProcessLookupError):
        return None


def ppid(pid):
    return int(stat(pid)[3])


def ctxt_switches(pid):
    """voluntary + involuntary context switches summed over every thread of
    `pid` (/proc/<pid>/status only counts the main thread)."""
    total = 0
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            st = {}
            for line in _read("/proc/%d/task/%s/status" % (pid, tid)).splitlines():
                k, _, v = line.partition(":")
                st[k] = v.strip()
        except FileNotFoundError:
            continue
        total += int(st["voluntary_ctxt_switches"]) + int(st["nonvoluntary_ctxt_switches"])
    return total


def fds(pid):
    """Sorted list of the open file descriptor numbers of `pid`."""
    return sorted(int(n) for n in os.listdir("/proc/%d/fd" % pid))


def fd_targets(pid):
    """{fd: readlink(/proc/<pid>/fd/<fd>)}, e.g. {1: 'pipe:[1234]'}."""
    out = {}
    for n in fds(pid):
        try:
            out[n] = os.readlink("/proc/%d/fd/%d" % (pid, n))
        except FileNotFoundError:
            pass
    return out


def environ_bytes(pid):
    """The exact environment block `pid` received at execve(2)."""
    return _read("/proc/%d/environ" % pid, "rb")


def children(ppid_):
    """{pid: state} of every process whose parent is `ppid_`, scanning /proc
    (cheap enough for tens of thousands of processes)."""
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            fields = stat(int(name))
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if int(fields[3]) == ppid_:
            out[int(name)] = fields[2]
    return out


def zombies_of(ppid_):
    """Pids of the zombie children of `ppid_`."""
    return sorted(pid for pid, st in children(ppid_).items() if st == "Z")


def wchan(pid):
    """Kernel function the task sleeps in ('' if unknown/running)."""
    try:
        w = _read("/proc/%d/wchan" % pid).strip()
    except OSError:
        return ""
    return "" if w == "0" else w


# x86_64 and aarch64/generic numbers for open-ish syscalls.
_OPEN_SYSCALLS = {"x86_64": {2, 257, 437}, "aarch64": {56, 437}}


def blocked_in_open(pid):
    """True if `pid` is blocked in an open(2)/openat(2)/openat2(2) call.

    Uses /proc/<pid>/syscall (first field = syscall number while blocked)
    and falls back to /proc/<pid>/wchan containing 'open'."""
    try:
        first = _read("/proc/%d/syscall" % pid).split()[0]
    except (OSError, IndexError):
        first = ""
    if first.lstrip("-").isdigit():
        nums = _OPEN_SYSCALLS.get(os.uname().machine, set())
        if int(first) in nums:
            return True
    return "open" in wchan(pid)
