#!/usr/bin/env bash
# Coverage-guided fuzzing of every parser a peer can reach (docs/FUZZING.md).
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#
# Builds the targets in fuzz/ with libFuzzer (libfuzzer-sys) and the stable
# compiler's SanitizerCoverage flags (no nightly), then runs each target for
# SECONDS_PER_TARGET (default 60) on its committed seed corpus
# (fuzz/corpus/TARGET) plus a scratch corpus of what it finds
# (target dir, not committed). Exits non-zero if any target crashes (a
# panic: a failed oracle), hangs (10 s on one input) or runs out of memory,
# and prints the input's path and the command that reproduces it.
#
# Environment: CARGO_TARGET_DIR (the fuzz build goes to $CARGO_TARGET_DIR/fuzz),
# FUZZ_PARALLEL (targets run at once, default: number of CPUs), FUZZ_ARGS
# (extra libFuzzer flags), FUZZ_NICE (nice level, default 0).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
seconds=${1:-60}
shift || true

log() { printf '\n==> %s\n' "$*"; }

# libFuzzer is C++ compiled by libfuzzer-sys's build script.
if ! command -v c++ >/dev/null 2>&1; then
  log "installing g++ (apt-get) for libFuzzer"
  if [ "$(id -u)" = 0 ]; then SUDO=(); else SUDO=(sudo); fi
  "${SUDO[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq g++
fi

triple=$(rustc -vV | sed -n 's/^host: //p')
target_dir="${CARGO_TARGET_DIR:-$root/target}/fuzz"
# What cargo-fuzz passes, minus the nightly-only sanitizer (-Zsanitizer):
# SanitizerCoverage with inline 8-bit counters, PC table, comparison tracing
# and stack depth; `--cfg fuzzing`; debug assertions and overflow checks on.
# `--target` keeps these flags off build scripts and proc macros.
export RUSTFLAGS="--cfg fuzzing -Cpasses=sancov-module \
-Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
-Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares \
-Cllvm-args=-sanitizer-coverage-stack-depth \
-Cdebug-assertions -Coverflow-checks"

all_targets=$(sed -n 's/^name = "\([a-z0-9_]*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^hush-fuzz$')
targets=${*:-$all_targets}

# fuzz/Cargo.lock is its own; after a dependency change in the workspace it
# must be refreshed (same versions as the workspace lock, plus the fuzzing
# crates).
if ! (cd fuzz && cargo metadata --locked --format-version 1 >/dev/null 2>&1); then
  echo "fuzz/Cargo.lock is out of date; refresh it with:" >&2
  echo "  (cd fuzz && cp ../Cargo.lock Cargo.lock && cargo update -w)" >&2
  exit 1
fi

log "building fuzz targets ($triple, $target_dir)"
build_start=$(date +%s)
(cd fuzz && CARGO_TARGET_DIR="$target_dir" nice -n "${FUZZ_NICE:-0}" \
  cargo build --locked --release --target "$triple" --bins)
echo "build: $(( $(date +%s) - build_start )) s"
bin_dir="$target_dir/$triple/release"

# Per-target input size limits: frames and bodies are small; the session
# and API targets take sequences of operations.
max_len() {
  case "$1" in
    session|http_api|suite1_envelope) echo 16384 ;;
    directory_proofs) echo 8192 ;;
    *) echo 4096 ;;
  esac
}

run_target() {
  local t=$1
  local corpus="$root/fuzz/corpus/$t"
  local scratch="$target_dir/corpus/$t"
  local artifacts="$target_dir/artifacts/$t"
  mkdir -p "$corpus" "$scratch" "$artifacts"
  local dict=()
  [ -f "$root/fuzz/dict/$t.dict" ] && dict=(-dict="$root/fuzz/dict/$t.dict")
  local logfile="$artifacts/last-run.log"
  local rc=0
  nice -n "${FUZZ_NICE:-0}" "$bin_dir/$t" \
    -max_total_time="$seconds" -max_len="$(max_len "$t")" \
    -rss_limit_mb=2048 -malloc_limit_mb=1024 -timeout=10 \
    -print_final_stats=1 -artifact_prefix="$artifacts/" "${dict[@]}" \
    ${FUZZ_ARGS:-} "$scratch" "$corpus" >"$logfile" 2>&1 || rc=$?
  {
    local execs rate
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$logfile")
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$logfile")
    if [ $rc -eq 0 ]; then
      printf '%-16s ok      %6ss %10s execs %7s/s\n' "$t" "$seconds" "${execs:-?}" "${rate:-?}"
    else
      printf '%-16s FAILED  exit %s; log: %s\n' "$t" "$rc" "$logfile"
      grep -E -A2 'panicked|ERROR: libFuzzer' "$logfile" | head -6 || true
      local crash
      crash=$(grep -o 'Test unit written to .*' "$logfile" | sed 's/Test unit written to //' | tail -1)
      if [ -n "$crash" ]; then
        echo "  crash input: $crash"
        echo "  reproduce:   $bin_dir/$t $crash"
      fi
    fi
  } >"$artifacts/result"
  return $rc
}

# Targets run FUZZ_PARALLEL at a time (default: the number of CPUs).
parallel=${FUZZ_PARALLEL:-$(nproc)}
log "fuzzing: ${seconds}s per target, $parallel at a time"
pids=()
names=()
for t in $targets; do
  run_target "$t" &
  pids+=($!)
  names+=("$t")
  while [ "$(jobs -rp | wc -l)" -ge "$parallel" ]; do sleep 1; done
done
status=0
for i in "${!pids[@]}"; do
  wait "${pids[$i]}" || status=1
  cat "$target_dir/artifacts/${names[$i]}/result"
done
exit $status
