"""output: the child writes N bytes to stdout — into a pipe, and into a file."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from .common import BARE, Budget, Context, Section, Stats, fmt, helper, stats_table, stop, table

GIB = 1 << 30


def _scratch_dir(need: int) -> Path:
    """tmpfs if it has room (so the disk is not what is measured), else the temp dir."""
    for cand in ("/dev/shm", tempfile.gettempdir()):
        try:
            if shutil.disk_usage(cand).free > need * 2 and os.access(cand, os.W_OK):
                return Path(tempfile.mkdtemp(prefix="graceinit-bench-", dir=cand))
        except OSError:
            continue
    return Path(tempfile.mkdtemp(prefix="graceinit-bench-"))


def _writer_fd1(root: int, timeout: float = 3.0) -> tuple[int, int] | None:
    """(st_dev, st_ino) of what the `writer` process under ``root`` has as fd 1, once seen."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            import psutil
            top = psutil.Process(root)
            for pr in [top, *top.children(recursive=True)]:
                try:
                    if pr.name() == "writer":
                        st = os.stat(f"/proc/{pr.pid}/fd/1")
                        return st.st_dev, st.st_ino
                except (psutil.Error, OSError):
                    continue
        except Exception:  # noqa: BLE001
            return None
        time.sleep(0.002)
    return None


class _Probe(threading.Thread):
    def __init__(self, root: int):
        super().__init__(daemon=True)
        self.root, self.result = root, None

    def run(self) -> None:
        self.result = _writer_fd1(self.root)


def _drain(fd: int, timeout: float) -> int:
    """Read a pipe to EOF as cheaply as possible (splice into /dev/null)."""
    total = 0
    end = time.monotonic() + timeout
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        try:
            import fcntl
            fcntl.fcntl(fd, 1031, 1 << 20)  # F_SETPIPE_SZ: 1 MiB
        except OSError:
            pass
        use_splice = hasattr(os, "splice")
        buf = bytearray(1 << 20)
        while time.monotonic() < end:
            if use_splice:
                try:
                    n = os.splice(fd, null, 1 << 20)
                except OSError:
                    use_splice = False
                    continue
            else:
                n = os.readv(fd, [buf])
            if n == 0:
                break
            total += n
    finally:
        os.close(null)
    return total


def run_output(ctx: Context) -> Section:
    size = (256 << 20) if ctx.quick else 2 * GIB
    rounds = 2 if ctx.quick else 5
    budget = Budget((40 if ctx.quick else 200) * ctx.deadline_factor)
    sec = Section("output", f"Output: {size / GIB:g} GiB from the child, through stdout and into a file")
    writer = helper("writer")
    errors = ctx.failures()
    scratch = _scratch_dir(size)
    pipe: dict[str, list[float]] = {}
    pipe_wall: dict[str, list[float]] = {}
    tofile: dict[str, list[float]] = {}
    file_wall: dict[str, list[float]] = {}
    direct: dict[tuple[str, str], list[bool]] = {}  # does the child write to the sink itself?
    g_redirect = "graceinit (shell redirect)"
    g_option = "graceinit --stdout FILE"
    runners = [BARE, *ctx.available]
    done = 0
    try:
        for r in range(rounds):
            if budget.over() and r >= 1:
                break
            for init in runners:
                name = init.name
                res = scratch / "result"
                # 1) stdout is a pipe read by the harness (what a container runtime does)
                p = None
                try:
                    res.unlink(missing_ok=True)
                    t0 = time.monotonic()
                    p = subprocess.Popen(init.cmd([writer, str(size), str(res)]),
                                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
                    probe = _Probe(p.pid)
                    probe.start()
                    st = os.fstat(p.stdout.fileno())
                    got = _drain(p.stdout.fileno(), 120)
                    probe.join(5)
                    if probe.result is not None:
                        direct.setdefault(("pipe", name), []).append(probe.result == (st.st_dev, st.st_ino))
                    p.stdout.close()
                    rc = p.wait(timeout=30)
                    wall = time.monotonic() - t0
                    if rc != 0 or got != size:
                        raise RuntimeError(f"exit {rc}, {got} of {size} bytes arrived")
                    nbytes, ns = (int(x) for x in res.read_text().split())
                    pipe.setdefault(name, []).append(nbytes / ns * 1e3)  # MB/s
                    pipe_wall.setdefault(name, []).append(size / wall / 1e6)
                except Exception as e:  # noqa: BLE001
                    errors[name] = f"pipe: {e}"[:200]
                    if p is not None and p.poll() is None:
                        stop(p)
                # 2) stdout into a file: shell-style redirect for everyone; graceinit also --stdout
                variants = [(name if init.name != "graceinit" else g_redirect, [], True)]
                if init.name == "graceinit":
                    variants.append((g_option, ["--stdout", None], False))
                for label, opts, redirect in variants:
                    out = scratch / "out"
                    try:
                        out.unlink(missing_ok=True)
                        res.unlink(missing_ok=True)
                        opts = [str(out) if o is None else o for o in opts]
                        t0 = time.monotonic()
                        with open(out, "wb") if redirect else open(os.devnull, "wb") as f:
                            q = subprocess.Popen(init.cmd([writer, str(size), str(res)], opts),
                                                 stdin=subprocess.DEVNULL, stdout=f)
                            seen = _writer_fd1(q.pid)
                            try:
                                rc = q.wait(timeout=120)
                            except subprocess.TimeoutExpired:
                                stop(q)
                                raise
                        if seen is not None and out.exists():
                            fst = out.stat()
                            direct.setdefault(("file", label), []).append(seen == (fst.st_dev, fst.st_ino))
                        wall = time.monotonic() - t0
                        written = out.stat().st_size if out.exists() else 0
                        if rc != 0 or written != size:
                            raise RuntimeError(f"exit {rc}, file holds {written} of {size} bytes")
                        nbytes, ns = (int(x) for x in res.read_text().split())
                        tofile.setdefault(label, []).append(nbytes / ns * 1e3)
                        file_wall.setdefault(label, []).append(size / wall / 1e6)
                    except Exception as e:  # noqa: BLE001
                        errors[label] = f"file: {e}"[:200]
                    finally:
                        out.unlink(missing_ok=True)
            done += 1
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    order = [BARE.name, *[i.name for i in ctx.inits if i.name != "graceinit"], g_redirect, g_option]
    order_pipe = [BARE.name, *[i.name for i in ctx.inits]]
    if "graceinit" in errors and g_redirect not in errors and not any(i.name == "graceinit" and i.available for i in ctx.inits):
        errors[g_redirect] = errors[g_option] = errors["graceinit"]
    sec.add(f"{done} interleaved rounds; {size / GIB:g} GiB per run in 1 MiB `write()`s by a C "
            "child. MB/s = 10⁶ bytes/s, timed by the child from its first write to the end of its "
            "last (so the init's start-up is not in it); *wall* divides by the whole run. "
            f"Files go to {'tmpfs (' + str(scratch.parent) + ')' if str(scratch).startswith('/dev/shm') else scratch.parent}, "
            "so the disk is not what is measured; every file's size is checked.")
    sec.add("**stdout → pipe** (read by the harness with `splice` into /dev/null), child's MB/s\n\n" +
            stats_table("init", "MB/s", pipe, failures=errors, order=order_pipe, ref=BARE.name))
    sec.add("**stdout → file**, child's MB/s\n\n" +
            stats_table("init", "MB/s", tofile, failures=errors, order=order, ref=BARE.name))
    sec.add("**wall-clock MB/s** (includes the init's start-up and exit)\n\n" +
            stats_table("pipe", "MB/s", pipe_wall, order=order_pipe, ref=BARE.name) + "\n\n" +
            stats_table("file", "MB/s", file_wall, order=order, ref=BARE.name))
    def _direct(mode: str, label: str) -> str:
        v = direct.get((mode, label))
        if not v:
            return "not seen"
        return "yes" if all(v) else ("**no**" if not any(v) else f"{sum(v)}/{len(v)}")

    sec.add("**Does the child write to the pipe / file itself?** (its `/proc/PID/fd/1` is the same "
            "pipe or file as the sink's, i.e. no process copies its output in between)\n\n" +
            table(["init", "pipe", "file"],
                  [[n, _direct("pipe", n) if n != g_option else "–",
                    _direct("file", n if n != "graceinit" else g_redirect)]
                   for n in [BARE.name, *[i.name for i in ctx.inits], g_option]]))
    mp = {k: Stats.of(v).median for k, v in pipe.items() if v}
    mf = {k: Stats.of(v).median for k, v in tofile.items() if v}
    sec.head("stdout → pipe throughput (median)", {i.name: mp.get(i.name) for i in ctx.inits}, "MB/s",
             better="higher", note=f"bare {fmt(mp.get(BARE.name))} MB/s")
    vals = {i.name: mf.get(i.name) for i in ctx.inits}
    vals["graceinit"] = mf.get(g_option)
    sec.head("stdout → file throughput (median; graceinit: --stdout FILE)", vals, "MB/s",
             better="higher", note=f"bare {fmt(mf.get(BARE.name))} MB/s")
    g, b = mf.get(g_option), mf.get(BARE.name)
    bst = Stats.of(tofile.get(BARE.name, []))
    gdirect = direct.get(("file", g_option))
    sec.raw = dict(size=size, pipe_mbs=pipe, file_mbs=tofile, pipe_wall_mbs=pipe_wall,
                   file_wall_mbs=file_wall, errors=errors)
    # "equal": the child writes to the file itself (nothing copies in between), and the median
    # lies within the spread of bare's own runs on this shared machine
    sec.raw["direct"] = {f"{m}:{n}": v for (m, n), v in direct.items()}
    sec.raw["targets"] = [dict(
        target="--stdout FILE throughput equal to bare",
        graceinit=(f"{fmt(g)} MB/s; child writes to the file itself: "
                   f"{'yes' if gdirect and all(gdirect) else ('no' if gdirect else 'not seen')}") if g else "failed to run",
        reference=(f"bare median {fmt(b)} MB/s, min–max {fmt(bst.lo)}–{fmt(bst.hi)}; ratio {g / b:.2f}×"
                   if g and b and bst else ""),
        met=(bool(gdirect) and all(gdirect) and (g >= bst.lo or g >= 0.9 * b)) if g and b and bst else None)]
    return sec
