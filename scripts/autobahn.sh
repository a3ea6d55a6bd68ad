#!/usr/bin/env bash
# RFC 6455 conformance: runs the Autobahn TestSuite's fuzzingclient
# (autobahntestsuite from PyPI; Python 2.7 only) against `hush serve` on a
# free loopback port and writes a summary (docs/FUZZING.md, "Autobahn").
#
#   HUSH_BIN=target/debug/hush scripts/autobahn.sh [OUTDIR] [CASES]
#
# OUTDIR defaults to target/autobahn; CASES is a JSON list of case patterns
# (default ["*"] minus 9.*, 12.*, 13.*: performance and permessage-deflate,
# which hush does not negotiate). The suite is installed with pip into
# $AUTOBAHN_PREFIX (default target/autobahn-py2) on first use; it needs a
# Python 2.7 interpreter: $PYTHON2, `python2.7` on PATH, or pyenv's 2.7.
# Exits non-zero only if the run itself fails; the summary says what passed.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
target="${CARGO_TARGET_DIR:-$root/target}"
outdir=${1:-$target/autobahn}
cases=${2:-'["*"]'}
hush=${HUSH_BIN:-$target/debug/hush}
prefix=${AUTOBAHN_PREFIX:-$target/autobahn-py2}

log() { printf '\n==> %s\n' "$*"; }

py2=${PYTHON2:-}
if [ -z "$py2" ]; then
  for c in python2.7 python2 "$HOME/.pyenv/versions/2.7.18/bin/python"; do
    if command -v "$c" >/dev/null 2>&1 && "$c" -c 'import sys; assert sys.version_info[:2] == (2, 7)' 2>/dev/null; then
      py2=$(command -v "$c"); break
    fi
  done
fi
if [ -z "$py2" ]; then
  echo "autobahn: no Python 2.7 interpreter (set PYTHON2); Debian 12 has no python2 package" >&2
  exit 2
fi
site="$prefix/lib/python2.7/site-packages"
if [ ! -d "$site/autobahntestsuite" ]; then
  log "installing autobahntestsuite (pip, Python 2.7) into $prefix"
  # --ignore-installed: never touch the interpreter's own packages.
  "$py2" -m pip install --quiet --no-cache-dir --ignore-installed --prefix "$prefix" autobahntestsuite
fi
[ -x "$hush" ] || { echo "autobahn: no hush binary at $hush (build it or set HUSH_BIN)" >&2; exit 2; }

work=$(mktemp -d)
trap 'kill "$hush_pid" 2>/dev/null || true; wait "$hush_pid" 2>/dev/null || true; rm -rf "$work"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
log "starting hush on 127.0.0.1:$port (development app: key app-key)"
HUSH_SERVER__DATA_DIR="$work/data" HUSH_LOG=warn "$hush" serve --host 127.0.0.1 --port "$port" \
  >"$work/hush.log" 2>&1 &
hush_pid=$!
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$port/up" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS "http://127.0.0.1:$port/up" >/dev/null

mkdir -p "$outdir"
cat >"$work/spec.json" <<JSON
{
  "outdir": "$outdir",
  "servers": [{"agent": "hush", "url": "ws://127.0.0.1:$port/app/app-key?protocol=7"}],
  "cases": $cases,
  "exclude-cases": ["9.*", "12.*", "13.*"],
  "exclude-agent-cases": {}
}
JSON
cat >"$work/wstest.py" <<'PY'
import site, sys
site.addsitedir(sys.argv.pop(1))
from autobahntestsuite.wstest import run
sys.argv[0] = "wstest"
run()
PY
log "running fuzzingclient (report: $outdir/index.html)"
start=$(date +%s)
(cd "$work" && timeout 1800 "$py2" wstest.py "$site" -m fuzzingclient -s spec.json >"$work/wstest.log" 2>&1) || {
  tail -20 "$work/wstest.log"; exit 1; }
echo "fuzzingclient: $(( $(date +%s) - start )) s"
kill -0 "$hush_pid" || { echo "hush died during the run" >&2; cat "$work/hush.log" >&2; exit 1; }

python3 - "$outdir" <<'PY' | tee "$outdir/summary.txt"
# Autobahn expects an echo server; hush greets every connection with
# pusher:connection_established and answers non-JSON text with pusher:error.
# So besides Autobahn's own verdict, each case is judged again with hush's
# own protocol messages removed from what was received:
#   framing-ok  what is left is exactly what Autobahn expects (pongs, nothing,
#               or the connection failed) -- the WebSocket layer passed;
#   echo        Autobahn expects its messages echoed back: not applicable to
#               a Pusher server (the close behaviour still counts);
#   differs     anything else.
import collections, json, os, sys
out = sys.argv[1]
index = json.load(open(os.path.join(out, "index.json")))["hush"]
def key(c): return [int(x) for x in c.split(".")]
def own(ev):
    return ev[0] == "message" and isinstance(ev[1], str) and ev[1].startswith(('{"event":"pusher:', '{"event":"hush:'))
def judge(case):
    d = json.load(open(os.path.join(out, index[case]["reportfile"])))
    got = [e for e in d["received"] if not own(e)]
    got = [[e[0], e[1]] for e in got]
    for verdict, alternatives in d["expected"].items():
        want = [[e[0], e[1]] for e in alternatives]
        if got == want:
            return ("framing-ok" if verdict == "OK" else "framing-" + verdict.lower()), d
    if any(e[0] == "message" for alts in d["expected"].values() for e in alts):
        return "echo", d
    return "differs", d
print("Autobahn fuzzingclient against hush: %d cases" % len(index))
by = collections.Counter(v["behavior"] for v in index.values())
print("Autobahn's verdicts: " + ", ".join("%s %d" % kv for kv in sorted(by.items())))
rows = []
for c in sorted(index, key=key):
    verdict, d = judge(c)
    rows.append((c, verdict, index[c].get("behaviorClose"), d.get("remoteCloseCode"), d["description"]))
print("With hush's own messages ignored: " + ", ".join(
    "%s %d" % kv for kv in sorted(collections.Counter(r[1] for r in rows).items())))
print("Close behaviour: " + ", ".join(
    "%s %d" % kv for kv in sorted(collections.Counter(r[2] for r in rows).items())))
print("Close codes hush sent: " + ", ".join(
    "%s %d" % kv for kv in sorted(collections.Counter(str(r[3]) for r in rows).items())))
groups = collections.OrderedDict()
for c, verdict, close, code, _ in rows:
    g = c.split(".")[0]
    groups.setdefault(g, []).append((verdict, close, code))
print("\nBy group: framing verdicts | close behaviour | close codes sent")
for g, items in groups.items():
    f = collections.Counter(i[0] for i in items)
    cl = collections.Counter(i[1] for i in items)
    co = collections.Counter(str(i[2]) for i in items)
    print("  %-3s %3d cases: %s | %s | %s" % (g, len(items),
        ", ".join("%s %d" % kv for kv in sorted(f.items())),
        ", ".join("%s %d" % kv for kv in sorted(cl.items())),
        ", ".join("%s %d" % kv for kv in sorted(co.items()))))
print("\nCases whose framing differs or whose close is not OK:")
for c, verdict, close, code, desc in rows:
    if verdict == "differs" or close not in ("OK", "INFORMATIONAL"):
        desc = desc.replace("<b>", "").replace("</b>", "").replace("<br>", " ")
        print("  %-8s %-12s close %-13s code %-5s %s" % (c, verdict, close, code, desc[:60]))
PY
