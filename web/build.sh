#!/usr/bin/env bash
# Builds the browser module twice (simd128 and relaxed-simd) and the wasm-bindgen glue into
# web/www/pkg/{simd128,relaxed}/. Installs what it needs (the wasm32 target, wasm-bindgen-cli at
# the exact version of the wasm-bindgen crate in Cargo.lock) and nothing else; idempotent.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
cd "$repo"

rustup target add wasm32-unknown-unknown >/dev/null 2>&1 || true
want=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' Cargo.lock)
have=$(wasm-bindgen --version 2>/dev/null | awk '{print $2}' || true)
if [[ "$have" != "$want" ]]; then
  echo "installing wasm-bindgen-cli $want (have: ${have:-none})"
  cargo install wasm-bindgen-cli --version "$want" --force
fi

# The same crate twice: one build per SIMD level, each in its own target dir so neither
# invalidates the other. The page picks one by feature detection.
for level in simd128 relaxed; do
  case $level in
    simd128) features="+simd128" ;;
    relaxed) features="+simd128,+relaxed-simd" ;;
  esac
  CARGO_PROFILE_RELEASE_DEBUG=false \
  CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS="-C target-feature=$features" \
    cargo build --locked --release -p squint-web --target wasm32-unknown-unknown \
    --target-dir "${CARGO_TARGET_DIR:-target}/web-$level"
  out="web/www/pkg/$level"
  rm -rf "$out"
  wasm-bindgen --target web --no-typescript --out-dir "$out" \
    "${CARGO_TARGET_DIR:-target}/web-$level/wasm32-unknown-unknown/release/squint_web.wasm"
  size=$(stat -c %s "$out/squint_web_bg.wasm")
  gz=$(gzip -9 -c "$out/squint_web_bg.wasm" | wc -c)
  echo "web/www/pkg/$level: squint_web_bg.wasm $size bytes ($gz gzipped)"
done
