#!/bin/sh
# graceinit stop hook (GRACEINIT_STOP_HOOK): runs at the first SIGTERM, after graceinit removed
# the ready file and *before* the stop delay and before the app gets SIGTERM. The app is still
# serving while this runs. Typical use: deregister from service discovery, tell clients with
# long-lived connections to reconnect elsewhere. Bounded by GRACEINIT_HOOK_TIMEOUT.
set -u
if [ -e "${GRACEINIT_READY_FILE:-/nonexistent}" ]; then ready=present; else ready=removed; fi
echo "[stop-hook] $(date +%s.%N) phase=${GRACEINIT_PHASE:-?} app_pid=${GRACEINIT_CHILD_PID:-?} ready_file=$ready"
