"""Dockerfile.example, built and run for real with podman (issue 4, part 1).

The image is built from the checkout's own wheel on a local Debian base (no registry), then
run the way users run containers: `podman run -d`, `podman kill -s`, `podman stop -t`,
`podman wait`, `podman logs`, `podman exec`, `podman run -it`. Set-up: SETUP.md beside this
file. Containers run with --network none; the app is reached from inside with `podman exec`,
or, once the container is stopping (podman then refuses exec), by a client in the container's
network namespace (nsenter).
"""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import time
from typing import Callable, Dict, List, Sequence

import pytest

from helpers.waiting import wait_until
from podman_helpers import BUILD_COMMAND, REPO, E2EError, Podman, timed

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]  # the first test pays for the build

LISTENING = r"^\[app\] \S+ listening on :8080 \(pid (\d+), uid (\d+)\)"
READY_FILE = "/tmp/graceinit-ready"
NameFactory = Callable[..., str]


def start(podman: Podman, image: str, name: str, env: Dict[str, str] = None, args: Sequence[str] = (),
          options: Sequence[str] = ()) -> int:
    """`podman run -d`, then wait until the app listens; returns the app's pid in the container."""
    env_args = [f"--env={key}={value}" for key, value in (env or {}).items()]
    podman("run", "--detach", "--name", name, *env_args, *options, image, *args, timeout=60)
    return int(podman.wait_for_log(name, LISTENING, timeout=30).group(1))


def stamp(lines: List[str], pattern: str) -> float:
    """The epoch timestamp our app and hooks print right after their tag, on the first line
    matching pattern."""
    for line in lines:
        if re.search(pattern, line):
            return float(line.split()[1])
    raise AssertionError(f"no /{pattern}/ in:\n" + "\n".join(lines))


def index(lines: List[str], pattern: str) -> int:
    for number, line in enumerate(lines):
        if re.search(pattern, line):
            return number
    raise AssertionError(f"no /{pattern}/ in:\n" + "\n".join(lines))


def file_exists(podman: Podman, name: str, path: str) -> bool:
    return podman("exec", name, "test", "-e", path, timeout=30, check=False).returncode == 0


# --------------------------------------------------------------------------- the image itself


def test_the_build_is_the_one_readme_documents() -> None:
    """example_image runs README's build command (plus the offline build arguments)."""
    documented = " ".join(["podman", *BUILD_COMMAND]).replace("localhost/graceinit-example:e2e", "graceinit-example")
    assert documented in (REPO / "README.md").read_text()
    assert documented.replace("podman ", "", 1) in (REPO / "Dockerfile.example").read_text()


def test_image_is_configured_as_documented(podman: Podman, example_image: str) -> None:
    config = podman("image", "inspect", "--format",
                    "{{json .Config.Entrypoint}}|{{json .Config.Cmd}}|{{.Config.User}}|{{json .Config.Env}}",
                    example_image, timeout=30).stdout.strip()
    entrypoint, cmd, user, env = config.split("|", 3)
    assert entrypoint == '["graceinit","--"]'
    assert cmd == '["python3","/app/app.py"]'
    assert user == "10001:10001"
    for setting in ("GRACEINIT_STOP_HOOK=", "GRACEINIT_POST_HOOK=", "GRACEINIT_PRE_HOOK=", "GRACEINIT_STOP_DELAY=",
                    "GRACEINIT_GRACE_PERIOD=", f"GRACEINIT_READY_FILE={READY_FILE}"):
        assert setting in env
    version = podman("run", "--rm", "--entrypoint", "graceinit", example_image, "--version", timeout=60).stdout
    assert version.startswith("graceinit ")


# --------------------------------------------------------------------------- podman run -d


def test_detached_app_runs_under_graceinit_as_pid1_unprivileged(
        podman: Podman, example_image: str, container_name: NameFactory) -> None:
    name = container_name("run")
    app_pid = start(podman, example_image, name)
    processes = {row["pid"]: row for row in podman.processes(name)}
    assert "graceinit" in processes["1"]["cmd"], processes
    assert processes["1"]["uid"] == "10001", "graceinit runs as the image's unprivileged user"
    assert processes[str(app_pid)]["ppid"] == "1" and processes[str(app_pid)]["uid"] == "10001"
    assert podman.http_get(name, "/").startswith("200 hello from pid")
    assert podman.http_get(name, "/healthz") == "200 ok"
    wait_until(lambda: file_exists(podman, name, READY_FILE), 10, "the ready file is created")
    lines = podman.log_lines(name)
    assert index(lines, r"^\[pre-hook\] .* phase=pre") < index(lines, LISTENING), "pre hook runs before the app"
    assert podman.state(name) == "running"


def test_kill_usr1_is_forwarded_to_the_app(podman: Podman, example_image: str, container_name: NameFactory) -> None:
    name = container_name("usr1")
    app_pid = start(podman, example_image, name)
    assert app_pid != 1
    podman("kill", "--signal", "USR1", name, timeout=30)
    podman.wait_for_log(name, rf"^\[app\] \S+ SIGUSR1 received \(pid {app_pid}\)", timeout=10)
    podman("kill", "--signal", "SIGUSR1", name, timeout=30)
    wait_until(lambda: len(re.findall(r"SIGUSR1 received", "\n".join(podman.log_lines(name)))) == 2, 10,
               "a second SIGUSR1 arrives too")
    assert podman.state(name) == "running", "SIGUSR1 is not a stop signal"
    assert podman.http_get(name, "/").startswith("200")


# --------------------------------------------------------------------------- podman stop -t N


# Clients that run on the host inside the container's network namespace (Podman.popen_in_netns).
SLOW_CLIENT = """
import urllib.request
r = urllib.request.urlopen("http://127.0.0.1:8080/slow?seconds=6", timeout=30)
print(r.status, r.read().decode().strip(), flush=True)
"""
STEADY_CLIENT = """
import time, urllib.request
deadline = time.time() + 30
while time.time() < deadline:
    sent = time.time()
    try:
        with urllib.request.urlopen("http://127.0.0.1:8080/", timeout=5) as r:
            r.read()
            result = str(r.status)
    except Exception as error:
        result = type(error).__name__
    print(f"{sent:.3f} {result}", flush=True)
    time.sleep(0.05)
"""


def test_stop_runs_hook_delay_drain_and_post_hook(
        podman: Podman, example_image: str, container_name: NameFactory) -> None:
    """podman stop -> graceinit: ready file gone, stop hook, stop delay (still serving), SIGTERM
    to the app, which finishes its in-flight request and exits 0 -> post hook -> exit 0."""
    name = container_name("stop")
    delay = 3.0
    start(podman, example_image, name, env={"GRACEINIT_STOP_DELAY": f"{delay:g}s", "GRACEINIT_VERBOSE": "1"})
    pid1 = podman.pid(name)
    ready_file = podman.container_path(name, READY_FILE, pid1)
    wait_until(ready_file.exists, 10, "the ready file is created")
    clients = []
    try:
        steady = podman.popen_in_netns(name, STEADY_CLIENT)
        slow = podman.popen_in_netns(name, SLOW_CLIENT)
        clients += [steady, slow]
        podman.wait_for_log(name, r"slow request started", timeout=20)
        time.sleep(0.3)  # a few steady requests before the stop
        with timed() as took:
            stop = podman("stop", "--time", "30", name, timeout=60)
        ready_file_after_stop = ready_file.exists()
        slow_out, slow_err = slow.communicate(timeout=30)
        steady.terminate()
        steady_out, _ = steady.communicate(timeout=30)
    finally:
        for client in clients:
            if client.poll() is None:
                client.kill()
                client.wait(10)

    assert "resorting to SIGKILL" not in stop.stderr, stop.stderr
    assert took[0] < 20, f"stop took {took[0]:.1f}s"
    assert not ready_file_after_stop
    assert slow_out.strip() == "200 slept 6s", f"the in-flight request completed: {slow_out!r} {slow_err!r}"
    assert podman.exit_code(name) == 0, "the app drained and exited 0, graceinit passes that on"

    lines = podman.log_lines(name)
    order = [
        r"^\[pre-hook\]",
        LISTENING,
        r"slow request started",
        r"^\[stop-hook\] .* phase=stop app_pid=\d+ ready_file=removed",
        r"^\[graceinit\] .*stop delay",
        r"^\[app\] \S+ SIGTERM received: draining, [1-9]\d* request\(s\) in flight",
        r"slow request finished",
        r"^\[app\] \S+ drained, exiting 0",
        r"^\[post-hook\] .* phase=post exit_code=0 exit_signal=none",
    ]
    positions = [index(lines, pattern) for pattern in order]
    assert positions == sorted(positions), "\n".join(lines)
    hook_at = stamp(lines, r"^\[stop-hook\]")
    term_at = stamp(lines, r"^\[app\] \S+ SIGTERM received")
    assert delay - 0.2 <= term_at - hook_at <= delay + 2.0, f"stop delay: SIGTERM {term_at - hook_at:.2f}s after the hook"

    # The steady client: every request sent before the app got SIGTERM was answered, including
    # those during the stop delay (the window in which kube-proxy is still sending traffic).
    probes = [(float(sent), result) for sent, result in (line.split() for line in steady_out.splitlines())]
    before_term = [result for sent, result in probes if sent < term_at - 0.05]
    during_delay = [result for sent, result in probes if hook_at < sent < term_at - 0.05]
    assert before_term and set(before_term) == {"200"}, probes
    assert len(during_delay) >= 10, f"served during the {delay:g}s stop delay: {during_delay}"


def test_app_ignoring_sigterm_is_killed_by_grace_period_before_podman_timeout(
        podman: Podman, example_image: str, container_name: NameFactory) -> None:
    name = container_name("stubborn")
    start(podman, example_image, name, env={
        "APP_IGNORE_SIGTERM": "1", "GRACEINIT_STOP_DELAY": "0", "GRACEINIT_GRACE_PERIOD": "2s",
        "GRACEINIT_VERBOSE": "1"})
    podman.wait_for_log(name, r"SIGTERM is ignored", timeout=10)
    with timed() as took:
        result = podman("stop", "--time", "30", name, timeout=60)
    assert "resorting to SIGKILL" not in result.stderr, result.stderr
    assert 1.8 <= took[0] < 15, f"graceinit's 2 s grace period, not podman's 30 s, ended it: {took[0]:.1f}s"
    assert podman.exit_code(name) == 137
    lines = podman.log_lines(name)
    assert not any("drained" in line for line in lines)
    assert index(lines, r"^\[stop-hook\]") < index(lines, r"^\[post-hook\] .* exit_code=137 exit_signal=SIGKILL")


# --------------------------------------------------------------------------- orphans


def test_orphans_are_reaped_inside_the_container(
        podman: Podman, example_image: str, container_name: NameFactory) -> None:
    name = container_name("orphans")
    start(podman, example_image, name)
    status, pids = podman.http_get(name, "/demo/orphan?count=5&seconds=2").split(" ", 1)
    assert status == "200"
    orphans = set(pids.split())
    assert len(orphans) == 5
    rows = {row["pid"]: row for row in podman.processes(name)}
    assert all(rows[pid]["ppid"] == "1" for pid in orphans if pid in rows), "orphans are re-parented to graceinit"

    def gone() -> bool:
        return not orphans & {row["pid"] for row in podman.processes(name)}

    wait_until(gone, 15, "the orphans have exited and were reaped (no zombie left)", interval=0.3)
    zombies = [row for row in podman.processes(name) if row["state"] == "Z"]
    assert zombies == []
    assert podman.state(name) == "running"


def test_control_without_graceinit_the_same_orphans_stay_zombies(
        podman: Podman, example_image: str, container_name: NameFactory) -> None:
    """The app alone as PID 1 (graceinit bypassed): proves the orphan test above can fail."""
    name = container_name("bare")
    start(podman, example_image, name, options=["--entrypoint", "python3"], args=["/app/app.py"])
    _, pids = podman.http_get(name, "/demo/orphan?count=3&seconds=0.1").split(" ", 1)
    orphans = set(pids.split())

    def zombies() -> set:
        return {row["pid"] for row in podman.processes(name) if row["state"] == "Z"}

    wait_until(lambda: orphans <= zombies(), 10, "the orphans become zombies", interval=0.3)
    time.sleep(1)
    assert orphans <= zombies(), "nobody reaps them"


# --------------------------------------------------------------------------- exit statuses


@pytest.mark.parametrize(
    "env, command, status, post",
    [
        ({}, ["sh", "-c", "exit 3"], 3, "exit_code=3 exit_signal=none"),
        ({}, ["sh", "-c", "kill -KILL $$"], 137, "exit_code=137 exit_signal=SIGKILL"),
        ({}, ["no-such-command"], 127, None),
        ({"GRACEINIT_PRE_HOOK": "sh -c 'exit 4'"}, ["sh", "-c", "echo app-started"], 4, "exit_code=4"),
    ],
    ids=["child-status", "child-signal", "not-found", "pre-hook-fails"],
)
def test_run_exit_status_is_what_graceinit_promises(
        podman: Podman, example_image: str, container_name: NameFactory,
        env: Dict[str, str], command: List[str], status: int, post: str) -> None:
    name = container_name("status")
    env_args = [f"--env={key}={value}" for key, value in env.items()]
    result = podman("run", "--name", name, *env_args, example_image, *command, timeout=60, check=False)
    assert result.returncode == status, result.stdout + result.stderr
    assert podman.exit_code(name) == status
    output = result.stdout + result.stderr
    if post:
        assert re.search(rf"^\[post-hook\] .*{post}", output, re.MULTILINE), output
    if status == 4:
        assert "app-started" not in output, "the app is never started after a failed pre hook"
    if status == 127:
        assert "[graceinit]" in result.stderr and "no-such-command" in result.stderr


# --------------------------------------------------------------------------- podman run -it


TTY_APP = r"""
import os, signal
print("TTY isatty=%s foreground=%s own_session=%s" % (
    os.isatty(0), os.tcgetpgrp(0) == os.getpgrp(), os.getsid(0) == os.getpid()), flush=True)
name = input("name? ")
print("hello " + name, flush=True)
signal.pause()
"""


def test_run_interactive_tty_gives_the_app_the_terminal_and_ctrl_c(
        podman: Podman, example_image: str, container_name: NameFactory) -> None:
    """`podman run -it`: the app owns the terminal (own session, foreground), reads input, and
    Ctrl-C typed on the terminal interrupts it; graceinit exits 130 after the post hook."""
    name = container_name("tty")
    pid, fd = pty.fork()
    if pid == 0:  # child: podman attached to the pty, as from an interactive shell
        try:
            os.execvpe("podman", ["podman", "run", "--interactive", "--tty", "--name", name, example_image,
                                  "python3", "-c", TTY_APP], podman.env)
        finally:
            os._exit(127)
    seen = b""
    reaped = False

    def read_until(pattern: bytes, timeout: float) -> None:
        nonlocal seen
        deadline = time.monotonic() + timeout
        while pattern not in seen:
            remaining = deadline - time.monotonic()
            ready, _, _ = select.select([fd], [], [], max(0.0, remaining))
            if not ready:
                raise E2EError(f"no {pattern!r} on the terminal within {timeout}s: {seen!r}")
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                chunk = b""
            if not chunk:
                raise E2EError(f"terminal closed before {pattern!r}: {seen!r}")
            seen += chunk

    try:
        read_until(b"name? ", 60)
        assert b"TTY isatty=True foreground=True own_session=True" in seen, seen
        os.write(fd, b"world\r")
        read_until(b"hello world", 20)
        time.sleep(0.3)  # let the app reach signal.pause()
        os.write(fd, b"\x03")  # Ctrl-C: the terminal sends SIGINT to its foreground group
        read_until(b"[post-hook]", 20)
        deadline = time.monotonic() + 30
        while True:
            done, wait_status = os.waitpid(pid, os.WNOHANG)
            if done:
                reaped = True
                break
            if time.monotonic() > deadline:
                raise E2EError(f"podman run -it did not exit: {seen!r}")
            with_output = select.select([fd], [], [], 0.1)[0]
            if with_output:
                try:
                    seen += os.read(fd, 4096)
                except OSError:
                    pass
    finally:
        if not reaped:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        os.close(fd)
    text = seen.decode(errors="replace")
    assert os.waitstatus_to_exitcode(wait_status) == 130, text
    assert re.search(r"\[post-hook\] .* exit_code=130 exit_signal=SIGINT", text), text
    assert podman.exit_code(name) == 130


# --------------------------------------------------------------------------- the Kubernetes example


def kubernetes_settings() -> Dict[str, str]:
    """The container env and terminationGracePeriodSeconds of examples/kubernetes/deployment.yaml
    (read with regular expressions: the file's layout is simple and PyYAML is not a dependency)."""
    text = (REPO / "examples" / "kubernetes" / "deployment.yaml").read_text()
    settings = dict(re.findall(r"- name: (GRACEINIT_\w+)\n(?:\s*#.*\n)*\s*value: \"?([^\"\n]+)\"?", text))
    settings["terminationGracePeriodSeconds"] = re.search(r"terminationGracePeriodSeconds: (\d+)", text).group(1)
    probe = re.search(r"readinessProbe:\n\s*httpGet:\n\s*path: (\S+)\n\s*port: (\d+)", text)
    settings["readiness"] = f"{probe.group(1)} on {probe.group(2)}"
    settings["preStop"] = str("preStop:" in re.sub(r"#.*", "", text))
    return settings


def test_kubernetes_example_settings_fit_and_work_in_the_image(
        podman: Podman, example_image: str, container_name: NameFactory) -> None:
    """The Deployment's graceinit env, on a read-only root with /tmp as the only writable place
    (like its securityContext and emptyDir), with podman's stop timeout set to the Deployment's
    terminationGracePeriodSeconds: no budget warning, graceinit's ready port says ready (the
    Deployment's httpGet readiness probe), full stop sequence, exit 0."""
    settings = kubernetes_settings()
    assert settings["preStop"] == "False", "the example needs no preStop hook"
    assert settings["readiness"] == f'/ready on {settings["GRACEINIT_READY_PORT"]}'
    grace = int(settings.pop("terminationGracePeriodSeconds"))
    env = {key: value for key, value in settings.items() if key.startswith("GRACEINIT_")}
    assert env["GRACEINIT_TERMINATION_BUDGET"] == f"{grace}s"
    name = container_name("k8s")
    start(podman, example_image, name, env=env, options=[
        "--read-only", "--tmpfs=/tmp:rw,mode=1777", "--cap-drop=ALL", "--security-opt=no-new-privileges",
        "--user=10001:10001"])
    ready_port = int(env["GRACEINIT_READY_PORT"])
    wait_until(lambda: podman.http_get(name, "/ready", port=ready_port) == "200 ready", 10,
               "graceinit's ready port answers 200 ready")
    with timed() as took:
        result = podman("stop", "--time", str(grace), name, timeout=grace + 30)
    assert "resorting to SIGKILL" not in result.stderr
    assert podman.exit_code(name) == 0
    lines = podman.log_lines(name)
    said = [line for line in lines if line.startswith("[graceinit]")
            and not line.startswith("[graceinit] termination report:")]
    assert not said, "no warning: the settings fit the budget"
    assert index(lines, r"^\[stop-hook\]") < index(lines, r"drained, exiting 0") < index(lines, r"^\[post-hook\] .*exit_code=0")
    assert 4.5 <= took[0] < grace, f"stop took {took[0]:.1f}s: the 5 s stop delay, well inside the {grace} s"


# --------------------------------------------------------------------------- the Compose example


def compose_settings() -> Dict[str, str]:
    """The service's environment, stop_grace_period and stop_signal in
    examples/compose/compose.yaml (regular expressions, like kubernetes_settings)."""
    text = (REPO / "examples" / "compose" / "compose.yaml").read_text()
    settings = dict(re.findall(r"^ +(GRACEINIT_\w+): *\"?([^\"\n]*?)\"? *(?:#.*)?$", text, re.MULTILINE))
    settings["stop_grace_period"] = re.search(r"stop_grace_period: *(\d+)s", text).group(1)
    settings["stop_signal"] = re.search(r"stop_signal: *(\S+)", text).group(1)
    assert re.search(r"dockerfile: *Dockerfile\.example", text), "the service builds Dockerfile.example"
    return settings


def slow_client(seconds: float) -> str:
    return f"""
import urllib.request
try:
    r = urllib.request.urlopen("http://127.0.0.1:8080/slow?seconds={seconds:g}", timeout=60)
    print(r.status, r.read().decode().strip(), flush=True)
except Exception as error:
    print(type(error).__name__, flush=True)
"""


@pytest.mark.parametrize("stop_timeout", ["compose", "podman-default"])
def test_compose_example_stop_grace_period_covers_a_long_drain(
        podman: Podman, example_image: str, container_name: NameFactory, stop_timeout: str) -> None:
    """The Compose service's settings, run as Compose runs them (its stop_grace_period becomes
    the container's stop timeout, its stop_signal the stop signal), with a 14 s request in flight
    when the stop begins: the 5 s stop delay, then the drain, ~14 s in all. With stop_grace_period the request
    completes, the post hook runs and the container exits 0. The control, podman's default 10 s
    (what Compose uses without stop_grace_period), SIGKILLs everything in the middle: the
    request fails, no post hook, 137."""
    settings = compose_settings()
    grace = int(settings.pop("stop_grace_period"))
    stop_signal = settings.pop("stop_signal")
    env = {key: value for key, value in settings.items() if key.startswith("GRACEINIT_")}
    assert env["GRACEINIT_TERMINATION_BUDGET"] == f"{grace}s"
    name = container_name("compose")
    options = [f"--stop-signal={stop_signal}"]
    if stop_timeout == "compose":
        options.append(f"--stop-timeout={grace}")
    start(podman, example_image, name, env=env, options=options)
    client = podman.popen_in_netns(name, slow_client(14))
    try:
        podman.wait_for_log(name, r"slow request started", timeout=20)
        with timed() as took:
            podman("stop", name, timeout=grace + 30, check=False)  # no -t: the container's own
        out, err = client.communicate(timeout=30)
    finally:
        if client.poll() is None:
            client.kill()
            client.wait(10)
    lines = podman.log_lines(name)
    if stop_timeout == "compose":
        assert out.strip() == "200 slept 14s", (out, err)
        assert podman.exit_code(name) == 0
        said = [line for line in lines if line.startswith("[graceinit]")
                and not line.startswith("[graceinit] termination report:")]
        assert not said, "no warning"
        assert index(lines, r"^\[stop-hook\]") < index(lines, r"drained, exiting 0") < \
            index(lines, r"^\[post-hook\] .*exit_code=0")
        assert 12.5 <= took[0] < grace, f"stop took {took[0]:.1f}s"
    else:
        assert out.strip() != "200 slept 14s", (out, err)
        assert podman.exit_code(name) == 137
        assert not any(line.startswith("[post-hook]") for line in lines), "SIGKILLed before the post hook"
        assert 9 <= took[0] < 12.5, f"stop took {took[0]:.1f}s"
