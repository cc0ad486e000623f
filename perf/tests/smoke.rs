//! Smoke test of `rvs-perf pipeline`: runs the built binary in `--quick` mode and checks
//! the shape of its output — one JSON object per line per mode, DESIGN.md's keys, positive
//! figures. It never asserts a timing threshold (DESIGN.md: speed is measured, not
//! asserted); the binary itself fails when the data path's output is wrong.

use std::process::Command;

use serde_json::Value;

const MODES: [&str; 3] = ["arp_reply", "icmp_echo", "drop_malformed"];

fn rvs_perf(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rvs-perf")).args(args).output().expect("rvs-perf runs");
    (out.status.code(), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

fn check_line(line: &str) -> String {
    let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    assert_eq!(v["bench"], "pipeline", "{line}");
    let mode = v["mode"].as_str().unwrap_or_else(|| panic!("no mode: {line}")).to_owned();
    assert!(MODES.contains(&mode.as_str()), "unexpected mode: {line}");
    for key in ["ns_per_pkt", "mpps", "min", "harness_ns_per_pkt", "gross_ns_per_pkt"] {
        let x = v[key].as_f64().unwrap_or_else(|| panic!("{key} missing or not a number: {line}"));
        assert!(x.is_finite() && x > 0.0, "{key} must be positive: {line}");
    }
    for key in ["packets", "batches", "runs"] {
        assert!(v[key].as_u64().is_some_and(|n| n > 0), "{key} must be a positive integer: {line}");
    }
    assert_eq!(v["packets"].as_u64().unwrap(), 32 * v["batches"].as_u64().unwrap(), "{line}");
    for key in ["new_conn_ns", "bytes_per_conn"] {
        assert!(v.get(key).is_none(), "{key} must be absent until there is a connection table: {line}");
    }
    mode
}

#[test]
fn quick_pipeline_prints_one_valid_line_per_mode() {
    let (code, stdout, stderr) = rvs_perf(&["pipeline", "--quick"]);
    assert_eq!(code, Some(0), "stderr: {stderr}");
    let modes: Vec<String> = stdout.lines().map(check_line).collect();
    assert_eq!(modes, MODES, "stdout: {stdout}");
}

#[test]
fn mode_filter_runs_only_that_mode() {
    let (code, stdout, stderr) = rvs_perf(&["pipeline", "--quick", "--mode", "icmp_echo"]);
    assert_eq!(code, Some(0), "stderr: {stderr}");
    let modes: Vec<String> = stdout.lines().map(check_line).collect();
    assert_eq!(modes, ["icmp_echo"]);
}

#[test]
fn usage_errors_exit_2_and_name_the_subcommands() {
    for args in [&["pipeline", "--mode", "nat"][..], &["pipeline", "--seconds", "-1"], &["dpdk"], &[]] {
        let (code, stdout, stderr) = rvs_perf(args);
        assert_eq!(code, Some(2), "{args:?}");
        assert!(stdout.is_empty(), "{args:?}: {stdout}");
        assert!(stderr.contains("pipeline"), "{args:?}: {stderr}");
    }
}
