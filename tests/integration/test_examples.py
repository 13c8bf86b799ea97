"""Every graceinit example in README.md, docs/ and examples/ runs without a warning (issue 12).

The examples are read from the files themselves, so a change to an example is tested as it is
written:

* README.md and docs/*.md: every fenced ``sh`` line that starts with ``graceinit`` (with its ``\\``
  continuations), every ``dockerfile`` block's ``ENV``/``CMD``, every ``yaml`` block's
  Kubernetes ``env:`` list or Compose ``environment:`` mapping;
* Dockerfile.example (its last stage), examples/kubernetes/*.yaml, examples/compose/*.yaml.

Each is run for real: graceinit with the example's options and ``GRACEINIT_*`` variables, the
example's own app when this machine has it (the example app, ``python3 -m http.server``,
gunicorn, uvicorn), otherwise a stand-in that serves until SIGTERM. Then SIGTERM, as the runtime
sends it, and the whole stop sequence runs (stop delay included). What is substituted, and why:
paths that exist only inside the image (``/app/...`` -> examples/app/..., a hook that is not in
the checkout -> ``true``), the ready file (a temporary path), and listen addresses and ports
(127.0.0.1 and a free port: tests never listen beyond the loopback). Asserted: no
``[graceinit] warning:``/``error:`` line and no traceback on stderr, and the exit status the
example promises.

A second test checks that each example's ``GRACEINIT_TERMINATION_BUDGET`` is the runtime's own
stop timeout stated beside it (``terminationGracePeriodSeconds``, Compose's
``stop_grace_period``, ``docker run --stop-timeout``), so that "no budget warning" means "the
stop sequence fits inside the runtime's timeout".
"""
from __future__ import annotations

import http.client
import json
import os
import re
import shlex
import signal
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

import pytest

from helpers import procfs

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
DOCS = REPO / "docs"
EXAMPLE_APP = REPO / "examples" / "app"
HOOK_VARIABLES = ("GRACEINIT_PRE_HOOK", "GRACEINIT_STOP_HOOK", "GRACEINIT_POST_HOOK")
HOOK_OPTIONS = ("--pre-hook", "--stop-hook", "--post-hook")
PROBLEM = re.compile(r"^\[graceinit\] (warning|error):|Traceback", re.MULTILINE)


@dataclass
class Example:
    """One graceinit invocation as a README block or an example file writes it."""

    where: str                                  # file:line, for the test id and messages
    options: List[str] = field(default_factory=list)   # graceinit's options, before "--"
    env: Dict[str, str] = field(default_factory=dict)  # GRACEINIT_* and the app's variables
    app: Optional[List[str]] = None             # the app's argv; None: the image's / unknown
    runtime_timeout: Optional[str] = None       # the runtime's stop timeout stated beside it
    runtime: str = ""                           # which runtime setting that is

    @property
    def id(self) -> str:
        return self.where


# --------------------------------------------------------------------------- reading examples


def fenced_blocks(text: str) -> Iterator[Tuple[str, int, str, int]]:
    """(language, first line number, body, offset of the block's end in text)."""
    for match in re.finditer(r"^```(\w*)\n(.*?)^```", text, re.MULTILINE | re.DOTALL):
        yield match.group(1), text.count("\n", 0, match.start()) + 2, match.group(2), match.end()


def logical_lines(body: str, first_line: int) -> Iterator[Tuple[int, str]]:
    """Lines with their backslash continuations joined, numbered by where they start."""
    pending, start = "", first_line
    for number, line in enumerate(body.splitlines(), first_line):
        if not pending:
            start = number
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        yield start, pending + line
        pending = ""
    if pending:
        yield start, pending


def shell_examples(body: str, first_line: int, source: str) -> Iterator[Example]:
    """`graceinit ... -- APP` lines, and `docker run`/`podman run` lines of the example image or
    with GRACEINIT_* variables."""
    for number, line in logical_lines(body, first_line):
        words = shlex.split(line, comments=True)
        if not words:
            continue
        if words[0] == "graceinit":
            assert "--" in words, f"{source}:{number}: a graceinit example without '--': {line}"
            split = words.index("--")
            yield Example(f"{source}:{number}", options=words[1:split], app=words[split + 1:])
        elif words[0] in ("docker", "podman") and words[1:2] == ["run"]:
            example = container_run_example(words, f"{source}:{number}")
            if example:
                yield example


def container_run_example(words: List[str], where: str) -> Optional[Example]:
    env: Dict[str, str] = {}
    timeout = None
    for index, word in enumerate(words[:-1]):
        if word in ("-e", "--env"):
            key, _, value = words[index + 1].partition("=")
            env[key] = value
        elif word == "--stop-timeout":
            timeout = words[index + 1]
    if "graceinit-example" not in words and not env:
        return None
    example = Example(where, env=env, runtime="docker run --stop-timeout", runtime_timeout=timeout)
    if "graceinit-example" in words:
        of_the_image(example)
    return example


def of_the_image(example: Example) -> None:
    """An example that runs the image Dockerfile.example builds: the image's ENV, then the
    example's own variables on top, and the image's app."""
    dockerfile = REPO / "Dockerfile.example"
    image = dockerfile_example(dockerfile.read_text(), 1, dockerfile.name, "")
    example.env = {**image.env, **example.env}
    example.app = image.app


def dockerfile_example(body: str, first_line: int, source: str, after: str) -> Optional[Example]:
    """The last stage's ENV and CMD; the runtime timeout is the first `--stop-timeout N` in the
    file's comments or, in README, after the block."""
    stages = re.split(r"^FROM .*$", body, flags=re.MULTILINE)
    last = stages[-1]
    env: Dict[str, str] = {}
    app = None
    for _, line in logical_lines(last, first_line):
        instruction, _, rest = line.strip().partition(" ")
        if instruction == "ENV":
            for word in shlex.split(rest, comments=True):
                key, _, value = word.partition("=")
                env[key] = value
        elif instruction == "CMD":
            app = json.loads(rest)
        elif instruction == "ENTRYPOINT":
            assert json.loads(rest) == ["graceinit", "--"], f"{source}: ENTRYPOINT {rest}"
    if not any(key.startswith("GRACEINIT_") for key in env):
        return None
    timeout = re.search(r"--stop-timeout[ =](\d+)", body + after)
    return Example(f"{source}:{first_line}", env=env, app=app, runtime="docker run --stop-timeout",
                   runtime_timeout=timeout.group(1) if timeout else None)


def yaml_example(body: str, first_line: int, source: str) -> Optional[Example]:
    """A Kubernetes container's `env:` list (block or flow style) or a Compose `environment:`
    mapping, read with regular expressions (the layouts are simple, and PyYAML is no dependency).
    """
    env: Dict[str, str] = {}
    for name, value in re.findall(r"- \{ *name: (GRACEINIT_\w+), *value: \"?([^\"}]*?)\"? *\}", body):
        env[name] = value
    for name, value in re.findall(r"- name: (GRACEINIT_\w+)\n(?:\s*#.*\n)*\s*value: \"?([^\"\n]+)\"?", body):
        env[name] = value
    for name, value in re.findall(r"^\s+(GRACEINIT_\w+): *\"?([^\"\n]*?)\"? *(?:#.*)?$", body, re.MULTILINE):
        env[name] = value
    if not env:
        return None
    example = Example(f"{source}:{first_line}", env=env)
    kubernetes = re.search(r"terminationGracePeriodSeconds: *(\d+)", body)
    compose = re.search(r"stop_grace_period: *(\S+)", body)
    if kubernetes:
        example.runtime, example.runtime_timeout = "terminationGracePeriodSeconds", kubernetes.group(1)
    elif compose:
        example.runtime, example.runtime_timeout = "stop_grace_period", compose.group(1)
    if "graceinit-example" in body:
        of_the_image(example)
    return example


def markdown_examples(path: Path) -> List[Example]:
    text = path.read_text()
    source = str(path.relative_to(REPO))
    found: List[Example] = []
    for language, line, body, end in fenced_blocks(text):
        if language == "sh":
            found += shell_examples(body, line, source)
        elif language == "dockerfile":
            example = dockerfile_example(body, line, source, text[end:])
            found += [example] if example else []
        elif language == "yaml":
            example = yaml_example(body, line, source)
            found += [example] if example else []
    return found


def readme_examples() -> List[Example]:
    """README.md's, then those of the deep dives it links to (docs/*.md)."""
    found = markdown_examples(README)
    for path in sorted(DOCS.glob("*.md")):
        found += markdown_examples(path)
    return found


def file_examples() -> List[Example]:
    found: List[Example] = []
    dockerfile = REPO / "Dockerfile.example"
    example = dockerfile_example(dockerfile.read_text(), 1, dockerfile.name, "")
    assert example, "Dockerfile.example sets no GRACEINIT_* variable"
    found.append(example)
    for path in sorted((REPO / "examples").glob("*/*.yaml")):
        example = yaml_example(path.read_text(), 1, str(path.relative_to(REPO)))
        if example:
            found.append(example)
    return found


ALL_EXAMPLES = readme_examples() + file_examples()


def test_the_examples_are_found() -> None:
    """Guards the readers: if a README block or a file stopped being recognised, the run test
    below would pass on nothing."""
    where = {example.where.split(":")[0] for example in ALL_EXAMPLES}
    assert {"README.md", "Dockerfile.example", "examples/kubernetes/deployment.yaml",
            "examples/compose/compose.yaml"} <= where, where
    readme = [example for example in ALL_EXAMPLES if example.where.startswith("README.md")]
    documented = readme + [example for example in ALL_EXAMPLES if example.where.startswith("docs/")]
    assert len([e for e in documented if e.options]) >= 3, "README's and docs/' graceinit command lines"
    assert len([e for e in readme if "GRACEINIT_TERMINATION_BUDGET" in e.env]) >= 2, \
        "README's Dockerfile and Kubernetes blocks"


# --------------------------------------------------------------------------- the runtimes' timeouts


def seconds(duration: str) -> float:
    match = re.fullmatch(r"([\d.]+)(ms|s|m|h)?", duration.strip())
    assert match, f"not a duration: {duration!r}"
    scale = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[match.group(2) or "s"]
    return float(match.group(1)) * scale


BUDGETED = [example for example in ALL_EXAMPLES if example.runtime_timeout or
            "GRACEINIT_TERMINATION_BUDGET" in example.env]


@pytest.mark.parametrize("example", BUDGETED, ids=[example.id for example in BUDGETED])
def test_the_budget_is_the_runtimes_stop_timeout(example: Example) -> None:
    assert example.runtime_timeout, f"{example.where}: a budget but no runtime stop timeout beside it"
    assert "GRACEINIT_TERMINATION_BUDGET" in example.env, \
        f"{example.where}: {example.runtime} {example.runtime_timeout} but no GRACEINIT_TERMINATION_BUDGET"
    assert seconds(example.env["GRACEINIT_TERMINATION_BUDGET"]) == seconds(example.runtime_timeout), \
        f"{example.where}: GRACEINIT_TERMINATION_BUDGET != {example.runtime} {example.runtime_timeout}"


# --------------------------------------------------------------------------- running them


STAND_IN = r"""
import os, signal, socket, sys
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
if os.environ.get("NOTIFY_SOCKET"):
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.sendto(b"READY=1", os.environ["NOTIFY_SOCKET"])
# A server listens: --stop-delay auto watches the app's listening sockets (none: a warning).
listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen()
print("stand-in serving", flush=True)
while True:
    signal.pause()
"""

WEB_APPS = '''
def wsgi(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok\\n"]


async def asgi(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok\\n"})
'''


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def in_checkout(command: str) -> str:
    """A hook command as it would run in the image, mapped to this checkout."""
    words = shlex.split(command)
    if words and words[0].startswith("/app/"):
        local = EXAMPLE_APP / words[0][len("/app/"):]
        if not local.exists():
            return "true"  # the README's placeholder hook (e.g. /app/flush-metrics)
        words[0] = str(local)
    return shlex.join(words)


@dataclass
class Runnable:
    argv: List[str]
    env: Dict[str, str]
    cwd: Path
    port: Optional[int]          # where the app answers HTTP, None for the stand-in
    ready_port: Optional[int]    # where graceinit answers readiness probes (--ready-port)
    stop_status: int             # graceinit's exit status after SIGTERM


def runnable(example: Example, graceinit: Path, tmp_path: Path) -> Runnable:
    bin_dir = Path(sys.executable).parent
    env = {key: value for key, value in example.env.items()}
    options = list(example.options)
    port: Optional[int] = None
    ready_port: Optional[int] = None  # graceinit's own --ready-port, on loopback

    def local_address(address: str) -> str:
        nonlocal port
        name, sep, rest = address.rpartition("=")
        if not rest.startswith("tcp://"):
            return address
        port = free_port()
        return f"{name}{sep}tcp://127.0.0.1:{port}"

    for index, option in enumerate(options[:-1]):
        value = options[index + 1]
        if option in HOOK_OPTIONS:
            options[index + 1] = in_checkout(value)
        elif option == "--ready-file":
            options[index + 1] = str(tmp_path / "ready")
        elif option == "--listen":
            options[index + 1] = local_address(value)
        elif option == "--ready-port":
            ready_port = free_port()
            options[index + 1] = f"127.0.0.1:{ready_port}"
    for key in HOOK_VARIABLES:
        if key in env:
            env[key] = "\n".join(in_checkout(line) for line in env[key].splitlines() if line.strip())
    if "GRACEINIT_READY_FILE" in env:
        env["GRACEINIT_READY_FILE"] = str(tmp_path / "ready")
    if "GRACEINIT_READY_PORT" in env:
        ready_port = free_port()
        env["GRACEINIT_READY_PORT"] = f"127.0.0.1:{ready_port}"
    if "GRACEINIT_LISTEN" in env:
        env["GRACEINIT_LISTEN"] = ",".join(local_address(a) for a in env["GRACEINIT_LISTEN"].split(","))

    app = list(example.app or [])
    status = 0  # a clean stop exits 0, with -e 143:0 for apps that die of SIGTERM
    (tmp_path / "app.py").write_text(WEB_APPS)
    if app[:1] in (["python"], ["python3"]) and app[1:] == ["/app/app.py"]:
        port = free_port()
        env.update(HOST="127.0.0.1", PORT=str(port))
        app = [sys.executable, str(EXAMPLE_APP / "app.py")]
    elif app[:3] in (["python3", "-m", "http.server"], ["python", "-m", "http.server"]):
        assert "--bind" in app and app[app.index("--bind") + 1].startswith("127."), \
            f"{example.where}: http.server without --bind 127.0.0.1 listens on every interface"
        port = free_port()
        app = [sys.executable, "-m", "http.server", *[str(port) if word.isdigit() else word for word in app[3:]]]
        status = remapped(128 + signal.SIGTERM, example)  # README: http.server dies of SIGTERM
    elif app[:1] in (["gunicorn"], ["uvicorn"]):
        program = bin_dir / app[0]
        if not program.exists():
            pytest.skip(f"{example.where}: {app[0]} is not installed here")
        app = [str(program), *app[1:]]
        if "--no-control-socket" in app and gunicorn_version() < (25,):
            pytest.skip(f"{example.where}: --no-control-socket needs gunicorn >= 25 (this Python has "
                        f"{'.'.join(map(str, gunicorn_version()))})")
    else:
        app = [sys.executable, "-c", STAND_IN]
    env.setdefault("PYTHONUNBUFFERED", "1")
    return Runnable([str(graceinit), *options, "--", *app], env, tmp_path, port, ready_port, status)


def gunicorn_version() -> Tuple[int, ...]:
    from importlib.metadata import version

    return tuple(int(part) for part in re.findall(r"\d+", version("gunicorn"))[:3])


def remapped(status: int, example: Example) -> int:
    remaps: Dict[int, int] = {}
    options = example.options
    for index, option in enumerate(options[:-1]):
        if option in ("-e", "--remap-exit"):
            source, _, target = options[index + 1].partition(":")
            remaps[int(source)] = int(target)
    for pair in filter(None, example.env.get("GRACEINIT_REMAP_EXIT", "").split(",")):
        source, _, target = pair.partition(":")
        remaps[int(source)] = int(target)
    return remaps.get(status, status)


def answers_http(port: int, path: str = "/") -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        # Connection: close, so that the server is not left reading a connection we reset.
        connection.request("GET", path, headers={"Connection": "close"})
        response = connection.getresponse()
        response.read()
        return response.status == 200
    except OSError:
        return False
    finally:
        connection.close()


def stop_bound(example: Example) -> float:
    """How long the stop sequence may take: the budget when there is one, else a generous sum."""
    env = example.env
    if "GRACEINIT_TERMINATION_BUDGET" in env:
        return seconds(env["GRACEINIT_TERMINATION_BUDGET"]) + 5
    return 30.0


@pytest.mark.timeout(90)
@pytest.mark.parametrize("example", ALL_EXAMPLES, ids=[example.id for example in ALL_EXAMPLES])
def test_example_runs_without_a_warning(example: Example, graceinit_bin: Path, procs, tmp_path: Path) -> None:
    run = runnable(example, graceinit_bin, tmp_path)
    sup = procs.start(run.argv, env=procs.env(**run.env), cwd=run.cwd)
    if run.port is not None:
        procfs.wait_until(lambda: answers_http(run.port) or not sup.running(), 20,
                          lambda: f"{example.where}: the app answers on {run.port}; stderr: {sup.stderr_text()}")
    else:
        sup.stdout.wait_for("stand-in serving", timeout=20)
    assert sup.running(), sup.stderr_text(5)
    if run.ready_port is not None:  # the example's readiness probe: graceinit's own port
        procfs.wait_until(lambda: answers_http(run.ready_port, "/ready") or not sup.running(), 20,
                          lambda: f"{example.where}: the ready port {run.ready_port} says ready")
    sup.send(signal.SIGTERM)
    status = sup.wait(stop_bound(example))
    stderr = sup.stderr_text(5)
    problems = [line for line in stderr.splitlines() if PROBLEM.search(line)]
    assert not problems, f"{example.where}: graceinit {' '.join(run.argv[1:])}\n{stderr}"
    assert status == run.stop_status, f"{example.where}: exit {status}\n{stderr}"


@pytest.mark.timeout(60)
def test_uvicorn_exits_143_after_sigterm(graceinit_bin: Path, procs, tmp_path: Path) -> None:
    """Why README's uvicorn example says -e 143:0: uvicorn drains, then re-raises SIGTERM."""
    uvicorn = Path(sys.executable).with_name("uvicorn")
    if not uvicorn.exists():
        pytest.skip("uvicorn is not installed here")
    (tmp_path / "app.py").write_text(WEB_APPS)
    port = free_port()
    sup = procs.start([graceinit_bin, "--listen", f"tcp://127.0.0.1:{port}", "--",
                       uvicorn, "--fd", "3", "app:asgi"], cwd=tmp_path)
    procfs.wait_until(lambda: answers_http(port) or not sup.running(), 20,
                      lambda: f"uvicorn answers on {port}; stderr: {sup.stderr_text()}")
    sup.send(signal.SIGTERM)
    assert sup.wait(20) == 143, sup.stderr_text(5)
