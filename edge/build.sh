#!/usr/bin/env bash
# Builds the edge gateway's guest: the squint:qa component (wasm32-wasip2) once per SIMD level,
# plus a test-only `hostile` build, into $CARGO_TARGET_DIR/edge/ (default target/edge/):
#   squint-qa-simd128.wasm  squint-qa-relaxed.wasm  squint-qa-hostile.wasm
# Installs only the wasm32-wasip2 target; idempotent.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
cd "$repo"

rustup target add wasm32-wasip2 >/dev/null 2>&1 || true
target="${CARGO_TARGET_DIR:-$repo/target}"
out="$target/edge"
mkdir -p "$out"

# One target dir per SIMD level, so neither build invalidates the other; the hostile build
# shares the simd128 one (only the guest crate recompiles).
build() {
  local name=$1 level=$2 features=$3
  shift 3
  CARGO_PROFILE_RELEASE_DEBUG=false \
  CARGO_TARGET_WASM32_WASIP2_RUSTFLAGS="-C target-feature=$features" \
    cargo build --locked --release -p squint-edge-guest --target wasm32-wasip2 \
    --target-dir "$target/edge-$level" "$@"
  cp "$target/edge-$level/wasm32-wasip2/release/squint_edge_guest.wasm" "$out/$name.wasm"
  echo "$out/$name.wasm: $(stat -c %s "$out/$name.wasm") bytes"
}
build squint-qa-simd128 simd128 +simd128
build squint-qa-relaxed relaxed +simd128,+relaxed-simd
build squint-qa-hostile simd128 +simd128 --features hostile
