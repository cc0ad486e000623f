//! Smoke test of `perf/bench.sh dpdk` (`perf/dpdk/run.sh --quick`: about a second per
//! phase): dpdk-testpmd and rvsd in every forwarding mode, driven by rvs-pktgen over
//! net_memif. It checks that every stdout line is a JSON object of DESIGN.md's shape, that
//! every mode has its 64-byte, 512-byte and new-flow lines, and that rvsd forwarded packets
//! in each. It asserts no timing (DESIGN.md: speed is measured, never asserted).
//!
//! `#[ignore]`d because it needs root, free hugepages, dpdk-testpmd and the net_memif PMD
//! (`vm-testbed/setup-host.sh` provides them) and a release rvsd: `RVSD_BIN`, or `rvsd` next
//! to the rvs-pktgen this test was built with (`cargo build --release --workspace` first).
//! Run it with `cargo test --release -p rvs-perf --test dpdk_smoke -- --ignored`.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const MODES: [&str; 4] = ["dr", "nat", "fullnat", "tunnel"];

fn rvsd_bin(pktgen: &Path) -> PathBuf {
    if let Some(p) = std::env::var_os("RVSD_BIN") {
        return PathBuf::from(p);
    }
    let sibling = pktgen.with_file_name("rvsd");
    assert!(
        sibling.is_file(),
        "no rvsd at {}: build it (cargo build --release -p rvs-controlplane, same CARGO_TARGET_DIR) or set RVSD_BIN",
        sibling.display()
    );
    sibling
}

#[test]
#[ignore = "needs root, hugepages, dpdk-testpmd, the net_memif PMD and a release rvsd; see the module docs"]
fn dpdk_bench_quick_runs_every_mode() {
    let pktgen = PathBuf::from(env!("CARGO_BIN_EXE_rvs-pktgen"));
    let rvsd = rvsd_bin(&pktgen);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("dpdk/run.sh");
    let out = Command::new("bash")
        .arg(&script)
        .args(["--quick", "--no-build"])
        .env("RVS_PKTGEN_BIN", &pktgen)
        .env("RVSD_BIN", &rvsd)
        .output()
        .expect("bash runs perf/dpdk/run.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "run.sh failed ({}):\n{stderr}\nstdout:\n{stdout}", out.status);

    let mut seen: Vec<(String, u64, String)> = Vec::new();
    for line in stdout.lines() {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert_eq!(v["bench"], "dpdk", "{line}");
        let mode = v["mode"].as_str().unwrap_or_else(|| panic!("no mode: {line}")).to_string();
        assert!(MODES.contains(&mode.as_str()), "unknown mode: {line}");
        let size = v["pkt_size"].as_u64().unwrap_or_else(|| panic!("no pkt_size: {line}"));
        let flows = v["flows"].as_str().unwrap_or_else(|| panic!("no flows: {line}")).to_string();
        assert!(flows == "established" || flows == "new", "{line}");
        for key in ["rvsd_mpps", "testpmd_mpps", "ratio", "duration_s"] {
            let x = v[key].as_f64().unwrap_or_else(|| panic!("{key} missing or not a number: {line}"));
            assert!(x.is_finite() && x >= 0.0, "{key}: {line}");
        }
        assert!(v["testpmd_mpps"].as_f64().unwrap() > 0.0, "testpmd forwarded nothing: {line}");
        // rvsd forwarded packets: the generator received some on the servers' side.
        assert!(v["received"].as_u64().is_some_and(|n| n > 0), "rvsd forwarded nothing: {line}");
        assert!(v["sent"].as_u64().is_some_and(|n| n > 0), "{line}");
        // Received frames were checked (one in verify_every in full); a mismatch prints no line.
        assert!(v["verified"].as_u64().is_some_and(|n| n > 0), "nothing checked: {line}");
        assert!(v["verify_every"].as_u64().is_some_and(|n| n > 0), "{line}");
        if flows == "new" {
            assert!(v["new_conns_per_s"].as_f64().is_some_and(|x| x > 0.0), "{line}");
            // Read from rvsd (GET /v1/config), the value run.sh configured by default.
            assert_eq!(v["conn_capacity"].as_u64(), Some(262_144), "{line}");
        } else {
            assert!(v["loss"].as_f64().is_some(), "{line}");
        }
        seen.push((mode, size, flows));
    }
    for mode in MODES {
        for (size, flows) in [(64, "established"), (512, "established"), (64, "new")] {
            assert!(
                seen.iter().any(|(m, s, f)| m == mode && *s == size && f == flows),
                "no line for {mode} {size} {flows}:\n{stdout}"
            );
        }
    }
}
