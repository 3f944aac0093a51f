#!/usr/bin/env bash
# Lays out a portable `quarry` (built by `make portable`) as it installs: bin/quarry, and
# lib/quarry/ with llama.cpp's shared libraries and ggml's CPU kernel variants. The AMX variant
# (sapphirerapids) is left out: llama.cpp's AMX kernels crash (ggml-org/llama.cpp#20824), and
# the engine refuses to load it anyway (crates/engine/src/system.rs). libpdfium (from
# install-deps.sh's cache, the pypdfium2 wheel's) goes beside them: the extraction worker looks
# for it in ../lib/quarry (crates/index/src/extract/pdfium.rs).
#
#   scripts/package-portable.sh target/portable/release dist/quarry-portable
set -euo pipefail
release="${1:?the cargo release folder of a portable build}"
out="${2:?the folder to lay the build out in}"

[ -x "$release/quarry" ] || { echo "error: $release/quarry is missing; run \`make portable\`" >&2; exit 1; }
backends=$(ls -td "$release"/build/llama-cpp-sys-2-*/out/backends 2>/dev/null | head -n 1 || true)
[ -n "$backends" ] && ls "$backends"/libggml-cpu-*.so >/dev/null 2>&1 || {
  echo "error: no CPU kernel variants under $release/build/llama-cpp-sys-2-*/out/backends; was it built with --features portable?" >&2
  exit 1
}

rm -rf "$out"
mkdir -p "$out/bin" "$out/lib/quarry"
cp "$release/quarry" "$out/bin/quarry"
# llama.cpp's own libraries with their sonames (libllama.so.0, ...), from the CMake build beside
# the variants: the copies cargo leaves in $release are links to sonames it does not copy.
built="$(dirname "$backends")/build/bin"
for lib in "$built"/lib*.so*; do
  case "$(basename "$lib")" in
    libggml-cpu-*) ;;
    *) cp -a "$lib" "$out/lib/quarry/";;
  esac
done
for variant in "$backends"/*.so; do
  case "$(basename "$variant")" in
    libggml-cpu-sapphirerapids.so) echo "left out: $(basename "$variant") (AMX)";;
    *) cp -L "$variant" "$out/lib/quarry/";;
  esac
done
pdfium="${QUARRY_PDFIUM:-${XDG_CACHE_HOME:-$HOME/.cache}/quarry/pdfium/libpdfium.so}"
if [ -f "$pdfium" ]; then
  cp -L "$pdfium" "$out/lib/quarry/libpdfium.so"
  [ -f "$(dirname "$pdfium")/VERSION" ] && cp "$(dirname "$pdfium")/VERSION" "$out/lib/quarry/VERSION"
else
  echo "warning: no libpdfium at $pdfium (run scripts/install-deps.sh); PDFs will be read by the fallback engine only" >&2
fi
echo "portable quarry in $out: $(ls "$out/lib/quarry" | wc -l) libraries ($(du -sh "$out" | cut -f1))"
