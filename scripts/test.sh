#!/usr/bin/env bash
# Set up and run graceinit's whole test suite on a fresh machine (Debian, root or sudo).
#
#   ./scripts/test.sh            # what CI runs; extra arguments go to pytest
#
# Installs what the tests need with apt (iproute2 for the network-namespace tests; tini and dumb-init, which the comparison tests run the
# same tests against to show that each test can fail; podman, runc and debootstrap for the
# container end-to-end test), makes one virtualenv per Python under .venvs/, and runs the
# suite on the default python3 and, when pyenv has them, on the oldest (3.9) and newest (3.13)
# supported versions. GRACEINIT_TEST_PYTHONS overrides the list (space-separated paths).
# The comparison and end-to-end tests run once, on the default python3: the other Pythons
# deselect them (pytest says so in one line at the end).
#
# Needs root (or sudo): apt, PID namespaces (unshare) and rootful podman. Leaves behind: the
# apt packages, .venvs/py3.*, and the end-to-end test's Debian base image, built once with
# debootstrap and kept in /var/cache/graceinit-e2e/ (~200 MB; see tests/e2e/SETUP.md).
# GRACEINIT_SKIP_E2E=1 skips podman and that image.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

need_packages=()
for tool in tini:tini dumb-init:dumb-init unshare:util-linux nsenter:util-linux ip:iproute2 bash:bash; do
    command -v "${tool%%:*}" >/dev/null || need_packages+=("${tool##*:}")
done
# Debian's python3 makes virtualenvs only with python3-venv (ensurepip) installed
python3 -c 'import ensurepip' 2>/dev/null || need_packages+=(python3-venv)
if [ "${GRACEINIT_SKIP_E2E:-0}" != 1 ]; then
    for tool in podman:podman runc:runc debootstrap:debootstrap; do
        command -v "${tool%%:*}" >/dev/null || need_packages+=("${tool##*:}")
    done
fi
if [ ${#need_packages[@]} -gt 0 ]; then
    echo "== installing ${need_packages[*]}"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${need_packages[@]}" >/dev/null
fi

pythons=()
if [ -n "${GRACEINIT_TEST_PYTHONS:-}" ]; then
    read -r -a pythons <<<"$GRACEINIT_TEST_PYTHONS"
else
    pythons+=("$(command -v python3)")
    if command -v pyenv >/dev/null; then
        for version in 3.9 3.13; do
            prefix=$(pyenv prefix "$(pyenv versions --bare | grep -E "^${version//./\\.}(\.[0-9]+)?$" | tail -n1)" 2>/dev/null) || continue
            [ -x "$prefix/bin/python3" ] && pythons+=("$prefix/bin/python3")
        done
    fi
fi

# As root the script installs podman, so the container end-to-end test must run, not skip.
if [ "$(id -u)" = 0 ] && [ "${GRACEINIT_SKIP_E2E:-0}" != 1 ]; then
    export GRACEINIT_E2E_REQUIRE=1
fi

failed=0
first=1
for python in "${pythons[@]}"; do
    version=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    venv=".venvs/py$version"
    echo "== Python $version ($python)"
    [ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -e '.[test]'
    # The comparison tests (the same tests against tini, dumb-init and a naive init, ~4 min) and
    # the container end-to-end test (an image build) run once, on the default Python.
    selection=()
    if [ $first = 1 ]; then
        selection+=(--compare)
    fi
    if [ $first != 1 ] || [ "${GRACEINIT_SKIP_E2E:-0}" = 1 ]; then
        selection+=(-m "not e2e")
    fi
    "$venv/bin/python" -m pytest "${selection[@]}" "$@" || failed=1
    first=0
done
exit $failed
