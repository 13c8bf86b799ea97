"""Shared pytest configuration and fixtures for graceinit's test suite.

Fixtures:
  graceinit_bin  Path of the installed console script (next to sys.executable),
                 so tests run graceinit exactly as users do.
  procs          helpers.launch.ProcessTracker: start processes through it;
                 everything it started (and every descendant/orphan) is
                 SIGKILLed and reaped at teardown.  While it is active the
                 test process is a child subreaper (orphans land on pytest).
  init           helpers.inits.InitSpec; graceinit unless parametrized
                 indirectly with helpers.inits.init_params().
  pid1_ok        skips the test when PID namespaces are unavailable.

Options/markers:
  --compare      also run the comparison params (tini, dumb-init, naive),
                 marked ``compare``; they are deselected by default.
  pid1           the test runs graceinit as real PID 1 (unshare --pid).
"""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

from helpers.inits import make_spec  # noqa: E402
from helpers.launch import ProcessTracker, become_subreaper  # noqa: E402


def pytest_addoption(parser):
    parser.addoption("--compare", action="store_true", default=False,
                     help="also run tests against tini, dumb-init and a naive init "
                          "(params marked 'compare')")


def pytest_configure(config):
    config.addinivalue_line("markers", "compare: comparison run against another init "
                            "(deselected unless --compare or -m compare)")
    config.addinivalue_line("markers", "pid1: runs graceinit as real PID 1 in a fresh "
                            "PID namespace (needs root and unshare)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--compare") or "compare" in (config.getoption("-m") or ""):
        return
    keep, drop = [], []
    for item in items:
        (drop if item.get_closest_marker("compare") else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


_DESELECTED = {}  # why -> how many, for the one line at the end of the run


def pytest_deselected(items):
    for item in items:
        if item.get_closest_marker("compare"):
            why = ("comparison runs of the same tests against tini, dumb-init and a naive init, "
                   "which show each test can fail (--compare runs them)")
        elif item.get_closest_marker("e2e") and "not e2e" in (item.config.getoption("-m") or ""):
            why = "podman end-to-end tests (-m e2e runs them; scripts/test.sh does on one Python)"
        else:
            why = "by -m/-k %s" % " ".join(filter(None, (item.config.getoption("-m"),
                                                          item.config.getoption("-k"))))
        _DESELECTED[why] = _DESELECTED.get(why, 0) + 1


def pytest_terminal_summary(terminalreporter):
    if _DESELECTED:
        terminalreporter.write_line("deselected: " + "; ".join(
            "%d %s" % (count, why) for why, count in _DESELECTED.items()))


@pytest.fixture(scope="session")
def graceinit_bin():
    path = Path(sys.executable).with_name("graceinit")
    if not path.exists():
        pytest.fail("graceinit console script not found at %s (pip install -e .)" % path)
    return path


@pytest.fixture
def procs():
    """A ProcessTracker; while it is active the test process is a child
    subreaper, so orphans that escape the init under test land on pytest and
    are killed and reaped at teardown (not left to the machine's PID 1)."""
    become_subreaper(True)
    tracker = ProcessTracker()
    try:
        yield tracker
    finally:
        try:
            tracker.cleanup()
        finally:
            become_subreaper(False)


@pytest.fixture
def init(request, graceinit_bin):
    return make_spec(getattr(request, "param", "graceinit"), graceinit_bin)


_PID1_STATE = {}


@pytest.fixture
def pid1_ok():
    """Skip unless `unshare --pid --fork --mount-proc` works here (root)."""
    if "ok" not in _PID1_STATE:
        ok = shutil.which("unshare") is not None
        if ok:
            try:
                r = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc",
                                    "--kill-child", "--", "true"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                   timeout=10)
                ok = r.returncode == 0
            except (OSError, subprocess.TimeoutExpired):
                ok = False
        _PID1_STATE["ok"] = ok
    if not _PID1_STATE["ok"]:
        pytest.skip("cannot create PID namespaces here (need root and unshare)")
