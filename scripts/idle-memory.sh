#!/usr/bin/env bash
# The desktop app's idle memory, no model loaded: starts it under a private Xvfb, waits for the
# window to settle, and prints the RSS and PSS (shared pages split between the processes that
# map them) of the app and its WebKit processes, then their sums. PSS is what the app costs the
# machine; summed RSS counts shared libraries once per process.
#
#   bash scripts/idle-memory.sh [path/to/quarry-desktop] [seconds to settle, default 20]
set -euo pipefail
APP="${1:-target/release/quarry-desktop}"
SETTLE="${2:-20}"
[[ -x "$APP" ]] || { echo "idle-memory: $APP is missing: build it with 'cargo build --release --workspace'" >&2; exit 2; }
command -v Xvfb >/dev/null || { echo "idle-memory: Xvfb is missing: apt-get install xvfb" >&2; exit 2; }
DATA="$(mktemp -d)"
DISPLAY_NUM=":$((90 + RANDOM % 50))"
Xvfb "$DISPLAY_NUM" -screen 0 1280x800x24 >/dev/null 2>&1 &
XVFB=$!
trap 'kill "$APP_PID" "$XVFB" 2>/dev/null || true; rm -rf "$DATA"' EXIT
sleep 1
DISPLAY="$DISPLAY_NUM" QUARRY_DATA_DIR="$DATA" "$APP" >"$DATA/app.log" 2>&1 &
APP_PID=$!
sleep "$SETTLE"
kill -0 "$APP_PID" 2>/dev/null || { echo "idle-memory: the app exited; its log:" >&2; cat "$DATA/app.log" >&2; exit 1; }
# The WebKit processes are the app's descendants.
children() { pgrep -P "$1" | tr '\n' ' ' || true; }
pids="$APP_PID $(children "$APP_PID")"
for p in $(children "$APP_PID"); do pids="$pids $(children "$p")"; done
total_rss=0 total_pss=0
for p in $pids; do
  [[ -r /proc/$p/smaps_rollup ]] || continue
  rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status")
  pss=$(awk '/^Pss:/ {print $2}' "/proc/$p/smaps_rollup")
  printf '%-18s rss %6d MB  pss %6d MB\n' "$(cat /proc/$p/comm)" $((rss / 1024)) $((pss / 1024))
  total_rss=$((total_rss + rss)) total_pss=$((total_pss + pss))
done
printf '%-18s rss %6d MB  pss %6d MB\n' "total" $((total_rss / 1024)) $((total_pss / 1024))
