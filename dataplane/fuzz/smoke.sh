#!/usr/bin/env bash
# Fuzz smoke test: builds every fuzz target with plain cargo on the pinned stable toolchain
# (no nightly, no cargo-fuzz) and runs each one for a bounded time, seeded from seeds/ via
# make-corpus.sh. A crash, a timeout or an out-of-memory in any target fails the script
# (exit 1) and leaves the input in artifacts/<target>/ for replay. vm-testbed/test.sh runs
# it; run it by hand the same way:
#
#   bash dataplane/fuzz/smoke.sh                      # every target, FUZZ_SECONDS (20) each
#   FUZZ_SECONDS=300 bash dataplane/fuzz/smoke.sh lb_worker
#
# How it works on stable: libfuzzer-sys compiles libFuzzer itself (C++, build-essential)
# and needs the target code instrumented with LLVM's SanitizerCoverage, which stable rustc
# exposes through -Cpasses and -Cllvm-args. These are the flags `cargo fuzz build` passes,
# minus -Zsanitizer=address, the one nightly-only flag (rvs-dataplane forbids unsafe code,
# so AddressSanitizer would only watch std and dependencies). `--target <host>` keeps the
# flags off build scripts and proc macros, as cargo-fuzz does. Debug assertions and
# overflow checks are on, so arithmetic overflow is a crash too.
#
# Environment: FUZZ_SECONDS (per target, default 20), FUZZ_SEED (libFuzzer -seed, default
# random, printed), CARGO_TARGET_DIR (artifacts go to $CARGO_TARGET_DIR/fuzz, else
# <fuzz dir>/target), FUZZ_DIR (the fuzz workspace, default this script's directory;
# controlplane/fuzz/smoke.sh sets it), FUZZ_KEEP (an absolute directory: keep each
# target's grown corpus in FUZZ_KEEP/<target> and its log in FUZZ_KEEP/<target>.log, and
# start from that corpus when it exists; long-run.sh uses it).
#
# Every target that passes prints one summary line, `fuzz result: <target> execs=N
# secs=S corpus_files=F corpus_bytes=B`, which long-run.sh adds up.
set -euo pipefail

here="${FUZZ_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}"
cd "$here"

# Every target of this workspace: one per file in fuzz_targets/.
mapfile -t ALL < <(cd fuzz_targets && ls -- *.rs | sed 's/\.rs$//')
secs="${FUZZ_SECONDS:-20}"
targets=("$@")
((${#targets[@]})) || targets=("${ALL[@]}")
for t in "${targets[@]}"; do
    [[ " ${ALL[*]} " == *" $t "* ]] || { echo "fuzz smoke: unknown target '$t' (one of: ${ALL[*]})" >&2; exit 2; }
done

host="$(rustc -vV | sed -n 's/^host: //p')"
if [[ -n "${CARGO_TARGET_DIR:-}" ]]; then
    case "$CARGO_TARGET_DIR" in
        /*) export CARGO_TARGET_DIR="$CARGO_TARGET_DIR/fuzz" ;;
        *) echo "fuzz smoke: CARGO_TARGET_DIR must be absolute" >&2; exit 2 ;;
    esac
else
    export CARGO_TARGET_DIR="$here/target"
fi
export RUSTFLAGS="--cfg fuzzing -Cpasses=sancov-module \
-Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
-Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares \
-Cllvm-args=-sanitizer-coverage-stack-depth \
-Cdebug-assertions -Coverflow-checks"
echo "fuzz smoke: building ${targets[*]} (stable, sanitizer coverage, $host)"
cargo build --locked --release --target "$host" $(printf -- '--bin %s ' "${targets[@]}")
bin="$CARGO_TARGET_DIR/$host/release"

sh ./make-corpus.sh
# glibc: keep freed memory in the heap (no trimming, no mmap for big blocks). Targets that
# build a whole engine per input (lb_worker: connection table, port rings, rate sketch)
# otherwise get fresh zero pages from the kernel on every input, which was half of their
# time; libFuzzer's -rss_limit_mb still bounds the heap.
export GLIBC_TUNABLES="${GLIBC_TUNABLES:-glibc.malloc.trim_threshold=1073741824:glibc.malloc.mmap_threshold=1073741824}"
if [[ -n "${FUZZ_KEEP:-}" ]]; then
    [[ "$FUZZ_KEEP" == /* ]] || { echo "fuzz smoke: FUZZ_KEEP must be absolute" >&2; exit 2; }
    work="$FUZZ_KEEP"
    mkdir -p "$work"
else
    work="$(mktemp -d "${TMPDIR:-/tmp}/rvs-fuzz.XXXXXX")"
    trap 'rm -rf "$work"' EXIT
fi

failed=()
for t in "${targets[@]}"; do
    # A scratch copy of the seed corpus: what libFuzzer adds is thrown away, so every run
    # starts from the same seeds (unless FUZZ_KEEP keeps it).
    [[ -d "$work/$t" ]] || cp -r "corpus/$t" "$work/$t"
    mkdir -p "artifacts/$t"
    seed=()
    [[ -z "${FUZZ_SEED:-}" ]] || seed=("-seed=$FUZZ_SEED")
    # A target's dictionary of tokens (keys, keywords, options), when it has one.
    [[ ! -f "dicts/$t.dict" ]] || seed+=("-dict=$here/dicts/$t.dict")
    echo "fuzz smoke: $t for ${secs} s"
    rc=0
    "$bin/$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$here/artifacts/$t/" "${seed[@]}" "$work/$t" >"$work/$t.log" 2>&1 || rc=$?
    if ((rc == 0)); then
        grep -E '^INFO: Seed:|^stat::number_of_executed_units|^stat::new_units_added|DONE' "$work/$t.log" | sed "s/^/  $t: /"
        execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$t.log")"
        files="$(find "$work/$t" -type f | wc -l)"
        bytes="$(find "$work/$t" -type f -printf '%s\n' | awk '{s += $1} END {print s + 0}')"
        echo "fuzz result: $t execs=${execs:-0} secs=$secs corpus_files=$files corpus_bytes=$bytes"
    else
        tail -n 60 "$work/$t.log" >&2
        echo "fuzz smoke: FAIL $t (exit $rc); the input is in $here/artifacts/$t/; replay: $bin/$t <file>" >&2
        failed+=("$t")
    fi
done
((${#failed[@]} == 0)) || { echo "fuzz smoke: failed: ${failed[*]}" >&2; exit 1; }
echo "fuzz smoke: OK (${targets[*]}, ${secs} s each)"
