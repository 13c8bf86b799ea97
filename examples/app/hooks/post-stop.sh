#!/bin/sh
# graceinit post hook (GRACEINIT_POST_HOOK): runs after the app and every leftover process are
# gone, just before the container exits. Typical use: flush/upload logs, report the outcome.
set -u
echo "[post-hook] $(date +%s.%N) phase=${GRACEINIT_PHASE:-?} exit_code=${GRACEINIT_EXIT_CODE:-?} exit_signal=${GRACEINIT_EXIT_SIGNAL:-none}"
