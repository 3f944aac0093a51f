#!/usr/bin/env bash
# Installs what Quarry needs to build and test on Debian or Ubuntu, printing each package it
# installs and skipping the ones already present. Safe to run again at any time.
#
#   scripts/install-deps.sh          build + demo needs (compilers, llama.cpp, WebKitGTK)
#   scripts/install-deps.sh --e2e    also what `make test` needs: the desktop end-to-end test tools
#                                    (Xvfb, WebKitWebDriver, tauri-driver), ruff and pytest
set -euo pipefail

e2e=false
[ "${1:-}" = "--e2e" ] && e2e=true

# llama-cpp-sys-2 builds llama.cpp with cmake and generates bindings with libclang; Tauri needs
# WebKitGTK 4.1 and librsvg; the e2e test drives the real window under Xvfb through WebKitWebDriver.
# Document extraction (issue 14): tesseract-ocr + tesseract-ocr-eng read scanned pages;
# poppler-utils' pdftotext is the tests' oracle and the extraction bench's reference; python3-pip
# fetches libpdfium below. Collections (issue 15): ripgrep is the oracle `quarry grep` is tested
# against.
packages=(build-essential pkg-config cmake libclang-dev curl file libwebkit2gtk-4.1-dev librsvg2-dev
  tesseract-ocr tesseract-ocr-eng poppler-utils ripgrep)
command -v python3 >/dev/null 2>&1 || packages+=(python3)
{ command -v pip3 >/dev/null 2>&1 || command -v pip >/dev/null 2>&1 || python3 -m pip --version >/dev/null 2>&1; } || packages+=(python3-pip)
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

# libpdfium, the primary PDF engine, from the PyPI pypdfium2 wheel (PDFium build 8149; notes:
# ../shared/notes/extraction.md §2.5) into the cache quarry looks in last
# (crates/index/src/extract/pdfium.rs). Pinned, so every machine reads PDFs alike.
PYPDFIUM2_VERSION=5.15.2
pdfium_dir="${XDG_CACHE_HOME:-$HOME/.cache}/quarry/pdfium"
if [ "$(cat "$pdfium_dir/WHEEL" 2>/dev/null)" != "pypdfium2-$PYPDFIUM2_VERSION" ] || [ ! -f "$pdfium_dir/libpdfium.so" ]; then
  case "$(uname -m)" in
    x86_64) platform=manylinux_2_17_x86_64 ;;
    aarch64) platform=manylinux_2_17_aarch64 ;;
    *) echo "error: no pypdfium2 wheel for $(uname -m); set QUARRY_PDFIUM to a libpdfium.so" >&2; exit 1 ;;
  esac
  echo "installing libpdfium from PyPI pypdfium2==$PYPDFIUM2_VERSION into $pdfium_dir"
  tmp=$(mktemp -d)
  pip=(python3 -m pip)
  "${pip[@]}" --version >/dev/null 2>&1 || pip=(pip3)
  "${pip[@]}" download --quiet --no-deps --only-binary=:all: --platform "$platform" \
    --python-version 3.11 "pypdfium2==$PYPDFIUM2_VERSION" -d "$tmp"
  mkdir -p "$pdfium_dir"
  python3 - "$tmp" "$pdfium_dir" <<'PY'
import glob, json, os, sys, zipfile
tmp, dest = sys.argv[1], sys.argv[2]
wheel = glob.glob(os.path.join(tmp, "pypdfium2-*.whl"))[0]
with zipfile.ZipFile(wheel) as z:
    with open(os.path.join(dest, "libpdfium.so.part"), "wb") as out:
        out.write(z.read("pypdfium2_raw/libpdfium.so"))
    version = json.loads(z.read("pypdfium2_raw/version.json"))
    licences = os.path.join(dest, "licenses")
    for name in z.namelist():
        if "/licenses/" in name and not name.endswith("/"):
            path = os.path.join(licences, name.split("/licenses/", 1)[1])
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as out:
                out.write(z.read(name))
os.replace(os.path.join(dest, "libpdfium.so.part"), os.path.join(dest, "libpdfium.so"))
with open(os.path.join(dest, "VERSION"), "w") as f:
    f.write(str(version["build"]) + "\n")
PY
  echo "pypdfium2-$PYPDFIUM2_VERSION" > "$pdfium_dir/WHEEL"
  rm -rf "$tmp"
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

# ... and tests the harness's pure helpers with pytest (crates/repl-worker/tests/harness).
if $e2e && ! python3 -m pytest --version >/dev/null 2>&1; then
  echo "installing python tool: pytest"
  python3 -m pip install --quiet --user pytest 2>/dev/null || python3 -m pip install --quiet pytest
fi

if $e2e && ! command -v tauri-driver >/dev/null 2>&1 && [ ! -x "$HOME/.cargo/bin/tauri-driver" ]; then
  echo "installing cargo tool: tauri-driver"
  cargo install tauri-driver --locked --quiet
fi
exit 0
