"""The Python floor: the least a correct PID 1 does, on the interpreter graceinit runs on.

    python3 benchmarks/floor_init.py -- CMD [ARG...]

It blocks every signal first, forks and execs CMD (signals unblocked and ignored ones back to
their default there), then sleeps in sigwaitinfo: SIGCHLD reaps with waitpid(-1, WNOHANG)
until nothing is left; any other signal goes to the child. It exits with the child's status
(128 + N when signal N killed it). No options, no logging, no stop sequence: a row in the
benchmarks that graceinit's own cost is measured against (issue 20), not an init to ship.
It imports only `_signal` and `os` (which the interpreter's start-up has loaded already).
"""

import _signal

_signal.pthread_sigmask(_signal.SIG_BLOCK, _signal.valid_signals())

import os  # noqa: E402


def main(argv):
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        os.write(2, b"usage: floor_init.py -- CMD [ARG...]\n")
        return 2
    every = _signal.valid_signals()
    child = os.fork()
    if child == 0:
        try:
            # An ignored signal stays ignored across exec (Python ignores SIGPIPE, SIGXFSZ).
            for sig in every:
                if sig not in (_signal.SIGKILL, _signal.SIGSTOP) and _signal.getsignal(sig) is _signal.SIG_IGN:
                    _signal.signal(sig, _signal.SIG_DFL)
            _signal.pthread_sigmask(_signal.SIG_SETMASK, ())
            os.execvp(argv[0], argv)
        except OSError as error:
            os.write(2, f"floor_init: {argv[0]}: {error.strerror}\n".encode())
            os._exit(127 if isinstance(error, FileNotFoundError) else 126)
    while True:
        sig = _signal.sigwaitinfo(every).si_signo
        if sig != _signal.SIGCHLD:
            try:
                os.kill(child, sig)
            except ProcessLookupError:
                pass
            continue
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            if pid == child:
                code = os.waitstatus_to_exitcode(status)
                return 128 - code if code < 0 else code


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
