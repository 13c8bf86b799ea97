"""Infrastructure for the podman end-to-end test: a private podman, a local base image, the build.

Nothing here touches the machine's own podman set-up: configuration and storage live in a
temporary directory named by CONTAINERS_CONF / CONTAINERS_STORAGE_CONF, and every container
runs with --network none (the app is reached from inside with `podman exec`), so no bridge,
firewall rule or address outside the container is created. Every command has a time limit.

Environment knobs (all optional):
  GRACEINIT_E2E_CACHE       where the debootstrap tarball is kept between runs
                            (default /var/cache/graceinit-e2e when writable, else tests/.cache/e2e)
  GRACEINIT_E2E_MIRROR      Debian mirror for debootstrap (default http://deb.debian.org/debian)
  GRACEINIT_E2E_STORAGE_DRIVER  overlay or vfs (default: overlay if it works here, else vfs)
  GRACEINIT_E2E_REQUIRE=1   fail instead of skipping when podman cannot run (set it in CI)
  GRACEINIT_E2E_KEEP=1      keep the temporary podman directory for a post-mortem
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile.example"
BASE_IMAGE = "localhost/graceinit-base"
EXAMPLE_IMAGE = "localhost/graceinit-example:e2e"

SUITE = "bookworm"
# click and psutil come from Debian, not from PyPI wheels downloaded on the host: the mirror is
# the one debootstrap needs anyway (no second network dependency), the versions are built for
# the image's own Python (psutil is a compiled extension, and the host's Python may differ), and
# the whole lot is cached in one tarball.
INCLUDE = ("python3", "python3-pip", "python3-click", "python3-psutil")
DEFAULT_MIRROR = "http://deb.debian.org/debian"
SETUP_HINT = "apt-get install -y podman runc debootstrap (see tests/e2e/SETUP.md)"


class E2EError(RuntimeError):
    pass


def log(msg: str) -> None:
    print(f"[e2e {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def why_podman_cannot_run() -> Optional[str]:
    """A reason to skip, or None when everything the test needs is here."""
    if not sys.platform.startswith("linux"):
        return "podman end-to-end test needs Linux"
    if os.geteuid() != 0:
        return "podman end-to-end test needs root (rootful podman; rootless needs subuid/subgid set-up)"
    missing = [tool for tool in ("podman", "runc", "debootstrap", "tar", "nsenter") if shutil.which(tool) is None]
    if missing:
        return f"missing {', '.join(missing)}: {SETUP_HINT}"
    return None


def run(
    argv: Sequence[str],
    *,
    timeout: float,
    env: Optional[Dict[str, str]] = None,
    check: bool = True,
    input: Optional[str] = None,
    cwd: Optional[Path] = None,
) -> subprocess.CompletedProcess:
    """subprocess.run with a mandatory time limit and a readable error."""
    try:
        result = subprocess.run(
            list(argv), env=env, cwd=cwd, input=input, capture_output=True, text=True,
            timeout=timeout, stdin=None if input is not None else subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as error:
        raise E2EError(f"timed out after {timeout}s: {' '.join(argv)}\n{error.stdout or ''}{error.stderr or ''}")
    if check and result.returncode != 0:
        raise E2EError(
            f"exit {result.returncode}: {' '.join(argv)}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
        )
    return result


# --------------------------------------------------------------------------- base image tarball


def cache_dir() -> Path:
    configured = os.environ.get("GRACEINIT_E2E_CACHE")
    if configured:
        path = Path(configured)
    else:
        path = Path("/var/cache/graceinit-e2e")
        try:
            path.mkdir(parents=True, exist_ok=True)
            if not os.access(path, os.W_OK):
                raise PermissionError(path)
        except OSError:
            path = REPO / "tests" / ".cache" / "e2e"  # git-ignored
    path.mkdir(parents=True, exist_ok=True)
    return path


def base_tarball(mirror: Optional[str] = None) -> Path:
    """debootstrap a minimal Debian with Python into a cached tarball (once per machine).

    Cached under a name that changes with the package list; delete the file to refresh it.
    A lock makes concurrent runs wait for one debootstrap instead of racing.
    """
    mirror = mirror or os.environ.get("GRACEINIT_E2E_MIRROR") or DEFAULT_MIRROR
    key = hashlib.sha256(f"{SUITE} minbase {','.join(INCLUDE)}".encode()).hexdigest()[:12]
    directory = cache_dir()
    tarball = directory / f"{SUITE}-minbase-python-{key}.tar"
    if tarball.is_file() and tarball.stat().st_size > 0:
        return tarball
    with open(directory / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if tarball.is_file() and tarball.stat().st_size > 0:
            return tarball
        started = time.monotonic()
        log(f"debootstrap {SUITE} ({', '.join(INCLUDE)}) from {mirror}: about a minute, once")
        with tempfile.TemporaryDirectory(prefix="graceinit-e2e-rootfs-", dir=directory) as tmp:
            rootfs = Path(tmp) / "rootfs"
            run(["debootstrap", "--variant=minbase", f"--include={','.join(INCLUDE)}", SUITE, str(rootfs), mirror],
                timeout=600)
            # What an image doesn't need: downloaded .debs and package lists (~90 MB).
            for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
                for entry in (rootfs / junk).glob("*"):
                    if entry.is_file():
                        entry.unlink()
            partial = tarball.with_suffix(".tar.partial")
            run(["tar", "-C", str(rootfs), "--numeric-owner", "-cf", str(partial), "."], timeout=300)
            partial.rename(tarball)
        log(f"base tarball {tarball} ready in {time.monotonic() - started:.0f}s")
    return tarball


# --------------------------------------------------------------------------- private podman


# Runs inside the container: one tab-separated line per process but itself.
_LIST_PROCESSES = r"""
import os
me = str(os.getpid())
for pid in sorted((p for p in os.listdir("/proc") if p.isdigit()), key=int):
    if pid == me:
        continue
    try:
        stat = open(f"/proc/{pid}/stat").read()
        status = open(f"/proc/{pid}/status").read()
        cmd = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        continue  # exited meanwhile
    comm = stat[stat.index("(") + 1:stat.rindex(")")]
    state, ppid = stat[stat.rindex(")") + 2:].split()[:2]
    uid = next((l.split()[1] for l in status.splitlines() if l.startswith("Uid:")), "?")
    print(pid, ppid, state, uid, " ".join(comm.split()) or "?", " ".join(cmd.split()), sep="\t")
"""


class Podman:
    """podman with its own containers.conf and storage.conf under `root`."""

    def __init__(self, root: Path, driver: str) -> None:
        self.root = root
        self.driver = driver
        (root / "tmp").mkdir(parents=True, exist_ok=True)
        hard_nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        if hard_nofile == resource.RLIM_INFINITY:
            hard_nofile = 1048576
        nofile = min(hard_nofile, 1048576)
        hard_nproc = resource.getrlimit(resource.RLIMIT_NPROC)[1]
        nproc = 32768 if hard_nproc == resource.RLIM_INFINITY else min(32768, hard_nproc)
        # runc: crun rejects this kernel's mixed cgroup v1/v2 layout. default_ulimits: podman's
        # defaults (nofile 1048576) exceed the machine's hard limits and runc would refuse them.
        # cgroupfs: there is no systemd to ask. tmp_dir etc.: nothing shared with the machine's
        # own podman. netns none: no bridge and no firewall rules on the host.
        (root / "containers.conf").write_text(
            "[containers]\n"
            f'default_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]\n'
            'log_driver = "k8s-file"\n'
            'netns = "none"\n'
            "[engine]\n"
            'runtime = "runc"\n'
            'cgroup_manager = "cgroupfs"\n'
            'events_logger = "file"\n'
            f'events_logfile_path = "{root}/events.log"\n'
            f'tmp_dir = "{root}/tmp"\n'
            f'volume_path = "{root}/volumes"\n'
            "[network]\n"
            f'network_config_dir = "{root}/networks"\n'
        )
        (root / "storage.conf").write_text(
            "[storage]\n"
            f'driver = "{driver}"\n'
            f'runroot = "{root}/runroot"\n'
            f'graphroot = "{root}/graphroot"\n'
        )
        self.env = dict(os.environ)
        self.env.update(
            CONTAINERS_CONF=str(root / "containers.conf"),
            CONTAINERS_STORAGE_CONF=str(root / "storage.conf"),
            TMPDIR=str(root / "tmp"),
        )
        for inherited in ("CONTAINERS_CONF_OVERRIDE", "CONTAINER_HOST", "CONTAINER_CONNECTION", "DOCKER_HOST"):
            self.env.pop(inherited, None)

    def __call__(self, *args: str, timeout: float = 60, check: bool = True,
                 input: Optional[str] = None, cwd: Optional[Path] = None) -> subprocess.CompletedProcess:
        return run(["podman", *args], timeout=timeout, env=self.env, check=check, input=input, cwd=cwd)

    def popen(self, *args: str, **kwargs) -> subprocess.Popen:
        return subprocess.Popen(["podman", *args], env=self.env, **kwargs)

    # ---- containers

    def logs(self, name: str) -> str:
        result = self("logs", name, timeout=30)
        return result.stdout + result.stderr

    def log_lines(self, name: str) -> List[str]:
        """`podman logs`, stdout and stderr merged back into one stream in time order (podman
        gives them separately; graceinit's own messages are on stderr, the app's on stdout)."""
        result = self("logs", "--timestamps", name, timeout=30)
        stamped = []
        for stream in (result.stdout, result.stderr):
            for line in stream.splitlines():
                stamp, _, text = line.partition(" ")
                stamped.append((_sortable(stamp), len(stamped), text))
        return [text for _, _, text in sorted(stamped)]

    def wait_for_log(self, name: str, pattern: str, timeout: float = 20) -> re.Match:
        deadline = time.monotonic() + timeout
        while True:
            result = self("logs", name, timeout=30, check=False)
            text = result.stdout + result.stderr
            found = re.search(pattern, text, re.MULTILINE)
            if found:
                return found
            if time.monotonic() > deadline:
                raise E2EError(f"{name}: no /{pattern}/ in the logs after {timeout}s:\n{text}")
            time.sleep(0.1)

    def state(self, name: str) -> str:
        return self("inspect", "--format", "{{.State.Status}}", name, timeout=30).stdout.strip()

    def exit_code(self, name: str, timeout: float = 60) -> int:
        """`podman wait`: the container's exit status (blocks until it has stopped)."""
        return int(self("wait", name, timeout=timeout).stdout.strip().splitlines()[-1])

    def exec_python(self, name: str, code: str, timeout: float = 30, check: bool = True) -> subprocess.CompletedProcess:
        return self("exec", name, "python3", "-c", code, timeout=timeout, check=check)

    def http_get(self, name: str, path: str, timeout: float = 30, port: int = 8080) -> str:
        """GET http://127.0.0.1:{port}{path} from inside the container: '<status> <body>'."""
        code = (
            "import sys, urllib.request, urllib.error\n"
            "try:\n"
            f"    r = urllib.request.urlopen('http://127.0.0.1:{port}{path}', timeout={timeout - 5})\n"
            "    print(r.status, r.read().decode().strip())\n"
            "except urllib.error.HTTPError as e:\n"
            "    print(e.code, e.read().decode().strip())\n"
        )
        return self.exec_python(name, code, timeout=timeout).stdout.strip()

    def pid(self, name: str) -> int:
        """The host pid of the container's PID 1."""
        return int(self("inspect", "--format", "{{.State.Pid}}", name, timeout=30).stdout.strip())

    def popen_in_netns(self, name: str, code: str) -> subprocess.Popen:
        """Host Python running `code` inside the container's network namespace: a client that
        reaches the app on 127.0.0.1 like traffic from outside would, and that keeps working while
        podman refuses `podman exec` (a stopping container takes no new exec sessions)."""
        return subprocess.Popen(
            ["nsenter", f"--target={self.pid(name)}", "--net", sys.executable, "-c", code],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )

    def container_path(self, name: str, path: str, pid: Optional[int] = None) -> Path:
        """A path inside the running container, seen from the host (through /proc/PID/root)."""
        return Path(f"/proc/{pid or self.pid(name)}/root") / path.lstrip("/")

    def processes(self, name: str) -> List[Dict[str, str]]:
        """Every process in the container, read from /proc (no ps needed in the image)."""
        rows = []
        for line in self.exec_python(name, _LIST_PROCESSES).stdout.splitlines():
            pid, ppid, state, uid, comm, cmd = line.split("\t", 5)
            rows.append(dict(pid=pid, ppid=ppid, state=state, uid=uid, comm=comm, cmd=cmd))
        return rows

    def remove(self, *names: str) -> None:
        if names:
            self("rm", "--force", "--time", "0", "--ignore", *names, timeout=60, check=False)

    # ---- the whole private installation

    def destroy(self) -> None:
        """Remove every container and image, unmount what podman left, delete the directory."""
        with contextlib.suppress(E2EError):
            self("rm", "--all", "--force", "--time", "0", timeout=120, check=False)
        with contextlib.suppress(E2EError):
            self("rmi", "--all", "--force", timeout=120, check=False)
        delete_runc_state_below(self.root)
        unmount_below(self.root)
        if os.environ.get("GRACEINIT_E2E_KEEP") == "1":
            log(f"kept {self.root}")
            return
        shutil.rmtree(self.root, ignore_errors=True)


def _sortable(stamp: str) -> str:
    """RFC 3339 with nanoseconds as podman prints it (trailing zeros trimmed) -> sortable text."""
    match = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(.*)$", stamp)
    if not match:
        return stamp
    return f"{match.group(3)} {match.group(1)}.{(match.group(2) or '').ljust(9, '0')}"


def delete_runc_state_below(root: Path) -> None:
    """runc keeps its state in the machine-wide /run/runc; a podman command cut short (timeout)
    can leave an entry there for one of our containers. Delete only those (bundle under root)."""
    result = subprocess.run(["runc", "list", "--format", "json"], capture_output=True, text=True, timeout=30)
    try:
        containers = json.loads(result.stdout or "null") or []
    except ValueError:
        return
    for container in containers:
        if str(container.get("bundle", "")).startswith(str(root).rstrip("/") + "/"):
            subprocess.run(["runc", "delete", "--force", container["id"]], capture_output=True, timeout=30)


def unmount_below(root: Path) -> None:
    """Lazily unmount whatever is still mounted under root, deepest first."""
    prefix = str(root).rstrip("/") + "/"
    mounts = []
    with open("/proc/self/mountinfo") as mountinfo:
        for line in mountinfo:
            point = line.split()[4].encode().decode("unicode_escape")
            if point.startswith(prefix) or point == prefix.rstrip("/"):
                mounts.append(point)
    for point in sorted(set(mounts), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True, timeout=30)


def make_podman(base: Path) -> Podman:
    """A private podman with the base image imported, on overlay if that works, else vfs."""
    requested = os.environ.get("GRACEINIT_E2E_STORAGE_DRIVER")
    drivers = [requested] if requested else ["overlay", "vfs"]
    failures = []
    for driver in drivers:
        root = Path(tempfile.mkdtemp(prefix=f"graceinit-e2e-{driver}-", dir=os.environ.get("GRACEINIT_E2E_TMP")))
        podman = Podman(root, driver)
        try:
            podman("import", "--quiet", str(base), BASE_IMAGE, timeout=300)
            podman("run", "--rm", BASE_IMAGE, "true", timeout=120)
            log(f"podman storage: {driver} under {root}")
            return podman
        except E2EError as error:
            failures.append(f"{driver}: {error}")
            podman.destroy()
    raise E2EError("podman cannot run containers here:\n" + "\n".join(failures))


# --------------------------------------------------------------------------- the example image


# README's one build command, from the repository root, and the two build arguments that make it
# work without a registry: the local Debian base, and pip without an index (the wheel stage then
# builds with the base's own setuptools).
BUILD_COMMAND = ["build", "-f", "Dockerfile.example", "-t", EXAMPLE_IMAGE, "."]
OFFLINE_BUILD_OPTIONS = [
    "--network=none", "--pull=never",
    "--build-arg", f"BASE_IMAGE={BASE_IMAGE}",
    "--build-arg", "PIP_OPTS=--no-index --no-build-isolation",
]


def build_example_image(podman: Podman) -> str:
    """`podman build -f Dockerfile.example -t graceinit-example .` in the repository root: the
    multi-stage build makes graceinit's wheel from the checkout's source itself."""
    command = BUILD_COMMAND[:-1] + OFFLINE_BUILD_OPTIONS + BUILD_COMMAND[-1:]
    podman(*command, timeout=600, cwd=REPO)
    return EXAMPLE_IMAGE


@contextlib.contextmanager
def timed() -> Iterator[List[float]]:
    """with timed() as t: ...; t[0] is the elapsed seconds afterwards."""
    box: List[float] = []
    started = time.monotonic()
    try:
        yield box
    finally:
        box.append(time.monotonic() - started)
