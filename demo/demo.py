"""graceinit in your terminal: an init that forwards, reaps and exits right, then the whole
pod stop sequence around a small HTTP app.

Run it with `./scripts/demo.sh` (it sets up a virtualenv first). Everything happens on
127.0.0.1 and ends by itself within half a minute.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
GRACEINIT = str(Path(sys.executable).with_name("graceinit"))
START = time.monotonic()


def say(text: str) -> None:
    print(f"demo  {time.monotonic() - START:6.2f}s  {text}", flush=True)


def title(text: str) -> None:
    print(f"\n=== {text} ===", flush=True)


def wait_for(predicate, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise SystemExit(f"demo: timed out waiting for {what}")
        time.sleep(0.02)


def part_one() -> None:
    title("1. an init: forward signals, reap orphans, exit with the child's status")
    child = (
        "import os, signal, time\n"
        "signal.signal(signal.SIGUSR1, lambda n, f: print('child: got SIGUSR1', flush=True))\n"
        "for _ in range(3):\n"  # three orphans: their parent exits, the init must reap them
        "    if os.fork() == 0:\n"
        "        if os.fork() == 0: time.sleep(0.2); os._exit(0)\n"
        "        os._exit(0)\n"
        "    os.wait()\n"
        "print('child: left three orphans behind', flush=True)\n"
        "while True: time.sleep(60)\n"
    )
    cmd = [GRACEINIT, "-vv", "--", sys.executable, "-c", child]
    say("$ graceinit -vv -- python -c '...'")
    proc = subprocess.Popen(cmd)
    time.sleep(1.0)
    say("sending SIGUSR1 to graceinit: it forwards it to the child")
    proc.send_signal(signal.SIGUSR1)
    time.sleep(0.5)
    say("sending SIGTERM: forwarded; the child dies of it, so graceinit exits 128+15")
    proc.send_signal(signal.SIGTERM)
    status = proc.wait(timeout=10)
    say(f"graceinit exited with status {status}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def part_two() -> None:
    title("2. the pod stop sequence: pre hook, stop delay, drain, post hook")
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="graceinit-demo-"))
    ready = workdir / "ready"
    cmd = [
        GRACEINIT, "-v",
        "--pre-hook", "echo pre hook: migrations done",
        "--stop-hook", "echo stop hook: deregistered from service discovery",
        "--stop-delay", "2",
        "--grace-period", "10",
        "--post-hook", 'sh -c "echo post hook: the app exited with status $GRACEINIT_EXIT_CODE"',
        "--ready-file", str(ready),
        "--", sys.executable, str(HERE / "app.py"), str(port),
    ]
    say("$ graceinit --pre-hook ... --stop-delay 2 --grace-period 10 --post-hook ... -- python app.py")
    proc = subprocess.Popen(cmd)
    try:
        wait_for(ready.exists, 10, "the ready file")
        wait_for(lambda: _get(port, "/") is not None, 10, "the app")
        say("ready file exists, the app answers")

        results: list = []  # (seconds since start, answered?)
        slow_result: list[str] = []
        done = threading.Event()

        def steady_load() -> None:
            while not done.is_set():
                answer = _get(port, "/")
                results.append((time.monotonic(), answer is not None))
                time.sleep(0.1)

        def slow_request() -> None:
            answer = _get(port, "/slow", timeout=10)
            slow_result.append("completed" if answer else "FAILED")
            say(f"a 2 s request that was in flight when the app got SIGTERM: {slow_result[-1]}")

        load = threading.Thread(target=steady_load)
        load.start()
        time.sleep(0.5)
        say("kubelet: SIGTERM to graceinit (the app keeps serving during the 2 s stop delay)")
        proc.send_signal(signal.SIGTERM)
        stopped_at = time.monotonic()
        wait_for(lambda: not ready.exists(), 2, "the ready file to go")
        say("ready file removed at once: the readiness probe is red before the app hears of it")
        time.sleep(1.5)
        slow = threading.Thread(target=slow_request)
        slow.start()
        status = proc.wait(timeout=20)
        done.set()
        load.join()
        slow.join()
        in_delay = [ok for when, ok in results if stopped_at <= when < stopped_at + 1.9]
        say(f"requests during the stop delay: {sum(in_delay)} ok, {len(in_delay) - sum(in_delay)} failed")
        refused = sum(not ok for when, ok in results if when >= stopped_at + 1.9)
        say(f"requests after the app was told to stop: {refused} refused — behind a real load balancer"
            " the endpoint is gone by then, which is what the delay is for")
        say(f"graceinit exited with status {status}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)


def _get(port: int, path: str, timeout: float = 2.0):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as response:
            return response.read()
    except OSError:
        return None


if __name__ == "__main__":
    os.environ.pop("GRACEINIT_VERBOSE", None)
    part_one()
    part_two()
