//! rvsadm against the real REST router (not a fake): the two sides of the API contract
//! must agree. The router runs on an ephemeral loopback port with a standalone
//! `Running` (no DPDK); rvsadm is the `rvsadm` library's `run`, in process (the binary
//! belongs to the `rvsadm` package; its own tests run it).

use std::sync::Arc;

use rvs_controlplane::api::{self, AppState};
use rvs_controlplane::runtime::Running;

const CONFIG: &str = r#"
[[port]]
name = "front"
device = "net_ring0"
address = "10.10.0.1/24"
mac = "02:00:00:00:00:01"
[[port]]
name = "back"
device = "net_ring1"
address = "10.20.0.1/24"
mac = "02:00:00:00:00:02"
local_addresses = ["10.20.0.200"]
"#;

/// Starts the router on its own thread and returns its base URL and the shared state.
fn start() -> (String, Arc<AppState>) {
    let state = Arc::new(AppState::standalone(Running::from_toml(CONFIG, 1).expect("config")));
    let (tx, rx) = std::sync::mpsc::channel();
    let served = Arc::clone(&state);
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(async move {
            let listener = api::bind("127.0.0.1:0".parse().unwrap()).await.expect("bind");
            tx.send(listener.local_addr().expect("addr")).expect("send");
            api::serve(listener, api::router(served), std::future::pending::<()>()).await.ok();
        });
    });
    let addr = rx.recv().expect("router address");
    (format!("http://{addr}"), state)
}

/// What one rvsadm run printed and returned.
#[derive(Debug)]
struct Output {
    code: i32,
    stdout: String,
    stderr: String,
}

fn rvsadm(api: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let mut all = vec!["--api", api];
    all.extend_from_slice(args);
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = rvsadm::run(&all, &mut stdin.unwrap_or("").as_bytes(), &mut out, &mut err);
    Output {
        code,
        stdout: String::from_utf8_lossy(&out).into_owned(),
        stderr: String::from_utf8_lossy(&err).into_owned(),
    }
}

fn ok(api: &str, args: &[&str]) -> String {
    let o = rvsadm(api, args, None);
    assert!(o.code == 0, "rvsadm {args:?} failed: {}{}", o.stdout, o.stderr);
    o.stdout
}

/// rvsd's own status document reads as rvsadm's view of it.
#[test]
fn status_document_is_readable_by_rvsadm() {
    let s = rvs_controlplane::status::Status::new(42, vec![], vec![]);
    let doc: rvsadm::model::StatusDoc = serde_json::from_value(serde_json::to_value(&s).unwrap()).unwrap();
    assert_eq!((doc.uptime_seconds, doc.drops.len()), (42, s.drops.len()));
}

/// The `ha` part of rvsd's status reads as rvsadm's and prints one line per instance.
#[test]
fn ha_status_is_readable_and_printed_by_rvsadm() {
    use rvs_controlplane::ha::view::{HaStatus, InstanceStatus};
    let mut s = rvs_controlplane::status::Status::new(42, vec![], vec![]);
    s.ha = Some(HaStatus {
        instances: vec![InstanceStatus {
            vrid: 51,
            family: "ipv4".into(),
            port: "front".into(),
            state: "master".into(),
            priority: 200,
            effective_priority: 200,
            master: Some("10.10.0.1".into()),
            since: Some("2026-12-03T21:00:00.000Z".into()),
            reason: Some("no master heard for 361ms (master down interval)".into()),
            adverts_sent: 9,
            invalid: [("ttl".to_string(), 1)].into_iter().collect(),
            ..InstanceStatus::default()
        }],
        ..HaStatus::default()
    });
    let doc: rvsadm::model::StatusDoc = serde_json::from_value(serde_json::to_value(&s).unwrap()).unwrap();
    let text = rvsadm::format::status(&doc);
    let line = text.lines().find(|l| l.starts_with("51 ")).unwrap_or_else(|| panic!("{text}"));
    let cols: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(cols, ["51", "ipv4", "front", "master", "10.10.0.1", "200/200", "9", "0", "1"], "{text}");
    assert!(text.contains("VRID 51 ipv4 master since 2026-12-03T21:00:00.000Z: no master heard"), "{text}");
    let plain = rvs_controlplane::status::Status::new(1, vec![], vec![]);
    let doc: rvsadm::model::StatusDoc = serde_json::from_value(serde_json::to_value(&plain).unwrap()).unwrap();
    assert!(!rvsadm::format::status(&doc).contains("VRID"), "no [ha], no VRRP lines");
}

/// Connection sync's part of the status reads as rvsadm's and prints its state and counters.
#[test]
fn sync_status_is_readable_and_printed_by_rvsadm() {
    use rvs_controlplane::ha::view::{HaStatus, SyncStatus};
    let mut s = rvs_controlplane::status::Status::new(42, vec![], vec![]);
    s.ha = Some(HaStatus {
        sync: Some(SyncStatus {
            peer: "10.30.0.2:8848".into(),
            connected: true,
            in_sync: false,
            bulk_received: 1234,
            lag_records: 5,
            lag_ms: 3,
            hold_preempt: Some("waiting for the bulk resync from 10.30.0.2:8848 (connection sync)".into()),
            records: [("sent".to_string(), 10), ("received".to_string(), 20), ("lost_sent".to_string(), 1)]
                .into_iter()
                .collect(),
            rejected: [("bad_hmac".to_string(), 2), ("replay".to_string(), 1)].into_iter().collect(),
            ..SyncStatus::default()
        }),
        ..HaStatus::default()
    });
    let doc: rvsadm::model::StatusDoc = serde_json::from_value(serde_json::to_value(&s).unwrap()).unwrap();
    let text = rvsadm::format::status(&doc);
    assert!(text.contains("Sync with 10.30.0.2:8848: connected, resyncing (1234 records so far)"), "{text}");
    assert!(text.contains("records sent 10 received 20 resent 0 lost 1; lag 5 records 3 ms; rejected 3"), "{text}");
    assert!(text.contains("waiting for the bulk resync"), "{text}");
}

#[test]
fn ipvsadm_verbs_round_trip_through_the_real_api() {
    let (api, state) = start();
    ok(&api, &["-A", "-t", "10.10.0.100:80", "-s", "wrr"]);
    ok(&api, &["-a", "-t", "10.10.0.100:80", "-r", "10.20.0.11:80", "-m", "-w", "3"]);
    ok(&api, &["-a", "-t", "10.10.0.100:80", "-r", "10.20.0.12:8080", "-b", "-w", "2", "-x", "100", "-y", "50"]);
    ok(&api, &["-A", "-u", "10.10.0.100:53", "-s", "rr", "-p", "60"]);
    ok(&api, &["-a", "-u", "10.10.0.100:53", "-r", "10.20.0.13", "-m"]);
    // The running configuration now holds what was added.
    let text = state.running().text().to_string();
    assert!(text.contains("scheduler = \"wrr\"") && text.contains("forward = \"fullnat\""), "{text}");

    let listing = ok(&api, &["-Ln"]);
    assert!(listing.contains("TCP  10.10.0.100:80 wrr"), "{listing}");
    assert!(listing.contains("-> 10.20.0.11:80"), "{listing}");
    assert!(listing.contains("Masq") && listing.contains("FullNat"), "{listing}");
    assert!(listing.contains("UDP  10.10.0.100:53 rr persistent 60"), "{listing}");

    // A duplicate is refused like ipvsadm, and nothing changes.
    let before = state.running().text().to_string();
    let dup = rvsadm(&api, &["-A", "-t", "10.10.0.100:80", "-s", "rr"], None);
    assert_eq!(dup.code, 255, "a refused change exits 255, as ipvsadm");
    assert!(dup.stderr.contains("Service already exists"), "{dup:?}");
    // A value the validator refuses names the field.
    let bad = rvsadm(&api, &["-e", "-t", "10.10.0.100:80", "-r", "10.20.0.11:80", "-w", "70000"], None);
    assert_ne!(bad.code, 0, "{bad:?}");
    assert_eq!(state.running().text(), before, "refused commands change nothing");

    // Edit, save, clear, restore: the same listing comes back.
    ok(&api, &["-e", "-t", "10.10.0.100:80", "-r", "10.20.0.11:80", "-m", "-w", "5"]);
    let saved = ok(&api, &["-S", "-n"]);
    assert!(saved.contains("-a -t 10.10.0.100:80 -r 10.20.0.11:80 -m -w 5"), "{saved}");
    let listed = ok(&api, &["-Ln"]);
    ok(&api, &["-C"]);
    assert!(!ok(&api, &["-Ln"]).contains("10.10.0.100"), "cleared");
    let r = rvsadm(&api, &["-R"], Some(&saved));
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(ok(&api, &["-Ln"]), listed, "-S then -R restores the same services");

    // Timeouts, zeroing one service, deleting a server and a service.
    ok(&api, &["--set", "600", "0", "30"]);
    assert!(ok(&api, &["-L", "--timeout"]).contains("Timeout (tcp tcpfin udp): 600 120 30"));
    ok(&api, &["-Z", "-t", "10.10.0.100:80"]);
    ok(&api, &["-d", "-t", "10.10.0.100:80", "-r", "10.20.0.12:8080"]);
    ok(&api, &["-D", "-u", "10.10.0.100:53"]);
    let last = ok(&api, &["-Ln"]);
    assert!(!last.contains("10.20.0.12") && !last.contains("UDP"), "{last}");
    assert!(ok(&api, &["-Ln", "--stats"]).contains("TCP  10.10.0.100:80"));
}

/// NAT64 through rvsadm: an IPv6 service takes IPv4 servers with `-b` (Full-NAT; the
/// port has an IPv4 local address), listed under it as ipvsadm lists them, saved and
/// restored; with `-m` the server is refused and nothing changes.
#[test]
fn nat64_servers_through_rvsadm() {
    let (api, state) = start();
    ok(&api, &["-A", "-t", "[2001:db8::1]:80", "-s", "rr"]);
    ok(&api, &["-a", "-t", "[2001:db8::1]:80", "-r", "10.20.0.11:8080", "-b"]);
    ok(&api, &["-a", "-t", "[2001:db8::1]:80", "-r", "10.20.0.12:8080", "-b"]);
    let listing = ok(&api, &["-Ln"]);
    assert!(listing.contains("TCP  [2001:db8::1]:80 rr"), "{listing}");
    assert!(listing.contains("-> 10.20.0.11:8080") && listing.contains("-> 10.20.0.12:8080"), "{listing}");
    assert!(listing.contains("FullNat"), "{listing}");
    let before = state.running().text().to_string();
    let bad = rvsadm(&api, &["-a", "-t", "[2001:db8::1]:80", "-r", "10.20.0.13:8080", "-m"], None);
    assert_ne!(bad.code, 0, "{bad:?}");
    assert!(bad.stderr.contains("forward") && bad.stderr.contains("NAT64"), "{bad:?}");
    assert_eq!(state.running().text(), before, "refused commands change nothing");
    let saved = ok(&api, &["-S", "-n"]);
    assert!(saved.contains("-a -t [2001:db8::1]:80 -r 10.20.0.11:8080 -b"), "{saved}");
    ok(&api, &["-C"]);
    let r = rvsadm(&api, &["-R"], Some(&saved));
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(ok(&api, &["-Ln"]), listing, "-S then -R restores the NAT64 service");
}

/// `--client-rate`/`--client-burst` (rvs's own) set the service's per-client limit through
/// the real API, `-L --health` and `-S` show it, `-S` then `-R` keeps it, `-E --client-rate
/// 0` lifts it, and a value rvsd refuses changes nothing; plain `-L` stays ipvsadm's.
#[test]
fn client_rate_and_burst_set_show_round_trip_and_clear() {
    let (api, state) = start();
    ok(&api, &["-A", "-t", "10.10.0.100:80", "-s", "rr", "--client-rate", "20", "--client-burst", "64"]);
    ok(&api, &["-a", "-t", "10.10.0.100:80", "-r", "10.20.0.11:80", "-m"]);
    let text = state.running().text().to_string();
    assert!(text.contains("client_rate = 20") && text.contains("client_burst = 64"), "{text}");
    let health = ok(&api, &["-Ln", "--health"]);
    assert!(health.contains("TCP  10.10.0.100:80 rr client-rate 20 client-burst 64\n"), "{health}");
    let plain = ok(&api, &["-Ln"]);
    assert!(plain.contains("TCP  10.10.0.100:80 rr\n") && !plain.contains("client"), "{plain}");
    let saved = ok(&api, &["-S", "-n"]);
    assert!(saved.contains("-A -t 10.10.0.100:80 -s rr --client-rate 20 --client-burst 64\n"), "{saved}");
    ok(&api, &["-C"]);
    let r = rvsadm(&api, &["-R"], Some(&saved));
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(ok(&api, &["-Ln", "--health"]), health, "-S then -R keeps the rate");

    // Out of rvsd's range: refused (255) naming the field, nothing changes.
    let before = state.running().text().to_string();
    let bad = rvsadm(&api, &["-E", "-t", "10.10.0.100:80", "--client-rate", "1000001"], None);
    assert_eq!(bad.code, 255, "{bad:?}");
    assert!(bad.stderr.contains("client_rate"), "{bad:?}");
    assert_eq!(state.running().text(), before);

    ok(&api, &["-E", "-t", "10.10.0.100:80", "--client-burst", "5"]);
    assert!(ok(&api, &["-Ln", "--health"]).contains("rr client-rate 20 client-burst 5\n"));
    ok(&api, &["-E", "-t", "10.10.0.100:80", "--client-rate", "0"]);
    let text = state.running().text().to_string();
    assert!(!text.contains("client_rate") && !text.contains("client_burst"), "{text}");
    assert!(!ok(&api, &["-Ln", "--health"]).contains("client-rate"));
    assert!(!ok(&api, &["-S", "-n"]).contains("client"));
}

#[test]
fn admin_verb_drains_and_readies_a_server() {
    let (api, state) = start();
    ok(&api, &["-A", "-t", "10.10.0.100:80", "-s", "wrr"]);
    ok(&api, &["-a", "-t", "10.10.0.100:80", "-r", "10.20.0.11:80", "-m", "-w", "3"]);
    let weight = || state.running().shared().load_full().services()[0].servers.first().map(|r| r.weight);
    ok(&api, &["admin", "-t", "10.10.0.100:80", "-r", "10.20.0.11", "drain"]);
    assert_eq!(weight(), Some(0));
    // -L shows the weight in effect (as ipvsadm under keepalived); -S the configured one.
    assert!(ok(&api, &["-Ln"]).contains("-> 10.20.0.11:80                Masq    0"), "{}", ok(&api, &["-Ln"]));
    assert!(ok(&api, &["-S", "-n"]).contains("-r 10.20.0.11:80 -m -w 3"));
    ok(&api, &["admin", "-t", "10.10.0.100:80", "-r", "10.20.0.11:80", "maint"]);
    assert_eq!(weight(), None, "maint: out of the table");
    ok(&api, &["admin", "-t", "10.10.0.100:80", "-r", "10.20.0.11:80", "ready"]);
    assert_eq!(weight(), Some(3));
    // No such server: the kernel's words, then rvsd's; exit 255 like a refused change.
    let missing = rvsadm(&api, &["admin", "-t", "10.10.0.100:80", "-r", "10.20.0.99", "drain"], None);
    assert_eq!(missing.code, 255, "{missing:?}");
    assert!(missing.stderr.starts_with("No such destination"), "{missing:?}");
    let usage = rvsadm(&api, &["admin", "-t", "10.10.0.100:80", "-r", "10.20.0.11", "off"], None);
    assert_eq!(usage.code, 2, "{usage:?}");
    // Not an -R line.
    let r = rvsadm(&api, &["-R"], Some("admin -t 10.10.0.100:80 -r 10.20.0.11 drain\n"));
    assert_eq!(r.code, 2, "{r:?}");
    assert_eq!(weight(), Some(3));
}
