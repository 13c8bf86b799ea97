"""A small socket-activated HTTP server for the restart tests (stdlib only, runs under -S).

It takes its listening sockets the systemd way: LISTEN_PID must equal its own pid (else it
logs "bad-env" and exits 3), LISTEN_FDS sockets start at fd 3 and are adopted with
socket.socket(fileno=N). It never binds anything itself.

  GET /                 200, body JSON {"pid": ..., "name": ..., "path": "/"}
  GET /slow?ms=N&id=X   the same after N ms; logs "slow-begin" and "slow-end" (with id)

Every response carries the serving pid, so a client sees which generation answered.

Readiness: when NOTIFY_SOCKET is set it sends READY=1 (and STATUS=...) as told by the mode.
On the drain signal (SIGTERM unless --drain-signal) it stops accepting (closes its own copy
of the listening sockets -- close(2), never shutdown(2), which would break the socket for
every process sharing it), finishes the requests in flight, logs "drained" and exits.

How one generation behaves comes from --mode-file, a JSON object read at start-up, so a test
can make the *next* generation differ from the running one:

  "exit_now": N           log "start" and exit N at once (a broken deploy)
  "exit_after": S         exit with "exit_code" (default 0) S seconds after start
  "ready": "now"          READY=1 once serving (default)
           "never"        never READY=1
           "delay:S"      READY=1 S seconds after start
           "usr2"         READY=1 when SIGUSR2 arrives
           "usr2-grandchild-exit"  on SIGUSR2, a grandchild sends READY=1 and exits (reaped
                          at once), like `systemd-notify --ready` run from a script
           "grandchild"   READY=1 sent by a forked grandchild that stays alive
           "grandchild-exit"  READY=1 sent by a grandchild that exits (and is reaped) at once,
                          like `systemd-notify --ready` run from a script
  "term_exit": N          exit status after draining (default 0)
  "ignore_term": true     log the drain signal and keep serving

Events (tests/helpers/events.py): start, bad-env, ready-sent, signal, slow-begin, slow-end,
term, drained.
"""
import argparse
import json
import os
import selectors
import signal
import socket
import sys
import threading
import time
from urllib.parse import parse_qsl

# tests/helpers/events.py, imported as a top-level module (stdlib only, works under -S)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "helpers"))
from events import emit  # noqa: E402

LOGGED_SIGNALS = ("HUP", "INT", "QUIT", "USR1", "USR2", "TERM", "ALRM", "WINCH")


def open_fds():
    """The descriptors open right now (listdir's own directory fd is gone when it returns)."""
    fds = []
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        try:
            os.fstat(fd)
        except OSError:
            continue
        fds.append(fd)
    return sorted(fds)


def describe_socket(fd):
    sock = socket.socket(fileno=os.dup(fd))
    try:
        name = sock.getsockname()
        return {
            "fd": fd,
            "family": socket.AddressFamily(sock.family).name,
            "type": socket.SocketKind(sock.type).name,
            "address": list(name) if isinstance(name, tuple) else name,
            "listening": bool(sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)),
            "inode": os.readlink("/proc/self/fd/%d" % fd),
            "inheritable": os.get_inheritable(fd),
        }
    finally:
        sock.close()


def notify(message):
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        sock.connect(address)
        sock.sendall(message.encode())
    finally:
        sock.close()
    return True


class App:
    def __init__(self, args, mode):
        self.args = args
        self.mode = mode
        self.pid = os.getpid()
        self.threads = set()
        self.lock = threading.Lock()
        self.served = 0
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_w, False)
        self.pending = []

    def emit(self, ev, **fields):
        return emit(self.args.log, self.args.name, ev, **fields)

    # -- signals --------------------------------------------------------------------------
    def on_signal(self, signum, frame):
        self.pending.append(signum)
        try:
            os.write(self.wake_w, b"x")
        except BlockingIOError:
            pass

    # -- readiness ------------------------------------------------------------------------
    def send_ready(self, how):
        t_send = time.monotonic()
        sent = notify("READY=1\nSTATUS=%s serving as pid %d" % (self.args.name, self.pid))
        self.emit("ready-sent", how=how, sent=sent, t_send=t_send)

    def ready_later(self, seconds):
        def later():
            time.sleep(seconds)
            self.send_ready("delay")
        threading.Thread(target=later, daemon=True).start()

    def fork_notifier(self, stay):
        """A grandchild sends READY=1: one that stays (until we exit) or one that exits and is
        reaped at once."""
        keep_r, keep_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.close(keep_w)
                for fd in range(3, 3 + int(os.environ.get("LISTEN_FDS", "0"))):
                    os.close(fd)
                sent = notify("READY=1\nSTATUS=%s ready (from a grandchild)" % self.args.name)
                emit(self.args.log, self.args.name + "-notifier", "ready-sent",
                     parent=self.pid, sent=sent, stays=stay)
                if stay:
                    os.read(keep_r, 1)  # EOF when the app exits
            finally:
                os._exit(0)
        os.close(keep_r)
        if not stay:
            os.waitpid(pid, 0)
            os.close(keep_w)
            self.emit("notifier-reaped", notifier=pid)
        else:
            self.keep_w = keep_w

    # -- serving --------------------------------------------------------------------------
    def handle(self, conn):
        try:
            conn.settimeout(10)
            data = b""
            while b"\r\n\r\n" not in data and len(data) < 65536:
                chunk = conn.recv(4096)
                if not chunk:
                    return  # a probe that only connected
                data += chunk
            line = data.split(b"\r\n", 1)[0].decode("latin-1")
            parts = line.split(" ")
            target = parts[1] if len(parts) > 1 else "/"
            path, _, query = target.partition("?")
            params = dict(parse_qsl(query))
            if path == "/slow":
                ms = float(params.get("ms", "1000"))
                self.emit("slow-begin", id=params.get("id"), ms=ms)
                time.sleep(min(ms, 30000) / 1000.0)
                self.emit("slow-end", id=params.get("id"))
            body = json.dumps({"pid": self.pid, "name": self.args.name, "path": path,
                               "id": params.get("id")}).encode()
            head = ("HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n"
                    "Content-Length: %d\r\nX-Pid: %d\r\nConnection: close\r\n\r\n"
                    % (len(body), self.pid)).encode()
            conn.sendall(head + body)
            with self.lock:
                self.served += 1
        except OSError as error:
            self.emit("conn-error", error=str(error))
        finally:
            conn.close()
            with self.lock:
                self.threads.discard(threading.current_thread())

    def run(self, listeners):
        mode = self.mode
        selector = selectors.DefaultSelector()
        for sock in listeners:
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ)
        selector.register(self.wake_r, selectors.EVENT_READ)

        ready = mode.get("ready", "now")
        if ready == "now":
            self.send_ready("now")
        elif ready.startswith("delay:"):
            self.ready_later(float(ready.split(":", 1)[1]))
        elif ready in ("grandchild", "grandchild-exit"):
            self.fork_notifier(stay=(ready == "grandchild"))

        exit_at = None
        if "exit_after" in mode:
            exit_at = time.monotonic() + float(mode["exit_after"])
        drain = getattr(signal, "SIG" + self.args.drain_signal.upper())
        draining = False
        while not draining:
            timeout = None if exit_at is None else max(0.0, exit_at - time.monotonic())
            events = selector.select(timeout)
            if exit_at is not None and time.monotonic() >= exit_at:
                self.emit("exit", code=int(mode.get("exit_code", 0)), why="exit_after")
                os._exit(int(mode.get("exit_code", 0)))
            for key, _ in events:
                if key.fileobj == self.wake_r:
                    try:
                        os.read(self.wake_r, 4096)
                    except BlockingIOError:
                        pass
                    while self.pending:
                        signum = self.pending.pop(0)
                        name = signal.Signals(signum).name
                        self.emit("signal", sig=name)
                        if signum == signal.SIGUSR2 and ready == "usr2":
                            self.send_ready("usr2")
                        if signum == signal.SIGUSR2 and ready == "usr2-grandchild-exit":
                            self.fork_notifier(stay=False)
                        if signum == drain:
                            if mode.get("ignore_term"):
                                continue
                            self.emit("term", sig=name)
                            draining = True
                    continue
                try:
                    conn, _ = key.fileobj.accept()
                except (BlockingIOError, InterruptedError):
                    continue  # another generation took it (they share the queue)
                conn.setblocking(True)
                thread = threading.Thread(target=self.handle, args=(conn,))
                with self.lock:
                    self.threads.add(thread)
                thread.start()

        # drain: stop accepting (our copy only), finish what is in flight
        for sock in listeners:
            selector.unregister(sock)
            sock.close()
        with self.lock:
            in_flight = list(self.threads)
        self.emit("stopped-accepting", in_flight=len(in_flight))
        for thread in in_flight:
            thread.join()
        code = int(mode.get("term_exit", 0))
        self.emit("drained", served=self.served, code=code)
        sys.stdout.flush()
        os._exit(code)


def main():
    fds = open_fds()  # first, before this process opens anything
    parser = argparse.ArgumentParser()
    parser.add_argument("--log", required=True)
    parser.add_argument("--name", default="app")
    parser.add_argument("--mode-file")
    parser.add_argument("--drain-signal", default="TERM")
    args = parser.parse_args()

    mode = {}
    if args.mode_file and os.path.exists(args.mode_file):
        with open(args.mode_file) as f:
            mode = json.load(f)

    # Handlers first, so that a signal sent once "start" is logged is never fatal.
    app = App(args, mode)
    for name in LOGGED_SIGNALS:
        signal.signal(getattr(signal, "SIG" + name), app.on_signal)

    pid = os.getpid()
    env = {k: os.environ.get(k) for k in ("LISTEN_FDS", "LISTEN_FDNAMES", "LISTEN_PID",
                                          "NOTIFY_SOCKET")}
    sockets = [describe_socket(fd) for fd in fds if fd >= 3]
    try:
        ppid_pgid = {"ppid": os.getppid(), "pgid": os.getpgid(0), "sid": os.getsid(0)}
    except OSError:
        ppid_pgid = {}
    emit(args.log, args.name, "start", env=env, fds=fds, sockets=sockets, mode=mode,
         **ppid_pgid)

    if env["LISTEN_PID"] != str(pid) or not env["LISTEN_FDS"]:
        emit(args.log, args.name, "bad-env", env=env)
        sys.stderr.write("app: LISTEN_PID %r is not my pid %d\n" % (env["LISTEN_PID"], pid))
        os._exit(3)
    if "exit_now" in mode:
        emit(args.log, args.name, "exit", code=int(mode["exit_now"]), why="exit_now")
        os._exit(int(mode["exit_now"]))

    listeners = [socket.socket(fileno=fd) for fd in range(3, 3 + int(env["LISTEN_FDS"]))]
    app.run(listeners)


if __name__ == "__main__":
    main()
