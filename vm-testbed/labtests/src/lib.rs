//! Helpers for the end-to-end tests in the netns lab (`vm-testbed/lab.sh`).
//!
//! The tests in `tests/` drive real tools (ping, arping, curl, raw sockets) in the lab's
//! namespaces against a running rvsd. They need root, the lab's host setup
//! (`vm-testbed/setup-host.sh`) and a built rvsd, so every one of them is `#[ignore]`:
//! plain `cargo test` skips them and `vm-testbed/test.sh` runs them with
//! `cargo test -p rvs-labtests -- --ignored --test-threads=1`, `RVSD_BIN` naming the binary.
//!
//! Contract:
//! - [`Lab`] is the only way a test gets the lab. Creating one takes a lock (in-process and
//!   across processes, so two test binaries never share the lab), builds the lab and starts
//!   rvsd in `lab-lb1`; dropping it, also while a test panics, stops every rvsd it started and
//!   removes the lab. A failing test first prints the tail of rvsd's log and the lab's state.
//! - [`ns_exec`] runs a command in a namespace and returns its output; it never panics on the
//!   command's failure. [`ns_exec_ok`] does, with the command's output in the message.
//! - [`status`] reads rvsd's `GET /v1/status`; [`drop_count`], [`total_drops`],
//!   [`worker_counter`] and [`port_mac`] read it. A missing counter panics with its JSON path
//!   (never reads as zero, so a renamed counter cannot make `== 0` pass); [`drop_reasons`]
//!   is the data path's own list of reasons.
//! - L4 (tests/l4.rs): [`Mode`] names a forwarding mode and its configs
//!   (`config/lab-<mode>[-2w].toml`); [`Lab::start_real_servers`] runs `lab.sh rs-start MODE`
//!   (HTTP + UDP echo in lab-rs1..3, plus the TOA reader for Full-NAT or the IPIP decapsulator
//!   for tunnel, and the NAT return route). [`http_who_many`], [`udp_who`], [`download_sha256`],
//!   [`upload_sha256`] and [`toa_entries`] drive and read them. [`service_server_stat`] reads
//!   per-server counters from a status; the key names it looks for are assumptions, kept in
//!   [`STAT_CONNS`], [`STAT_IN_PACKETS`] and [`STAT_OUT_PACKETS`] so they change in one place.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard};
use std::thread::sleep;
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod flows;
pub mod ha;

/// The client namespace (10.10.0.2 .. .9 on `eth0`).
pub const CLIENT: &str = "lab-client";
/// The first balancer's namespace; rvsd owns its `front` and `back` veths.
pub const LB1: &str = "lab-lb1";
/// The standby balancer's namespace.
pub const LB2: &str = "lab-lb2";
/// The real servers' namespaces (10.20.0.11 .. .13 on `eth0`, the VIP on `lo`).
pub const REAL_SERVERS: [&str; 3] = ["lab-rs1", "lab-rs2", "lab-rs3"];
/// The router between the two segments (the DR and IPIP return path).
pub const ROUTER: &str = "lab-router";

/// rvsd's address on the client segment (config/lab.toml, port `front`).
pub const LB1_FRONT_IP: &str = "10.10.0.1";
/// rvsd's address on the server segment (config/lab.toml, port `back`).
pub const LB1_BACK_IP: &str = "10.20.0.1";
/// The lab service's virtual address.
pub const VIP: &str = "10.10.0.100";
/// The client's first address.
pub const CLIENT_IP: &str = "10.10.0.2";
/// rvsd's REST address inside its namespace.
pub const API: &str = "127.0.0.1:8700";
/// The second VIP of the L4 configs (DR and tunnel's wrr service; on the real servers' lo).
pub const VIP2: &str = "10.10.0.101";
/// The real servers' addresses, in the order of [`REAL_SERVERS`].
pub const REAL_SERVER_IPS: [&str; 3] = ["10.20.0.11", "10.20.0.12", "10.20.0.13"];
/// The names the real servers answer with (`rs_server.py --name`), in the same order.
pub const REAL_SERVER_NAMES: [&str; 3] = ["rs1", "rs2", "rs3"];
/// rvsd's Full-NAT local addresses on the back port (config/lab-*.toml).
pub const LOCAL_ADDRESSES: [&str; 4] = ["10.20.0.200", "10.20.0.201", "10.20.0.202", "10.20.0.203"];

/// Assumed names of a server's connection counter in `/v1/status` (the first found wins), looked
/// up as `services[].servers[].stats.<name>` (or directly on the server). ipvsadm --stats calls it
/// Conns: connections scheduled to the server since start, not the active ones.
pub const STAT_CONNS: &[&str] = &["conns", "connections", "total_conns"];
/// Assumed names of a server's client → server packet counter (ipvsadm's InPkts).
pub const STAT_IN_PACKETS: &[&str] = &["in_packets", "in_pkts", "inpkts", "packets_in"];
/// Assumed names of a server's server → client packet counter (ipvsadm's OutPkts; 0 for DR and
/// tunnel, whose replies bypass rvs).
pub const STAT_OUT_PACKETS: &[&str] = &["out_packets", "out_pkts", "outpkts", "packets_out"];

/// Every drop reason rvsd counts, by the names its `/v1/status` `drops` uses: the data path's
/// own list (`rvs_dataplane::stats::DropReason::ALL`), never a copy that a new or renamed
/// reason could leave behind.
pub fn drop_reasons() -> Vec<&'static str> {
    rvs_dataplane::stats::DropReason::ALL.iter().map(|r| r.name()).collect()
}

/// The repository's root directory.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("repository root")
}

/// `vm-testbed/` in the repository.
pub fn testbed_dir() -> PathBuf {
    repo_root().join("vm-testbed")
}

/// A tool of the testbed, `vm-testbed/tools/NAME`.
pub fn tool(name: &str) -> PathBuf {
    testbed_dir().join("tools").join(name)
}

/// The lab lock: one file per host, not per checkout, because the lab (its namespaces,
/// bridges and addresses) is one per host; every lab user (these tests, perf/soak.sh,
/// vm-testbed/vm.sh and vm-test.sh) takes it with flock(2). `RVS_LAB_LOCK` names another.
pub fn lab_lock_path() -> PathBuf {
    std::env::var_os("RVS_LAB_LOCK").map_or_else(|| PathBuf::from("/run/lock/rvs-lab.lock"), PathBuf::from)
}

/// The folder where the lab keeps rvsd's logs and pid files.
pub fn run_dir() -> PathBuf {
    testbed_dir().join("run")
}

/// A command's output, readable: exit status, stdout and stderr.
pub fn describe(out: &Output) -> String {
    format!(
        "{}\n--- stdout\n{}--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// Runs `vm-testbed/lab.sh ARGS` and returns its output (the environment, `RVSD_BIN`
/// included, is passed on).
pub fn lab_sh(args: &[&str]) -> Output {
    run(Command::new("bash").arg(testbed_dir().join("lab.sh")).args(args))
}

fn lab_sh_ok(args: &[&str]) {
    let out = lab_sh(args);
    eprint!("{}", String::from_utf8_lossy(&out.stdout));
    assert!(out.status.success(), "lab.sh {} failed: {}", args.join(" "), describe(&out));
}

/// Runs `CMD` in namespace `ns` (`ip netns exec NS CMD...`).
pub fn ns_exec(ns: &str, cmd: &[&str]) -> Output {
    assert!(!cmd.is_empty(), "ns_exec needs a command");
    run(Command::new("ip").args(["netns", "exec", ns]).args(cmd))
}

/// Runs `CMD` in namespace `ns` and returns its stdout; panics, with the output, if it fails.
pub fn ns_exec_ok(ns: &str, cmd: &[&str]) -> String {
    let out = ns_exec(ns, cmd);
    assert!(out.status.success(), "in {ns}: {} failed: {}", cmd.join(" "), describe(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Pings `dst` from `ns`, `count` times, 0.2 s apart, waiting at most 2 s for each reply.
pub fn ping(ns: &str, dst: &str, count: u32) -> Output {
    let count = count.to_string();
    ns_exec(ns, &["ping", "-n", "-c", &count, "-i", "0.2", "-W", "2", dst])
}

/// How many replies a ping run reports ("N received"), 0 if it says nothing.
pub fn ping_received(out: &Output) -> u32 {
    let text = String::from_utf8_lossy(&out.stdout);
    text.split(',')
        .find_map(|part| part.trim().strip_suffix(" received").and_then(|n| n.trim().parse().ok()))
        .unwrap_or(0)
}

/// The MAC that namespace `ns`'s neighbour table has for `ip` (lower case), if any.
pub fn neigh_mac(ns: &str, ip: &str) -> Option<String> {
    let out = ns_exec(ns, &["ip", "neigh", "show", ip]);
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        words.find(|w| *w == "lladdr").and_then(|_| words.next()).map(str::to_ascii_lowercase)
    })
}

/// The kernel's MAC for interface `ifname` in `ns` (lower case).
pub fn link_mac(ns: &str, ifname: &str) -> String {
    ns_exec_ok(ns, &["cat", &format!("/sys/class/net/{ifname}/address")]).trim().to_ascii_lowercase()
}

/// A kernel interface counter, e.g. `link_stat(LB1, "front", "rx_packets")`.
pub fn link_stat(ns: &str, ifname: &str, stat: &str) -> u64 {
    let text = ns_exec_ok(ns, &["cat", &format!("/sys/class/net/{ifname}/statistics/{stat}")]);
    text.trim().parse().unwrap_or_else(|e| panic!("{ns} {ifname} {stat}: {text:?}: {e}"))
}

/// Points every real server's route to the client network at `gw`: rvsd's back address for
/// NAT (replies must pass rvsd), the router (the lab's default) for DR and IPIP.
pub fn rs_route_clients_via(gw: &str) {
    for rs in REAL_SERVERS {
        ns_exec_ok(rs, &["ip", "route", "replace", "10.10.0.0/24", "via", gw, "dev", "eth0"]);
    }
}

/// Polls `f` every `every` until it returns true or `timeout` passes; returns its last answer.
pub fn wait_until(timeout: Duration, every: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        sleep(every);
    }
}

/// rvsd's `GET /v1/status` in namespace `ns`, or why not.
pub fn try_status_of(ns: &str) -> Result<Value, String> {
    let url = format!("http://{API}/v1/status");
    let out = ns_exec(ns, &["curl", "-sf", "-m", "5", &url]);
    if !out.status.success() {
        return Err(format!("curl {url} in {ns} failed: {}", describe(&out)));
    }
    serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("{url} in {ns} is not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

/// rvsd's `GET /v1/status` in namespace `ns`; panics if it cannot be read.
pub fn status_of(ns: &str) -> Value {
    try_status_of(ns).unwrap_or_else(|e| panic!("{e}"))
}

/// lab-lb1's rvsd's `GET /v1/status`.
pub fn status() -> Value {
    status_of(LB1)
}

/// The `drops` map of a status, reason name → count (non-numbers are left out).
pub fn drops(status: &Value) -> BTreeMap<String, u64> {
    status
        .get("drops")
        .and_then(Value::as_object)
        .map(|m| m.iter().filter_map(|(k, v)| v.as_u64().map(|n| (k.clone(), n))).collect())
        .unwrap_or_default()
}

/// The count of drop reason `reason` in a status (`drops.<reason>`). Panics if it is absent
/// or not a number: a renamed counter must fail the test, not read as 0.
pub fn drop_count(status: &Value, reason: &str) -> u64 {
    status.get("drops").and_then(|d| d.get(reason)).and_then(Value::as_u64).unwrap_or_else(|| {
        let known: Vec<&String> =
            status.get("drops").and_then(Value::as_object).map(|m| m.keys().collect()).unwrap_or_default();
        panic!("the status has no counter drops.{reason} (its drops: {known:?})")
    })
}

/// The sum of all drop counters in a status.
pub fn total_drops(status: &Value) -> u64 {
    drops(status).values().sum()
}

/// A per-worker counter summed over the workers: `workers[i].<key>` of every worker. Panics
/// if the status has no workers or a worker lacks the counter (with the JSON path): a renamed
/// counter must fail the test, not be found somewhere else or read as 0.
pub fn worker_counter(status: &Value, key: &str) -> u64 {
    let workers = status
        .get("workers")
        .and_then(Value::as_array)
        .filter(|w| !w.is_empty())
        .unwrap_or_else(|| panic!("the status has no workers[] to read {key} from"));
    workers
        .iter()
        .enumerate()
        .map(|(i, w)| {
            w.get(key).and_then(Value::as_u64).unwrap_or_else(|| {
                let known: Vec<&String> = w.as_object().map(|m| m.keys().collect()).unwrap_or_default();
                panic!("the status has no counter workers[{i}].{key} (its keys: {known:?})")
            })
        })
        .sum()
}

/// The entry of port `name` in a status's `ports`.
pub fn port<'a>(status: &'a Value, name: &str) -> Option<&'a Value> {
    status
        .get("ports")
        .and_then(Value::as_array)
        .and_then(|ports| ports.iter().find(|p| p.get("name").and_then(Value::as_str) == Some(name)))
}

/// The MAC address of port `name` in a status (lower case); panics if there is none.
pub fn port_mac(status: &Value, name: &str) -> String {
    port(status, name)
        .and_then(|p| p.get("mac"))
        .and_then(Value::as_str)
        .map(str::to_ascii_lowercase)
        .unwrap_or_else(|| panic!("status has no MAC for port {name:?}: {status:#}"))
}

/// A forwarding mode of the L4 tests, with its lab configs and real-server setup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Direct routing: MAC rewrite, replies from the VIP through lab-router.
    Dr,
    /// NAT: the real servers route the clients through rvsd.
    Nat,
    /// Full-NAT: the servers see a local address; TOA carries the client.
    FullNat,
    /// IPIP tunnel: decapsulated by `tools/ipip_decap.py`, replies through lab-router.
    Tunnel,
}

impl Mode {
    /// The name used by configs, `forward = ...` and `lab.sh rs-start`.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Dr => "dr",
            Mode::Nat => "nat",
            Mode::FullNat => "fullnat",
            Mode::Tunnel => "tunnel",
        }
    }

    /// `config/lab-<mode>.toml` (1 worker) or `config/lab-<mode>-2w.toml` (2 workers).
    pub fn config(self, workers: u32) -> PathBuf {
        let suffix = if workers == 1 { String::new() } else { format!("-{workers}w") };
        repo_root().join("config").join(format!("lab-{}{suffix}.toml", self.name()))
    }

    /// The wrr 3:2:1 service of this mode's configs: a second VIP for DR and tunnel (they cannot
    /// map ports), :8080 mapped to the servers' :80 for NAT and Full-NAT.
    pub fn wrr_service(self) -> (&'static str, u16) {
        match self {
            Mode::Dr | Mode::Tunnel => (VIP2, 80),
            Mode::Nat | Mode::FullNat => (VIP, 8080),
        }
    }

    /// Whether the real servers see the client's own address (all but Full-NAT).
    pub fn server_sees_client(self) -> bool {
        self != Mode::FullNat
    }

    /// Whether replies pass through rvsd (NAT and Full-NAT), so it counts outbound packets.
    pub fn replies_through_lb(self) -> bool {
        matches!(self, Mode::Nat | Mode::FullNat)
    }
}

/// One answer of the lab's HTTP server to `GET /`: who answered and the peer it saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Who {
    /// `rs1`, `rs2` or `rs3`.
    pub server: String,
    /// The peer's address as the server saw it.
    pub peer_ip: String,
    /// The peer's port as the server saw it.
    pub peer_port: u16,
}

/// Parses `rs1 10.10.0.2:34567` or `rs1 [2001:db8:10::2]:34567` (rs_server.py's answer to
/// `GET /`); an IPv6 peer's `peer_ip` is the address without brackets.
pub fn parse_who(line: &str) -> Option<Who> {
    let (server, peer) = line.trim().split_once(' ')?;
    let (ip, port) = peer.rsplit_once(':')?;
    let ip = match ip.strip_prefix('[').and_then(|i| i.strip_suffix(']')) {
        Some(v6) => v6.parse::<std::net::Ipv6Addr>().ok().map(|_| v6)?,
        None => ip.parse::<std::net::Ipv4Addr>().ok().map(|_| ip)?,
    };
    if !REAL_SERVER_NAMES.contains(&server) {
        return None;
    }
    Some(Who { server: server.to_string(), peer_ip: ip.to_string(), peer_port: port.parse().ok()? })
}

/// `count` sequential `GET /` requests from `ns` to `url`, each on a new connection (one curl per
/// request), in one shell so the lab pays one `ip netns exec`. One entry per request: the parsed
/// answer, or the raw line (`FAIL <curl exit>` or an unexpected body) as the error.
pub fn http_who_many(ns: &str, url: &str, count: u32) -> Vec<Result<Who, String>> {
    let script = format!(
        "for i in $(seq {count}); do out=$(curl -sS -m 5 {url} 2>&1) && echo \"$out\" || echo \"FAIL $? $out\"; done"
    );
    let out = ns_exec(ns, &["sh", "-c", &script]);
    let text = String::from_utf8_lossy(&out.stdout);
    let mut answers: Vec<Result<Who, String>> =
        text.lines().map(|l| parse_who(l).ok_or_else(|| l.to_string())).collect();
    while answers.len() < count as usize {
        answers.push(Err(format!("no output (shell: {})", describe(&out))));
    }
    answers
}

/// One `GET /` from `ns` to `url` from local port `local_port` (so the test knows the client's port).
pub fn http_who_from_port(ns: &str, url: &str, local_port: u16) -> Result<Who, String> {
    let port = local_port.to_string();
    let out = ns_exec(ns, &["curl", "-sS", "-m", "5", "--local-port", &port, url]);
    let text = String::from_utf8_lossy(&out.stdout);
    parse_who(&text).ok_or_else(|| format!("curl --local-port {port} {url}: {}", describe(&out)))
}

/// `count` UDP requests from `ns` to `to` (`ip:port`), each from a new source port
/// (tools/udp_client.py). Per request: `(server, echoed payload)` or the line as the error.
pub fn udp_who(ns: &str, to: &str, count: u32, payload: &str) -> Vec<Result<(String, String), String>> {
    udp_requests(ns, to, count, payload, None)
}

/// As [`udp_who`], but each request `size` bytes (fragmented by the client's kernel when
/// over the MTU), its echo checked byte for byte by `udp_client.py --size`: each reply is
/// `(server, "intact-SIZE")` or `(server, "corrupt-LEN")`.
pub fn udp_who_sized(
    ns: &str,
    to: &str,
    count: u32,
    payload: &str,
    size: u32,
) -> Vec<Result<(String, String), String>> {
    udp_requests(ns, to, count, payload, Some(size))
}

/// Runs `udp_client.py` for [`udp_who`] (`size` None) and [`udp_who_sized`].
fn udp_requests(
    ns: &str,
    to: &str,
    count: u32,
    payload: &str,
    size: Option<u32>,
) -> Vec<Result<(String, String), String>> {
    let tool = tool("udp_client.py");
    let tool = tool.to_string_lossy();
    let count_s = count.to_string();
    let size_s = size.map(|n| n.to_string());
    let mut args = vec!["python3", "-B", &tool, "--to", to, "--count", &count_s, "--payload", payload];
    if let Some(size_s) = &size_s {
        args.extend(["--size", size_s.as_str()]);
    }
    let out = ns_exec(ns, &args);
    let text = String::from_utf8_lossy(&out.stdout);
    let mut replies: Vec<Result<(String, String), String>> = text
        .lines()
        .map(|l| match l.split_once(' ') {
            Some((s, p)) if REAL_SERVER_NAMES.contains(&s) => Ok((s.to_string(), p.to_string())),
            _ => Err(l.to_string()),
        })
        .collect();
    while replies.len() < count as usize {
        replies.push(Err(format!("no output: {}", describe(&out))));
    }
    replies
}

/// The size of the L4 tests' bulk transfer: `RVS_L4_BYTES`, default 100 MiB.
pub fn transfer_bytes() -> u64 {
    std::env::var("RVS_L4_BYTES").ok().and_then(|v| v.parse().ok()).unwrap_or(100 * 1024 * 1024)
}

/// The sha256 of `GET /bytes/N`'s body (rs_server.py --digest, no server needed).
pub fn expected_sha256(n: u64) -> String {
    let tool = tool("rs_server.py");
    let out = run(Command::new("python3").arg("-B").arg(&tool).arg("--digest").arg(n.to_string()));
    assert!(out.status.success(), "rs_server.py --digest {n}: {}", describe(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Downloads `url` (`.../bytes/N`) in `ns` with curl and returns the body's sha256, or why not.
pub fn download_sha256(ns: &str, url: &str, timeout: Duration) -> Result<String, String> {
    let script = format!("set -o pipefail; curl -sS -f -m {} {url} | sha256sum", timeout.as_secs().max(1));
    let out = ns_exec(ns, &["bash", "-c", &script]);
    let text = String::from_utf8_lossy(&out.stdout);
    match text.split_whitespace().next() {
        Some(h) if out.status.success() && h.len() == 64 => Ok(h.to_string()),
        _ => Err(format!("download {url}: {}", describe(&out))),
    }
}

/// Uploads `n` deterministic bytes (rs_server.py --emit) from `ns` to `url` (`.../sha256`,
/// streamed with chunked encoding) and returns the server's answer: `(sha256, length)`.
pub fn upload_sha256(ns: &str, url: &str, n: u64, timeout: Duration) -> Result<(String, u64), String> {
    let tool = tool("rs_server.py");
    let script = format!(
        "set -o pipefail; python3 -B {} --emit {n} | curl -sS -f -m {} -T - {url}",
        tool.to_string_lossy(),
        timeout.as_secs().max(1)
    );
    let out = ns_exec(ns, &["bash", "-c", &script]);
    let text = String::from_utf8_lossy(&out.stdout);
    let mut words = text.split_whitespace();
    match (words.next(), words.next().and_then(|l| l.parse().ok())) {
        (Some(h), Some(len)) if out.status.success() && h.len() == 64 => Ok((h.to_string(), len)),
        _ => Err(format!("upload to {url}: {}", describe(&out))),
    }
}

/// A real-server tool's log, `vm-testbed/run/rsN-<tool>.log` (`tool`: server, server6, toa, decap).
pub fn rs_log_path(rs_index: usize, tool: &str) -> PathBuf {
    run_dir().join(format!("rs{}-{tool}.log", rs_index + 1))
}

/// What real server `rs_index`'s TOA reader logged: `(source as seen, client from TOA)` pairs,
/// both `ip:port`, oldest first.
pub fn toa_entries(rs_index: usize) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(rs_log_path(rs_index, "toa")).unwrap_or_default();
    parse_toa_log(&text)
}

/// Parses toa_reader.py's lines `10.20.0.200:40001 -> 10.10.0.2:34567`.
pub fn parse_toa_log(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| l.split_once(" -> "))
        .map(|(a, b)| (a.trim().to_string(), b.trim().to_string()))
        .collect()
}

/// The entry of service `protocol` `vip`:`port` in a status's `services` (fields `protocol`,
/// `address` and `port`, as in the config file; `vip` is accepted for `address`).
pub fn service<'a>(status: &'a Value, protocol: &str, vip: &str, port: u16) -> Option<&'a Value> {
    status.get("services").and_then(Value::as_array)?.iter().find(|s| {
        let proto = s.get("protocol").and_then(Value::as_str).map(str::to_ascii_lowercase);
        let addr = s.get("address").or_else(|| s.get("vip")).and_then(Value::as_str);
        proto.as_deref() == Some(protocol)
            && addr == Some(vip)
            && s.get("port").and_then(Value::as_u64) == Some(u64::from(port))
    })
}

/// Counter `names` (the first alias present) of server `rip` of a service in a status: under the
/// server's `stats`, or directly on the server. `None` if the service, the server or the key is
/// missing, so the caller can say which it expected.
pub fn service_server_stat(
    status: &Value,
    protocol: &str,
    vip: &str,
    port: u16,
    rip: &str,
    names: &[&str],
) -> Option<u64> {
    let server = service(status, protocol, vip, port)?
        .get("servers")
        .and_then(Value::as_array)?
        .iter()
        .find(|r| r.get("address").and_then(Value::as_str) == Some(rip))?;
    let stats = server.get("stats").unwrap_or(server);
    names.iter().find_map(|n| stats.get(*n).and_then(Value::as_u64))
}

/// Serialises lab users within this process; the lock file does it across processes.
static LAB_LOCK: Mutex<()> = Mutex::new(());

/// The lab, built and (by default) with rvsd running in lab-lb1; torn down when dropped.
pub struct Lab {
    started: Vec<String>,
    // Dropped after `Drop::drop` has torn the lab down: the lab is released last.
    _file_lock: File,
    _lock: MutexGuard<'static, ()>,
}

impl Lab {
    /// Builds the lab and starts rvsd in lab-lb1 with `config/lab.toml`.
    pub fn up() -> Lab {
        let mut lab = Lab::up_without_lb();
        lab.start_lb("lb1", None);
        lab
    }

    /// Builds the lab with no rvsd running.
    pub fn up_without_lb() -> Lab {
        let lock = LAB_LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let uid = run(Command::new("id").arg("-u"));
        assert!(
            String::from_utf8_lossy(&uid.stdout).trim() == "0",
            "the lab tests need root (network namespaces): run sudo bash vm-testbed/test.sh"
        );
        std::fs::create_dir_all(run_dir()).expect("create vm-testbed/run");
        let lock_path = lab_lock_path();
        if let Some(dir) = lock_path.parent() {
            std::fs::create_dir_all(dir).expect("create the lab lock's directory");
        }
        let file_lock = File::create(&lock_path).expect("create the lab lock");
        file_lock.lock().expect("lock the lab");
        // From here on the guard exists, so a failure below still tears the lab down.
        let lab = Lab { started: Vec::new(), _file_lock: file_lock, _lock: lock };
        // Start from a clean lab even if an earlier run was killed half way.
        lab_sh_ok(&["down"]);
        lab_sh_ok(&["up"]);
        lab
    }

    /// Starts rvsd for `lb` ("lb1" or "lb2"), with `config` or the lab's default for it, and
    /// waits until its REST port answers.
    pub fn start_lb(&mut self, lb: &str, config: Option<&Path>) {
        if !self.started.iter().any(|s| s == lb) {
            self.started.push(lb.to_string());
        }
        let config = config.map(|c| c.to_string_lossy().into_owned());
        let mut args = vec!["start-lb", lb];
        if let Some(c) = config.as_deref() {
            args.push(c);
        }
        lab_sh_ok(&args);
    }

    /// Stops rvsd for `lb`: SIGTERM, or SIGKILL (a crash) when `kill`.
    pub fn stop_lb(&mut self, lb: &str, kill: bool) {
        let mut args = vec!["stop-lb", lb];
        if kill {
            args.push("--kill");
        }
        lab_sh_ok(&args);
        self.started.retain(|s| s != lb);
    }

    /// Starts the real servers' daemons for `mode` (`lab.sh rs-start MODE`: HTTP :80 and UDP
    /// echo :53 in lab-rs1..3, the TOA reader for Full-NAT, the IPIP decapsulator for tunnel, the
    /// route through rvsd for NAT) and waits until each is ready. `lab.sh down`, run when the
    /// guard drops, stops them.
    pub fn start_real_servers(&mut self, mode: Mode) {
        lab_sh_ok(&["rs-start", mode.name()]);
    }

    /// The log of rvsd for `lb`, `vm-testbed/run/<lb>.log`.
    pub fn log_path(lb: &str) -> PathBuf {
        run_dir().join(format!("{lb}.log"))
    }

    fn print_diagnostics(&self) {
        eprintln!("==== lab diagnostics (test failed)");
        for lb in &self.started {
            let path = Lab::log_path(lb);
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            eprintln!("---- last 40 lines of {}", path.display());
            for line in &lines[lines.len().saturating_sub(40)..] {
                eprintln!("{line}");
            }
            match try_status_of(&format!("lab-{lb}")) {
                Ok(v) => eprintln!("---- {lb} /v1/status\n{v:#}"),
                Err(e) => eprintln!("---- {lb} /v1/status unavailable: {e}"),
            }
        }
        // The real servers' tools (lab.sh rs-start), if any ran.
        for i in 0..REAL_SERVERS.len() {
            for t in ["server", "server6", "toa", "decap"] {
                let path = rs_log_path(i, t);
                let Ok(text) = std::fs::read_to_string(&path) else { continue };
                let lines: Vec<&str> = text.lines().collect();
                eprintln!("---- last 10 lines of {}", path.display());
                for line in &lines[lines.len().saturating_sub(10)..] {
                    eprintln!("{line}");
                }
            }
        }
        let out = lab_sh(&["status"]);
        eprintln!("---- lab.sh status\n{}", String::from_utf8_lossy(&out.stdout));
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.print_diagnostics();
        }
        // No panics here: this also runs while a failed test unwinds.
        for lb in std::mem::take(&mut self.started).iter().rev() {
            let out = lab_sh(&["stop-lb", lb]);
            if !out.status.success() {
                eprintln!("warning: lab.sh stop-lb {lb} failed: {}", describe(&out));
            }
        }
        let out = lab_sh(&["down"]);
        if !out.status.success() {
            eprintln!("warning: lab.sh down failed: {}", describe(&out));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_counters_from_status() {
        let s = json!({
            "ports": [{"name": "front", "mac": "02:00:00:00:01:01"}, {"name": "back", "mac": "02:00:00:00:01:02"}],
            "workers": [{"index": 0, "arp_replies_sent": 2}, {"index": 1, "arp_replies_sent": 3}],
            "drops": {"ip_truncated": 4, "eth_not_for_us": 1},
        });
        assert_eq!(worker_counter(&s, "arp_replies_sent"), 5);
        assert_eq!(drop_count(&s, "ip_truncated"), 4);
        assert_eq!(total_drops(&s), 5);
        assert_eq!(port_mac(&s, "back"), "02:00:00:00:01:02");
        assert!(port(&s, "mgmt").is_none());
    }

    #[test]
    #[should_panic(expected = "drops.tcp_no_conn")]
    fn a_missing_drop_reason_panics() {
        drop_count(&json!({"drops": {"tcp_no_conn_renamed": 0}}), "tcp_no_conn");
    }

    #[test]
    #[should_panic(expected = "workers[1].arp_replies_sent")]
    fn a_worker_without_the_counter_panics() {
        let s = json!({"workers": [{"arp_replies_sent": 1}, {"rx_packets": 2}], "ports": [{"arp_replies_sent": 5}]});
        worker_counter(&s, "arp_replies_sent");
    }

    #[test]
    fn drop_reasons_are_the_data_paths() {
        let names = drop_reasons();
        assert_eq!(names.len(), rvs_dataplane::stats::DropReason::COUNT);
        assert!(names.contains(&"tcp_no_conn") && names.contains(&"conn_server_removed"), "{names:?}");
    }

    #[test]
    fn parses_l4_tool_output() {
        assert_eq!(
            parse_who("rs2 10.10.0.2:34567\n"),
            Some(Who { server: "rs2".into(), peer_ip: "10.10.0.2".into(), peer_port: 34567 })
        );
        assert_eq!(parse_who("FAIL 28 curl: (28) timeout"), None);
        assert_eq!(parse_who("rs9 10.10.0.2:1"), None);
        assert_eq!(
            parse_who("rs1 [2001:db8:10::2]:40000"),
            Some(Who { server: "rs1".into(), peer_ip: "2001:db8:10::2".into(), peer_port: 40000 })
        );
        assert_eq!(parse_who("rs1 2001:db8:10::2:40000"), None, "an IPv6 peer without brackets");
        assert_eq!(parse_who("rs1 [10.10.0.2]:1"), None);
        let toa = parse_toa_log("ready toa_reader eth0 port 80\n10.20.0.200:40001 -> 10.10.0.2:34567\n");
        assert_eq!(toa, vec![("10.20.0.200:40001".to_string(), "10.10.0.2:34567".to_string())]);
        assert_eq!(Mode::Nat.wrr_service(), (VIP, 8080));
        assert!(Mode::FullNat.config(2).ends_with("config/lab-fullnat-2w.toml"));
    }

    #[test]
    fn reads_service_stats_from_status() {
        let s = json!({"services": [
            {"protocol": "udp", "address": "10.10.0.100", "port": 53, "servers": []},
            {"protocol": "tcp", "address": "10.10.0.100", "port": 80, "servers": [
                {"address": "10.20.0.11", "port": 80, "stats": {"conns": 20, "in_packets": 7}},
                {"address": "10.20.0.12", "port": 80, "conns": 19}
            ]}
        ]});
        assert_eq!(service_server_stat(&s, "tcp", VIP, 80, "10.20.0.11", STAT_CONNS), Some(20));
        assert_eq!(service_server_stat(&s, "tcp", VIP, 80, "10.20.0.11", STAT_IN_PACKETS), Some(7));
        assert_eq!(service_server_stat(&s, "tcp", VIP, 80, "10.20.0.12", STAT_CONNS), Some(19));
        assert_eq!(service_server_stat(&s, "tcp", VIP, 80, "10.20.0.13", STAT_CONNS), None);
        assert_eq!(service_server_stat(&s, "tcp", VIP, 8080, "10.20.0.11", STAT_CONNS), None);
    }

    #[test]
    fn parses_ping_summary() {
        let out = Output {
            status: std::process::ExitStatus::default(),
            stdout: b"3 packets transmitted, 2 received, 33.3333% packet loss, time 401ms\n".to_vec(),
            stderr: Vec::new(),
        };
        assert_eq!(ping_received(&out), 2);
    }
}
