#!/usr/bin/env python3
"""Prints issue 13's suite 1 speed ratios from the last criterion run of
`cargo bench -p hush-crypto --bench suite1_ratios`.

Reads `$CARGO_TARGET_DIR/criterion/**/new/{benchmark,estimates}.json`
(default target dir: ./target) and prints, with their targets:

* sequential ratios: from the medians of the `suite1 ratios` group (each op
  measured on its own, one after the other);
* interleaved ratios: the medians of the `suite1 ratios interleaved` group,
  where each suite 1 op alternates with its baseline ops within every
  iteration, so both run under the same load (its "time" is the ratio, in
  microseconds). On a shared machine these are the ones to trust.

Exits 1 if a bench is missing, 2 if an interleaved ratio is over its target
(a report, not a gate: the machine is shared and noisy).

    python3 scripts/bench-ratios.py [--json]
"""
import glob
import json
import os
import sys

GROUP = "suite1 ratios"
INTERLEAVED = "suite1 ratios interleaved (us = ratio)"


def runs(root, group):
    """(function id, directory of its last run) of every benchmark in the group."""
    pattern = os.path.join(root, "criterion", "**", "new", "benchmark.json")
    for path in glob.glob(pattern, recursive=True):
        with open(path) as f:
            bench = json.load(f)
        if bench.get("group_id") == group:
            yield bench["function_id"], os.path.dirname(path)


def fastest(root, group):
    """{function id: fastest sample's ns per iteration} of the group's last run."""
    out = {}
    for fid, run in runs(root, group):
        with open(os.path.join(run, "sample.json")) as f:
            sample = json.load(f)
        out[fid] = min(t / i for t, i in zip(sample["times"], sample["iters"]))
    return out


def medians(root, group):
    """{function id: median ns} of the group's last run."""
    out = {}
    for fid, run in runs(root, group):
        with open(os.path.join(run, "estimates.json")) as f:
            out[fid] = json.load(f)["median"]["point_estimate"]
    return out


def main():
    root = os.environ.get("CARGO_TARGET_DIR") or os.path.join(os.getcwd(), "target")
    m = medians(root, GROUP)
    il = medians(root, INTERLEAVED)
    need = [
        "x25519 keygen", "x25519 dh", "ed25519 sign 1 KiB", "ed25519 verify 1 KiB",
        "aead seal 1 KiB", "aead open 1 KiB", "seal+sign 1 KiB to 1",
        "seal+sign 1 KiB to 11", "open+verify 1 KiB",
    ]
    inter = ["seal+sign 1 KiB to 1", "open+verify 1 KiB", "each extra recipient"]
    missing = [n for n in need if n not in m] + [n for n in inter if n not in il]
    if missing:
        print(f"missing benches in {root}/criterion: {missing}", file=sys.stderr)
        return 1
    seal_base = m["x25519 keygen"] + m["x25519 dh"] + m["ed25519 sign 1 KiB"] + m["aead seal 1 KiB"]
    open_base = m["x25519 dh"] + m["ed25519 verify 1 KiB"] + m["aead open 1 KiB"]
    extra = (m["seal+sign 1 KiB to 11"] - m["seal+sign 1 KiB to 1"]) / 10
    extra_base = m["x25519 keygen"] + m["x25519 dh"]
    rows = [
        ("seal+sign 1 KiB to 1 device", m["seal+sign 1 KiB to 1"], seal_base, 1.15),
        ("open+verify 1 KiB", m["open+verify 1 KiB"], open_base, 1.15),
        ("each extra recipient device", extra, extra_base, 1.10),
    ]
    interleaved = [(name, il[key] / 1000, t) for (name, _, _, t), key in zip(rows, inter)]
    if "--json" in sys.argv:
        print(json.dumps({
            "medians_ns": m,
            "fastest_sample_ns": fastest(root, GROUP),
            "sequential": {name: {"ns": v, "baseline_ns": b, "ratio": v / b, "target": t}
                           for name, v, b, t in rows},
            "interleaved": {name: {"ratio": r, "target": t} for name, r, t in interleaved},
        }, indent=2))
    else:
        for name in need:
            print(f"{name:<28} {m[name] / 1000:9.2f} us")
        print("\nsequential (medians of ops measured one after the other):")
        for name, v, b, t in rows:
            verdict = "ok" if v / b <= t else "OVER"
            print(f"  {name:<30} {v / 1000:8.2f} us / baseline {b / 1000:8.2f} us "
                  f"= {v / b:.3f} (target <= {t}) {verdict}")
        print("interleaved (each op alternating with its baseline, same load):")
        for name, r, t in interleaved:
            verdict = "ok" if r <= t else "OVER"
            print(f"  {name:<30} {r:.3f} (target <= {t}) {verdict}")
    return 0 if all(r <= t for _, r, t in interleaved) else 2


if __name__ == "__main__":
    sys.exit(main())
