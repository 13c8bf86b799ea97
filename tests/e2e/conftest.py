"""Fixtures for the podman end-to-end test (see podman_helpers.py and SETUP.md)."""

from __future__ import annotations

import itertools
import os
import time
from pathlib import Path
from typing import Iterator, List

import pytest

from podman_helpers import (
    E2EError,
    Podman,
    base_tarball,
    build_example_image,
    log,
    make_podman,
    why_podman_cannot_run,
)


def _skip_or_fail(reason: str) -> None:
    if os.environ.get("GRACEINIT_E2E_REQUIRE") == "1":
        pytest.fail(f"GRACEINIT_E2E_REQUIRE=1 but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def podman() -> Iterator[Podman]:
    """A private podman (own config and storage in a temporary directory) with the base image."""
    reason = why_podman_cannot_run()
    if reason:
        _skip_or_fail(reason)
    # podman 4.3 always creates /run/containers/networks (not configurable); remove it again
    # afterwards if it was not there before and is still empty.
    run_dirs = [path for path in (Path("/run/containers/networks"), Path("/run/containers")) if not path.exists()]
    started = time.monotonic()
    try:
        tarball = base_tarball()
        instance = make_podman(tarball)
    except E2EError as error:
        pytest.fail(str(error), pytrace=False)
    log(f"podman ready in {time.monotonic() - started:.1f}s")
    try:
        yield instance
    finally:
        started = time.monotonic()
        instance.destroy()
        for path in run_dirs:
            try:
                path.rmdir()
            except OSError:
                pass
        log(f"podman storage removed in {time.monotonic() - started:.1f}s")


@pytest.fixture(scope="session")
def example_image(podman: Podman) -> str:
    """Dockerfile.example built from this checkout with README's command (graceinit's wheel is
    made from the source by the Dockerfile's first stage)."""
    started = time.monotonic()
    try:
        image = build_example_image(podman)
    except E2EError as error:
        pytest.fail(str(error), pytrace=False)
    log(f"built {image} in {time.monotonic() - started:.1f}s")
    return image


_names = itertools.count(1)


@pytest.fixture
def container_name(podman: Podman, request: pytest.FixtureRequest) -> Iterator[callable]:
    """Hands out unique container names and force-removes those containers afterwards; on
    failure, prints their logs first."""
    names: List[str] = []

    def new(label: str = "c") -> str:
        name = f"graceinit-e2e-{os.getpid()}-{next(_names)}-{label}"
        names.append(name)
        return name

    yield new
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    for name in names:
        if failed:
            result = podman("logs", name, timeout=30, check=False)
            log(f"logs of {name}:\n{result.stdout}{result.stderr}")
    podman.remove(*names)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)
