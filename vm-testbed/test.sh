#!/usr/bin/env bash
# THE test command of rvs (README.md and .ci/run call exactly `bash vm-testbed/test.sh`):
#   1. prepares the host (vm-testbed/setup-host.sh: packages, hugepages);
#   2. checks the lints: `cargo fmt --all --check` and
#      `cargo clippy --workspace --all-targets -- -D warnings` (any warning fails the run);
#   3. builds the whole workspace in release mode, and from it the Debian package, checked
#      by lintian and vm-testbed/package/check.sh (the VM test is vm-testbed/vm-test.sh);
#   4. runs the unit, property and golden-packet tests (cargo test --workspace);
#   5. runs every fuzz target for 20 s on stable Rust, seeded from dataplane/fuzz/seeds and
#      controlplane/fuzz/seeds (dataplane/fuzz/smoke.sh, controlplane/fuzz/smoke.sh; a crash
#      fails the run and leaves the input in <that fuzz dir>/artifacts/);
#   6. compares callgrind instructions per packet and per new connection with the committed
#      baseline (perf/guard.sh; growth above 3 % in any figure fails the run);
#   7. runs the lab tests (rvs-labtests, #[ignore]d for plain cargo test: every file of
#      vm-testbed/labtests/tests/, among them bgp.rs, the scale-out lab with BIRD) one at a
#      time against the freshly built rvsd, in the netns lab;
#   8. runs the DPDK and end-to-end benchmark harnesses once in --quick mode so they cannot
#      rot (the pipeline and sync benchmarks' smoke tests are part of step 4), and a 2-minute
#      soak (perf/soak.sh: load, REST churn, bad frames and a flood at once).
# With --vm, after all of that:
#   9. the appliance test (vm-testbed/vm-test.sh): the package from this build in a freshly
#      built disk image, booted under qemu in lab-lb1's place, NAT and DR through it, both
#      workers forwarding, reload, bad input, upgrade and purge (about 10 minutes under TCG).
# The checks that need no lab (2-6) come before it so that they fail fast. The lab
# is torn down on exit, pass or fail. Needs root (namespaces, hugepages, raw sockets).
set -euo pipefail

vm=0
for arg in "$@"; do
    case $arg in
    --vm) vm=1 ;;
    *) printf 'test.sh: unknown argument `%s'"'"' (the only one is --vm: also run the appliance VM test)\n' "$arg" >&2; exit 2 ;;
    esac
done

cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO="$(pwd)"

section() { printf '\n==== %s\n' "$*"; }
fail() { printf '\n==== FAIL: %s\n' "$*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || fail "vm-testbed/test.sh must run as root (network namespaces, hugepages, raw sockets): sudo bash vm-testbed/test.sh"

# sudo drops ~/.cargo/bin from PATH; root's own rustup install is the usual place.
if ! command -v cargo >/dev/null && [[ -x "$HOME/.cargo/bin/cargo" ]]; then
    export PATH="$HOME/.cargo/bin:$PATH"
fi

# The lab is one per host and its users serialise on this lock (rvs-labtests' `Lab`,
# perf/soak.sh, vm-testbed/vm.sh): tear the lab down only when nobody else holds it.
LAB_LOCK="${RVS_LAB_LOCK:-/run/lock/rvs-lab.lock}"
lab_down_if_free() {
    flock -n "$LAB_LOCK" bash "$REPO/vm-testbed/lab.sh" down >/dev/null 2>&1 || true
}

teardown() {
    local rc=$?
    lab_down_if_free
    if ((rc == 0)); then
        printf '\n==== PASS: lints, build, unit/property/golden tests, fuzz smoke, instruction guard, lab tests%s\n' \
            "$( ((vm)) && echo ', appliance VM test')"
    else
        printf '\n==== FAIL (exit %s): see the first error above\n' "$rc" >&2
    fi
}
trap teardown EXIT

section "host setup"
bash vm-testbed/setup-host.sh

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$REPO/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

section "lints (cargo fmt --all --check; cargo clippy --workspace --all-targets -- -D warnings)"
cargo fmt --all --check || fail "cargo fmt --all --check: run \`cargo fmt --all\` and commit the result"
cargo clippy --workspace --all-targets -- -D warnings || fail "clippy warnings (denied)"

section "build (cargo build --release --workspace)"
cargo build --release --workspace

section "Debian package (vm-testbed/package/check.sh: build, lintian, files, units, man pages)"
bash vm-testbed/package/check.sh

section "unit, property and golden tests (cargo test --release --workspace)"
RVSADM_COMPAT=require cargo test --release --workspace   # rvsadm_compat: ipvsadm 1.31 must build

section "fuzz smoke (dataplane/fuzz/smoke.sh, controlplane/fuzz/smoke.sh: every target, seeded, 20 s each)"
bash dataplane/fuzz/smoke.sh
bash controlplane/fuzz/smoke.sh

section "instruction-count guard (perf/guard.sh against perf/baseline.json)"
bash perf/guard.sh

section "lab tests (rvs-labtests, one at a time)"
export RVSD_BIN="$CARGO_TARGET_DIR/release/rvsd"
[[ -x "$RVSD_BIN" ]] || fail "the build produced no $RVSD_BIN"
lab_down_if_free
cargo test --release -p rvs-labtests -- --ignored --test-threads=1

section "benchmark harness smoke (each benchmark for about a second; no timings checked)"
# perf/dpdk: rvs-pktgen and rvsd over net_memif against dpdk-testpmd (built above, so the
# test does not build rvsd itself under cargo's target lock).
cargo test --release -p rvs-perf --test dpdk_smoke -- --ignored
bash perf/e2e/run.sh --quick --wait-lab 300 >/dev/null
bash perf/soak.sh --minutes 2 --wait-lab 300

if ((vm)); then
    section "appliance VM test (vm-testbed/vm-test.sh: package, image, VM in the lab)"
    bash vm-testbed/vm-test.sh --rebuild-image
fi
