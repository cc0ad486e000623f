//! The `rvsd` binary end to end: `--check` on good and bad files, start-up failures
//! that must be one clear paragraph and exit 1, and a full start → `GET /v1/status` →
//! SIGTERM → exit 0 on `net_ring` vdevs without hugepages, and the worker watchdog with
//! a worker thread really stopped (ptrace; needs root and python3).
//!
//! The DPDK runs use `--no-huge --no-shconf --no-telemetry` and a unique
//! `--file-prefix`, so they need no hugepages and do not collide with each other or with
//! a running rvsd.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rvs_dataplane::stats::DropReason;

const RVSD: &str = env!("CARGO_BIN_EXE_rvsd");

/// A scratch file removed at drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(contents: &str) -> TempFile {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("rvsd-it-{}-{n}.toml", std::process::id()));
        std::fs::write(&p, contents).unwrap();
        TempFile(p)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn run(args: &[&str]) -> Output {
    Command::new(RVSD).args(args).env("RUST_LOG", "info").output().unwrap()
}

fn check(text: &str) -> Output {
    let f = TempFile::new(text);
    run(&["--config", f.0.to_str().unwrap(), "--check"])
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A free loopback port (released before rvsd binds it; the race is harmless here).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// EAL arguments for a hugepage-free run that shares nothing with other processes.
fn eal_args() -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let prefix = format!("rvs-it-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
    format!(r#"["--no-huge", "--no-shconf", "--no-telemetry", "-m", "128", "--file-prefix", "{prefix}"]"#)
}

/// Two `net_ring` ports (they have no MAC of their own, hence the overrides).
fn ring_config(api_port: u16, eal: &str, back_device: &str) -> String {
    format!(
        r#"
[dataplane]
workers = 1
idle = "adaptive"
eal_args = {eal}
mempool_size = 2047
rx_descriptors = 256
tx_descriptors = 256
[[port]]
name = "front"
device = "net_ring0"
address = "10.10.0.1/24"
mac = "02:00:00:00:00:01"
[[port]]
name = "back"
device = "{back_device}"
address = "10.20.0.1/24"
local_addresses = ["10.20.0.200"]
mac = "02:00:00:00:00:02"
[[route]]
prefix = "0.0.0.0/0"
via = "10.10.0.254"
[api]
listen = "127.0.0.1:{api_port}"
[[service]]
protocol = "tcp"
address = "10.10.0.100"
port = 80
scheduler = "wrr"
[[service.server]]
address = "10.20.0.11"
weight = 2
forward = "nat"
"#
    )
}

/// A running rvsd, SIGKILLed if the test ends without stopping it.
struct Daemon {
    child: Child,
    _config: TempFile,
    log: PathBuf,
}

impl Daemon {
    fn start(config: &str) -> Daemon {
        let cfg = TempFile::new(config);
        let log = cfg.0.with_extension("log");
        let child = Command::new(RVSD)
            .args(["--config", cfg.0.to_str().unwrap()])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Daemon { child, _config: cfg, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits up to `limit` for the process to exit.
    fn wait(&mut self, limit: Duration) -> Option<i32> {
        let t0 = Instant::now();
        while t0.elapsed() < limit {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill").args([sig, &self.child.id().to_string()]).status().unwrap().success();
        assert!(ok, "kill {sig} failed");
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_file(&self.log);
    }
}

/// `GET path` over plain HTTP/1.0; `None` while nothing listens.
fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let code = out.split(' ').nth(1)?.parse().ok()?;
    let body = out.split_once("\r\n\r\n")?.1.to_string();
    Some((code, body))
}

#[test]
fn check_accepts_a_good_config() {
    let o = check(&ring_config(8700, "[]", "net_ring1"));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("configuration is valid"));
}

#[test]
fn check_lists_every_error_with_its_field() {
    let text = ring_config(8700, "[]", "net_ring1")
        .replace("workers = 1", "workers = 0")
        .replace("address = \"10.20.0.1/24\"", "address = \"10.10.0.7/24\"")
        .replace("scheduler = \"wrr\"", "scheduler = \"fastest\"")
        .replace("weight = 2", "weight = 70000");
    let o = check(&text);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    for field in ["dataplane.workers", "port[1].address", "service[0].scheduler", "service[0].server[0].weight"] {
        assert!(err.contains(&format!("{field}: ")), "{field} not named in:\n{err}");
    }
    assert!(err.contains("overlaps port[0]"), "{err}");
}

/// An IPv6 NAT66 service is valid, with persistence by prefix length too, and with the
/// SYN proxy on it or on a NAT64 one; one with an IPv4 netmask, or the SYN proxy on a DR
/// server, is refused naming the field.
#[test]
fn check_takes_ipv6_services_and_names_what_they_cannot_have() {
    let text = ring_config(8700, "[]", "net_ring1")
        .replace("address = \"10.10.0.1/24\"", "address = \"10.10.0.1/24\"\nipv6_addresses = [\"2001:db8:10::1/64\"]")
        .replace("address = \"10.20.0.1/24\"", "address = \"10.20.0.1/24\"\nipv6_addresses = [\"2001:db8:20::1/64\"]")
        + "[[service]]\nprotocol = \"tcp\"\naddress = \"2001:db8:10::100\"\nport = 80\nscheduler = \"rr\"\n\
           [[service.server]]\naddress = \"2001:db8:20::11\"\nforward = \"nat\"\n";
    let o = check(&text);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let persistent = text
        .replace("scheduler = \"rr\"\n", "scheduler = \"rr\"\npersistence = \"60s\"\npersistence_netmask = \"64\"\n");
    let o = check(&persistent);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = check(&persistent.replace("\"64\"", "\"255.255.255.0\""));
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("service[1].persistence_netmask: "), "{}", stderr(&o));
    // The SYN proxy serves NAT66 and NAT64 (an IPv4 Full-NAT server behind the IPv6 VIP).
    let proxied = persistent.replace("scheduler = \"rr\"\n", "scheduler = \"rr\"\nsyn_proxy = \"always\"\n");
    let o = check(&proxied);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = check(&proxied.replace(
        "address = \"2001:db8:20::11\"\nforward = \"nat\"",
        "address = \"10.20.0.11\"\nforward = \"fullnat\"",
    ));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // What the proxy cannot serve stays refused by field: a DR server.
    let o = check(&proxied.replace("forward = \"nat\"", "forward = \"dr\""));
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("service[1].syn_proxy: "), "not named in:\n{err}");
    assert!(!err.contains("service[0]"), "the IPv4 service is fine:\n{err}");
}

#[test]
fn check_reports_toml_syntax_with_line() {
    let o = check("[dataplane]\nworkers = \n");
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("line 2"), "{}", stderr(&o));
}

#[test]
fn check_refuses_non_loopback_api() {
    let o = check(&ring_config(8700, "[]", "net_ring1").replace("127.0.0.1:8700", "0.0.0.0:8700"));
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("api.listen: 0.0.0.0:8700: non-loopback api.listen requires a bearer token"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn missing_config_file_is_named() {
    let o = run(&["--config", "/nonexistent/rvs.toml"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("/nonexistent/rvs.toml"), "{}", stderr(&o));
}

#[test]
fn usage_error_is_exit_2() {
    assert_eq!(run(&[]).status.code(), Some(2));
}

#[test]
fn busy_api_port_fails_before_dpdk() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let mut d = Daemon::start(&ring_config(port, &eal_args(), "net_ring1"));
    assert_eq!(d.wait(Duration::from_secs(30)), Some(1), "{}", d.log());
    let log = d.log();
    assert!(log.contains("api.listen"), "{log}");
    assert!(!log.contains("initialising DPDK EAL"), "DPDK was started anyway:\n{log}");
}

#[test]
fn missing_device_is_named() {
    let mut d = Daemon::start(&ring_config(free_port(), &eal_args(), "net_af_packet7,iface=rvs-no-such-if"));
    assert_eq!(d.wait(Duration::from_secs(60)), Some(1), "{}", d.log());
    let log = d.log();
    assert!(log.contains("rvsd: port[1] `back`"), "{log}");
    assert!(log.contains("net_af_packet7"), "{log}");
    assert!(log.contains("not found"), "{log}");
    assert!(!log.contains("panicked"), "{log}");
}

#[test]
fn too_few_lcores_is_explained() {
    let eal = eal_args().replace("\"--no-huge\"", "\"--no-huge\", \"-l\", \"0\"");
    let mut d = Daemon::start(&ring_config(free_port(), &eal, "net_ring1"));
    assert_eq!(d.wait(Duration::from_secs(30)), Some(1), "{}", d.log());
    let log = d.log();
    assert!(log.contains("DPDK preflight failed: not enough lcores"), "{log}");
}

#[test]
fn hugepage_problems_are_explained() {
    // Without --no-huge, and with a --huge-dir that is no hugetlbfs mount: preflight
    // fails on this host either for lack of hugepages or for the bad mount.
    let eal = r#"["--no-shconf", "--huge-dir", "/nonexistent-rvs-hugetlbfs"]"#;
    let mut d = Daemon::start(&ring_config(free_port(), eal, "net_ring1"));
    assert_eq!(d.wait(Duration::from_secs(30)), Some(1), "{}", d.log());
    let log = d.log();
    assert!(log.contains("DPDK preflight failed"), "{log}");
    assert!(log.contains("hugepages") || log.contains("hugetlbfs"), "{log}");
    assert!(!log.contains("initialising DPDK EAL"), "{log}");
}

#[test]
fn runs_serves_status_and_stops_on_sigterm() {
    let port = free_port();
    let mut d = Daemon::start(&ring_config(port, &eal_args(), "net_ring1"));
    let t0 = Instant::now();
    let body = loop {
        if let Some((200, body)) = http_get(port, "/v1/status") {
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            // Wait until worker 0's start-up announcements are counted.
            if v["workers"][0]["gratuitous_arps_sent"].as_u64().unwrap_or(0) > 0 {
                break v;
            }
        }
        assert!(d.child.try_wait().unwrap().is_none(), "rvsd exited:\n{}", d.log());
        assert!(t0.elapsed() < Duration::from_secs(60), "no status after 60 s:\n{}", d.log());
        std::thread::sleep(Duration::from_millis(100));
    };

    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    assert!(body["uptime_seconds"].is_u64());
    let ports = body["ports"].as_array().unwrap();
    assert_eq!(ports.len(), 2);
    assert_eq!(ports[0]["name"], "front");
    assert_eq!(ports[0]["device"], "net_ring0");
    assert_eq!(ports[0]["mac"], "02:00:00:00:00:01");
    assert_eq!(ports[1]["name"], "back");
    assert_eq!(ports[1]["mac"], "02:00:00:00:00:02");
    assert_eq!(ports[1]["address"], "10.20.0.1/24");
    for key in ["up", "speed_mbps", "full_duplex"] {
        assert!(!ports[0]["link"][key].is_null(), "link.{key} missing");
    }
    assert_eq!(ports[0]["link_changes"], 0, "no flap seen");
    for key in ["rx_packets", "tx_packets", "rx_bytes", "tx_bytes", "rx_missed", "rx_errors", "tx_errors", "rx_nombuf"]
    {
        assert!(ports[0]["stats"][key].is_u64(), "stats.{key} missing");
    }
    let w = &body["workers"][0];
    assert_eq!(w["index"], 0);
    for key in [
        "lcore",
        "rx_packets",
        "tx_packets",
        "arp_replies_sent",
        "arp_requests_sent",
        "icmp_echo_replies",
        "polls",
        "idle_sleeps",
    ] {
        assert!(w[key].is_u64(), "workers[0].{key} missing");
    }
    // The watchdog's verdict: a running worker polls.
    assert_eq!((w["stalled"].as_bool(), w["stalled_for_ms"].as_u64()), (Some(false), Some(0)), "{w}");
    let drops = body["drops"].as_object().unwrap();
    assert_eq!(drops.len(), DropReason::COUNT);
    assert!(DropReason::ALL.iter().all(|r| drops[r.name()].is_u64()));

    let (code, err) = http_get(port, "/v1/nope").unwrap();
    assert_eq!(code, 404);
    let err: serde_json::Value = serde_json::from_str(&err).unwrap();
    assert!(err["error"].is_string() && err["field"].is_null(), "{err}");

    d.signal("-TERM");
    assert_eq!(d.wait(Duration::from_secs(30)), Some(0), "{}", d.log());
    let log = d.log();
    assert!(log.contains("SIGTERM received"), "{log}");
    assert!(log.contains("rvsd stopped"), "{log}");
}

#[test]
fn sigint_also_stops_cleanly() {
    let port = free_port();
    let mut d = Daemon::start(&ring_config(port, &eal_args(), "net_ring1"));
    let t0 = Instant::now();
    while http_get(port, "/v1/status").is_none() {
        assert!(d.child.try_wait().unwrap().is_none(), "rvsd exited:\n{}", d.log());
        assert!(t0.elapsed() < Duration::from_secs(60), "no status after 60 s:\n{}", d.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    d.signal("-INT");
    assert_eq!(d.wait(Duration::from_secs(30)), Some(0), "{}", d.log());
}

/// `[ha]` with connection sync runs the VRRP instance and the sync thread, and no warning
/// names anything as not acted on, at start or after a SIGHUP reload (`PUT /v1/config`
/// answers with empty `warnings`: tests/api.rs). The sync peer does not exist here: `/v1/ha`
/// shows the sync status with the peer not heard, not in sync, and the preemption hold.
#[test]
fn ha_with_sync_runs_and_warns_about_nothing() {
    use std::os::unix::fs::PermissionsExt;
    let key = TempFile::new("a shared secret\n");
    std::fs::set_permissions(&key.0, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (port, eal) = (free_port(), eal_args());
    let (listen, peer) = (free_udp_port(), free_udp_port());
    let config = |weight: u32| {
        ring_config(port, &eal, "net_ring1")
            .replacen("scheduler = \"wrr\"\n", "scheduler = \"wrr\"\n[service.health]\nkind = \"tcp\"\n", 1)
            .replacen("weight = 2", &format!("weight = {weight}"), 1)
            + &format!(
                "[ha]\nkey_file = \"{}\"\nsync_listen = \"127.0.0.1:{listen}\"\nsync_peer = \"127.0.0.1:{peer}\"\n\
                 [[ha.instance]]\nvrid = 51\nport = \"front\"\npriority = 100\n\
                 advert_interval = \"100ms\"\naddresses = [\"10.10.0.100\", \"10.20.0.100\"]\n",
                key.0.display()
            )
    };
    let warning = "not acted on";

    let out = check(&config(2));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains(warning), "--check: {}", stderr(&out));

    let mut d = Daemon::start(&config(2));
    let t0 = Instant::now();
    while http_get(port, "/v1/status").is_none() {
        assert!(d.child.try_wait().unwrap().is_none(), "rvsd exited:\n{}", d.log());
        assert!(t0.elapsed() < Duration::from_secs(60), "no status after 60 s:\n{}", d.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!d.log().contains(warning), "at start:\n{}", d.log());
    let t0 = Instant::now();
    let ha = loop {
        let (code, body) = http_get(port, "/v1/ha").unwrap();
        assert_eq!(code, 200, "{body}");
        let ha: serde_json::Value = serde_json::from_str(&body).unwrap();
        if ha.get("sync").is_some() || t0.elapsed() > Duration::from_secs(5) {
            break ha;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(ha["instances"][0]["vrid"], 51, "{ha}");
    assert_eq!(ha["instances"][0]["port"], "front", "{ha}");
    let sync = &ha["sync"];
    assert_eq!(sync["peer"], format!("127.0.0.1:{peer}"), "{ha}");
    assert_eq!((sync["connected"].as_bool(), sync["in_sync"].as_bool()), (Some(false), Some(false)), "{ha}");
    assert!(sync["hold_preempt"].as_str().is_some_and(|h| h.contains("bulk resync")), "{ha}");
    assert!(d.log().contains("sync: started"), "{}", d.log());

    std::fs::write(&d._config.0, config(3)).unwrap();
    d.signal("-HUP");
    let t0 = Instant::now();
    while !d.log().contains("reload applied") && t0.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(d.log().contains("reload applied"), "{}", d.log());
    assert!(!d.log().contains(warning), "after the reload:\n{}", d.log());
    d.signal("-TERM");
    assert_eq!(d.wait(Duration::from_secs(30)), Some(0), "{}", d.log());
}

/// A free UDP port on loopback (for sync addresses).
fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `GET /v1/status` as JSON, once rvsd answers (panics if it exits or stays silent 60 s).
fn wait_status(d: &mut Daemon, port: u16) -> serde_json::Value {
    let t0 = Instant::now();
    loop {
        if let Some((200, body)) = http_get(port, "/v1/status") {
            return serde_json::from_str(&body).unwrap();
        }
        assert!(d.child.try_wait().unwrap().is_none(), "rvsd exited:\n{}", d.log());
        assert!(t0.elapsed() < Duration::from_secs(60), "no status after 60 s:\n{}", d.log());
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Sends SIGHUP and waits until `/v1/status` counts reload attempt number `attempt`.
fn sighup(d: &mut Daemon, port: u16, attempt: u64) -> serde_json::Value {
    d.signal("-HUP");
    let t0 = Instant::now();
    loop {
        let s = wait_status(d, port);
        if s["reload"]["attempts"].as_u64() == Some(attempt) {
            return s;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "reload {attempt} not reported: {}\n{}", s["reload"], d.log());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A config file that vanished, became unreadable (a directory in its place: the tests
/// run as root, so `chmod 000` would not stop the read) or invalid at SIGHUP: the running
/// configuration stays, the workers keep polling and the API keeps serving, the error is
/// logged with the path and reported in `/v1/status` `reload` and in `/metrics`; once the
/// file is back, the next SIGHUP applies it and the status says so.
#[test]
fn failed_reloads_keep_the_running_config_and_are_reported() {
    let port = free_port();
    let config = ring_config(port, &eal_args(), "net_ring1");
    let mut d = Daemon::start(&config);
    let path = d._config.0.clone();
    let shown = path.display().to_string();
    let s = wait_status(&mut d, port);
    let r = &s["reload"];
    assert_eq!(
        (r["ok"].as_bool(), r["attempts"].as_u64(), r["path"].as_str()),
        (Some(true), Some(0), Some(&*shown)),
        "{r}"
    );
    let generation = r["generation"].as_u64().unwrap();
    let weight = |s: &serde_json::Value| s["services"][0]["servers"][0]["weight"].as_u64();
    assert_eq!(weight(&s), Some(2));

    // (what, how the file is broken, what the error says)
    type Breakage = (&'static str, fn(&std::path::Path), &'static str);
    let failures: [Breakage; 3] = [
        ("vanished", |p| std::fs::remove_file(p).unwrap(), "No such file"),
        ("unreadable", |p| std::fs::create_dir(p).unwrap(), "Is a directory"),
        (
            "invalid",
            |p| {
                std::fs::remove_dir(p).unwrap();
                std::fs::write(p, "[dataplane]\nworkers = \n").unwrap();
            },
            "line 2",
        ),
    ];
    for (n, (what, break_it, why)) in failures.into_iter().enumerate() {
        break_it(&path);
        let polls = s["workers"][0]["polls"].as_u64().unwrap();
        let s = sighup(&mut d, port, n as u64 + 1);
        let r = &s["reload"];
        assert_eq!(r["ok"].as_bool(), Some(false), "{what}: {r}");
        let error = r["error"].as_str().unwrap_or_default();
        assert!(error.contains(&shown) && error.contains(why), "{what}: {r}");
        assert_eq!(r["failures"].as_u64(), Some(n as u64 + 1), "{what}: {r}");
        assert_eq!(r["generation"].as_u64(), Some(generation), "{what}: {r}");
        assert!(r["last_attempt_unix"].as_u64().is_some(), "{what}: {r}");
        // The old configuration still runs: same table, workers still polling.
        assert_eq!(weight(&s), Some(2), "{what}");
        assert!(s["workers"][0]["polls"].as_u64().unwrap() > polls, "{what}: the worker stopped polling");
        let log = d.log();
        assert!(log.lines().any(|l| l.contains("reload") && l.contains(&shown) && l.contains(why)), "{what}:\n{log}");
    }
    let (_, metrics) = http_get(port, "/metrics").unwrap();
    assert!(metrics.contains("\nrvs_config_last_reload_success 0\n"), "{metrics}");
    assert!(metrics.contains("\nrvs_config_reload_failures_total 3\n"), "{metrics}");

    std::fs::write(&path, config.replace("weight = 2", "weight = 3")).unwrap();
    let s = sighup(&mut d, port, 4);
    let r = &s["reload"];
    assert_eq!((r["ok"].as_bool(), r["error"].is_null(), r["failures"].as_u64()), (Some(true), true, Some(3)), "{r}");
    assert!(r["generation"].as_u64().unwrap() > generation, "{r}");
    assert_eq!(r["last_success_unix"], r["last_attempt_unix"], "{r}");
    assert_eq!(weight(&s), Some(3));
    let (_, metrics) = http_get(port, "/metrics").unwrap();
    assert!(metrics.contains("\nrvs_config_last_reload_success 1\n"), "{metrics}");

    d.signal("-TERM");
    assert_eq!(d.wait(Duration::from_secs(30)), Some(0), "{}", d.log());
    assert!(!d.log().contains("panicked"), "{}", d.log());
}

/// Stops one thread of process `pid` (not the process: the others go on) while the
/// returned child runs, with ptrace (`PTRACE_SEIZE` then `PTRACE_INTERRUPT`, which stop
/// only the tracee, unlike SIGSTOP); closing the child's stdin detaches and the thread
/// resumes (so does the tracer's death). Prints `stopped` once the thread is stopped.
fn stop_thread(tid: u32) -> Child {
    const PY: &str = r#"
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
tid = int(sys.argv[1])
SEIZE, INTERRUPT, DETACH = 0x4206, 0x4207, 17
for req in (SEIZE, INTERRUPT):
    if libc.ptrace(req, tid, None, None) != 0:
        sys.exit("ptrace %d: %s" % (req, os.strerror(ctypes.get_errno())))
os.waitpid(tid, 0x40000000)  # __WALL: the thread is in its ptrace stop
print("stopped", flush=True)
sys.stdin.read()
libc.ptrace(DETACH, tid, None, None)
"#;
    Command::new("python3")
        .args(["-c", PY, &tid.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 (vm-testbed/setup-host.sh installs it)")
}

/// The thread of `pid` whose name DPDK gave its first worker lcore.
fn worker_thread(pid: u32) -> Option<u32> {
    std::fs::read_dir(format!("/proc/{pid}/task")).ok()?.flatten().find_map(|t| {
        let comm = std::fs::read_to_string(t.path().join("comm")).ok()?;
        let name = comm.trim();
        (name.contains("worker") && !name.contains("rvs-")).then(|| t.file_name().to_str()?.parse().ok())?
    })
}

/// The watchdog on a real worker: its lcore thread is stopped (the rest of rvsd runs on),
/// `/v1/status` and `/metrics` report it stalled within a second or two, and once the
/// thread runs again they report it polling.
#[test]
fn a_stopped_worker_is_reported_stalled_and_recovers() {
    let port = free_port();
    let mut d = Daemon::start(&ring_config(port, &eal_args(), "net_ring1"));
    let _ = wait_status(&mut d, port);
    let tid = worker_thread(d.child.id()).unwrap_or_else(|| {
        let names: Vec<String> = std::fs::read_dir(format!("/proc/{}/task", d.child.id()))
            .map(|r| r.flatten().filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok()).collect())
            .unwrap_or_default();
        panic!("no worker lcore thread among {names:?}")
    });
    let stalled = |port| -> (Option<bool>, u64, Option<String>) {
        let st: serde_json::Value = serde_json::from_str(&http_get(port, "/v1/status").expect("status").1).unwrap();
        let w = &st["workers"][0];
        let metric = http_get(port, "/metrics")
            .and_then(|(_, m)| m.lines().find(|l| l.starts_with("rvs_worker_stalled{")).map(str::to_string));
        (w["stalled"].as_bool(), w["stalled_for_ms"].as_u64().unwrap_or(0), metric)
    };
    assert_eq!(stalled(port).0, Some(false), "a running worker polls");

    let mut tracer = stop_thread(tid);
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(tracer.stdout.take().unwrap()), &mut line).unwrap();
    assert_eq!(line.trim(), "stopped", "the tracer could not stop thread {tid}");
    let t0 = Instant::now();
    let seen = loop {
        let s = stalled(port);
        if s.0 == Some(true) {
            break s;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "still not stalled after 10 s: {s:?}\n{}", d.log());
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(seen.1 >= 1000, "stalled for {} ms, under the 1 s threshold", seen.1);
    assert!(seen.2.as_deref().is_some_and(|m| m.ends_with(" 1")), "metric: {:?}", seen.2);
    let logged = |what: &str| {
        let t = Instant::now();
        while !d.log().contains(what) && t.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(100));
        }
        d.log().contains(what)
    };
    assert!(logged("worker stopped polling"), "no log line for the stall:\n{}", d.log());

    drop(tracer.stdin.take());
    assert!(tracer.wait().unwrap().success(), "the tracer failed to detach");
    let t1 = Instant::now();
    loop {
        let s = stalled(port);
        if s.0 == Some(false) {
            assert!(s.2.as_deref().is_some_and(|m| m.ends_with(" 0")), "metric: {:?}", s.2);
            break;
        }
        assert!(t1.elapsed() < Duration::from_secs(10), "still stalled 10 s after the thread resumed: {s:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(logged("worker polls again"), "no log line for the recovery:\n{}", d.log());
    d.signal("-TERM");
    assert_eq!(d.wait(Duration::from_secs(30)), Some(0), "{}", d.log());
}
