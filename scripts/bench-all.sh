#!/usr/bin/env bash
# Runs every `hush bench` scenario the way BENCHMARKS.md reports them: three
# sets, each of three `fanout` runs and one run of every other scenario
# (interleaved, so machine noise spreads over all of them), then two
# `fanout --max` ramps. One summary line per run. Takes about 25 minutes.
#
#   cargo build --release -p hush --features bench && scripts/bench-all.sh [path/to/hush]
set -euo pipefail
hush=${1:-target/release/hush}
summary='
import json, sys
r = json.load(sys.stdin)
l = r.get("latency_ms") or {}
keys = ["lost", "server_cpu_s", "bench_cpu_s", "deliveries_per_server_cpu_s",
        "server_cpu_s_per_million", "rss_per_connection_bytes", "cpu_ms_per_connection"]
print(r["scenario"], "p50", l.get("p50"), "p99", l.get("p99"), "p99.9", l.get("p999"),
      *(f"{k}={r.get(k)}" for k in keys), "load", open("/proc/loadavg").read().split()[0],
      flush=True)
'
run() { "$hush" bench "$@" --json 2>/dev/null | python3 -c "$summary"; }
for _ in 1 2 3; do
  for _ in 1 2 3; do run fanout; done
  run encrypted
  run channels
  run client-events
  run connections --count 5000
done
for _ in 1 2; do
  "$hush" bench fanout --max --duration 10 2>&1 | grep -E "deliveries|latency|server CPU|per CPU|bench CPU"
done
