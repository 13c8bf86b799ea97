"""The main child used by the stop-sequence tests.

Logs a "start" event (pid, pgid, sid, where fd 1/2 point), then logs every signal it receives
("signal" events with the signal name) and reacts as told:

  --on SIG=die      log, then die of that signal (default for TERM and INT)
  --on SIG=exit:N   log, then exit with status N
  --on SIG=log      log and keep running (default for every other caught signal)
  --exit-after S    exit with --exit-code (default 0) S seconds after start
  --daemon NAME:MODE   before logging "start", leave behind a double-forked daemon
                    (setsid'd, so it escaped the child's process group and session) that logs
                    as NAME; MODE "polite" dies on SIGTERM, "stubborn" logs it and keeps running
  --stdout-devnull  point this process's own fd 1 and 2 at /dev/null right away
  --write PATH TEXT append TEXT+newline to PATH at start-up (e.g. through a --link-stdout link)
  --print-out TEXT / --print-err TEXT   write TEXT+newline to stdout / stderr at start-up

Stdlib only.
"""
import argparse
import os
import signal
import sys
import time

# tests/helpers/events.py, imported as a top-level module (stdlib only, works under -S)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "helpers"))
from events import emit  # noqa: E402

CAUGHT = ("HUP", "INT", "QUIT", "USR1", "USR2", "TERM", "ALRM", "PIPE", "WINCH")


def signum(name):
    name = name.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    return getattr(signal, name)


def die_of(sig):
    signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [sig])
    os.kill(os.getpid(), sig)
    time.sleep(5)  # not reached
    os._exit(99)


def readlink_fd(n):
    try:
        return os.readlink("/proc/self/fd/%d" % n)
    except OSError as e:
        return "error: %s" % e


def run_daemon(log, name, mode, ready_w):
    """Runs in the grandchild: the leftover daemon."""
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)

    def handler(sig, frame):
        emit(log, name, "signal", sig=signal.Signals(sig).name)
        if sig == signal.SIGTERM and mode == "polite":
            die_of(sig)

    for n in ("TERM", "HUP", "INT", "USR1"):
        signal.signal(signum(n), handler)
    emit(log, name, "start", pgid=os.getpgid(0), sid=os.getsid(0), ppid=os.getppid(), mode=mode)
    os.write(ready_w, b"x")
    os.close(ready_w)
    while True:
        time.sleep(3600)


def spawn_daemon(log, name, mode):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            os.setsid()
            if os.fork() == 0:
                run_daemon(log, name, mode, w)
            os._exit(0)
        except BaseException:
            os._exit(98)
    os.close(w)
    os.waitpid(pid, 0)
    got = os.read(r, 1)
    os.close(r)
    if got != b"x":
        raise SystemExit("daemon %s did not start" % name)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--log", required=True)
    p.add_argument("--name", default="child")
    p.add_argument("--on", action="append", default=[])
    p.add_argument("--exit-after", type=float)
    p.add_argument("--exit-code", type=int, default=0)
    p.add_argument("--daemon", action="append", default=[])
    p.add_argument("--stdout-devnull", action="store_true")
    p.add_argument("--write", nargs=2, action="append", default=[])
    p.add_argument("--print-out", action="append", default=[])
    p.add_argument("--print-err", action="append", default=[])
    a = p.parse_args()

    actions = {signum(n): "log" for n in CAUGHT}
    actions[signal.SIGTERM] = "die"
    actions[signal.SIGINT] = "die"
    for spec in a.on:
        n, act = spec.split("=", 1)
        actions[signum(n)] = act

    def handler(sig, frame):
        emit(a.log, a.name, "signal", sig=signal.Signals(sig).name)
        act = actions.get(sig, "log")
        if act == "die":
            die_of(sig)
        elif act.startswith("exit:"):
            os._exit(int(act.split(":", 1)[1]))

    for sig in actions:
        signal.signal(sig, handler)

    for spec in a.daemon:
        name, mode = spec.split(":", 1)
        spawn_daemon(a.log, name, mode)

    if a.stdout_devnull:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        os.close(devnull)
    for text in a.print_out:
        os.write(1, (text + "\n").encode())
    for text in a.print_err:
        os.write(2, (text + "\n").encode())
    writes = []
    for path, text in a.write:
        try:
            target = os.readlink(path) if os.path.islink(path) else None
            with open(path, "a") as f:
                f.write(text + "\n")
            writes.append({"path": path, "link": target, "ok": True})
        except OSError as e:
            writes.append({"path": path, "ok": False, "error": str(e)})

    emit(a.log, a.name, "start", pgid=os.getpgid(0), sid=os.getsid(0), ppid=os.getppid(),
         fd1=readlink_fd(1), fd2=readlink_fd(2), writes=writes)

    deadline = None if a.exit_after is None else time.monotonic() + a.exit_after
    while True:
        if deadline is None:
            time.sleep(3600)
            continue
        left = deadline - time.monotonic()
        if left <= 0:
            emit(a.log, a.name, "exit", code=a.exit_code)
            sys.stdout.flush()
            os._exit(a.exit_code)
        time.sleep(left)


if __name__ == "__main__":
    main()
