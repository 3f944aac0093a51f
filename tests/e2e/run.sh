#!/usr/bin/env bash
# Desktop end-to-end smoke test: starts Xvfb and tauri-driver, then drives the real Quarry
# window with smoke.test.mjs. Run from anywhere: `bash tests/e2e/run.sh`.
#
# Environment:
#   QUARRY_APP       desktop binary to test (default: <repo>/target/release/quarry-desktop)
#   QUARRY_E2E_OUT   where logs and screenshots go (default: <repo>/target/e2e)
#   QUARRY_E2E_PORT  tauri-driver port (default 4444; the native driver uses this + 1)
#   TAURI_DRIVER     path to tauri-driver (default: PATH, then ~/.cargo/bin)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
APP="${QUARRY_APP:-$REPO/target/release/quarry-desktop}"
OUT="${QUARRY_E2E_OUT:-$REPO/target/e2e}"
PORT="${QUARRY_E2E_PORT:-4444}"
NATIVE_PORT=$((PORT + 1))

die() { echo "e2e: $*" >&2; exit 2; }

# --- prerequisites -------------------------------------------------------------------------
command -v node >/dev/null 2>&1 || die "node is not installed (needed to run the smoke test)."
command -v npm >/dev/null 2>&1 || die "npm is not installed (needed to install webdriverio)."
command -v Xvfb >/dev/null 2>&1 || die "Xvfb is missing: install it with 'apt-get install xvfb'."
WEBKIT_DRIVER="$(command -v WebKitWebDriver || true)"
[[ -n "$WEBKIT_DRIVER" ]] || die "WebKitWebDriver is missing: install it with 'apt-get install webkit2gtk-driver'."
DRIVER="${TAURI_DRIVER:-}"
if [[ -z "$DRIVER" ]]; then
  DRIVER="$(command -v tauri-driver || true)"
fi
if [[ -z "$DRIVER" ]]; then
  for candidate in "${CARGO_HOME:-$HOME/.cargo}/bin/tauri-driver" "$HOME/.cargo/bin/tauri-driver"; do
    if [[ -x "$candidate" ]]; then DRIVER="$candidate"; break; fi
  done
fi
[[ -n "$DRIVER" && -x "$DRIVER" ]] || die "tauri-driver is missing: install it with 'cargo install tauri-driver --locked'."
[[ -x "$APP" ]] || die "the app binary $APP is missing: build it first (cargo build --release), or set QUARRY_APP."
case "$APP" in /*) ;; *) APP="$(cd "$(dirname "$APP")" && pwd)/$(basename "$APP")" ;; esac
export QUARRY_APP="$APP" QUARRY_E2E_OUT="$OUT" QUARRY_E2E_PORT="$PORT"
# The window records every question in the history: the test's go under target, never the user's.
export QUARRY_DATA_DIR="${QUARRY_DATA_DIR:-$OUT/data}"

# The models step downloads a small file registered as a test model from a local stand-in for the
# Hub (HF_ENDPOINT), through the same fetch code as `quarry models fetch`, into a models folder of
# the test's own; the real models the answering step needs are linked into it, not copied.
REAL_MODELS="${QUARRY_MODELS_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/quarry/models}"
export QUARRY_MODELS_DIR="$OUT/models" QUARRY_E2E_TEST_MODEL="e2e-tiny-model"
command -v python3 >/dev/null 2>&1 || die "python3 is missing (it serves the test model as the Hub would)."

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
port_open "$PORT" && die "port $PORT is already in use (another tauri-driver?); set QUARRY_E2E_PORT."
port_open "$NATIVE_PORT" && die "port $NATIVE_PORT (native WebDriver) is already in use; set QUARRY_E2E_PORT."

if [[ ! -d "$HERE/node_modules/webdriverio" ]]; then
  echo "e2e: installing test dependencies (npm ci)"
  (cd "$HERE" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error) </dev/null
fi

mkdir -p "$OUT"
rm -f "$OUT/window.png" "$OUT/screen.png" "$OUT/models.png" "$OUT/models-first-run.png"
rm -rf "$QUARRY_MODELS_DIR" "$OUT/hub"
mkdir -p "$QUARRY_MODELS_DIR" "$OUT/hub/quarry-e2e/tiny/resolve/main"
for f in "$REAL_MODELS"/*.gguf; do
  [[ -e "$f" ]] && ln -s "$f" "$QUARRY_MODELS_DIR/"
done
# 8 MiB of random bytes: big enough for several progress events, small enough for any machine.
TINY="$OUT/hub/quarry-e2e/tiny/resolve/main/tiny.gguf"
head -c 8388608 /dev/urandom >"$TINY"
cat >"$QUARRY_MODELS_DIR/local.toml" <<TOML
[[model]]
id = "$QUARRY_E2E_TEST_MODEL"
name = "E2E tiny test model"
params = "8M"
quantization = "Q8_0"
file = "$QUARRY_E2E_TEST_MODEL.gguf"
size = $(stat -c %s "$TINY")
sha256 = "$(sha256sum "$TINY" | cut -d' ' -f1)"
license = "MIT"
role = "sub"

[[model.sources]]
kind = "huggingface"
repo = "quarry-e2e/tiny"
file = "tiny.gguf"
TOML

# --- background services, always cleaned up --------------------------------------------------
XVFB_PID=""
DRIVER_PID=""
HUB_PID=""
TMP="$(mktemp -d)"
cleanup() {
  local code=$?
  if [[ -n "$DRIVER_PID" ]] && kill -0 "$DRIVER_PID" 2>/dev/null; then
    # SIGTERM, not SIGKILL: tauri-driver then stops the WebKitWebDriver it started.
    kill -TERM "$DRIVER_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$DRIVER_PID" 2>/dev/null || break; sleep 0.1; done
    wait "$DRIVER_PID" 2>/dev/null || true
  fi
  if [[ -n "$HUB_PID" ]] && kill -0 "$HUB_PID" 2>/dev/null; then
    kill -TERM "$HUB_PID" 2>/dev/null || true
    wait "$HUB_PID" 2>/dev/null || true
  fi
  if [[ -n "$XVFB_PID" ]] && kill -0 "$XVFB_PID" 2>/dev/null; then
    kill -TERM "$XVFB_PID" 2>/dev/null || true
    wait "$XVFB_PID" 2>/dev/null || true
  fi
  rm -rf "$TMP"
  exit "$code"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The Hub stand-in on a port the kernel picks; http.server prints it once it listens.
python3 -u -m http.server 0 --bind 127.0.0.1 --directory "$OUT/hub" >"$OUT/hub.log" 2>&1 </dev/null &
HUB_PID=$!
HUB_PORT=""
for _ in $(seq 1 100); do
  HUB_PORT="$(sed -n 's/.* port \([0-9][0-9]*\).*/\1/p' "$OUT/hub.log" | head -1)"
  [[ -n "$HUB_PORT" ]] && break
  kill -0 "$HUB_PID" 2>/dev/null || die "the local Hub (python3 -m http.server) exited at start (see $OUT/hub.log)."
  sleep 0.1
done
[[ -n "$HUB_PORT" ]] || die "the local Hub did not start within 10 s (see $OUT/hub.log)."
export HF_ENDPOINT="http://127.0.0.1:$HUB_PORT"
echo "e2e: test models in $QUARRY_MODELS_DIR, Hub stand-in at $HF_ENDPOINT"

# Xvfb picks a free display itself and writes its number to fd 5 once it accepts clients.
Xvfb -displayfd 5 -screen 0 1280x800x24 -nolisten tcp 5>"$TMP/display" >"$OUT/xvfb.log" 2>&1 </dev/null &
XVFB_PID=$!
for _ in $(seq 1 100); do
  [[ -s "$TMP/display" ]] && break
  kill -0 "$XVFB_PID" 2>/dev/null || die "Xvfb exited at start (see $OUT/xvfb.log)."
  sleep 0.1
done
[[ -s "$TMP/display" ]] || die "Xvfb did not start within 10 s (see $OUT/xvfb.log)."
export DISPLAY=":$(tr -dc '0-9' <"$TMP/display")"
echo "e2e: Xvfb on DISPLAY=$DISPLAY"

# WebKitGTK under Xvfb has no GPU: render in software so the window is not blank.
export WEBKIT_DISABLE_DMABUF_RENDERER="${WEBKIT_DISABLE_DMABUF_RENDERER:-1}"
export WEBKIT_DISABLE_COMPOSITING_MODE="${WEBKIT_DISABLE_COMPOSITING_MODE:-1}"
export LIBGL_ALWAYS_SOFTWARE="${LIBGL_ALWAYS_SOFTWARE:-1}"
if [[ -z "${XDG_RUNTIME_DIR:-}" || ! -w "${XDG_RUNTIME_DIR:-/nonexistent}" ]]; then
  mkdir -p "$TMP/runtime" && chmod 700 "$TMP/runtime"
  export XDG_RUNTIME_DIR="$TMP/runtime"
fi

"$DRIVER" --port "$PORT" --native-port "$NATIVE_PORT" --native-driver "$WEBKIT_DRIVER" \
  >"$OUT/tauri-driver.log" 2>&1 </dev/null &
DRIVER_PID=$!
for _ in $(seq 1 300); do
  port_open "$PORT" && break
  kill -0 "$DRIVER_PID" 2>/dev/null || die "tauri-driver exited at start (see $OUT/tauri-driver.log)."
  sleep 0.1
done
port_open "$PORT" || die "tauri-driver did not listen on port $PORT within 30 s (see $OUT/tauri-driver.log)."
echo "e2e: tauri-driver on 127.0.0.1:$PORT, testing $APP"

set +e
node --test --test-reporter=spec "$HERE/smoke.test.mjs" </dev/null
status=$?
set -e
echo "e2e: logs and screenshots in $OUT"
exit "$status"
