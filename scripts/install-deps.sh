#!/usr/bin/env bash
# Installs what Quarry needs to build and test on Debian or Ubuntu, printing each package it
# installs and skipping the ones already present. Safe to run again at any time.
#
#   scripts/install-deps.sh          build + demo needs (compilers, llama.cpp, WebKitGTK)
#   scripts/install-deps.sh --e2e    also what `make test` needs: the desktop end-to-end test tools
#                                    (Xvfb, WebKitWebDriver, tauri-driver) and ruff
set -euo pipefail

e2e=false
[ "${1:-}" = "--e2e" ] && e2e=true

# llama-cpp-sys-2 builds llama.cpp with cmake and generates bindings with libclang; Tauri needs
# WebKitGTK 4.1 and librsvg; the e2e test drives the real window under Xvfb through WebKitWebDriver.
packages=(build-essential pkg-config cmake libclang-dev curl file libwebkit2gtk-4.1-dev librsvg2-dev)
command -v node >/dev/null 2>&1 || packages+=(nodejs npm)
if $e2e; then
  packages+=(xvfb xauth webkit2gtk-driver imagemagick)
fi

missing=()
for p in "${packages[@]}"; do
  if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    continue
  fi
  missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "error: these packages are missing and this is not a Debian/Ubuntu system: ${missing[*]}" >&2
    exit 1
  fi
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
      sudo="sudo"
    else
      echo "error: missing packages need root to install: run 'sudo apt-get install ${missing[*]}' and try again" >&2
      exit 1
    fi
  fi
  for p in "${missing[@]}"; do echo "installing apt package: $p"; done
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1 && [ ! -x "$HOME/.cargo/bin/cargo" ]; then
  echo "error: Rust is not installed; install it from https://rustup.rs and run this again" >&2
  exit 1
fi

# `make test` lints the REPL's Python harness with ruff, from PyPI.
if $e2e && ! command -v ruff >/dev/null 2>&1 && ! python3 -m ruff --version >/dev/null 2>&1; then
  echo "installing python tool: ruff"
  python3 -m pip install --quiet --user ruff 2>/dev/null || python3 -m pip install --quiet ruff
fi

if $e2e && ! command -v tauri-driver >/dev/null 2>&1 && [ ! -x "$HOME/.cargo/bin/tauri-driver" ]; then
  echo "installing cargo tool: tauri-driver"
  cargo install tauri-driver --locked --quiet
fi
exit 0
