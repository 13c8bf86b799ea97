#!/usr/bin/env bash
# Set up graceinit in a virtualenv (.venvs/demo) and run the demo: a signal forwarded, orphans
# reaped, an exit status passed on, then the whole pod stop sequence around an HTTP app.
set -euo pipefail
cd "$(dirname "$0")/.."
# Debian's python3 makes virtualenvs only with python3-venv (ensurepip) installed
if ! python3 -c 'import ensurepip' 2>/dev/null; then
    if [ "$(id -u)" = 0 ]; then as_root=(); elif command -v sudo >/dev/null; then as_root=(sudo); else
        echo "demo.sh: python3 cannot make a virtualenv here: install python3-venv" >&2
        exit 1
    fi
    "${as_root[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
fi
[ -x .venvs/demo/bin/python ] || python3 -m venv .venvs/demo
.venvs/demo/bin/python -m pip install -q --disable-pip-version-check .
exec .venvs/demo/bin/python demo/demo.py
