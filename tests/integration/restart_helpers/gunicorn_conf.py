"""gunicorn settings and server hooks for the restart tests: each hook logs an event, so a test
sees a generation start (with the socket-activation variables it was given), its workers boot
and its arbiter exit.

Unknown names are ignored by gunicorn, so `control_socket_disable` is harmless on versions
before 25.1 (which have no control socket); on newer ones two generations running side by
side would otherwise fight over the same default control socket path.
"""
import os
import sys

# tests/helpers/events.py, imported as a top-level module (stdlib only, works under -S)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "helpers"))
from events import emit  # noqa: E402

LOG = os.environ.get("RESTART_TEST_LOG")
control_socket_disable = True
loglevel = "warning"


def _emit(ev, **fields):
    if LOG:
        emit(LOG, "gunicorn", ev, **fields)


def on_starting(server):
    # Runs before the arbiter reads (and unsets) LISTEN_PID/LISTEN_FDS.
    fds = []
    for name in os.listdir("/proc/self/fd"):
        try:
            fds.append((int(name), os.readlink("/proc/self/fd/" + name)))
        except OSError:
            pass
    _emit("start", env={k: os.environ.get(k) for k in (
        "LISTEN_FDS", "LISTEN_FDNAMES", "LISTEN_PID", "NOTIFY_SOCKET")},
        sockets={str(fd): target for fd, target in fds if target.startswith("socket:")})


def when_ready(server):
    # Called right after the arbiter's sd_notify("READY=1 ...") -- before any worker exists.
    _emit("arbiter-ready", listeners=[str(lnr) for lnr in server.LISTENERS],
          systemd=getattr(server, "systemd", None))


def post_worker_init(worker):
    _emit("worker-start", master=worker.ppid)


def worker_exit(server, worker):
    _emit("worker-exit", master=server.pid)


def on_exit(server):
    _emit("exit")
