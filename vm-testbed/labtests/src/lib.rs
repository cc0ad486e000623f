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
//!   [`worker_counter`] and [`port_mac`] read it. Missing counters read as absent or zero, so
//!   the assertions (not the accessors) say what was expected.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard};
use std::thread::sleep;
use std::time::{Duration, Instant};

use serde_json::Value;

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

/// The drop reasons the lab tests know, by the names rvsd's `/v1/status` `drops` uses
/// (rvs-dataplane's `DropReason`; the status lists every reason, zeros included).
pub const DROP_REASONS: &[&str] = &[
    "eth_truncated",
    "eth_unknown_type",
    "eth_not_for_us",
    "eth_bad_source",
    "arp_malformed",
    "arp_not_for_us",
    "ip_truncated",
    "ip_bad_version",
    "ip_bad_ihl",
    "ip_bad_length",
    "ip_bad_checksum",
    "ip_fragment",
    "ip_bad_source",
    "ip_not_for_us",
    "ip_unknown_protocol",
    "icmp_malformed",
    "icmp_bad_checksum",
    "icmp_unhandled",
    "l4_no_service",
    "no_route",
    "neigh_pending_full",
    "neigh_unresolved",
    "neigh_table_full",
    "no_mbuf",
    "tx_full",
];

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

/// The count of drop reason `reason` in a status, 0 if it is absent.
pub fn drop_count(status: &Value, reason: &str) -> u64 {
    status.get("drops").and_then(|d| d.get(reason)).and_then(Value::as_u64).unwrap_or(0)
}

/// The sum of all drop counters in a status.
pub fn total_drops(status: &Value) -> u64 {
    drops(status).values().sum()
}

fn sum_key(v: &Value, key: &str) -> Option<u64> {
    match v {
        Value::Object(m) => {
            let mut found = m.get(key).and_then(Value::as_u64);
            for (k, child) in m {
                if k != key {
                    if let Some(n) = sum_key(child, key) {
                        found = Some(found.unwrap_or(0) + n);
                    }
                }
            }
            found
        }
        Value::Array(items) => items.iter().filter_map(|i| sum_key(i, key)).reduce(|a, b| a + b),
        _ => None,
    }
}

/// A per-worker counter summed over workers: every numeric `key` under the status's
/// `workers`, however nested; failing that, anywhere in the status. `None` if there is none.
pub fn worker_counter(status: &Value, key: &str) -> Option<u64> {
    status.get("workers").and_then(|w| sum_key(w, key)).or_else(|| sum_key(status, key))
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
        let file_lock = File::create(run_dir().join("labtests.lock")).expect("create the lab lock");
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
            "workers": [{"id": 0, "counters": {"arp_replies_sent": 2}}, {"id": 1, "arp_replies_sent": 3}],
            "drops": {"ip_truncated": 4, "eth_not_for_us": 1},
        });
        assert_eq!(worker_counter(&s, "arp_replies_sent"), Some(5));
        assert_eq!(worker_counter(&s, "nope"), None);
        assert_eq!(drop_count(&s, "ip_truncated"), 4);
        assert_eq!(drop_count(&s, "tx_full"), 0);
        assert_eq!(total_drops(&s), 5);
        assert_eq!(port_mac(&s, "back"), "02:00:00:00:01:02");
        assert!(port(&s, "mgmt").is_none());
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
