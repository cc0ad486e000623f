//! A SYN flood at the VIP while a legitimate client keeps connecting (issue 14's lab test):
//! `hping3 -S` from one client address (10.10.0.9) at VIP:80 for [`FLOOD`], while a curl loop
//! from another (10.10.0.2) opens one connection per request; with `conn_capacity = 50000`
//! at least 99 % of the curls must succeed.
//!
//! - `dr_half_open_eviction`: DR, no rate limit. The flood's SYNs fill the table with
//!   half-open entries (rvs never sees the servers' SYN+ACKs); each new SYN evicts the
//!   oldest half-open entry instead of being dropped (`half_open_evicted`), so the curls'
//!   SYNs get in.
//! - `nat_client_rate`: NAT with `client_rate` on the service: the flooding address is held
//!   to its rate (`client_rate_limited`) and cannot fill the table.
//! - `nat_undefended`: NAT without `client_rate` and with `syn_proxy = "off"`, the figure
//!   without a defence (it is not asserted to pass the 99 %; it prints what a user without
//!   the limit gets).
//! - `nat_syn_proxy_rand_source`, `fullnat_syn_proxy_rand_source`: `hping3 --rand-source`
//!   (every SYN from another address, so per-client limits cannot help) at a NAT and a
//!   Full-NAT service with the default `syn_proxy = "auto"`: once a worker holds
//!   `syn_proxy_threshold` half-open entries, SYNs get cookies and no entry; every curl
//!   must succeed, `conn_table_full` must stay 0 and `syn_proxy_cookies_sent` must show
//!   the flood answered with cookies.
//!
//! - `nat66_syn_proxy_spoofed_sources`, `fullnat66_syn_proxy_spoofed_sources`: the same
//!   over IPv6 (hping3 has no IPv6): `tools/syn_flood6.py` sends SYNs from random
//!   addresses of an off-link /48 and random ports (an AF_INET6 raw socket in the
//!   client's namespace) at an IPv6 NAT66 or Full-NAT66 service on `[2001:db8:10::100]:80`
//!   with the default `syn_proxy = "auto"`, while a `curl -6` loop from the client's own
//!   address opens one connection per request: every curl must succeed, the IPv6
//!   connections must stay below the threshold's reach (`conn_table_full` 0) and the
//!   proxy's counters (cookies sent, valid ACKs, handshakes) must have risen.
//! - `nat64_syn_proxy_spoofed_sources`: the same at a NAT64 service (the IPv6 VIP on the
//!   three servers' IPv4 addresses in Full-NAT, from the config's IPv4 local addresses):
//!   the cookies and the client's handshake are IPv6, the proxied SYNs IPv4.
//!
//! Each prints the figures: curls ok/failed, rvsd's drops by reason, `half_open_evicted`.
//! `FLOOD_RATE_US` sets hping3's interval in microseconds (default 10: up to 100,000 SYNs
//! per second; 0 = `--flood`). All `#[ignore]`: root and the lab; by hand:
//! `RVSD_BIN=$CARGO_TARGET_DIR/release/rvsd cargo test --release -p rvs-labtests --test flood
//! -- --ignored --test-threads=1 dr_half_open_eviction`.

use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use rvs_labtests::ha::variant_with;
use rvs_labtests::*;

/// How long the flood lasts.
const FLOOD: Duration = Duration::from_secs(15);
/// The flooding client address (lab-client owns 10.10.0.2 .. .9).
const FLOODER: &str = "10.10.0.9";
/// Share of curls that must succeed.
const MIN_OK: f64 = 0.99;

/// What one run saw.
struct Figures {
    ok: u64,
    failed: u64,
}

/// Runs the flood against rvsd started with `config` (a variant in the run folder) and
/// real servers for `mode`; returns the curls' results and prints the figures.
fn flood_case(name: &str, mode: Mode, config: &std::path::Path) -> Figures {
    flood_case_from(name, mode, config, &format!("-a {FLOODER}")).0
}

/// [`flood_case`] with hping3's source arguments `source` (`-a ADDR` or `--rand-source`);
/// also returns rvsd's status after the flood.
fn flood_case_from(name: &str, mode: Mode, config: &std::path::Path, source: &str) -> (Figures, serde_json::Value) {
    let mut lab = Lab::up_without_lb();
    lab.start_lb("lb1", Some(config));
    lab.start_real_servers(mode);
    let url = format!("http://{VIP}/");
    // The way is open before the flood.
    assert!(
        wait_until(Duration::from_secs(15), Duration::from_millis(200), || {
            ns_exec(CLIENT, &["curl", "-sS", "-m", "2", "--interface", CLIENT_IP, &url]).status.success()
        }),
        "{name}: no answer from {url} before the flood"
    );
    let interval = std::env::var("FLOOD_RATE_US").ok().and_then(|v| v.parse::<u32>().ok()).unwrap_or(10);
    let rate = if interval == 0 { "--flood".to_string() } else { format!("-i u{interval}") };
    let secs = FLOOD.as_secs();
    let flood_cmd = format!("timeout {secs} hping3 -q -S -p 80 {rate} {source} {VIP} >/dev/null 2>&1");
    let mut flood = Command::new("ip")
        .args(["netns", "exec", CLIENT, "sh", "-c", &flood_cmd])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start hping3");
    let start = Instant::now();
    // Let the flood fill the table first.
    sleep(Duration::from_secs(2));
    let left = FLOOD.saturating_sub(start.elapsed()).as_secs().saturating_sub(1).max(1);
    let script = format!(
        "end=$(($(date +%s)+{left})); ok=0; fail=0; \
         while [ $(date +%s) -lt $end ]; do \
           if curl -sS -o /dev/null -m 3 --interface {CLIENT_IP} {url} 2>/dev/null; then ok=$((ok+1)); else fail=$((fail+1)); fi; \
         done; echo $ok $fail"
    );
    let out = ns_exec(CLIENT, &["sh", "-c", &script]);
    let _ = flood.wait();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut nums = text.split_whitespace().filter_map(|w| w.parse::<u64>().ok());
    let (ok, failed) = (nums.next().unwrap_or(0), nums.next().unwrap_or(0));
    let st = status();
    let drops: Vec<(String, u64)> = drops(&st).into_iter().filter(|(_, n)| *n != 0).collect();
    let created = worker_counter(&st, "conns_created");
    let total = ok + failed;
    // Printed before reading half_open_evicted, so an rvsd without it still gives the figures.
    println!(
        "{name}: curls ok {ok} failed {failed} ({:.2} % ok); drops {drops:?}; connections created {created}; \
         flood {rate} for {secs} s",
        if total == 0 { 0.0 } else { 100.0 * ok as f64 / total as f64 }
    );
    println!("{name}: half_open_evicted {}", worker_counter(&st, "half_open_evicted"));
    drop(lab);
    (Figures { ok, failed }, st)
}

fn assert_held(name: &str, f: &Figures) {
    let total = f.ok + f.failed;
    assert!(total >= 20, "{name}: only {total} curls ran");
    assert!(
        f.ok as f64 >= MIN_OK * total as f64,
        "{name}: {} of {total} curls succeeded, under {} %",
        f.ok,
        MIN_OK * 100.0
    );
}

/// The mode's one-worker config with a 50,000-entry table and `extra` lines on the :80
/// round-robin service.
fn config(mode: Mode, extra: &str, name: &str) -> std::path::PathBuf {
    std::fs::create_dir_all(run_dir()).expect("create vm-testbed/run");
    let base = format!("lab-{}.toml", mode.name());
    let svc = "port = 80\nscheduler = \"rr\"";
    let with = format!("{svc}\n{extra}");
    let mut edits = vec![("workers = 1", "workers = 1\nconn_capacity = 50000")];
    if !extra.is_empty() {
        edits.push((svc, with.as_str()));
    }
    variant_with(&base, &edits, name)
}

#[test]
#[ignore = "needs root, the netns lab and hping3 (vm-testbed/setup-host.sh)"]
fn dr_half_open_eviction() {
    let f = flood_case("dr", Mode::Dr, &config(Mode::Dr, "", "flood-dr.toml"));
    assert_held("dr", &f);
}

#[test]
#[ignore = "needs root, the netns lab and hping3 (vm-testbed/setup-host.sh)"]
fn nat_client_rate() {
    // The SYN proxy off: with the default `auto` the flooder's SYNs would get cookies
    // before admission, and this test is about the rate limit.
    let cfg = config(Mode::Nat, "client_rate = 1000\nclient_burst = 1000\nsyn_proxy = \"off\"", "flood-nat-rate.toml");
    let f = flood_case("nat+client_rate", Mode::Nat, &cfg);
    assert_held("nat+client_rate", &f);
}

#[test]
#[ignore = "needs root, the netns lab and hping3; prints the figure without a defence"]
fn nat_undefended() {
    flood_case("nat undefended", Mode::Nat, &config(Mode::Nat, "syn_proxy = \"off\"", "flood-nat.toml"));
}

/// A `--rand-source` flood at `mode`'s :80 service with the default SYN proxy (`auto`):
/// see the module docs.
fn syn_proxy_rand_source(name: &str, mode: Mode) {
    let cfg = config(mode, "", &format!("flood-{}-synproxy.toml", mode.name()));
    let (f, st) = flood_case_from(name, mode, &cfg, "--rand-source");
    let (cookies, acks, done) = (
        worker_counter(&st, "syn_proxy_cookies_sent"),
        worker_counter(&st, "syn_proxy_valid_acks"),
        worker_counter(&st, "syn_proxy_handshakes"),
    );
    println!(
        "{name}: syn_proxy cookies {cookies} valid ACKs {acks} handshakes {done} bad cookies {}",
        drop_count(&st, "syn_proxy_bad_cookie")
    );
    assert!(f.ok + f.failed >= 20, "{name}: only {} curls ran", f.ok + f.failed);
    assert_eq!(f.failed, 0, "{name}: {} of {} curls failed", f.failed, f.ok + f.failed);
    assert_eq!(drop_count(&st, "conn_table_full"), 0, "{name}: the table filled");
    assert!(cookies > 10_000, "{name}: only {cookies} cookies: the flood was not answered with cookies");
}

#[test]
#[ignore = "needs root, the netns lab and hping3 (vm-testbed/setup-host.sh)"]
fn nat_syn_proxy_rand_source() {
    syn_proxy_rand_source("nat+syn_proxy", Mode::Nat);
}

#[test]
#[ignore = "needs root, the netns lab and hping3 (vm-testbed/setup-host.sh)"]
fn fullnat_syn_proxy_rand_source() {
    syn_proxy_rand_source("fullnat+syn_proxy", Mode::FullNat);
}

/// The client's IPv6 VIP and the real servers' IPv6 addresses (lab.sh).
const VIP6: &str = "2001:db8:10::100";
const RS_IP6: [&str; 3] = ["2001:db8:20::11", "2001:db8:20::12", "2001:db8:20::13"];
/// How long the IPv6 flood lasts.
const FLOOD6: Duration = Duration::from_secs(12);

/// `mode`'s one-worker config (50,000 IPv4 entries, so 6,250 IPv6 ones) with an IPv6 TCP
/// :80 service on [`VIP6`] over the three servers' IPv6 addresses (their IPv4 ones,
/// NAT64, with `nat64`: Full-NAT only), `syn_proxy` left at its default (`auto`,
/// threshold 1000 half-open connections per worker).
fn config6(mode: Mode, nat64: bool) -> std::path::PathBuf {
    let name = format!("flood6-{}{}.toml", mode.name(), if nat64 { "-nat64" } else { "" });
    let path = config(mode, "", &name);
    let mut text = std::fs::read_to_string(&path).expect("the flood config");
    text.push_str(&format!("\n[[service]]\nprotocol = \"tcp\"\naddress = \"{VIP6}\"\nport = 80\nscheduler = \"rr\"\n"));
    let servers = if nat64 { REAL_SERVER_IPS } else { RS_IP6 };
    for rs in servers {
        text.push_str(&format!(
            "\n[[service.server]]\naddress = \"{rs}\"\nport = 80\nweight = 1\nforward = \"{}\"\n",
            mode.name()
        ));
    }
    std::fs::write(&path, text).expect("write the IPv6 flood config");
    path
}

/// The IPv6 flood from spoofed sources at `mode`'s IPv6 service: see the module docs.
fn syn_proxy6_spoofed(name: &str, mode: Mode, nat64: bool) {
    let mut lab = Lab::up_without_lb();
    lab.start_lb("lb1", Some(&config6(mode, nat64)));
    lab.start_real_servers(mode);
    let url = format!("http://[{VIP6}]/");
    let curl = |url: &str| ns_exec(CLIENT, &["curl", "-6", "-sS", "-o", "/dev/null", "-m", "2", url]).status.success();
    assert!(
        wait_until(Duration::from_secs(15), Duration::from_millis(200), || curl(&url)),
        "{name}: no answer from {url} before the flood"
    );
    let before = status();
    let secs = FLOOD6.as_secs().to_string();
    let tool = tool("syn_flood6.py");
    let flood = std::process::Command::new("ip")
        .args(["netns", "exec", CLIENT, "python3", "-B", &tool.to_string_lossy(), "--dst", VIP6, "--seconds", &secs])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start syn_flood6.py");
    let start = Instant::now();
    // Let the flood cross the threshold first.
    sleep(Duration::from_secs(2));
    let left = FLOOD6.saturating_sub(start.elapsed()).as_secs().saturating_sub(1).max(1);
    let script = format!(
        "end=$(($(date +%s)+{left})); ok=0; fail=0; \
         while [ $(date +%s) -lt $end ]; do \
           if curl -6 -sS -o /dev/null -m 3 {url} 2>/dev/null; then ok=$((ok+1)); else fail=$((fail+1)); fi; \
         done; echo $ok $fail"
    );
    let out = ns_exec(CLIENT, &["sh", "-c", &script]);
    let flood = flood.wait_with_output().expect("syn_flood6.py ends");
    let summary: serde_json::Value = serde_json::from_slice(&flood.stdout)
        .unwrap_or_else(|e| panic!("{name}: syn_flood6.py: {e}: {}", String::from_utf8_lossy(&flood.stderr)));
    let text = String::from_utf8_lossy(&out.stdout);
    let mut nums = text.split_whitespace().filter_map(|w| w.parse::<u64>().ok());
    let (ok, failed) = (nums.next().unwrap_or(0), nums.next().unwrap_or(0));
    let st = status();
    let rose = |key: &str| worker_counter(&st, key).saturating_sub(worker_counter(&before, key));
    let (cookies, acks, done) =
        (rose("syn_proxy_cookies_sent"), rose("syn_proxy_valid_acks"), rose("syn_proxy_handshakes"));
    let drops: Vec<(String, u64)> = drops(&st).into_iter().filter(|(_, n)| *n != 0).collect();
    println!(
        "{name}: flood {summary}; curls ok {ok} failed {failed}; syn_proxy cookies {cookies} valid ACKs {acks} \
         handshakes {done}; conn_table_full {}; drops {drops:?}",
        drop_count(&st, "conn_table_full")
    );
    drop(lab);
    let sent = summary["sent"].as_u64().unwrap_or(0);
    assert!(sent > 10_000, "{name}: the flood sent only {sent} SYNs: {summary}");
    assert!(ok >= 10, "{name}: only {ok} curls ran ({failed} failed)");
    assert_eq!(failed, 0, "{name}: {failed} of {} curls failed", ok + failed);
    assert_eq!(drop_count(&st, "conn_table_full"), 0, "{name}: the table filled");
    assert!(cookies > 5_000, "{name}: only {cookies} cookies: the flood was not answered with cookies");
    // The curls that came while the proxy was on went through it.
    assert!(acks >= 1 && done >= 1, "{name}: valid ACKs {acks}, handshakes {done}: no curl was proxied");
}

#[test]
#[ignore = "needs root and the netns lab (vm-testbed/setup-host.sh)"]
fn nat66_syn_proxy_spoofed_sources() {
    syn_proxy6_spoofed("nat66+syn_proxy", Mode::Nat, false);
}

#[test]
#[ignore = "needs root and the netns lab (vm-testbed/setup-host.sh)"]
fn fullnat66_syn_proxy_spoofed_sources() {
    syn_proxy6_spoofed("fullnat66+syn_proxy", Mode::FullNat, false);
}

#[test]
#[ignore = "needs root and the netns lab (vm-testbed/setup-host.sh)"]
fn nat64_syn_proxy_spoofed_sources() {
    syn_proxy6_spoofed("nat64+syn_proxy", Mode::FullNat, true);
}
