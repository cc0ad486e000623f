//! End-to-end tests of rvsd's L4 load balancing in the netns lab: every forwarding mode (DR,
//! NAT, Full-NAT, IPIP tunnel) with one worker and with two, through real clients (curl, a UDP
//! client) and real servers (`vm-testbed/tools/rs_server.py` in lab-rs1..3, started by
//! `lab.sh rs-start MODE` with the mode's helpers: the TOA reader, the IPIP decapsulator, the
//! NAT return route).
//!
//! Each test runs one mode × worker count in a lab of its own (`config/lab-<mode>[-2w].toml`)
//! and checks, in order:
//! - (a) 60 HTTP requests to VIP:80, one connection each: every answer comes from rs1..rs3 and
//!   names the expected peer (the client, or for Full-NAT a local address); round robin splits
//!   them 20/20/20 (±1). The same on the wrr 3:2:1 service (`Mode::wrr_service`): exactly
//!   30/20/10 with one worker (60 requests are 10 whole cycles); with two workers each worker
//!   runs its own wrr cycle over the connections it owns (split by client hash, unevenly), so
//!   each worker can end inside a cycle: ±3 per server (a partial cycle of 3:2:1 is at most 1
//!   off per server and worker; 3 leaves room for another interleaving) — still proportional,
//!   the three ranges 27-33, 17-23 and 7-13 do not overlap.
//! - (b) UDP request/response through VIP:53, six flows (a new source port each): every reply is
//!   `rsN <payload>`; round robin gives 2/2/2 with one worker, 1..=3 each with two.
//! - (b2) 4,000-byte UDP datagrams through VIP:53, fragmented by the client's kernel (3
//!   fragments over the 1500-byte MTU; the 4,004-byte echo by the server's): every echo comes
//!   back byte for byte, and rvsd's workers counted the fragments (`frag_forwarded`: at least
//!   the requests' 3 each, the replies' too for NAT and Full-NAT) and dropped none
//!   (`frag_*`). One worker only: the two-worker configs' af_packet ports reassemble
//!   fragments in the kernel (see config/lab-*-2w.toml); the two-worker fragment path is
//!   tested on the in-memory driver (dataplane/tests/frag_worker.rs).
//! - (c) a bulk TCP transfer through VIP:80, compared by sha256 both ways: download
//!   `GET /bytes/N` against the known hash, upload to `/sha256` and compare the server's hash.
//!   N is `RVS_L4_BYTES` (default 100 MiB); each direction may take `RVS_L4_TRANSFER_TIMEOUT`
//!   seconds (default 180). Without rvsd (client → rs1 through lab-router, kernel forwarding) a
//!   100 MiB transfer takes ~0.6 s each way on the 2-CPU lab machine.
//! - (d) the server saw the right peer for a connection from a known client port: the client
//!   (10.10.0.2:PORT) for DR, NAT and tunnel; for Full-NAT a local address 10.20.0.200-203, and
//!   the TOA reader on that server logged that local address:port → 10.10.0.2:PORT (and every
//!   connection of (a) maps to 10.10.0.2).
//! - (e) rvsd's `/v1/status` counted it: per server connections (`STAT_CONNS`; exactly the wrr
//!   answers on the wrr service, at least the rr answers on :80), client → server packets, and
//!   for NAT and Full-NAT server → client packets. The key names are assumptions kept in
//!   `rvs_labtests` (`service_server_stat`, `STAT_*`).
//!
//! A first request must succeed within 15 s or the test stops at once (no forwarding at all:
//! nothing else would pass, and 60 timeouts would only cost time). After that every check runs
//! and the test fails at the end with all the failures listed. `Lab` tears the lab down, rvsd and
//! the real-server tools included, also when a test fails.
//!
//! All `#[ignore]`: they need root, the lab and an rvsd that forwards. `vm-testbed/test.sh` runs
//! them with the other lab tests; by hand, e.g. only NAT with a smaller transfer:
//! `RVS_L4_BYTES=10485760 RVSD_BIN=target/release/rvsd cargo test --release -p rvs-labtests
//! --test l4 -- --ignored --test-threads=1 nat`.

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rvs_labtests::*;
use serde_json::Value;

/// HTTP requests per scheduler check: a multiple of 3 (rr) and of 6 (wrr 3:2:1's cycle).
const REQUESTS: u32 = 60;
/// UDP requests (flows): a multiple of 3.
const UDP_REQUESTS: u32 = 6;
/// The client port of check (d)'s connection (each test has a fresh lab, so no TIME_WAIT clash).
const PEER_CHECK_PORT: u16 = 41001;

/// What (a) observed, for (d) and (e).
#[derive(Default)]
struct Seen {
    rr: Vec<Who>,
    wrr: Vec<Who>,
}

fn server_index(name: &str) -> usize {
    REAL_SERVER_NAMES.iter().position(|n| *n == name).expect("a known server name")
}

fn tally(answers: &[Who]) -> BTreeMap<&'static str, u32> {
    let mut t: BTreeMap<&'static str, u32> = REAL_SERVER_NAMES.iter().map(|n| (*n, 0)).collect();
    for a in answers {
        *t.get_mut(REAL_SERVER_NAMES[server_index(&a.server)]).expect("present") += 1;
    }
    t
}

/// Checks the peer every answer names: the client, or a Full-NAT local address.
fn check_peers(mode: Mode, answers: &[Who]) -> Result<(), String> {
    let bad: Vec<&Who> = answers
        .iter()
        .filter(|w| {
            if mode.server_sees_client() {
                w.peer_ip != CLIENT_IP
            } else {
                !LOCAL_ADDRESSES.contains(&w.peer_ip.as_str())
            }
        })
        .collect();
    if bad.is_empty() {
        return Ok(());
    }
    let want = if mode.server_sees_client() { CLIENT_IP.to_string() } else { format!("one of {LOCAL_ADDRESSES:?}") };
    Err(format!(
        "{} of {} answers name a peer other than {want}: {:?}",
        bad.len(),
        answers.len(),
        &bad[..bad.len().min(5)]
    ))
}

/// `count` requests to `url`, all of which must be answered by a real server.
fn requests(url: &str, count: u32) -> Result<Vec<Who>, String> {
    let answers = http_who_many(CLIENT, url, count);
    let failed: Vec<&String> = answers.iter().filter_map(|a| a.as_ref().err()).collect();
    if !failed.is_empty() {
        return Err(format!(
            "{} of {count} requests to {url} got no server's answer; first ones: {:?}",
            failed.len(),
            &failed[..failed.len().min(5)]
        ));
    }
    Ok(answers.into_iter().flatten().collect())
}

fn within(t: &BTreeMap<&'static str, u32>, want: [u32; 3], tolerance: u32) -> bool {
    REAL_SERVER_NAMES.iter().zip(want).all(|(n, w)| t[n].abs_diff(w) <= tolerance)
}

/// (a) round robin on VIP:80 and weighted round robin 3:2:1 on the mode's wrr service.
fn check_schedulers(mode: Mode, workers: u32, seen: &mut Seen) -> Result<(), String> {
    let mut errors = Vec::new();
    let rr = requests(&format!("http://{VIP}/"), REQUESTS)?;
    let t = tally(&rr);
    eprintln!("  rr {VIP}:80: {t:?}");
    if !within(&t, [20, 20, 20], 1) {
        errors.push(format!("rr on {VIP}:80: {REQUESTS} connections split {t:?}, expected 20 each (±1)"));
    }
    if let Err(e) = check_peers(mode, &rr) {
        errors.push(format!("rr on {VIP}:80: {e}"));
    }
    seen.rr = rr;

    let (vip, port) = mode.wrr_service();
    let wrr = requests(&format!("http://{vip}:{port}/"), REQUESTS)?;
    let t = tally(&wrr);
    // One worker: 60 picks are 10 whole 3:2:1 cycles, exact. Two: see the module's docs.
    let tolerance = if workers == 1 { 0 } else { 3 };
    eprintln!("  wrr {vip}:{port}: {t:?} (tolerance ±{tolerance})");
    if !within(&t, [30, 20, 10], tolerance) {
        errors.push(format!(
            "wrr 3:2:1 on {vip}:{port} with {workers} worker(s): {REQUESTS} connections split {t:?}, expected 30/20/10 (±{tolerance})"
        ));
    }
    if let Err(e) = check_peers(mode, &wrr) {
        errors.push(format!("wrr on {vip}:{port}: {e}"));
    }
    seen.wrr = wrr;
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("\n"))
    }
}

/// (b) UDP request/response through VIP:53.
fn check_udp(workers: u32) -> Result<(), String> {
    let to = format!("{VIP}:53");
    let replies = udp_who(CLIENT, &to, UDP_REQUESTS, "l4");
    let mut t: BTreeMap<&str, u32> = REAL_SERVER_NAMES.iter().map(|n| (*n, 0)).collect();
    let mut errors = Vec::new();
    for (i, r) in replies.iter().enumerate() {
        match r {
            Ok((server, payload)) if *payload == format!("l4-{i}") => *t.get_mut(server.as_str()).expect("known") += 1,
            Ok((server, payload)) => errors.push(format!("request l4-{i}: {server} echoed {payload:?}")),
            Err(e) => errors.push(format!("request l4-{i}: {e}")),
        }
    }
    eprintln!("  udp {to}: {t:?}");
    let ok = if workers == 1 { within(&t, [2, 2, 2], 0) } else { within(&t, [2, 2, 2], 1) };
    if errors.is_empty() && !ok {
        errors.push(format!("rr over {UDP_REQUESTS} UDP flows split {t:?}, expected 2 each (±{})", workers - 1));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(format!("UDP through {to}: {}", errors.join("; ")))
    }
}

/// Bytes of each fragmented UDP request.
const BIG_UDP_BYTES: u32 = 4000;

/// (b2) Fragmented UDP datagrams through VIP:53, echoed intact.
fn check_fragmented_udp(mode: Mode) -> Result<(), String> {
    let before = status();
    let to = format!("{VIP}:53");
    let replies = udp_who_sized(CLIENT, &to, UDP_REQUESTS, "frag", BIG_UDP_BYTES);
    let after = status();
    let mut errors = Vec::new();
    let intact = format!("intact-{BIG_UDP_BYTES}");
    for r in &replies {
        match r {
            Ok((_, verdict)) if *verdict == intact => {}
            other => errors.push(format!("{other:?}")),
        }
    }
    let forwarded = worker_counter(&after, "frag_forwarded") - worker_counter(&before, "frag_forwarded");
    // Each request is 3 fragments; NAT and Full-NAT replies (4,004 bytes: 3 fragments) pass
    // rvsd too.
    let per_request = if matches!(mode, Mode::Nat | Mode::FullNat) { 6 } else { 3 };
    if forwarded < u64::from(per_request * UDP_REQUESTS) {
        errors.push(format!(
            "frag_forwarded rose by {forwarded}, expected at least {} ({per_request} per request)",
            per_request * UDP_REQUESTS
        ));
    }
    let (d0, d1) = (drops(&before), drops(&after));
    let grown: BTreeMap<&String, u64> =
        d1.iter().map(|(r, n)| (r, n - d0.get(r).copied().unwrap_or(0))).filter(|&(_, g)| g > 0).collect();
    for (reason, grew) in &grown {
        if reason.starts_with("frag_") {
            errors.push(format!("{reason} rose by {grew}"));
        }
    }
    if !errors.is_empty() {
        errors.push(format!("drops that rose meanwhile: {grown:?}"));
    }
    eprintln!("  fragmented udp {to}: {replies:?}, frag_forwarded +{forwarded}");
    if errors.is_empty() {
        Ok(())
    } else {
        Err(format!("{BIG_UDP_BYTES}-byte UDP through {to}: {}", errors.join("; ")))
    }
}

fn transfer_timeout() -> Duration {
    let secs = std::env::var("RVS_L4_TRANSFER_TIMEOUT").ok().and_then(|v| v.parse().ok()).unwrap_or(180);
    Duration::from_secs(secs)
}

fn expected_hash(n: u64) -> &'static str {
    static HASH: OnceLock<(u64, String)> = OnceLock::new();
    let (m, h) = HASH.get_or_init(|| (n, expected_sha256(n)));
    assert_eq!(*m, n, "RVS_L4_BYTES changed during the run");
    h
}

fn rate(n: u64, d: Duration) -> String {
    format!("{n} bytes in {:.1} s ({:.1} MB/s)", d.as_secs_f64(), n as f64 / 1e6 / d.as_secs_f64().max(1e-3))
}

/// (c) the bulk transfer both ways, compared by sha256.
fn check_transfer() -> Result<(), String> {
    let n = transfer_bytes();
    let want = expected_hash(n);
    let mut errors = Vec::new();

    let t0 = Instant::now();
    match download_sha256(CLIENT, &format!("http://{VIP}/bytes/{n}"), transfer_timeout()) {
        Ok(h) if h == want => eprintln!("  download: {}", rate(n, t0.elapsed())),
        Ok(h) => errors.push(format!("download of {n} bytes: sha256 {h}, expected {want}")),
        Err(e) => errors.push(format!("download of {n} bytes failed after {:.1} s: {e}", t0.elapsed().as_secs_f64())),
    }
    let t0 = Instant::now();
    match upload_sha256(CLIENT, &format!("http://{VIP}/sha256"), n, transfer_timeout()) {
        Ok((h, len)) if h == want && len == n => eprintln!("  upload: {}", rate(n, t0.elapsed())),
        Ok((h, len)) => {
            errors.push(format!("upload of {n} bytes: the server got {len} bytes with sha256 {h}, expected {want}"))
        }
        Err(e) => errors.push(format!("upload of {n} bytes failed after {:.1} s: {e}", t0.elapsed().as_secs_f64())),
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("\n"))
    }
}

/// The client (from TOA) that server `idx`'s TOA reader logged for source `src` (`ip:port`), waiting
/// a little for the log.
fn toa_client(idx: usize, src: &str) -> Option<String> {
    let mut found = None;
    wait_until(Duration::from_secs(5), Duration::from_millis(100), || {
        found = toa_entries(idx).into_iter().rev().find(|(s, _)| s == src).map(|(_, c)| c);
        found.is_some()
    });
    found
}

/// (d) the peer the server saw for a connection from a known client port, and TOA for Full-NAT.
fn check_peer(mode: Mode, seen: &Seen) -> Result<(), String> {
    let who = http_who_from_port(CLIENT, &format!("http://{VIP}/"), PEER_CHECK_PORT)?;
    let client = format!("{CLIENT_IP}:{PEER_CHECK_PORT}");
    let peer = format!("{}:{}", who.peer_ip, who.peer_port);
    eprintln!("  peer: {} saw {peer} for {client}", who.server);
    if mode.server_sees_client() {
        return if peer == client {
            Ok(())
        } else {
            Err(format!("{} saw peer {peer}, expected the client {client}", who.server))
        };
    }
    if !LOCAL_ADDRESSES.contains(&who.peer_ip.as_str()) {
        return Err(format!("{} saw peer {peer}, expected a Full-NAT local address ({LOCAL_ADDRESSES:?})", who.server));
    }
    let idx = server_index(&who.server);
    match toa_client(idx, &peer) {
        Some(c) if c == client => {}
        Some(c) => return Err(format!("TOA for {peer} on {} names {c}, expected {client}", who.server)),
        None => {
            return Err(format!(
                "{}'s TOA reader logged nothing for {peer} (no TOA option on its SYN/ACK?); log {}",
                who.server,
                rs_log_path(idx, "toa").display()
            ))
        }
    }
    // Every connection of (a) carried the client too.
    let mut missing = Vec::new();
    for w in seen.rr.iter().chain(&seen.wrr) {
        let src = format!("{}:{}", w.peer_ip, w.peer_port);
        let entries = toa_entries(server_index(&w.server));
        let ok = entries.iter().any(|(s, c)| *s == src && c.split(':').next() == Some(CLIENT_IP));
        if !ok {
            missing.push(format!("{} {src}", w.server));
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} of {} Full-NAT connections have no TOA entry naming {CLIENT_IP}: {:?}",
            missing.len(),
            seen.rr.len() + seen.wrr.len(),
            &missing[..missing.len().min(5)]
        ))
    }
}

/// (e) rvsd's status counted the connections and packets.
fn check_status(mode: Mode, seen: &Seen) -> Result<(), String> {
    let st = status();
    let mut errors = Vec::new();
    // Say once if a whole service is missing, rather than once per server and counter.
    let (vip, port) = mode.wrr_service();
    for (proto, v, p) in [("tcp", VIP, 80), ("udp", VIP, 53), ("tcp", vip, port)] {
        if service(&st, proto, v, p).is_none() {
            errors.push(format!(
                "status has no services[] entry for {proto} {v}:{p} (assumed services[].{{protocol,address,port}} \
                 in GET /v1/status; adapt service() in vm-testbed/labtests/src/lib.rs if rvsd lists them otherwise)"
            ));
        }
    }
    if !errors.is_empty() {
        return Err(format!("{}\nthe status: {st:#}", errors.join("\n")));
    }
    let missing = |what: &str, proto: &str, vip: &str, port: u16, rip: &str| {
        format!(
            "status has no {what} for server {rip} of {proto} {vip}:{port} (assumed services[].servers[].stats.{{{}}}; \
             adapt service_server_stat and STAT_* in vm-testbed/labtests/src/lib.rs if rvsd names them otherwise)",
            match what {
                "conns" => STAT_CONNS.join("|"),
                "in_packets" => STAT_IN_PACKETS.join("|"),
                _ => STAT_OUT_PACKETS.join("|"),
            }
        )
    };
    // The wrr service carried only (a)'s requests: its counters must match them exactly.
    let wrr = tally(&seen.wrr);
    for (rip, name) in REAL_SERVER_IPS.iter().zip(REAL_SERVER_NAMES) {
        match service_server_stat(&st, "tcp", vip, port, rip, STAT_CONNS) {
            None => errors.push(missing("conns", "tcp", vip, port, rip)),
            Some(n) if n != u64::from(wrr[name]) => errors
                .push(format!("tcp {vip}:{port} server {rip}: conns {n}, but {name} answered {} requests", wrr[name])),
            Some(_) => {}
        }
    }
    // VIP:80 also carried the first request, the transfers and (d): at least (a)'s counts.
    let rr = tally(&seen.rr);
    for (rip, name) in REAL_SERVER_IPS.iter().zip(REAL_SERVER_NAMES) {
        match service_server_stat(&st, "tcp", VIP, 80, rip, STAT_CONNS) {
            None => errors.push(missing("conns", "tcp", VIP, 80, rip)),
            Some(n) if n < u64::from(rr[name]) => {
                errors.push(format!("tcp {VIP}:80 server {rip}: conns {n}, but {name} answered {} requests", rr[name]))
            }
            Some(_) => {}
        }
        match service_server_stat(&st, "tcp", VIP, 80, rip, STAT_IN_PACKETS) {
            None => errors.push(missing("in_packets", "tcp", VIP, 80, rip)),
            Some(0) => errors.push(format!("tcp {VIP}:80 server {rip}: no inbound packets counted")),
            Some(_) => {}
        }
        if mode.replies_through_lb() {
            match service_server_stat(&st, "tcp", VIP, 80, rip, STAT_OUT_PACKETS) {
                None => errors.push(missing("out_packets", "tcp", VIP, 80, rip)),
                Some(0) => {
                    errors.push(format!("tcp {VIP}:80 server {rip}: no outbound packets counted ({})", mode.name()))
                }
                Some(_) => {}
            }
        }
    }
    let udp: Option<u64> =
        REAL_SERVER_IPS.iter().map(|rip| service_server_stat(&st, "udp", VIP, 53, rip, STAT_CONNS)).sum();
    match udp {
        None => errors.push(missing("conns", "udp", VIP, 53, REAL_SERVER_IPS[0])),
        Some(n) if n < u64::from(UDP_REQUESTS) => {
            errors.push(format!("udp {VIP}:53: {n} connections counted, expected at least {UDP_REQUESTS}"))
        }
        Some(_) => {}
    }
    let drops: BTreeMap<String, u64> = drops(&st).into_iter().filter(|(_, n)| *n > 0).collect();
    eprintln!("  status: drops {drops:?}");
    if errors.is_empty() {
        Ok(())
    } else {
        Err(format!("{}\nservices in the status: {:#}", errors.join("\n"), st.get("services").unwrap_or(&Value::Null)))
    }
}

/// Runs (a) to (e) for `mode` with `workers` workers; see the module's docs.
fn l4_suite(mode: Mode, workers: u32) {
    l4_suite_with(mode, workers, &mode.config(workers), "");
}

/// Runs (a) to (e) for `mode` with `workers` workers and rvsd started with `config`;
/// `what` names the variant in messages.
fn l4_suite_with(mode: Mode, workers: u32, config: &std::path::Path, what: &str) {
    let started = Instant::now();
    let mut lab = Lab::up_without_lb();
    lab.start_real_servers(mode);
    lab.start_lb("lb1", Some(config));

    // The first request also waits for ARP on both sides; without forwarding, stop here.
    let url = format!("http://{VIP}/");
    let mut last = Vec::new();
    let first_ok = wait_until(Duration::from_secs(15), Duration::from_millis(500), || {
        last = http_who_many(CLIENT, &url, 1);
        last[0].is_ok()
    });
    assert!(first_ok, "{} with {workers} worker(s): no answer through {url} within 15 s: {last:?}", mode.name());

    let mut seen = Seen::default();
    let mut failures = Vec::new();
    let mut step = |name: &str, result: Result<(), String>, t0: Instant| {
        eprintln!("  ({name}) {} in {:.1} s", if result.is_ok() { "ok" } else { "FAILED" }, t0.elapsed().as_secs_f64());
        if let Err(e) = result {
            failures.push(format!("({name}) {e}"));
        }
    };
    let t0 = Instant::now();
    step("a: schedulers", check_schedulers(mode, workers, &mut seen), t0);
    let t0 = Instant::now();
    step("b: udp", check_udp(workers), t0);
    if workers == 1 {
        let t0 = Instant::now();
        step("b2: fragmented udp", check_fragmented_udp(mode), t0);
    } else {
        // The two-worker configs reach the veths through net_af_packet, whose fanout hands
        // rvsd reassembled datagrams (too big for an mbuf), never fragments; fragments
        // landing on the wrong worker are dataplane/tests/frag_worker.rs's.
        eprintln!("  (b2: fragmented udp) skipped: af_packet reassembles fragments before rvsd");
    }
    let t0 = Instant::now();
    step("c: transfer", check_transfer(), t0);
    let t0 = Instant::now();
    step("d: peer", check_peer(mode, &seen), t0);
    let t0 = Instant::now();
    step("e: status", check_status(mode, &seen), t0);

    if !what.is_empty() {
        let t0 = Instant::now();
        step(what, check_syn_proxy(), t0);
    }
    eprintln!("l4 {} {workers}w{what}: {:.1} s", mode.name(), started.elapsed().as_secs_f64());
    assert!(failures.is_empty(), "{}{what} with {workers} worker(s):\n{}", mode.name(), failures.join("\n"));
}

/// The mode's config with `syn_proxy = "always"` on every TCP service.
fn syn_proxy_config(mode: Mode, workers: u32) -> std::path::PathBuf {
    let path = mode.config(workers);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(text.contains("protocol = \"tcp\""), "{} has no TCP service", path.display());
    let text = text.replace("protocol = \"tcp\"", "protocol = \"tcp\"\nsyn_proxy = \"always\"");
    std::fs::create_dir_all(run_dir()).expect("create vm-testbed/run");
    let out = run_dir().join(format!("l4-{}-{workers}w-synproxy.toml", mode.name()));
    std::fs::write(&out, text).expect("write the syn_proxy config");
    out
}

/// (f) with `syn_proxy = "always"`: every connection went through a cookie; rvsd counted
/// cookies, valid ACKs and completed server handshakes, and no bad cookie.
fn check_syn_proxy() -> Result<(), String> {
    let st = status();
    let (cookies, acks, done) = (
        worker_counter(&st, "syn_proxy_cookies_sent"),
        worker_counter(&st, "syn_proxy_valid_acks"),
        worker_counter(&st, "syn_proxy_handshakes"),
    );
    let bad = drop_count(&st, "syn_proxy_bad_cookie");
    eprintln!("  syn proxy: cookies {cookies}, valid ACKs {acks}, server handshakes {done}, bad cookies {bad}");
    // (a) alone opens 120 connections; the transfers and the peer check more.
    if cookies < 120 || acks < 120 || done < 120 {
        return Err(format!("too few proxied connections: cookies {cookies}, ACKs {acks}, handshakes {done}"));
    }
    if bad != 0 {
        return Err(format!("{bad} bad cookies from legitimate clients"));
    }
    Ok(())
}

/// The L4 suite, (a) to (e), with `syn_proxy = "always"`, then (f). The transfer is the
/// suite's (`RVS_L4_BYTES`, one value per process: the expected hash is computed once).
fn syn_proxy_suite(mode: Mode, workers: u32) {
    l4_suite_with(mode, workers, &syn_proxy_config(mode, workers), " syn_proxy");
}

#[test]
#[ignore = "needs root, the lab and rvsd with L4 forwarding: run vm-testbed/test.sh"]
fn l4_nat_syn_proxy_1w() {
    syn_proxy_suite(Mode::Nat, 1);
}

#[test]
#[ignore = "needs root, the lab and rvsd with L4 forwarding: run vm-testbed/test.sh"]
fn l4_fullnat_syn_proxy_2w() {
    syn_proxy_suite(Mode::FullNat, 2);
}

#[test]
#[ignore = "needs root, the lab and rvsd with L4 forwarding: run vm-testbed/test.sh"]
fn l4_dr_1w() {
    l4_suite(Mode::Dr, 1);
}

#[test]
#[ignore = "needs root, the lab and rvsd with L4 forwarding: run vm-testbed/test.sh"]
fn l4_dr_2w() {
    l4_suite(Mode::Dr, 2);
}

#[test]
#[ignore = "needs root, the lab and rvsd with L4 forwarding: run vm-testbed/test.sh"]
fn l4_nat_1w() {
    l4_suite(Mode::Nat, 1);
}

#[test]
#[ignore = "needs root, the lab and rvsd with L4 forwarding: run vm-testbed/test.sh"]
fn l4_nat_2w() {
    l4_suite(Mode::Nat, 2);
}

#[test]
#[ignore = "needs root, the lab and rvsd with L4 forwarding: run vm-testbed/test.sh"]
fn l4_fullnat_1w() {
    l4_suite(Mode::FullNat, 1);
}

#[test]
#[ignore = "needs root, the lab and rvsd with L4 forwarding: run vm-testbed/test.sh"]
fn l4_fullnat_2w() {
    l4_suite(Mode::FullNat, 2);
}

#[test]
#[ignore = "needs root, the lab and rvsd with L4 forwarding: run vm-testbed/test.sh"]
fn l4_tunnel_1w() {
    l4_suite(Mode::Tunnel, 1);
}

#[test]
#[ignore = "needs root, the lab and rvsd with L4 forwarding: run vm-testbed/test.sh"]
fn l4_tunnel_2w() {
    l4_suite(Mode::Tunnel, 2);
}

/// Runs without the lab: the configs exist for every mode and worker count, and the real-server
/// tools answer --help and agree on the bulk pattern (`--digest` is the sha256 of `--emit`).
#[test]
fn l4_configs_and_tools_are_consistent() {
    for mode in [Mode::Dr, Mode::Nat, Mode::FullNat, Mode::Tunnel] {
        for workers in [1, 2] {
            let path = mode.config(workers);
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(
                text.contains(&format!("forward = \"{}\"", mode.name())),
                "{} forwards by {}",
                path.display(),
                mode.name()
            );
            assert!(text.contains(&format!("workers = {workers}")), "{}: workers = {workers}", path.display());
        }
    }
    // No python3 is a failure, not a pass: the lab's tools need it.
    let help = std::process::Command::new("python3")
        .arg("--version")
        .output()
        .unwrap_or_else(|e| panic!("python3 is needed to check the lab's tools: {e}"));
    assert!(help.status.success(), "python3 --version: {}", describe(&help));
    for t in ["rs_server.py", "toa_reader.py", "ipip_decap.py", "ipip_probe.py", "udp_client.py"] {
        let out = std::process::Command::new("python3").arg("-B").arg(tool(t)).arg("--help").output().expect("python3");
        assert!(out.status.success(), "{t} --help: {}", describe(&out));
    }
    // The TOA parser on a NOP, NOP, TOA(10.10.0.2:34567) option block.
    let check = "import sys; sys.path.insert(0, sys.argv[1]); import toa_reader as t; \
                 assert t.find_toa(bytes([1, 1, 254, 8, 0x87, 0x07, 10, 10, 0, 2])) == (34567, '10.10.0.2'); \
                 assert t.find_toa(bytes([2, 4, 5, 180, 0])) is None";
    let out = std::process::Command::new("python3")
        .arg("-B")
        .arg("-c")
        .arg(check)
        .arg(testbed_dir().join("tools"))
        .output()
        .expect("python3");
    assert!(out.status.success(), "toa_reader.find_toa: {}", describe(&out));
    let script = format!(
        "set -o pipefail; python3 -B {0} --emit 200000 | sha256sum | cut -d' ' -f1; python3 -B {0} --digest 200000",
        tool("rs_server.py").display()
    );
    let out = std::process::Command::new("bash").arg("-c").arg(&script).output().expect("bash");
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert!(out.status.success() && lines.len() == 2 && lines[0] == lines[1], "--emit vs --digest: {}", describe(&out));
}
