"""Integration-test fixtures (shared ones are in tests/conftest.py)."""
import pytest


@pytest.fixture(params=[False, pytest.param(True, marks=pytest.mark.pid1)],
                ids=["plain", "pid1"])
def pid1(request):
    """Parametrize a test over 'plain' (the init is not PID 1) and 'pid1'
    (real PID 1 under unshare).  Pass the value to procs.start(pid1=...)."""
    if request.param:
        request.getfixturevalue("pid1_ok")
    return request.param
