#!/usr/bin/env bash
# Set up and run graceinit's whole test suite on a fresh machine (Debian, root or sudo).
#
#   ./scripts/test.sh            # what CI runs; extra arguments go to pytest
#
# Installs what the tests need (tini and dumb-init to compare against, podman for the
# container end-to-end test), makes one virtualenv per Python under .venvs/, and runs the
# suite on the default python3 and, when pyenv has them, on the oldest (3.9) and newest (3.13)
# supported versions. GRACEINIT_TEST_PYTHONS overrides the list (space-separated paths).
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

need_packages=()
for tool in tini:tini dumb-init:dumb-init unshare:util-linux script:bsdutils bash:bash gcc:gcc; do
    command -v "${tool%%:*}" >/dev/null || need_packages+=("${tool##*:}")
done
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
    marks=()
    # The container end-to-end test builds an image: once, on the default Python, is enough.
    [ $first = 1 ] || marks=(-m "not e2e")
    "$venv/bin/python" -m pytest "${marks[@]}" "$@" || failed=1
    first=0
done
exit $failed
