#!/usr/bin/env bash
# Set up graceinit in a virtualenv (.venvs/demo) and run the demo: a signal forwarded, orphans
# reaped, an exit status passed on, then the whole pod stop sequence around an HTTP app.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venvs/demo/bin/python ] || python3 -m venv .venvs/demo
.venvs/demo/bin/python -m pip install -q --disable-pip-version-check .
exec .venvs/demo/bin/python demo/demo.py
