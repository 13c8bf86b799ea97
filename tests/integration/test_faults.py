"""Issue 10 -- survive a hostile environment: every fault gets one clear line and a documented
status, or a safe fallback; none leaves the container unstoppable.

Each case runs the real graceinit in a real fault made by tests/helpers/faults.py: read-only
bind mounts and full tmpfs in private mount namespaces, a tmpfs over /dev or /proc, a /proc
that belongs to another PID namespace, resource limits, a pids cgroup, another user.

The contract for a problem found at start-up: exit 2, exactly one `[graceinit]` line naming
what the user typed (the option, or the GRACEINIT_* variable), no traceback, and nothing
started (the app would create a marker file).
"""
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import textwrap
import time

import psutil
import pytest

from helpers import PID1_PREFIX, PYTHON, faults, procfs

# A Python another user can run: the test's own may sit under /root (mode 0700).
OTHERS_PYTHON = next((path for path in ("/usr/bin/python3", PYTHON) if os.path.exists(path)), PYTHON)

pytestmark = pytest.mark.timeout(60)

needs_root = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None,
                                reason="fault injection needs root, unshare and mount")
needs_cgroup = pytest.mark.skipif(not faults.pids_cgroup_available(),
                                  reason="no writable pids cgroup controller here")

USAGE_ERROR = 2
OS_ERROR = 71  # sysexits.h EX_OSERR: the system refused a process or a descriptor


_RUNS_AS_OTHERS = {}


@pytest.fixture
def other_user(graceinit_bin):
    """Skip unless graceinit's interpreter can run as a user other than root here (a Python
    installed under /root, mode 0700, cannot): returns faults.as_user."""
    if "ok" not in _RUNS_AS_OTHERS:
        ok = os.geteuid() == 0 and shutil.which("setpriv") is not None
        for uid in (faults.NOBODY, 3000000):
            if ok:
                probe = subprocess.run(faults.as_user(uid, uid) + [str(graceinit_bin), "--version"],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                       timeout=20)
                ok = probe.returncode == 0
        _RUNS_AS_OTHERS["ok"] = ok
    if not _RUNS_AS_OTHERS["ok"]:
        pytest.skip("graceinit's Python cannot be run by another user on this machine")
    return faults.as_user


@pytest.fixture
def shared_tmp():
    """A temporary directory that uid 65534 can reach (pytest's tmp_path is 0700)."""
    path = tempfile.mkdtemp(prefix="gitest-faults-", dir="/tmp")
    os.chmod(path, 0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def marker_app(directory):
    """(argv of an app that proves it ran by creating a marker, the marker's path)."""
    marker = os.path.join(directory, "app-ran")
    return ["sh", "-c", 'touch "$0"', marker], marker


def one_line(rc, err, names, status=USAGE_ERROR):
    """Assert the start-up refusal contract; returns the line."""
    text = err.decode(errors="replace") if isinstance(err, bytes) else err
    lines = [line for line in text.splitlines() if line.strip()]
    assert rc == status, "exit %r, expected %d; stderr:\n%s" % (rc, status, text)
    assert len(lines) == 1, "expected one line on stderr, got:\n%s" % text
    assert lines[0].startswith("[graceinit] error: "), lines[0]
    assert any(name in lines[0] for name in names), "%r names none of %s" % (lines[0], names)
    return lines[0]


def no_traceback(text):
    assert "Traceback" not in text and "internal error" not in text, text


# --- item 4: --stdout / --stderr to a FIFO ---------------------------------------------


@pytest.mark.parametrize("option", ["--stdout", "--stderr"])
def test_fifo_without_reader_waits_but_a_stop_signal_ends_it(procs, graceinit_bin, pid1,
                                                             tmp_path, option):
    """It waits for the reader (a log collector may start later), says so once, and a stop
    signal ends the wait: graceinit exits 128+N. (The app is `sleep`: whether or not it was
    started, it ends by that signal; that it is not started is the next test's.)"""
    fifo = str(tmp_path / "log.fifo")
    os.mkfifo(fifo)
    sup = procs.start([graceinit_bin, option, fifo, "--", "sleep", "600"], pid1=pid1)
    procfs.wait_until(lambda: procfs.blocked_in_open(sup.pid), 10,
                      lambda: "graceinit to wait for the FIFO's reader; stderr: %s"
                      % sup.stderr_text())
    sup.send(signal.SIGTERM)
    try:
        rc = sup.wait(timeout=10)
    except procfs.WaitTimeout:
        pytest.fail("SIGTERM did not end graceinit waiting for a FIFO reader")
    err = sup.stderr_text(timeout=5)
    assert rc == 128 + signal.SIGTERM, err
    no_traceback(err)
    assert "no reader" in err and option in err, err


def test_stop_signal_while_waiting_for_a_fifo_reader_never_starts_the_app(procs, graceinit_bin,
                                                                          tmp_path):
    fifo = str(tmp_path / "log.fifo")
    os.mkfifo(fifo)
    app, marker = marker_app(str(tmp_path))
    for attempt in range(5):  # the app is fast: if it may start, it will within 5 tries
        sup = procs.start([graceinit_bin, "--stdout", fifo, "--"] + app)
        procfs.wait_until(lambda: procfs.blocked_in_open(sup.pid), 10, "the wait for a reader")
        sup.send(signal.SIGTERM)
        assert sup.wait(timeout=10) == 128 + signal.SIGTERM, sup.stderr_text()
        assert not os.path.exists(marker), "the app was started (attempt %d)" % attempt


def test_fifo_reader_arriving_later_gets_the_apps_output_through_a_blocking_fd(
        procs, graceinit_bin, tmp_path):
    fifo = str(tmp_path / "log.fifo")
    os.mkfifo(fifo)
    report = "import fcntl, os; print('nonblocking=%d' % bool(fcntl.fcntl(1, fcntl.F_GETFL) & os.O_NONBLOCK))"
    sup = procs.start([graceinit_bin, "--stdout", fifo, "--", PYTHON, "-c", report])
    procfs.wait_until(lambda: procfs.blocked_in_open(sup.pid), 10, "graceinit to wait for a reader")
    with open(fifo, "rb") as reader:
        data = reader.read()
    assert sup.wait(timeout=10) == 0, sup.stderr_text()
    assert data == b"nonblocking=0\n"


def test_fifo_with_a_reader_already_there_is_opened_at_once_and_blocking(
        procs, graceinit_bin, tmp_path):
    fifo = str(tmp_path / "log.fifo")
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        report = "import fcntl, os; print('nonblocking=%d' % bool(fcntl.fcntl(1, fcntl.F_GETFL) & os.O_NONBLOCK))"
        rc, _, err = procs.run([graceinit_bin, "--stdout", fifo, "--", PYTHON, "-c", report])
        assert rc == 0, err
        assert err == b"", err  # no "waiting for a reader" warning
        assert os.read(reader, 100) == b"nonblocking=0\n"
    finally:
        os.close(reader)


# --- item 6: the wrong /proc -----------------------------------------------------------


@needs_root
def test_empty_proc_as_pid1_exits_with_the_apps_status(procs, graceinit_bin):
    """A tmpfs over /proc: no leftovers can be found, so none are looked for (a warning),
    and graceinit exits with the app's status, not a traceback and 70."""
    argv = faults.pid_ns(faults.empty_proc()) + [
        graceinit_bin, "--", "sh", "-c", "sleep 600 & exit 3"]
    rc, _, err = procs.run(argv, timeout=20)
    text = err.decode(errors="replace")
    no_traceback(text)
    assert rc == 3, text
    warnings = [line for line in text.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "/proc" in warnings[0], text


@needs_root
def test_foreign_proc_as_pid1_signals_no_host_process(procs, graceinit_bin):
    """PID 1 seeing an outer namespace's /proc: its own pid (1) names the outer init
    there. It must not take the outer processes for its leftovers (SIGTERM, SIGKILL and a
    wait of --leftover-grace for processes it cannot signal), but warn once and exit."""
    argv = faults.foreign_proc() + [
        graceinit_bin, "--leftover-grace", "30", "--", "sh", "-c", "exit 3"]
    started = time.monotonic()
    rc, _, err = procs.run(argv, timeout=25)
    text = err.decode(errors="replace")
    no_traceback(text)
    assert rc == 3, text
    assert time.monotonic() - started < 10, "waited for processes that are not its own"
    assert "leftover process(es)" not in text, text
    warnings = [line for line in text.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "/proc" in warnings[0], text


@needs_root
def test_own_proc_as_pid1_still_stops_leftovers(procs, graceinit_bin, pid1_ok):
    """The check does not switch off leftover clean-up where /proc is right."""
    sup = procs.start([graceinit_bin, "-v", "--", "sh", "-c", "sleep 600 & exit 3"], pid1=True)
    assert sup.wait(timeout=20) == 3, sup.stderr_text()
    err = sup.stderr_text(timeout=5)
    assert "leftover process(es)" in err and "/proc" not in err, err


# --- item 7: a bad --ready-file is exit 2 at start-up ----------------------------------


def test_ready_file_that_is_a_directory_given_in_the_environment(procs, graceinit_bin, tmp_path):
    app, marker = marker_app(str(tmp_path))
    env = procs.env(GRACEINIT_READY_FILE=".")
    rc, _, err = procs.run([graceinit_bin, "--"] + app, env=env, cwd=str(tmp_path))
    one_line(rc, err, ["GRACEINIT_READY_FILE"])
    assert "directory" in err.decode()
    assert not os.path.exists(marker)


def test_ready_file_in_a_missing_directory(procs, graceinit_bin, tmp_path):
    app, marker = marker_app(str(tmp_path))
    missing = str(tmp_path / "no-such-dir" / "ready")
    rc, _, err = procs.run([graceinit_bin, "--ready-file", missing, "--"] + app)
    one_line(rc, err, ["--ready-file"])
    assert not os.path.exists(marker)


@needs_root
def test_ready_file_directory_not_writable_by_graceinits_user(procs, graceinit_bin, shared_tmp,
                                                             other_user):
    root_owned = os.path.join(shared_tmp, "root-owned")
    os.mkdir(root_owned, 0o755)
    app, marker = marker_app(shared_tmp)
    os.chmod(shared_tmp, 0o777)  # the app (as nobody) could create its marker
    argv = other_user() + [graceinit_bin, "--ready-file",
                               os.path.join(root_owned, "ready"), "--"] + app
    rc, _, err = procs.run(argv)
    one_line(rc, err, ["--ready-file"])
    assert "Permission denied" in err.decode() or "not writable" in err.decode()
    assert not os.path.exists(marker)


@needs_root
def test_ready_file_on_a_read_only_filesystem(procs, graceinit_bin, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    app, marker = marker_app(str(tmp_path))
    argv = faults.mount_ns(faults.readonly(ro)) + [
        graceinit_bin, "--ready-file", str(ro / "ready"), "--"] + app
    rc, _, err = procs.run(argv)
    one_line(rc, err, ["--ready-file"])
    assert "Read-only" in err.decode(), err
    assert not os.path.exists(marker)


@needs_root
def test_ready_file_on_a_full_filesystem(procs, graceinit_bin, tmp_path):
    full = tmp_path / "full"
    full.mkdir()
    app, marker = marker_app(str(tmp_path))
    argv = faults.mount_ns(faults.full_tmpfs(full)) + [
        graceinit_bin, "--ready-file", str(full / "ready"), "--"] + app
    rc, _, err = procs.run(argv)
    one_line(rc, err, ["--ready-file"])
    assert "No space" in err.decode(), err
    assert not os.path.exists(marker)


@needs_root
def test_stale_ready_file_that_cannot_be_removed(procs, graceinit_bin, shared_tmp, other_user):
    """A sticky directory anyone may write to, with a stale ready file of root's: graceinit's
    user may create files there but not remove root's."""
    sticky = os.path.join(shared_tmp, "sticky")
    os.mkdir(sticky)
    os.chmod(sticky, 0o1777)
    stale = os.path.join(sticky, "ready")
    with open(stale, "w") as f:
        f.write("stale")
    os.chmod(shared_tmp, 0o777)
    app, marker = marker_app(shared_tmp)
    rc, _, err = procs.run(other_user() + [graceinit_bin, "--ready-file", stale, "--"] + app)
    one_line(rc, err, ["--ready-file"])
    assert "stale" in err.decode(), err
    assert not os.path.exists(marker)


@pytest.mark.parametrize("other", ["--stdout", "--stderr", "--link-stdout", "--link-stderr"])
def test_ready_file_is_the_same_path_as_a_log(procs, graceinit_bin, tmp_path, other):
    log = tmp_path / "app.log"
    log.write_text("precious\n")
    if other.startswith("--link"):
        log.unlink()
        log.symlink_to("/dev/null")  # an earlier link: replacing it is allowed, sharing it not
    app, marker = marker_app(str(tmp_path))
    # Spelled differently on purpose: the same file is the same file.
    same = str(tmp_path / "." / "app.log")
    rc, _, err = procs.run([graceinit_bin, other, str(log), "--ready-file", same, "--"] + app)
    line = one_line(rc, err, ["--ready-file"])
    assert other in line, line
    assert not os.path.exists(marker)
    if other.startswith("--link"):
        assert os.readlink(str(log)) == "/dev/null"
    else:
        assert log.read_text() == "precious\n"


def test_good_ready_file_still_works_and_replaces_a_stale_one(procs, graceinit_bin, tmp_path):
    ready = tmp_path / "ready"
    ready.write_text("stale")
    sup = procs.start([graceinit_bin, "--ready-file", str(ready), "--", "sleep", "600"])
    procfs.wait_until(lambda: ready.exists() and ready.read_text() == "", 10,
                      lambda: "a fresh ready file; stderr: %s" % sup.stderr_text())
    sup.send(signal.SIGTERM)
    assert sup.wait(timeout=10) == 128 + signal.SIGTERM
    assert not ready.exists()
    said = [line for line in sup.stderr_text(timeout=5).splitlines()
            if not line.startswith("[graceinit] termination report:")]
    assert said == [], said


# --- item 8: unreadable hook directories -------------------------------------------------


@needs_root
@pytest.mark.parametrize("phase", ["pre", "post"])
@pytest.mark.parametrize("mode", [0o700, 0o311, 0o644], ids=["no-access", "no-read", "no-search"])
def test_unreadable_hook_dir_is_exit_2(procs, graceinit_bin, shared_tmp, phase, mode,
                                      other_user):
    hooks = os.path.join(shared_tmp, "%s.d" % phase)
    os.mkdir(hooks)
    hook = os.path.join(hooks, "10-hook")
    with open(hook, "w") as f:
        f.write("#!/bin/sh\nexit 0\n")
    os.chmod(hook, 0o755)
    os.chmod(hooks, mode)
    os.chmod(shared_tmp, 0o777)
    app, marker = marker_app(shared_tmp)
    option = "--%s-hook-dir" % phase
    rc, _, err = procs.run(other_user() + [graceinit_bin, option, hooks, "--"] + app)
    one_line(rc, err, [option])
    assert hooks in err.decode()
    assert not os.path.exists(marker)


# --- item 10: --link-stdout never destroys a file ----------------------------------------


@pytest.mark.parametrize("option", ["--link-stdout", "--link-stderr"])
def test_link_refuses_to_replace_a_regular_file(procs, graceinit_bin, tmp_path, option):
    precious = tmp_path / "f"
    precious.write_text("precious\n")
    app, marker = marker_app(str(tmp_path))
    rc, _, err = procs.run([graceinit_bin, option, str(precious), "--"] + app)
    one_line(rc, err, [option])
    assert not precious.is_symlink() and precious.read_text() == "precious\n"
    assert not os.path.exists(marker)


@needs_root
def test_link_refuses_to_replace_a_device_node(procs, graceinit_bin, tmp_path):
    node = tmp_path / "null"
    os.mknod(str(node), 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    rc, _, err = procs.run([graceinit_bin, "--link-stdout", str(node), "--", "true"])
    one_line(rc, err, ["--link-stdout"])
    assert stat.S_ISCHR(os.lstat(str(node)).st_mode)


def test_link_replaces_an_earlier_link(procs, graceinit_bin, tmp_path):
    link = tmp_path / "stdout.log"
    link.symlink_to("/proc/1/fd/1")
    rc, _, err = procs.run([graceinit_bin, "--link-stdout", str(link), "--", "true"])
    assert rc == 0, err
    assert os.readlink(str(link)).endswith("/fd/1") and os.readlink(str(link)) != "/proc/1/fd/1"


# --- item 11: --listen unix:PATH and another server's socket -------------------------------


def test_listen_refuses_a_live_unix_socket(procs, graceinit_bin, tmp_path):
    path = str(tmp_path / "app.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    try:
        app, marker = marker_app(str(tmp_path))
        rc, _, err = procs.run([graceinit_bin, "--listen", "unix:" + path, "--"] + app)
        line = one_line(rc, err, ["--listen"])
        assert "in use" in line, line
        assert not os.path.exists(marker)
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        client.connect(path)  # the other server still owns its address
        client.close()
    finally:
        server.close()


def test_listen_replaces_a_stale_unix_socket(procs, graceinit_bin, tmp_path):
    path = str(tmp_path / "app.sock")
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(path)
    stale.close()  # the file stays, nobody listens: left over from an earlier run
    check = "import socket; s = socket.socket(fileno=3); print(s.getsockname())"
    rc, out, err = procs.run([graceinit_bin, "--listen", "unix:" + path, "--",
                              PYTHON, "-c", check])
    assert rc == 0, err
    assert path in out.decode()


# --- item 13: no /dev/null ------------------------------------------------------------------


@needs_root
def test_no_dev_null_hooks_read_end_of_file(procs, graceinit_bin, pid1):
    """A tmpfs over /dev: hooks get an empty stdin anyway (end of file at once)."""
    hook = "sh -c 'read line; echo hook-stdin-status=$?'"
    prefix = (list(PID1_PREFIX) if pid1 else []) + faults.mount_ns(faults.no_dev())
    rc, out, err = procs.run(prefix + [graceinit_bin, "--pre-hook", hook, "--post-hook", hook,
                                       "--", "sh", "-c", "exit 4"], timeout=20)
    text = err.decode(errors="replace")
    no_traceback(text)
    assert rc == 4, text
    assert out.decode().splitlines() == ["hook-stdin-status=1"] * 2, out


@needs_root
def test_no_dev_null_and_closed_standard_fds(procs, graceinit_bin):
    """graceinit started with stdin and stdout closed and no /dev/null: the app gets an
    empty stdin and a closed stdout, as graceinit got it, and graceinit's own pipes do not
    take their numbers."""
    app = textwrap.dedent("""
        import os, sys
        sys.stderr.write("stdin=%r\\n" % os.read(0, 10))
        try:
            os.fstat(1)
            sys.stderr.write("stdout-open\\n")
        except OSError:
            sys.stderr.write("stdout-closed\\n")
    """)
    argv = faults.mount_ns(faults.no_dev()) + [
        "sh", "-c", 'exec "$@" <&- >&-', "closer",
        graceinit_bin, "--notify", "--pre-hook", "true", "--", PYTHON, "-c", app]
    rc, _, err = procs.run(argv, timeout=20)
    text = err.decode(errors="replace")
    no_traceback(text)
    assert rc == 0, text
    assert "stdin=b''" in text and "stdout-closed" in text, text


# --- item 14: descriptors and processes running out ------------------------------------------


def test_low_open_file_limit_is_one_line_or_works(procs, graceinit_bin, tmp_path):
    """With hooks, --notify, --listen and a leftover process, every open-file limit from 5
    to 24 either works or is exit 2 with one line naming the limit; never a traceback, 70
    or 126. (Below 5 the interpreter itself cannot start.)"""
    seen = {}
    for limit in range(5, 25):
        sock = str(tmp_path / ("s%d" % limit))
        argv = faults.prlimit(nofile=limit) + [
            graceinit_bin, "--notify", "--listen", "tcp://127.0.0.1:0", "--listen", "unix:" + sock,
            "--pre-hook", "true", "--stop-hook", "true", "--post-hook", "true", "--",
            "sh", "-c", "sleep 0.05 & exit 0"]
        rc, _, err = procs.run(argv, timeout=20)
        text = err.decode(errors="replace")
        no_traceback(text)
        if rc == USAGE_ERROR:
            one_line(rc, err, ["open-file limit", "open files"])
        else:
            assert rc == 0, "limit %d: exit %r; stderr:\n%s" % (limit, rc, text)
        seen[limit] = rc
    assert seen[5] == USAGE_ERROR and seen[24] == 0, seen


@needs_root
@needs_cgroup
def test_fork_failing_for_the_app_is_one_line(procs, graceinit_bin, pid1, tmp_path):
    """pids.max 1: graceinit itself fits, the app does not. One line, exit 71 (EX_OSERR),
    post hooks still attempted (and failing the same way), no traceback."""
    app, marker = marker_app(str(tmp_path))
    with faults.pids_cgroup(1) as cgroup:
        sup = procs.start(cgroup.prefix() + [graceinit_bin, "--"] + app, pid1=pid1)
        rc = sup.wait(timeout=20)
    text = sup.stderr_text(timeout=5)
    no_traceback(text)
    line = one_line(rc, text, ["cannot start"], status=OS_ERROR)
    assert "process" in line, line
    assert not os.path.exists(marker)


@needs_root
@needs_cgroup
def test_fork_failing_for_a_pre_hook_is_one_line(procs, graceinit_bin, pid1, tmp_path):
    app, marker = marker_app(str(tmp_path))
    with faults.pids_cgroup(1) as cgroup:
        sup = procs.start(cgroup.prefix() + [graceinit_bin, "--pre-hook", "true", "--"] + app,
                          pid1=pid1)
        rc = sup.wait(timeout=20)
    text = sup.stderr_text(timeout=5)
    no_traceback(text)
    assert rc == OS_ERROR, text
    assert "pre hook" in text and "cannot start" in text, text
    assert not os.path.exists(marker)


@needs_root
def test_fork_failing_under_rlimit_nproc_as_non_root(procs, graceinit_bin, shared_tmp,
                                                     other_user):
    """RLIMIT_NPROC counts every process of the user: as a uid of its own (nothing else on the
    machine runs as it), a limit of 1 is graceinit itself, and the app's fork fails."""
    os.chmod(shared_tmp, 0o777)
    app, marker = marker_app(shared_tmp)
    uid = 3000000 + int.from_bytes(os.urandom(3), "big")
    argv = faults.prlimit(nproc=1) + other_user(uid, uid) + [graceinit_bin, "--"] + app
    rc, _, err = procs.run(argv, timeout=20)
    no_traceback(err.decode(errors="replace"))
    one_line(rc, err, ["cannot start"], status=OS_ERROR)
    assert not os.path.exists(marker)


# --- item 1 (the rebuilt fallback, issue 8): run-time faults during the life cycle -------------

NOTIFY_APP = textwrap.dedent("""
    import os, signal, socket, sys
    signal.signal(signal.SIGTERM, lambda *_: print("got SIGTERM", flush=True))
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
    print("waiting", flush=True)
    signal.sigwait({signal.SIGUSR1})
    address = os.environ["NOTIFY_SOCKET"]
    if address.startswith("@"):
        address = "\\0" + address[1:]
    socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).sendto(b"READY=1", address)
    print("notified", flush=True)
    while True:
        signal.pause()
""")

FORK_FILLER_APP = textwrap.dedent("""
    import os, signal, time
    signal.signal(signal.SIGTERM, lambda *_: print("got SIGTERM", flush=True))
    children = 0
    for _ in range(500):
        try:
            pid = os.fork()
        except OSError:
            break
        if pid == 0:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            time.sleep(600)
            os._exit(0)
        children += 1
    print("full after %d" % children, flush=True)
    while True:
        signal.pause()
""")


def _stop_contract(sup, post_marker, grace, started_at=None):
    """SIGTERM: forwarded, then SIGKILL after the grace period, exit 137, post hooks ran."""
    sent = time.monotonic()
    sup.send(signal.SIGTERM)
    sup.stdout.wait_for("got SIGTERM", timeout=5)
    try:
        rc = sup.wait(timeout=grace + 10)
    except procfs.WaitTimeout:
        pytest.fail("graceinit did not end the stop sequence; stderr:\n%s" % sup.stderr_text())
    took = time.monotonic() - sent
    text = sup.stderr_text(timeout=5)
    assert rc == 128 + signal.SIGKILL, text
    assert grace - 0.2 <= took <= grace + 8, "stop took %.1fs" % took
    assert os.path.exists(post_marker), "post hook did not run; stderr:\n%s" % text
    no_traceback(text)


@needs_root
def test_disk_full_when_the_ready_file_is_created_at_run_time(procs, graceinit_bin, tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    post = str(tmp_path / "post-ran")
    argv = faults.mount_ns(faults.tmpfs(disk, nr_inodes=8)) + [
        graceinit_bin, "--notify", "--ready-file", str(disk / "ready"), "--grace-period", "2",
        "--post-hook", "touch " + post, "--", PYTHON, "-c", NOTIFY_APP]
    sup = procs.start(argv)
    sup.stdout.wait_for("waiting", timeout=15)
    filled = faults.fill(faults.in_root_of(sup.pid, disk))
    assert filled > 0
    sup.send(signal.SIGUSR1)  # forwarded: the app sends READY=1, the ready file cannot be made
    sup.stdout.wait_for("notified", timeout=5)
    procfs.wait_until(lambda: "No space" in sup.stderr_text(), 5,
                      lambda: "graceinit to notice the full disk; stderr: %s" % sup.stderr_text())
    _stop_contract(sup, post, grace=2)


@needs_root
def test_ready_file_directory_becomes_unwritable_for_a_non_root_user(procs, graceinit_bin,
                                                                    shared_tmp, other_user):
    ready_dir = os.path.join(shared_tmp, "ready.d")
    os.mkdir(ready_dir, 0o755)
    os.chown(ready_dir, faults.NOBODY, faults.NOBODY)
    os.chmod(shared_tmp, 0o777)
    post = os.path.join(shared_tmp, "post-ran")
    argv = other_user() + [
        graceinit_bin, "--notify", "--ready-file", os.path.join(ready_dir, "ready"),
        "--grace-period", "2", "--post-hook", "touch " + post, "--", OTHERS_PYTHON, "-c", NOTIFY_APP]
    sup = procs.start(argv)
    sup.stdout.wait_for("waiting", timeout=15)
    os.chown(ready_dir, 0, 0)  # passed the start-up check; now root's
    sup.send(signal.SIGUSR1)
    sup.stdout.wait_for("notified", timeout=5)
    procfs.wait_until(lambda: "Permission denied" in sup.stderr_text(), 5,
                      lambda: "graceinit to fail creating the ready file; stderr: %s"
                      % sup.stderr_text())
    _stop_contract(sup, post, grace=2)


@needs_root
@needs_cgroup
def test_process_limit_reached_when_the_stop_hook_must_start(procs, graceinit_bin, pid1,
                                                            tmp_path):
    post = str(tmp_path / "post-ran")
    stop_hook_ran = str(tmp_path / "stop-hook-ran")
    with faults.pids_cgroup(12) as cgroup:
        argv = cgroup.prefix() + [
            graceinit_bin, "--stop-hook", "touch " + stop_hook_ran, "--grace-period", "2",
            "--post-hook", "touch " + post, "--", PYTHON, "-c", FORK_FILLER_APP]
        sup = procs.start(argv, pid1=pid1)
        sup.stdout.wait_for(lambda line: line.startswith("full after"), timeout=15)
        assert cgroup.current() == 12
        _stop_contract(sup, post, grace=2)
    assert not os.path.exists(stop_hook_ran)


# --- issue 18 item 2: the app's Python settings never reach graceinit's interpreter ---------


ENV_CASES = {
    "shlex-post-hook": (["--post-hook", "true"], {}),
    "ipaddress-drain-ignore": (["--drain-ignore", "127.0.0.0/8"], {}),
    "json-log": (["--log-format", "json", "-v"], {}),
    "psutil-leftovers": (["--leftover-grace", "2"], {}),
    "inspect": ([], {"PYTHONINSPECT": "1"}),
    "verbose-interpreter": (["-q"], {"PYTHONVERBOSE": "1", "PYTHONPROFILEIMPORTTIME": "1"}),
}


@pytest.mark.parametrize("case", sorted(ENV_CASES))
def test_the_apps_python_settings_do_not_reach_graceinit(procs, graceinit_bin, tmp_path, case):
    """The attack run's repros: a PYTHONPATH shadowing what graceinit imports, and the
    interpreter's own switches. graceinit behaves as without them; the app gets every
    variable exactly as graceinit got it (not even the LC_CTYPE the interpreter adds)."""
    from helpers import pyenv

    options, variables = ENV_CASES[case]
    shadows = pyenv.shadow_dir(tmp_path / "app-lib")
    seen = tmp_path / "environ"
    env = procs.env(PYTHONPATH=str(shadows), LANG="C", **variables)
    for name in ("LC_ALL", "LC_CTYPE"):
        env.pop(name, None)
    app = ["sh", "-c", 'cat /proc/$$/environ > "$0"; sleep 30 & exit 5', str(seen)]
    sup = procs.start([graceinit_bin, *options, "--", *app], env=env)
    rc = sup.wait(timeout=20)
    err = sup.stderr_text(timeout=5)
    assert pyenv.reached(shadows) == [], err
    assert rc == 5, sup.describe()
    no_traceback(err)
    assert ">>>" not in err, err
    # The first interpreter's own start-up reports its imports before graceinit's first line
    # can run; the interpreter graceinit then runs in reports none of graceinit's.
    assert "graceinit.startup" not in err and "graceinit/startup" not in err, err
    if "json" in options:
        for line in err.splitlines():
            json.loads(line)
    given = dict(entry.split("=", 1) for entry in seen.read_text().split("\0") if entry)
    assert given == {name: value for name, value in env.items()}


def test_python_inspect_under_a_tty_exits_with_the_app(procs, graceinit_bin, pid1):
    """PYTHONINSPECT=1 under `docker run -it` (PID 1 with a tty): no `>>>` prompt after the
    app exits."""
    from helpers import PtyReader

    master, slave = os.openpty()
    try:
        sup = procs.start([graceinit_bin, "--", "sh", "-c", "exit 5"], tty=slave, pid1=pid1,
                          env=procs.env(PYTHONINSPECT="1"))
        term = PtyReader(master)
        rc = sup.wait(timeout=15)
        assert rc == 5, term.text()
        assert ">>>" not in term.text()
    finally:
        os.close(slave)
        os.close(master)


@pytest.mark.parametrize("variables", [{"PYTHONDEVMODE": "1"}, {"PYTHONWARNINGS": "error"}],
                         ids=["devmode", "warnings-error"])
def test_interpreter_warnings_do_not_land_in_the_json_log(procs, graceinit_bin, variables):
    sup = procs.start([graceinit_bin, "--listen", "tcp://127.0.0.1:0", "--log-format", "json", "-v",
                       "--", "sh", "-c", "exit 3"], env=procs.env(**variables))
    rc = sup.wait(timeout=15)
    err = sup.stderr_text(timeout=5)
    assert rc == 3, sup.describe()
    assert "Warning" not in err, err
    for line in err.splitlines():
        assert json.loads(line)["event"], line


def test_stop_delay_auto_with_the_apps_struct_waits_for_traffic(procs, graceinit_bin, tmp_path):
    """A shadowing struct made auto an internal error that forwarded SIGTERM after 0.02 s."""
    from helpers import pyenv

    shadows = pyenv.shadow_dir(tmp_path / "app-lib", ["struct", "socket", "select"])
    sup = procs.start([graceinit_bin, "-v", "--stop-delay", "auto", "--stop-delay-min", "0.5",
                       "--stop-delay-max", "3", "--", "sleep", "30"],
                      env=procs.env(PYTHONPATH=str(shadows)))
    sup.wait_line("started")
    sup.send(signal.SIGTERM)
    rc = sup.wait(timeout=15)
    err = sup.stderr_text(timeout=5)
    assert rc == 128 + signal.SIGTERM, err
    assert pyenv.reached(shadows) == [], err
    no_traceback(err)
    assert "stop_delay_ended" in err or "stop delay over" in err, err


def test_python_m_graceinit_ignores_the_working_directorys_modules(procs, tmp_path):
    """`python -m graceinit` puts the working directory (the app's WORKDIR) first on sys.path."""
    from helpers import pyenv

    shadows = pyenv.shadow_dir(tmp_path / "workdir")
    sup = procs.start([PYTHON, "-m", "graceinit", "--log-format", "json", "-v", "--post-hook", "true",
                       "--", "sh", "-c", "exit 5"], cwd=str(shadows))
    rc = sup.wait(timeout=20)
    err = sup.stderr_text(timeout=5)
    assert pyenv.reached(shadows) == [], err
    assert rc == 5, sup.describe()
    for line in err.splitlines():
        json.loads(line)


@pytest.mark.parametrize("how", ["launcher", "module"])
def test_graceinit_outside_the_isolated_path_is_still_found(procs, graceinit_bin, tmp_path, how):
    """graceinit installed where `-I` does not look (a user site, a PYTHONPATH install): the
    isolated interpreter is told where it is, and it is that copy that runs."""
    import graceinit as package

    lib = tmp_path / "lib"
    shutil.copytree(os.path.dirname(package.__file__), lib / "graceinit",
                    ignore=shutil.ignore_patterns("__pycache__"))
    trace = tmp_path / "loaded"
    with open(lib / "graceinit" / "__init__.py", "a") as init:
        init.write(f"\nimport sys\nopen({str(trace)!r}, 'a').write(str(sys.flags.isolated))\n")
    start = [graceinit_bin] if how == "launcher" else [PYTHON, "-m", "graceinit"]
    sup = procs.start([*start, "--", "sh", "-c", "exit 5"], cwd=str(tmp_path),
                      env=procs.env(PYTHONPATH=str(lib), PYTHONINSPECT="1"))
    assert sup.wait(timeout=20) == 5, sup.describe()
    assert trace.read_text() == "01", "imported from the copy as: %r" % trace.read_text()


def test_a_sitecustomize_on_pythonpath_costs_a_fresh_interpreter(procs, graceinit_bin, tmp_path):
    """PYTHONPATH alone is set aside in-process, unless the start-up already ran code from it
    (an APM's sitecustomize.py): that interpreter is not clean any more."""
    lib = tmp_path / "apm"
    lib.mkdir()
    (lib / "sitecustomize.py").write_text("import sys\nsys.modules['json'] = None  # instrumented\n")
    sup = procs.start([graceinit_bin, "--log-format", "json", "-v", "--", "sh", "-c", "exit 5"],
                      env=procs.env(PYTHONPATH=str(lib)))
    rc = sup.wait(timeout=20)
    err = sup.stderr_text(timeout=5)
    assert rc == 5, sup.describe()
    for line in err.splitlines():
        json.loads(line)


# --- issue 18 items 4 and 6, issue 19 item 6: every JSON line is strict JSON, within PIPE_BUF --


PIPE_BUF = 4096


def strict_json_lines(raw):
    """graceinit's JSON log as records, checked the way a strict parser (serde_json) would:
    valid UTF-8, no lone surrogate escaped or raw, each line whole and within PIPE_BUF."""
    records = []
    for line in raw.split(b"\n")[:-1]:
        assert len(line) + 1 <= PIPE_BUF, "line of %d bytes: %r" % (len(line) + 1, line[-80:])
        record = json.loads(line.decode("utf-8"))  # strict: raises inside a cut character
        json.dumps(record, ensure_ascii=False).encode("utf-8")  # strict: a lone surrogate raises
        assert record["logger"] == "graceinit", record
        records.append(record)
    assert not raw or raw.endswith(b"\n"), raw[-80:]
    return records


STATUS_APP = textwrap.dedent("""
    import os, socket, sys
    address = os.environ["NOTIFY_SOCKET"]
    if address.startswith("@"):
        address = "\\0" + address[1:]
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    for shift in ("", "x", "xx"):  # one of the three is cut inside a character, wherever the cut
        notify.sendto(("READY=1\\nSTATUS=" + shift + sys.argv[1] * 3000).encode(), address)
    print("sent", flush=True)
    sys.stdin.read()
""")


@pytest.mark.parametrize("char", ["x", "é", "€"], ids=["ascii", "2-byte", "3-byte"])
def test_a_long_status_is_shortened_not_the_line(procs, graceinit_bin, char):
    sup = procs.start([graceinit_bin, "--log-format", "json", "-v", "--notify", "--",
                       PYTHON, "-c", STATUS_APP, char], stdin=subprocess.PIPE)
    sup.stdout.wait_for("sent", timeout=15)
    procfs.wait_until(lambda: b'"status_text"' in sup.stderr.data() or b"STATUS" in sup.stderr.data(), 5,
                      lambda: "the status event; stderr: %s" % sup.stderr_text())
    sup.send(signal.SIGTERM)
    sup.wait(timeout=15)
    records = strict_json_lines(sup.stderr.data(timeout=5))
    status = [r for r in records if "truncated" in r and any("status" in f for f in r["truncated"])]
    assert status, records
    assert any(r["event"] == "termination_report" for r in records)


def test_forty_failed_post_hooks_fit_in_the_report(procs, graceinit_bin, tmp_path):
    hook_dir = tmp_path / "post.d"
    hook_dir.mkdir()
    for n in range(40):
        hook = hook_dir / ("%02d-" % n + "a-hook-with-a-long-and-descriptive-name-é" * 3)
        hook.write_text("#!/bin/sh\nexit 1\n")
        hook.chmod(0o755)
    sup = procs.start([graceinit_bin, "--log-format", "json", "--post-hook-dir", str(hook_dir),
                       "--", "sleep", "30"], stdout=subprocess.DEVNULL)
    procfs.wait_until(lambda: sup.children(), 10, "the app")
    sup.send(signal.SIGTERM)
    assert sup.wait(timeout=30) == 128 + signal.SIGTERM, sup.describe()
    records = strict_json_lines(sup.stderr.data(timeout=5))
    report = [r for r in records if r["event"] == "termination_report"]
    assert len(report) == 1, records
    assert report[0]["level"] == "notice"
    assert "failed_hooks" in report[0]["truncated"], report[0]
    assert 0 < len(report[0]["failed_hooks"]) < 40


def test_six_hundred_leftovers_fit_in_one_line(procs, graceinit_bin):
    app = "trap '' TERM; i=0; while [ $i -lt 600 ]; do sleep 60 & i=$((i+1)); done; echo spawned"
    sup = procs.start([graceinit_bin, "--log-format", "json", "--leftover-grace", "0.5", "--",
                       "sh", "-c", app])
    sup.stdout.wait_for("spawned", timeout=30)
    assert sup.wait(timeout=40) == 0, sup.describe()
    records = strict_json_lines(sup.stderr.data(timeout=5))
    killed = [r for r in records if r["event"] == "leftovers_killed"]
    assert len(killed) == 1, records
    assert "pids" in killed[0]["truncated"] and len(killed[0]["pids"]) < 600


def test_a_long_usage_error_stays_one_json_line(procs, graceinit_bin):
    sup = procs.start([graceinit_bin, "--log-format", "json", "--", "true"],
                      env=procs.env(GRACEINIT_DRAIN_IGNORE="1" * 5000))
    assert sup.wait(timeout=15) == USAGE_ERROR
    records = strict_json_lines(sup.stderr.data(timeout=5))
    assert len(records) == 1 and records[0]["event"] == "usage_error", records
    assert "GRACEINIT_DRAIN_IGNORE" in records[0]["msg"]


def test_bytes_that_are_not_utf8_are_escaped_for_strict_parsers(procs, graceinit_bin):
    sup = procs.start([graceinit_bin, "--log-format", "json", "-v", "--", "sh", "-c", "exit 0",
                       b"caf\xe9\xff"])
    assert sup.wait(timeout=15) == 0, sup.describe()
    records = strict_json_lines(sup.stderr.data(timeout=5))
    started = [r for r in records if r["event"] == "child_started"]
    assert "caf\\xe9\\xff" in started[0]["command"], started


def test_c1_controls_from_argv_are_escaped_in_text_mode(procs, graceinit_bin):
    """U+009B is CSI on a terminal that honours 8-bit controls: `\\x9b2J` would clear it."""
    sup = procs.start([graceinit_bin, "-v", "--", "sh", "-c", "exit 0", "\u009b2J\u0085x"])
    assert sup.wait(timeout=15) == 0, sup.describe()
    raw = sup.stderr.data(timeout=5)
    text = raw.decode("utf-8")
    assert "\\x9b2J\\x85x" in text, text
    assert not any(0x80 <= ord(c) <= 0x9F for c in text), text


@pytest.mark.parametrize("char", ["é", "€"])
def test_a_long_text_line_is_cut_between_characters(procs, graceinit_bin, char):
    sup = procs.start([graceinit_bin, "-v", "--notify", "--", PYTHON, "-c", STATUS_APP, char],
                      stdin=subprocess.PIPE)
    sup.stdout.wait_for("sent", timeout=15)
    procfs.wait_until(lambda: b"status:" in sup.stderr.data(), 5,
                      lambda: "the status line; stderr: %s" % sup.stderr_text())
    sup.send(signal.SIGTERM)
    sup.wait(timeout=15)
    lines = sup.stderr.data(timeout=5).split(b"\n")
    assert any(b"status:" in line for line in lines)
    for line in lines:
        assert len(line) < PIPE_BUF
        line.decode("utf-8")


# --- issue 19 item 2 (18 item 6): no line lost or damaged, whatever stderr is ----------------


def _read_all(fd, timeout=15):
    """Everything from fd until every writer is gone (EOF; EIO on a pty), bounded."""
    import select as _select

    chunks, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _select.select([fd], [], [], 0.5)[0]:
            continue
        try:
            data = os.read(fd, 65536)
        except OSError:  # EIO: the pty's last slave is closed
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks)


@pytest.mark.parametrize("kind", ["file", "pipe", "tty", "socket"])
def test_no_line_lost_or_damaged_on_any_stderr(procs, graceinit_bin, tmp_path, kind):
    """graceinit and the app write the same stderr: on a regular file opened without
    O_APPEND (`2> out.log`) graceinit's own description used to write at its own offset and
    the app overwrote its lines."""
    argv = [graceinit_bin, "-v", "--", "sh", "-c", "echo a >&2; sleep 0.2; echo b >&2; sleep 0.2"]
    if kind == "file":
        path = tmp_path / "out.log"
        with open(path, "wb") as stderr:  # O_WRONLY|O_TRUNC, as a shell's `2>`
            sup = procs.start(argv, stderr=stderr)
        sup.wait(timeout=15)
        raw = path.read_bytes()
    elif kind == "pipe":
        sup = procs.start(argv, lines=False)
        raw = sup.stderr.data(timeout=15)
        sup.wait(timeout=15)
    else:
        if kind == "tty":
            ours, theirs = os.openpty()
        else:
            ours, theirs = (s.detach() for s in socket.socketpair())
        try:
            sup = procs.start(argv, stderr=theirs)
            os.close(theirs)
            theirs = None
            raw = _read_all(ours)
            sup.wait(timeout=15)
        finally:
            os.close(ours)
            if theirs is not None:
                os.close(theirs)
    assert sup.rc == 0, raw
    lines = raw.decode("utf-8").replace("\r\n", "\n").splitlines()
    ours_lines = [line for line in lines if line.startswith("[graceinit] ")]
    assert [line for line in lines if not line.startswith("[graceinit] ")] == ["a", "b"], lines
    assert len(ours_lines) == 3, lines
    assert ours_lines[0].startswith("[graceinit] started sh -c") and ours_lines[0].endswith(
        "as pid %s" % ours_lines[1].split()[2]), lines
    assert ours_lines[1].startswith("[graceinit] child ") and ours_lines[2] == "[graceinit] exiting with status 0"


# --- issue 18 item 5: no leftover escapes, also when graceinit is not PID 1 ------------------

HOPPER_APP = textwrap.dedent("""
    import os, signal, sys, time
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    trail = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    if os.fork():
        print("hopping", flush=True)
        os._exit(0)  # the app is done; its child hops on as a leftover
    os.close(1)
    while True:  # a new pid every 20 ms: the one graceinit listed is always gone
        time.sleep(0.02)
        if os.fork():
            os._exit(0)
        os.write(trail, b".")
""")


def test_a_leftover_that_keeps_forking_is_hunted_down(procs, graceinit_bin, pid1, tmp_path):
    """graceinit exited 0 after one pass over the leftovers, and the hopper ran on."""
    trail = tmp_path / "hops"
    sup = procs.start([graceinit_bin, "--log-format", "json", "--leftover-grace", "1", "--",
                       PYTHON, "-c", HOPPER_APP, trail], pid1=pid1)
    sup.stdout.wait_for("hopping", timeout=15)
    rc = sup.wait(timeout=20)
    hops = trail.stat().st_size
    time.sleep(0.3)  # 15 hops' time: a hopper alive leaves a longer trail (absence has no event)
    records = strict_json_lines(sup.stderr.data(timeout=5))
    assert trail.stat().st_size == hops and procs.tagged_processes() == [], records
    assert rc == 0, records
    events = [r["event"] for r in records]
    assert "leftovers_killed" in events and "leftovers_survived" not in events, records
