#!/bin/sh
# Builds hush's E2EE core (crates/hush-wasm) for browsers:
#   cargo (wasm32-unknown-unknown, profile `wasm`: opt-level 3, LTO, one codegen unit)
#   → wasm-bindgen --target web → wasm-opt -O3 (-Oz for wasm-size; when binaryen is available)
# into js/packages/e2ee/wasm/ (gitignored). Prints raw and gzip sizes.
# Needs: rustup, cargo; installs wasm-bindgen-cli (crates.io) and binaryen (npm)
# into $HUSH_TOOLS when missing.
#
#   sh scripts/build-wasm.sh            the package build
#   sh scripts/build-wasm.sh --kat      + test-only exports (feature `kat`) into wasm-kat/
#   sh scripts/build-wasm.sh --no-opt   skip wasm-opt
#   sh scripts/build-wasm.sh --no-backup  without the Argon2id backup exports, into $CARGO_TARGET_DIR/hush-wasm-nobackup (size measurement)
#
# Environment: HUSH_TOOLS (default ~/.cache/hush-tools): where
# wasm-bindgen-cli is installed when missing; CARGO_TARGET_DIR (default
# <repo>/target); HUSH_WASM_PROFILE (default wasm, opt-level 3; wasm-size: opt-level z);
# HUSH_WASM_FEATURES (extra cargo features); HUSH_WASM_OUT (output directory).
set -eu

here=$(cd "$(dirname "$0")/.." && pwd)
repo=$(cd "$here/../../.." && pwd)
out="$here/wasm"
features="${HUSH_WASM_FEATURES:-}"
opt=1
nodefault=0
for a in "$@"; do
  case "$a" in
    --kat) out="$here/wasm-kat"; features="${features:+$features,}kat" ;;
    --no-opt) opt=0 ;;
    --no-backup) nodefault=1 ;;
    *) echo "build-wasm.sh: unknown argument $a" >&2; exit 2 ;;
  esac
done
out="${HUSH_WASM_OUT:-$out}"
profile="${HUSH_WASM_PROFILE:-wasm}"
target_dir="${CARGO_TARGET_DIR:-$repo/target}"
if [ "$nodefault" = 1 ] && [ -z "${HUSH_WASM_OUT:-}" ]; then out="$target_dir/hush-wasm-nobackup"; fi
HUSH_TOOLS="${HUSH_TOOLS:-$HOME/.cache/hush-tools}"
PATH="$HUSH_TOOLS/bin:$PATH"
export PATH

rustup target add wasm32-unknown-unknown >/dev/null 2>&1 || true

# wasm-bindgen-cli must be the version of the wasm-bindgen crate in Cargo.lock.
want=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' "$repo/Cargo.lock")
have=$(wasm-bindgen --version 2>/dev/null | awk '{print $2}' || true)
if [ "$have" != "$want" ]; then
  echo "build-wasm.sh: installing wasm-bindgen-cli $want into $HUSH_TOOLS (found: ${have:-none})" >&2
  cargo install wasm-bindgen-cli --version "$want" --root "$HUSH_TOOLS"
fi

# binaryen's wasm-opt, version 116 or later: older ones (Debian bookworm's
# 108) rewrite wasm-bindgen's externref table into a module that fails to
# instantiate. Taken from PATH when recent enough, else from npm's `binaryen`
# package (pinned) installed under $HUSH_TOOLS/binaryen-npm.
BINARYEN_NPM_VERSION=132.0.0
wasm_opt=""
if [ "$opt" = 1 ]; then
  for cand in wasm-opt "$HUSH_TOOLS/binaryen-npm/node_modules/.bin/wasm-opt"; do
    v=$("$cand" --version 2>/dev/null | awk '{print $3}' || true)
    case "$v" in ''|*[!0-9]*) continue ;; esac
    if [ "$v" -ge 116 ]; then wasm_opt="$cand"; break; fi
  done
  if [ -z "$wasm_opt" ] && command -v npm >/dev/null 2>&1; then
    echo "build-wasm.sh: installing binaryen $BINARYEN_NPM_VERSION (npm) into $HUSH_TOOLS/binaryen-npm" >&2
    npm install --no-save --prefix "$HUSH_TOOLS/binaryen-npm" "binaryen@$BINARYEN_NPM_VERSION" >/dev/null 2>&1 || true
    if [ -x "$HUSH_TOOLS/binaryen-npm/node_modules/.bin/wasm-opt" ]; then
      wasm_opt="$HUSH_TOOLS/binaryen-npm/node_modules/.bin/wasm-opt"
    fi
  fi
fi

set -- --manifest-path "$repo/Cargo.toml" -p hush-wasm --lib --target wasm32-unknown-unknown --profile "$profile"
if [ -n "$features" ]; then set -- "$@" --features "$features"; fi
if [ "$nodefault" = 1 ]; then set -- "$@" --no-default-features; fi
CARGO_TARGET_DIR="$target_dir" cargo build "$@"

raw="$target_dir/wasm32-unknown-unknown/$profile/hush_wasm.wasm"
mkdir -p "$out"
wasm-bindgen --target web --out-dir "$out" --out-name hush_wasm "$raw"
wasm="$out/hush_wasm_bg.wasm"
if [ -n "$wasm_opt" ]; then
  # wasm-bindgen's output uses these post-MVP features (Rust's default wasm32 ones).
  case "$profile" in *size*) level=-Oz ;; *) level=-O3 ;; esac
  "$wasm_opt" "$level" --strip-debug --strip-producers --enable-bulk-memory \
    --enable-nontrapping-float-to-int --enable-sign-ext --enable-mutable-globals \
    --enable-multivalue --enable-reference-types "$wasm" -o "$wasm.opt"
  mv "$wasm.opt" "$wasm"
elif [ "$opt" = 1 ]; then
  echo "build-wasm.sh: no wasm-opt >= 116 (and npm could not install binaryen): skipping -Oz" >&2
fi

size() { wc -c < "$1" | tr -d ' '; }
gz() { gzip -9 -c "$1" | wc -c | tr -d ' '; }
echo "hush-wasm ($profile${features:+, features $features}) → $out"
echo "  cargo output    $(size "$raw") bytes"
echo "  hush_wasm_bg.wasm $(size "$wasm") bytes raw, $(gz "$wasm") bytes gzip -9"
echo "  hush_wasm.js    $(size "$out/hush_wasm.js") bytes raw, $(gz "$out/hush_wasm.js") bytes gzip -9"
