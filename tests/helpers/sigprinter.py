#!/usr/bin/env python3
"""sigprinter: a child program that reports every signal it receives.

Run it under the init being tested.  It blocks every catchable signal
(standard and real-time, including SIGCHLD, SIGTSTP/SIGTTIN/SIGTTOU and the
fault signals) and collects them with sigwaitinfo(2), so no signal has any
side effect on it: each one just produces a line on stdout, written with a
single write(2) (atomic on a pipe, unbuffered):

    ready                      once the mask is in place (send nothing before)
    SIGUSR1                    one line per signal received, by name
    SIGRTMIN+3                 real-time signals are named relative to SIGRTMIN

Options:
  --tag TAG        prefix every line with "TAG: " (e.g. "child: SIGHUP")
  --grandchild     fork a second sigprinter in the *same process group and
                   session*, tagged "grandchild" (this one defaults to the tag
                   "child"); the grandchild prints its own ready line first.
                   Used to tell "signal sent to the group" from "to the child".
  --marker PATH    create PATH (empty file) before printing ready: proof that
                   the child was started at all.
  --pidfile PATH   write "<pid>\\n" to PATH before printing ready.
  --exit-on SIG[:CODE]  after printing SIG, exit with CODE (default 0).
  --die-on SIG     after printing SIG, die of SIG (default action restored and
                   the signal re-raised), e.g. to give an init 128+N.
  --siginfo        append " from=<si_pid>" to each signal line.
SIG accepts TERM, SIGTERM, 15 or SIGRTMIN+N.

The program is importable (tests use `signame`/`signum` from it) and has no
dependencies beyond the standard library (Python 3.6+).
"""
import argparse
import os
import signal
import sys

UNCATCHABLE = {signal.SIGKILL, signal.SIGSTOP}


def signame(n):
    """Canonical name of signal number n: 'SIGUSR1', 'SIGRTMIN+2', 'SIGRTMAX'."""
    n = int(n)
    rtmin, rtmax = signal.SIGRTMIN, signal.SIGRTMAX
    if n == rtmax:
        return "SIGRTMAX"
    if rtmin <= n < rtmax:
        return "SIGRTMIN" if n == rtmin else "SIGRTMIN+%d" % (n - rtmin)
    try:
        return signal.Signals(n).name
    except ValueError:
        return "SIG%d" % n


def signum(name):
    """Signal number from 'TERM', 'SIGTERM', '15', 'SIGRTMIN+2', 'RTMAX-1'."""
    s = str(name).strip().upper()
    if s.isdigit():
        return int(s)
    if not s.startswith("SIG"):
        s = "SIG" + s
    for base, value in (("SIGRTMIN", signal.SIGRTMIN), ("SIGRTMAX", signal.SIGRTMAX)):
        if s.startswith(base):
            rest = s[len(base):]
            return value + int(rest) if rest else value
    return int(getattr(signal, s, None) or _NAMES_PYTHON_LACKS[s])


# Linux signals older Pythons have no name for (SIGSTKFLT arrived in 3.11).
_NAMES_PYTHON_LACKS = {"SIGSTKFLT": 16}


def catchable():
    """Every signal number that can be blocked/caught on this system."""
    return sorted(set(signal.valid_signals()) - UNCATCHABLE)


def _write(tag, text):
    line = ("%s: %s\n" % (tag, text)) if tag else text + "\n"
    os.write(1, line.encode())


def _parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tag", default=None)
    p.add_argument("--grandchild", action="store_true")
    p.add_argument("--marker")
    p.add_argument("--pidfile")
    p.add_argument("--exit-on", action="append", default=[])
    p.add_argument("--die-on", action="append", default=[])
    p.add_argument("--siginfo", action="store_true")
    return p


def main(argv=None):
    args = _parser().parse_args(argv)
    sigs = catchable()
    signal.pthread_sigmask(signal.SIG_BLOCK, sigs)
    tag = args.tag
    if args.grandchild:
        tag = tag or "child"
        r, w = os.pipe()
        if os.fork() == 0:
            # Grandchild: same process group and session, inherits the mask.
            os.close(r)
            return _serve(args, sigs, "grandchild", notify_fd=w, marker=None, pidfile=None)
        os.close(w)
        os.read(r, 1)  # wait until the grandchild has printed its ready line
        os.close(r)
    return _serve(args, sigs, tag, marker=args.marker, pidfile=args.pidfile)


def _serve(args, sigs, tag, notify_fd=None, marker=None, pidfile=None):
    exit_on = {}
    for spec in args.exit_on:
        sig, _, code = spec.partition(":")
        exit_on[signum(sig)] = int(code or 0)
    die_on = {signum(s) for s in args.die_on}

    if marker:
        open(marker, "w").close()
    if pidfile:
        with open(pidfile, "w") as f:
            f.write("%d\n" % os.getpid())
    _write(tag, "ready")
    if notify_fd is not None:
        os.write(notify_fd, b"r")
        os.close(notify_fd)

    while True:
        info = signal.sigwaitinfo(sigs)
        n = info.si_signo
        text = signame(n)
        if args.siginfo:
            text += " from=%d" % info.si_pid
        try:
            _write(tag, text)
        except BrokenPipeError:
            return 1
        if n in die_on:
            signal.signal(n, signal.SIG_DFL)
            os.kill(os.getpid(), n)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, [n])
            return 128 + n  # only reached for signals whose default is not to die
        if n in exit_on:
            return exit_on[n]


if __name__ == "__main__":
    sys.exit(main())
