#!/usr/bin/env bash
# The instruction-count guard: callgrind instructions per packet of the data path, net of
# the benchmark harness, for established packets in each direction of each forwarding mode
# (dr nat nat_reply fullnat fullnat_reply tunnel, over IPv6 dr6 nat6 nat6_reply fullnat6
# fullnat6_reply tunnel6, NAT64 nat64 nat64_reply, and nat, fullnat, nat6 and fullnat6 with
# the SYN proxy: *_synproxy, *_synproxy_reply), per new connection (dr nat fullnat tunnel,
# over IPv6 dr6 nat6 fullnat6 tunnel6, nat64) and per proxied handshake (nat_synproxy,
# fullnat_synproxy, nat6_synproxy, fullnat6_synproxy: the client's SYN, its cookie ACK and
# the server's SYN-ACK together), compared with the committed baseline perf/baseline.json.
#
#   perf/guard.sh            measure and compare; exit 1 when any figure grew more than 3 %
#                            (each one named, with its growth), 2 on a usage or setup error
#   perf/guard.sh --bless    measure and rewrite perf/baseline.json; only on purpose, in a
#                            commit that says why the figures moved
#
# Instruction counts, not time: they are the same on a loaded 2-core CI machine as on a
# quiet one. How a figure is measured (perf/RESULTS.md, "Instruction counts"):
#   valgrind --tool=callgrind rvs-perf pipeline --mode M --bursts 1000 --runs 1
# runs each L4Bench::timed_* function twice (warm-up and one run) over 1000 bursts of 32,
# i.e. 64 000 packets or SYNs; the figure is the inclusive cost of timed_worker_run minus
# that of timed_harness_run (the same loop without the worker), divided by 64 000 (and
# timed_new_conn_run minus timed_new_conn_harness_run for new connections, and
# timed_handshake_run minus timed_handshake_harness_run, over its three phases, for
# proxied handshakes: 64 000 connections of three packets each).
#
# Determinism: the data path seeds its hash tables (connection table, neighbours, routes,
# addresses) from std's RandomState, on purpose (hosts on the wire must not be able to pick
# colliding keys). Probe lengths then differ from process to process, by up to ~8
# instructions per packet (0.6 %). The guard runs the benchmark with a tiny LD_PRELOAD shim
# whose getrandom(2) returns a fixed pattern (built here with cc), so every run gets the
# same seeds and the figures repeat exactly. Needs valgrind, cc and python3
# (vm-testbed/setup-host.sh installs them).
#
# Builds rvs-perf in release mode (`cargo build --release -p rvs-perf`, as perf/bench.sh)
# into $CARGO_TARGET_DIR if set, else the repository's target/.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
baseline="$root/perf/baseline.json"
MODES=(dr nat nat_reply fullnat fullnat_reply tunnel nat_synproxy nat_synproxy_reply fullnat_synproxy fullnat_synproxy_reply dr6 nat6 nat6_reply fullnat6 fullnat6_reply tunnel6 nat64 nat64_reply nat6_synproxy nat6_synproxy_reply fullnat6_synproxy fullnat6_synproxy_reply)
BURSTS=1000
THRESHOLD_PCT=3

die() { printf 'perf/guard.sh: %s\n' "$*" >&2; exit 2; }

bless=0
case "${1:-}" in
    "") ;;
    --bless) bless=1 ;;
    -h | --help)
        sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
        exit 0
        ;;
    *) die "unknown argument '$1' (usage: perf/guard.sh [--bless])" ;;
esac
(($# <= 1)) || die "too many arguments (usage: perf/guard.sh [--bless])"

for tool in valgrind callgrind_annotate cc python3 cargo; do
    command -v "$tool" >/dev/null || die "$tool not found (vm-testbed/setup-host.sh installs valgrind, build-essential and python3)"
done

target="${CARGO_TARGET_DIR:-$root/target}"
case "$target" in
    /*) ;;
    *) target="$PWD/$target" ;;
esac
(cd "$root" && CARGO_TARGET_DIR="$target" cargo build --release -p rvs-perf >&2)
bin="$target/release/rvs-perf"

work="$(mktemp -d "${TMPDIR:-/tmp}/rvs-guard.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# getrandom(2) with a fixed answer, for repeatable hash seeds (see the header).
cat >"$work/fixrandom.c" <<'EOF'
#include <stddef.h>
#include <sys/types.h>
ssize_t getrandom(void *buf, size_t len, unsigned int flags) {
    unsigned char *p = buf;
    (void)flags;
    for (size_t i = 0; i < len; i++)
        p[i] = (unsigned char)(0x5a ^ (i * 37));
    return (ssize_t)len;
}
EOF
cc -O2 -shared -fPIC -o "$work/libfixrandom.so" "$work/fixrandom.c"

for m in "${MODES[@]}"; do
    printf 'perf/guard.sh: callgrind %s (%s bursts)\n' "$m" "$BURSTS" >&2
    LD_PRELOAD="$work/libfixrandom.so" valgrind --tool=callgrind --callgrind-out-file="$work/cg.$m" \
        "$bin" pipeline --mode "$m" --bursts "$BURSTS" --runs 1 >"$work/out.$m" 2>"$work/vg.$m" ||
        { cat "$work/vg.$m" >&2; die "rvs-perf pipeline --mode $m failed under valgrind"; }
    # Every function (--threshold=100; by default the listing stops at 99 % of the total,
    # which can leave out a small timed_harness_run beside a large handshake run), and no
    # source annotation (not read here).
    callgrind_annotate --inclusive=yes --threshold=100 --auto=no "$work/cg.$m" >"$work/annotate.$m"
done

python3 - "$work" "$baseline" "$BURSTS" "$THRESHOLD_PCT" "$bless" "${MODES[@]}" <<'PY'
import json, re, sys

work, baseline_path, bursts, threshold, bless = sys.argv[1:6]
modes = sys.argv[6:]
bursts, threshold, bless = int(bursts), float(threshold), bless == "1"
# Each timed function runs twice (warm-up and one run) over `bursts` bursts of 32.
units = 2 * bursts * 32


def err(msg):
    print(f"perf/guard.sh: {msg}", file=sys.stderr)
    sys.exit(2)


line = re.compile(r"^\s*([\d,]+) .*::L4Bench::(timed_\w+_run) \[")

figures = {}
for m in modes:
    inc = {}
    with open(f"{work}/annotate.{m}") as f:
        for l in f:
            if (g := line.match(l)):
                if g.group(2) in inc:
                    err(f"{m}: {g.group(2)} listed twice by callgrind_annotate")
                inc[g.group(2)] = int(g.group(1).replace(",", ""))
    for what, worker, harness in [("", "timed_worker_run", "timed_harness_run"),
                                  ("_new_conn", "timed_new_conn_run", "timed_new_conn_harness_run"),
                                  ("_handshake", "timed_handshake_run", "timed_handshake_harness_run")]:
        if worker in inc and harness in inc:
            figures[m + what] = round((inc[worker] - inc[harness]) / units, 1)
        elif what == "" or worker in inc or harness in inc:
            err(f"{m}: no inclusive cost for {worker}/{harness} in the callgrind profile")

order = ([m for m in modes] + [m + "_new_conn" for m in modes if m + "_new_conn" in figures]
         + [m + "_handshake" for m in modes if m + "_handshake" in figures])

if bless:
    doc = {
        "about": "callgrind instructions per packet (per SYN for *_new_conn), net of the harness; "
                 "written by `perf/guard.sh --bless`, checked by perf/guard.sh (fails above +3 %)",
        "bursts": bursts,
        "figures": {k: figures[k] for k in order},
    }
    with open(baseline_path, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    for k in order:
        print(f"{k:28} {figures[k]:9.1f}")
    print(f"perf/guard.sh: wrote {baseline_path}; commit it with the reason the figures moved")
    sys.exit(0)

try:
    with open(baseline_path) as f:
        base = json.load(f)
except FileNotFoundError:
    err(f"{baseline_path} is missing; record one with perf/guard.sh --bless")
if base.get("bursts") != bursts:
    err(f"the baseline was measured with {base.get('bursts')} bursts, this guard uses {bursts}; re-bless")
want = base["figures"]

print(f"{'figure':28} {'baseline':>9} {'now':>9} {'change':>8}")
worse, better, missing = [], [], []
for k in list(want) + [k for k in order if k not in want]:
    if k not in figures:
        missing.append(k)
        print(f"{k:28} {want[k]:9.1f} {'-':>9}")
        continue
    if k not in want:
        missing.append(k)
        print(f"{k:28} {'-':>9} {figures[k]:9.1f}")
        continue
    pct = (figures[k] - want[k]) / want[k] * 100
    flag = ""
    if pct > threshold:
        worse.append((k, want[k], figures[k], pct))
        flag = "  <-- more than +%g %%" % threshold
    elif pct < -threshold:
        better.append(k)
    print(f"{k:28} {want[k]:9.1f} {figures[k]:9.1f} {pct:+7.2f}%{flag}")

status = 0
for k, b, n, pct in worse:
    print(f"perf/guard.sh: FAIL {k}: {b:.1f} -> {n:.1f} instructions ({pct:+.2f} %, limit +{threshold:g} %)", file=sys.stderr)
    status = 1
if missing:
    print(f"perf/guard.sh: FAIL figures not in both the baseline and this run: {', '.join(missing)} (re-bless on purpose)", file=sys.stderr)
    status = 1
if better:
    print(f"perf/guard.sh: {', '.join(better)} improved by more than {threshold:g} %: "
          "consider `perf/guard.sh --bless` so the gain is kept", file=sys.stderr)
if status == 0:
    print(f"perf/guard.sh: OK, no figure grew more than {threshold:g} %")
sys.exit(status)
PY
