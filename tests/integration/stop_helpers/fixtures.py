"""pytest fixtures for the stop-sequence tests; test modules import them by name."""
import os
import shutil

import pytest

from .harness import Harness


@pytest.fixture
def gi(tmp_path):
    """A Harness bound to this test's tmp dir; kills everything the test started afterwards."""
    h = Harness(tmp_path)
    try:
        yield h
    finally:
        h.cleanup()


needs_pid1 = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None,
    reason="PID-1 cases need root and unshare (both present on the dev machines and in CI)")
