"""A hook for the stop-sequence tests (stdlib only; run as `python -S hook.py ...`).

Logs a "hook" event with what a hook can see (GRACEINIT_PHASE, GRACEINIT_CHILD_PID,
GRACEINIT_EXIT_CODE, GRACEINIT_EXIT_SIGNAL -- None when unset), optionally whether files
exist and whether logged pids are gone, then optionally sleeps (logging any SIGTERM/SIGINT it
gets and dying of it), prints, and exits with --exit.
"""
import argparse
import os
import signal
import sys
import time

# tests/helpers/events.py, imported as a top-level module (stdlib only, works under -S)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "helpers"))
from events import emit, read_all  # noqa: E402


def pid_state(pid):
    """'gone' when no such pid, else the /proc state letter (Z = zombie, not reaped yet)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            data = f.read()
    except FileNotFoundError:
        return "gone"
    except ProcessLookupError:
        return "gone"
    return data.rsplit(")", 1)[1].split()[0]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--log", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--sleep", type=float, default=0.0)
    p.add_argument("--exit", type=int, default=0)
    p.add_argument("--signal-exit", type=int,
                   help="on SIGTERM/SIGINT/SIGHUP: log it, then exit with this status "
                        "(a hook that aborts cleanly) instead of dying of the signal")
    p.add_argument("--print-out")
    p.add_argument("--print-err")
    p.add_argument("--check-file", action="append", default=[])
    p.add_argument("--check-gone", action="append", default=[],
                   help="names (event 'who') whose logged start pid must be gone")
    a = p.parse_args()

    def handler(sig, frame):
        emit(a.log, a.name, "signal", sig=signal.Signals(sig).name)
        if a.signal_exit is not None:
            os._exit(a.signal_exit)
        signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, handler)

    env = os.environ
    fields = {
        "phase": env.get("GRACEINIT_PHASE"),
        "child_pid": env.get("GRACEINIT_CHILD_PID"),
        "exit_code": env.get("GRACEINIT_EXIT_CODE"),
        "exit_signal": env.get("GRACEINIT_EXIT_SIGNAL"),
        "pgid": os.getpgid(0),
        "ppid": os.getppid(),
        "files": {path: os.path.exists(path) for path in a.check_file},
    }
    if a.check_gone:
        starts = {e["who"]: e["pid"] for e in read_all(a.log) if e["ev"] == "start"}
        fields["gone"] = {who: (pid_state(starts[who]) if who in starts else "never-started")
                          for who in a.check_gone}
    emit(a.log, a.name, "hook", **fields)
    if a.print_out:
        os.write(1, (a.print_out + "\n").encode())
    if a.print_err:
        os.write(2, (a.print_err + "\n").encode())
    deadline = time.monotonic() + a.sleep
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        time.sleep(left)
    emit(a.log, a.name, "hook-end", status=a.exit)
    os._exit(a.exit)


if __name__ == "__main__":
    main()
