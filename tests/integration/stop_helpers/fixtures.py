"""pytest fixtures for the stop-sequence tests; test modules import them by name."""
import os
import shutil

import pytest

from .harness import Harness


@pytest.fixture
def gi(tmp_path, procs):
    """A Harness bound to this test's tmp dir; it starts graceinit through `procs`, whose
    teardown kills everything the test started."""
    return Harness(tmp_path, procs)


needs_pid1 = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None,
    reason="PID-1 cases need root and unshare (both present on the dev machines and in CI)")
