#!/bin/sh
# graceinit pre hook (GRACEINIT_PRE_HOOK): runs before the app starts. A non-zero exit here
# means the app is never started and the container exits with this status (after post hooks).
# Typical use: render config, wait for a dependency, run migrations.
set -eu
echo "[pre-hook] $(date +%s.%N) phase=${GRACEINIT_PHASE:-?} preparing $(id -un 2>/dev/null || id -u)"
