#!/usr/bin/env bash
# The whole test suite: Rust (unit, integration, doc tests), the
# compatibility tests with the real JavaScript clients and the browser
# package's tests in headless Chromium. Installs what it needs.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*"; }

need_apt=()
# PostgreSQL store tests start their own server from these binaries.
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || need_apt+=(postgresql)
# openssl: the PostgreSQL TLS test makes its certificates with it.
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
command -v node >/dev/null 2>&1 || need_apt+=(nodejs)
command -v npm >/dev/null 2>&1 || need_apt+=(npm)
# gcore: the canary test searches a memory dump of the running server.
command -v gcore >/dev/null 2>&1 || need_apt+=(gdb)
# redis-server: the cluster tests start their own (crates/hush-server/tests/cluster.rs).
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
# Debian's Chromium for the browser tests (js/test, driven by playwright-core;
# no browser download). CHROMIUM_PATH names another one.
[ -n "${CHROMIUM_PATH:-}" ] || command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
if [ ${#need_apt[@]} -gt 0 ]; then
  log "installing ${need_apt[*]} (apt-get)"
  if [ "$(id -u)" = 0 ]; then SUDO=(); else SUDO=(sudo); fi
  "${SUDO[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq "${need_apt[@]}"
fi

log "cargo fmt --check"
cargo fmt --all --check

log "cargo clippy (every crate, every target, every feature; warnings are errors)"
cargo clippy --locked --workspace --all-targets --all-features -- -D warnings

# `--features hush/bench` on both: the same hush binary (with `hush bench`)
# serves the integration tests, the smoke benchmark and the compat tests.
log "cargo build (the hush binary used by the compatibility tests)"
cargo build --locked --workspace --bins --features hush/bench

log "cargo test"
cargo test --locked --workspace --features hush/bench

log "fuzz smoke: every fuzz target for 20 s (scripts/fuzz.sh 20, docs/FUZZING.md)"
./scripts/fuzz.sh 20

log "hush bench fanout --smoke (nothing may be lost)"
"${CARGO_TARGET_DIR:-$PWD/target}/debug/hush" bench fanout --smoke

log "hush bench mailbox (small: 2,000 messages through the store, 200 queued for a reconnecting device; fails on any loss)"
"${CARGO_TARGET_DIR:-$PWD/target}/debug/hush" bench mailbox --messages 2000 --queued 200

log "hush bench soak --smoke (300 connections with churn for 15 s: nothing lost, nothing leaked)"
"${CARGO_TARGET_DIR:-$PWD/target}/debug/hush" bench soak --smoke

log "compatibility tests with pusher-js, the Pusher Node SDK and Laravel Echo (one node, then a 3-node cluster)"
target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
export HUSH_BIN="$target_dir/debug/hush"
(
  cd tests/compat
  npm ci --no-audit --no-fund --loglevel=error
  npm test
  # The same suite against a cluster: 3 nodes on one Redis and one
  # PostgreSQL (started by the tests in temporary directories), the HTTP API
  # on one node and the clients spread over the others (README there).
  npm run test:cluster
)

# The wasm core (crates/hush-wasm) for wasm32 with wasm-bindgen-cli and
# binaryen, which js/packages/e2ee/scripts/build-wasm.sh installs under
# ~/.cache/hush-tools when missing (once per machine).
log "browser: @hush/e2ee replays the Rust vectors in Node, then the clinic demo in headless Chromium (js/README.md)"
(
  cd js
  npm ci --no-audit --no-fund --loglevel=error
  npm test
)
log "all tests passed"
