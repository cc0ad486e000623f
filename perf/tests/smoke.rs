//! Smoke test of `rvs-perf pipeline`, `rvs-perf conn-lookup` and `rvs-perf sync`: runs the built binary in
//! `--quick` mode (small tables for `conn-lookup`) and checks the shape of its output —
//! one JSON object per line per mode or table size, DESIGN.md's keys, positive figures.
//! It never asserts a timing threshold (DESIGN.md: speed is measured, not asserted); the
//! binary itself fails when the data path's output is wrong.

use std::process::Command;
use std::sync::{Mutex, MutexGuard, PoisonError};

use serde_json::Value;

const MODES: [&str; 25] = [
    "arp_reply",
    "icmp_echo",
    "drop_malformed",
    "dr",
    "nat",
    "nat_reply",
    "fullnat",
    "fullnat_reply",
    "tunnel",
    "nat_synproxy",
    "nat_synproxy_reply",
    "fullnat_synproxy",
    "fullnat_synproxy_reply",
    "dr6",
    "nat6",
    "nat6_reply",
    "fullnat6",
    "fullnat6_reply",
    "tunnel6",
    "nat64",
    "nat64_reply",
    "nat6_synproxy",
    "nat6_synproxy_reply",
    "fullnat6_synproxy",
    "fullnat6_synproxy_reply",
];
/// The L4 modes that open connections (and so report `new_conn_ns`).
const NEW_CONN_MODES: [&str; 13] = [
    "dr",
    "nat",
    "fullnat",
    "tunnel",
    "nat_synproxy",
    "fullnat_synproxy",
    "dr6",
    "nat6",
    "fullnat6",
    "tunnel6",
    "nat64",
    "nat6_synproxy",
    "fullnat6_synproxy",
];
/// The L4 modes that only forward replies.
const REPLY_MODES: [&str; 9] = [
    "nat_reply",
    "fullnat_reply",
    "nat_synproxy_reply",
    "fullnat_synproxy_reply",
    "nat6_reply",
    "fullnat6_reply",
    "nat64_reply",
    "nat6_synproxy_reply",
    "fullnat6_synproxy_reply",
];
/// The SYN-proxy modes that open connections: `new_conn_ns` is the whole proxied
/// handshake, broken down into its three steps.
const HANDSHAKE_MODES: [&str; 4] = ["nat_synproxy", "fullnat_synproxy", "nat6_synproxy", "fullnat6_synproxy"];

/// The tests that time something hold this while they run. cargo runs a file's tests in
/// parallel; on a 2-core machine two benchmarks at once starve each other, and the net
/// figures (gross minus harness) they must report above 0 would then pass or fail with
/// the machine's load, not with the code.
static ONE_BENCHMARK_AT_A_TIME: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> MutexGuard<'static, ()> {
    // A test that failed while holding the lock poisons it; the next one may still run.
    ONE_BENCHMARK_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner)
}

fn rvs_perf(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rvs-perf")).args(args).output().expect("rvs-perf runs");
    (out.status.code(), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

/// The keys of a flat JSON object line, in the order they are written.
fn keys_in_order(line: &str) -> Vec<String> {
    let v: Value = serde_json::from_str(line).unwrap();
    let mut keys: Vec<(usize, String)> = v
        .as_object()
        .unwrap()
        .keys()
        .map(|k| (line.find(&format!("\"{k}\":")).expect("key in line"), k.clone()))
        .collect();
    keys.sort();
    keys.into_iter().map(|(_, k)| k).collect()
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
    let l4 = NEW_CONN_MODES.contains(&mode.as_str()) || REPLY_MODES.contains(&mode.as_str());
    let opens = NEW_CONN_MODES.contains(&mode.as_str());
    assert_eq!(v.get("bytes_per_conn").is_some(), l4, "bytes_per_conn only for the L4 modes: {line}");
    assert_eq!(v.get("new_conn_ns").is_some(), opens, "new_conn_ns only for modes that open connections: {line}");
    if l4 {
        assert!(v["bytes_per_conn"].as_u64().is_some_and(|n| n > 0), "{line}");
        for key in ["flows", "conn_capacity", "table_bytes"] {
            assert!(v[key].as_u64().is_some_and(|n| n > 0), "{key}: {line}");
        }
    }
    if opens {
        for key in ["new_conn_ns", "new_conn_min", "new_conn_harness_ns", "new_conn_gross_ns", "conns_per_s"] {
            let x = v[key].as_f64().unwrap_or_else(|| panic!("{key} missing: {line}"));
            assert!(x.is_finite() && x > 0.0, "{key} must be positive: {line}");
        }
        assert!(v["new_conns"].as_u64().is_some_and(|n| n > 0), "{line}");
        // Both must be there: `Option`s compare `None <= anything`, which checked nothing.
        let at_end = v["conns_at_end"].as_u64().unwrap_or_else(|| panic!("conns_at_end: {line}"));
        let capacity = v["conn_capacity"].as_u64().unwrap_or_else(|| panic!("conn_capacity: {line}"));
        assert!(at_end > 0 && at_end <= capacity, "conns_at_end {at_end} of {capacity}: {line}");
    }
    let handshake = HANDSHAKE_MODES.contains(&mode.as_str());
    for key in ["cookie_syn_ns", "cookie_ack_ns", "server_syn_ack_ns"] {
        assert_eq!(v.get(key).is_some(), handshake, "{key} only for the SYN-proxy modes that open connections: {line}");
        if handshake {
            // One step alone may net out at or below zero on a loaded machine (only the
            // sum, `new_conn_ns`, is refused then), but it is always a number.
            assert!(v[key].as_f64().is_some_and(f64::is_finite), "{key}: {line}");
        }
    }
    // DESIGN.md's keys come first, in its order (read from the text: serde_json's map
    // does not keep the order).
    let keys = keys_in_order(line);
    let design: &[&str] = if opens {
        &["bench", "mode", "ns_per_pkt", "mpps", "new_conn_ns", "bytes_per_conn"]
    } else if l4 {
        &["bench", "mode", "ns_per_pkt", "mpps", "bytes_per_conn"]
    } else {
        &["bench", "mode", "ns_per_pkt", "mpps"]
    };
    assert_eq!(&keys[..design.len()], design, "{line}");
    mode
}

#[test]
fn quick_pipeline_prints_one_valid_line_per_mode() {
    let _serial = one_at_a_time();
    let (code, stdout, stderr) = rvs_perf(&["pipeline", "--quick"]);
    assert_eq!(code, Some(0), "stderr: {stderr}");
    let modes: Vec<String> = stdout.lines().map(check_line).collect();
    assert_eq!(modes, MODES, "stdout: {stdout}");
}

#[test]
fn mode_filter_runs_only_that_mode() {
    let _serial = one_at_a_time();
    let (code, stdout, stderr) = rvs_perf(&["pipeline", "--quick", "--mode", "icmp_echo"]);
    assert_eq!(code, Some(0), "stderr: {stderr}");
    let modes: Vec<String> = stdout.lines().map(check_line).collect();
    assert_eq!(modes, ["icmp_echo"]);
}

#[test]
fn l4_mode_filter_and_flows() {
    let _serial = one_at_a_time();
    let (code, stdout, stderr) = rvs_perf(&["pipeline", "--quick", "--mode", "fullnat_reply,nat", "--flows", "100"]);
    assert_eq!(code, Some(0), "stderr: {stderr}");
    let modes: Vec<String> = stdout.lines().map(check_line).collect();
    assert_eq!(modes, ["nat", "fullnat_reply"]);
    for line in stdout.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["flows"], 100, "{line}");
    }
}

#[test]
fn conn_lookup_prints_one_line_per_size() {
    let _serial = one_at_a_time();
    let (code, stdout, stderr) = rvs_perf(&["conn-lookup", "--entries", "1000,20000", "--runs", "1"]);
    assert_eq!(code, Some(0), "stderr: {stderr}");
    let lines: Vec<Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    for ((v, line), n) in lines.iter().zip(stdout.lines()).zip([1000, 20000]) {
        let keys = keys_in_order(line);
        let want = ["bench", "entries", "hit_ns", "miss_ns", "insert_ns", "bytes", "bytes_per_conn", "bytes_per_entry"];
        assert_eq!(keys[..want.len()], want, "{line}");
        assert_eq!((v["bench"].as_str(), v["entries"].as_u64()), (Some("conn_lookup"), Some(n)));
        assert!(v["insert_ns"].as_f64().is_some_and(|x| x > 0.0), "{v}");
        assert!(v["bytes"].as_u64().unwrap() >= n * v["bytes_per_conn"].as_u64().unwrap(), "{v}");
        // Net lookup figures: the binary fails (too noisy) rather than print 0 or less.
        assert!(v["hit_ns"].as_f64().is_some_and(|x| x > 0.0), "{v}");
        assert!(v["miss_ns"].as_f64().is_some_and(|x| x > 0.0), "{v}");
    }
}

#[test]
fn quick_sync_prints_its_figures_and_loses_nothing_at_a_low_rate() {
    let _serial = one_at_a_time();
    let (code, stdout, stderr) = rvs_perf(&["sync", "--quick"]);
    assert_eq!(code, Some(0), "stderr: {stderr}");
    let lines: Vec<Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let benches: Vec<&str> = lines.iter().map(|v| v["bench"].as_str().unwrap()).collect();
    assert_eq!(benches, ["sync_wire", "sync_cost", "sync_rate", "sync_rate"], "{stdout}");
    // The format's sizes, not timings: a v4 connection record is 39 bytes, 33 fit in a
    // 1400-byte datagram.
    assert_eq!(
        (lines[0]["v4_conn_record_bytes"].as_u64(), lines[0]["records_per_datagram"].as_u64()),
        (Some(39), Some(33))
    );
    for key in ["new_conn_ns_sync_off", "new_conn_ns_sync_on", "sync_ns_per_conn"] {
        assert!(lines[1][key].as_f64().is_some_and(f64::is_finite), "{key}: {stdout}");
    }
    // The paced step (10000 records/s): every record installed, none lost.
    let low = &lines[2];
    assert_eq!(low["offered_per_s"], 10_000, "{low}");
    assert_eq!(low["lossless"], true, "{low}");
    for key in ["lost_ring", "lost_sent", "lost_received", "refused"] {
        assert_eq!(low[key], 0, "{key}: {low}");
    }
    assert!(low["records"].as_u64().is_some_and(|n| n > 0), "{low}");
    // The unpaced step only has to report.
    assert!(lines[3]["offered_per_s"].is_null() && lines[3]["backup_records_per_s"].as_f64().is_some(), "{stdout}");
}

#[test]
fn usage_errors_exit_2_and_name_the_subcommands() {
    for args in [
        &["pipeline", "--mode", "masq"][..],
        &["pipeline", "--seconds", "-1"],
        &["pipeline", "--flows", "0"],
        &["conn-lookup", "--entries", "0"],
        &["conn-lookup", "--entries", "1000,x"],
        &["sync", "--rates", "0"],
        &["dpdk"],
        &[],
    ] {
        let (code, stdout, stderr) = rvs_perf(args);
        assert_eq!(code, Some(2), "{args:?}");
        assert!(stdout.is_empty(), "{args:?}: {stdout}");
        assert!(stderr.contains("pipeline") && stderr.contains("conn-lookup"), "{args:?}: {stderr}");
    }
}
