#!/usr/bin/env bash
# The recorded long fuzz run: every target of both fuzz workspaces (dataplane/fuzz and
# controlplane/fuzz), one after the other on one core, each for its share of the time,
# through the same smoke.sh that CI runs (same build flags, same seeds, same failure
# rules). Prints a Markdown table of executions, exec/s and grown corpus size per target
# and the totals, for perf/RESULTS.md; exits 1 if any target crashed, timed out or ran
# out of memory (its input is in <workspace>/artifacts/<target>/).
#
#   nice -n 19 bash dataplane/fuzz/long-run.sh                 # the default plan below
#   FUZZ_SCALE=0.1 bash dataplane/fuzz/long-run.sh              # a tenth of every share
#   bash dataplane/fuzz/long-run.sh controlplane:config_load=480 dataplane:vrrp=60
#
# Arguments (optional) replace the plan: WORKSPACE:TARGET=SECONDS. Environment:
# FUZZ_SCALE (multiplies every share, default 1), FUZZ_KEEP (where the grown corpora and
# logs go, default a new directory under ${TMPDIR:-/tmp}, printed; reusing one resumes
# from its corpora), CARGO_TARGET_DIR as for smoke.sh.
#
# The shares: the parsers run at hundreds of thousands of inputs a second and give most of
# the executions; the whole worker, the REST router and the config loader run at hundreds
# to a few thousand a second, so they get the longer shares.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PLAN=(
    dataplane:parse_ethernet_stack=240
    dataplane:incremental_checksum=150
    dataplane:tcp_options=150
    dataplane:vrrp=150
    dataplane:parse_ipv6=150
    dataplane:sync_decode=300
    dataplane:lb_worker=900
    controlplane:config_load=480
    controlplane:rest_bodies=480
    controlplane:rvsadm_args=240
    controlplane:health_replies=240
)
(($#)) && PLAN=("$@")
scale="${FUZZ_SCALE:-1}"
keep="${FUZZ_KEEP:-$(mktemp -d "${TMPDIR:-/tmp}/rvs-fuzz-long.XXXXXX")}"
echo "long run: corpora and logs in $keep" >&2

rows=()
total=0
failed=()
for item in "${PLAN[@]}"; do
    ws="${item%%:*}"
    rest="${item#*:}"
    t="${rest%%=*}"
    secs="$(awk -v s="${rest#*=}" -v k="$scale" 'BEGIN {v = int(s * k); print (v < 1 ? 1 : v)}')"
    case "$ws" in
        dataplane | controlplane) ;;
        *) echo "long run: unknown workspace '$ws' in '$item' (dataplane or controlplane)" >&2; exit 2 ;;
    esac
    out="$(FUZZ_SECONDS="$secs" FUZZ_KEEP="$keep/$ws" bash "$root/$ws/fuzz/smoke.sh" "$t" 2>&1)" || {
        echo "$out" >&2
        failed+=("$ws:$t")
        continue
    }
    line="$(grep '^fuzz result: ' <<<"$out")"
    echo "$line" >&2
    execs="$(sed 's/.* execs=\([0-9]*\).*/\1/' <<<"$line")"
    files="$(sed 's/.* corpus_files=\([0-9]*\).*/\1/' <<<"$line")"
    bytes="$(sed 's/.* corpus_bytes=\([0-9]*\).*/\1/' <<<"$line")"
    total=$((total + execs))
    rows+=("| $ws | \`$t\` | $secs | $execs | $((execs / secs)) | $files | $bytes | 0 |")
done

echo "| workspace | target | seconds | executions | exec/s | corpus files | corpus bytes | crashes |"
echo "|---|---|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
echo "| | **total** | | **$total** | | | | **${#failed[@]}** |"
((${#failed[@]} == 0)) || { echo "long run: FAILED: ${failed[*]}" >&2; exit 1; }
