//! End-to-end tests of connection sync (`[ha] sync_listen`, `sync_peer`, `key_file`) in the
//! netns lab, in every forwarding mode: lab-lb1 (priority 200, preempt) and lab-lb2
//! (priority 100) as a VRRP pair that syncs its connections over lab-mgmt (10.30.0.1:8848 and
//! 10.30.0.2:8848), built from `config/lab-ha-lb{1,2}.toml` with the mode's `forward`, a UDP
//! echo service on VIP:53 and a persistent one (`persistence = "300s"`) on VIP2:53.
//!
//! One run per mode (`flows_survive_failover_and_failback_<mode>`, Full-NAT with two
//! workers on each node, `_fullnat_2w`, and NAT with `syn_proxy = "always"` on the TCP
//! service, `_nat_syn_proxy`, whose records carry each flow's sequence offsets):
//! 1. lb1 starts alone and is master; flows A start (50 TCP keep-alive connections, each
//!    asking every 50 ms and checking that the answer is the first one again, and 10 UDP
//!    flows, each checking that the same real server answers: `tools/flows.py`); each of 8
//!    client addresses asks VIP2:53 once and the persistent server of each is noted.
//! 2. lb2 starts after those flows exist: it must learn them by bulk resync (its status says
//!    in sync). Flows B start (the same again), learnt by lb2 from incremental records; a wrk
//!    load runs on VIP:80.
//!    A stranger on lab-mgmt (lab-lb2's namespace, another port) sends lb1 50 random
//!    datagrams: lb1 counts them (`rejected.stranger`) and nothing else changes.
//! 3. lb1 is SIGKILLed; lb2 takes over. Every flow of A and B continues: no reset, no other
//!    answer, no gap over 2 s; the 8 clients, asking again in reverse order from new ports,
//!    reach the server they persisted to.
//! 4. lb1 starts again: it asks lb2 for a bulk resync and preempts only once in sync (its
//!    status says in sync when it becomes master). The flows continue again.
//! 5. The flows stop: all 100 TCP and 20 UDP flows are intact. The longest gap, the takeover
//!    times and wrk's errors are printed.
//!
//! Without sync, step 3 fails: lb2 has no entry for the TCP flows (non-SYN packets of
//! unknown flows are dropped, `tcp_no_conn`) and reschedules the UDP flows and the
//! persistent clients (rr from its own start).
//!
//! `ipv6_flows_survive_failover_dr` does the same for long-lived IPv6 TCP flows through an
//! IPv6 DR service whose VIP is in the VRRP instance (see its docs);
//! `ipv6_fullnat_flows_survive_failover` for an IPv6 Full-NAT service whose VIP and IPv6
//! local addresses (2001:db8:20::200-201) are in the instance.
//!
//! `#[ignore]`: needs root, the lab and rvsd; `vm-testbed/test.sh` runs it with the other lab
//! tests.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use rvs_labtests::flows::{assert_intact, Flows};
use rvs_labtests::ha::*;
use rvs_labtests::*;
use serde_json::Value;

/// TCP and UDP flows per group (A before lb2 exists, B after).
const TCP_FLOWS: u32 = 50;
const UDP_FLOWS: u32 = 10;
/// Client addresses whose persistence is checked (lab-client has 10.10.0.2 .. .9).
const PERSIST_CLIENTS: [&str; 8] =
    ["10.10.0.2", "10.10.0.3", "10.10.0.4", "10.10.0.5", "10.10.0.6", "10.10.0.7", "10.10.0.8", "10.10.0.9"];
/// How long a node may take to report being in sync with its peer.
const SYNC_WAIT: Duration = Duration::from_secs(10);

/// The sync key, written once per run (mode 0600, as rvsd demands).
fn key_file() -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = run_dir().join("sync.key");
    std::fs::write(&path, "lab-sync-key-0123456789abcdef\n").expect("write the sync key");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod 600 the sync key");
    path
}

/// A UDP service on `vip`:53 over the three real servers in `mode`, with `extra` lines.
fn udp_service(vip: &str, mode: Mode, extra: &str) -> String {
    let mut s = format!("[[service]]\nprotocol = \"udp\"\naddress = \"{vip}\"\nport = 53\nscheduler = \"rr\"\n{extra}");
    for ip in REAL_SERVER_IPS {
        s += &format!(
            "\n[[service.server]]\naddress = \"{ip}\"\nport = 53\nweight = 1\nforward = \"{}\"\n",
            mode.name()
        );
    }
    s + "\n"
}

/// lb1's and lb2's configs for `mode` with `workers` workers (1, or 2 on af_packet with two
/// queue pairs as config/lab-*-2w.toml), with sync on; `syn_proxy`: the TCP service
/// answers every SYN with a cookie (`syn_proxy = "always"`).
fn sync_configs(mode: Mode, workers: u32, syn_proxy: bool) -> [PathBuf; 2] {
    let key = key_file();
    let services = udp_service(VIP, mode, "") + &udp_service(VIP2, mode, "persistence = \"300s\"\n");
    let mut addresses = format!("\"{VIP}\", \"{VIP2}\", \"{GATEWAY}\"");
    if mode == Mode::FullNat {
        for a in LOCAL_ADDRESSES {
            addresses += &format!(", \"{a}\"");
        }
    }
    let forward = format!("forward = \"{}\"", mode.name());
    let two = workers == 2;
    let worker_edits: [(&str, &str); 4] = [
        ("workers = 1", if two { "workers = 2" } else { "workers = 1" }),
        (
            "\"--no-telemetry\", ",
            if two { "\"--no-telemetry\", \"--lcores=0@0,1@1,2@1\", " } else { "\"--no-telemetry\", " },
        ),
        (
            "\"net_af_xdp0,iface=front\"",
            if two { "\"net_af_packet0,iface=front,qpairs=2\"" } else { "\"net_af_xdp0,iface=front\"" },
        ),
        (
            "\"net_af_xdp1,iface=back\"",
            if two { "\"net_af_packet1,iface=back,qpairs=2\"" } else { "\"net_af_xdp1,iface=back\"" },
        ),
    ];
    ["lb1", "lb2"].map(|lb| {
        let (me, peer) = if lb == "lb1" { (1, 2) } else { (2, 1) };
        let ha = format!(
            "{services}[ha]\nkey_file = \"{}\"\nsync_listen = \"10.30.0.{me}:8848\"\nsync_peer = \"10.30.0.{peer}:8848\"\n",
            key.display()
        );
        let addresses = format!("addresses = [{addresses}]");
        let mut edits =
            vec![("forward = \"nat\"", forward.as_str()), ("[ha]\n", &ha), ("addresses = [\"10.10.0.100\", \"10.20.0.100\"]", &addresses)];
        edits.extend(worker_edits);
        let proxy = if syn_proxy { "-proxy" } else { "" };
        if syn_proxy {
            edits.push(("port = 80\nscheduler = \"rr\"\n", "port = 80\nscheduler = \"rr\"\nsyn_proxy = \"always\"\n"));
        }
        variant_with(&format!("lab-ha-{lb}.toml"), &edits, &format!("sync-{}-{workers}w{proxy}-{lb}.toml", mode.name()))
    })
}

/// `ha.sync` of lb `ns`'s status.
fn sync_status(ns: &str) -> Option<Value> {
    try_status_of(ns).ok()?.get("ha")?.get("sync").cloned()
}

fn in_sync(ns: &str) -> bool {
    sync_status(ns).and_then(|s| s.get("in_sync").and_then(Value::as_bool)).unwrap_or(false)
}

fn wait_in_sync(ns: &str) {
    let t = Instant::now();
    let ok = wait_until(SYNC_WAIT, Duration::from_millis(50), || in_sync(ns));
    assert!(ok, "{ns} not in sync after {SYNC_WAIT:?}: {:?}", sync_status(ns));
    eprintln!("sync: {ns} in sync after {:?}", t.elapsed());
}

/// The real server that answers `client` on VIP2:53 (persistent), from a new source port.
fn persistent_server(client: &str) -> String {
    let tool = tool("udp_client.py");
    let to = format!("{VIP2}:53");
    let out =
        ns_exec(CLIENT, &["python3", "-B", &tool.to_string_lossy(), "--to", &to, "--bind", client, "--timeout", "1"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let server = text.split_whitespace().next().unwrap_or_default().to_string();
    assert!(REAL_SERVER_NAMES.contains(&server.as_str()), "{client} -> {to}: {}", describe(&out));
    server
}

/// A wrk load on VIP:80 for `secs` seconds, in the background.
fn start_wrk(secs: u32) -> Child {
    Command::new("ip")
        .args(["netns", "exec", CLIENT, "wrk", "-t", "1", "-c", "10", "-d", &format!("{secs}s"), "--timeout", "3s"])
        .arg(format!("http://{VIP}/"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start wrk")
}

fn routes(mode: Mode) {
    for vip in [VIP, VIP2] {
        ns_exec_ok(CLIENT, &["ip", "route", "replace", &format!("{vip}/32"), "dev", "eth0"]);
    }
    if mode == Mode::Nat {
        rs_route_clients_via(GATEWAY);
    }
}

fn flows_survive_failover_and_failback(mode: Mode, workers: u32, syn_proxy: bool) {
    let mut lab = Lab::up_without_lb();
    lab.start_real_servers(mode);
    routes(mode);
    let [lb1, lb2] = sync_configs(mode, workers, syn_proxy);

    // 1. lb1 alone; flows A and the persistent clients.
    lab.start_lb("lb1", Some(&lb1));
    wait_state(LB1, "master", Duration::from_secs(3));
    assert!(wait_until(Duration::from_secs(3), Duration::from_millis(100), http_ok), "HTTP through lb1");
    let tcp_a = Flows::start("--tcp", &format!("{VIP}:80"), TCP_FLOWS);
    let udp_a = Flows::start("--udp", &format!("{VIP}:53"), UDP_FLOWS);
    let persisted: Vec<String> = PERSIST_CLIENTS.iter().map(|c| persistent_server(c)).collect();

    // 2. lb2 joins: bulk resync, then flows B by incremental records.
    lab.start_lb("lb2", Some(&lb2));
    wait_state(LB2, "backup", Duration::from_secs(3));
    wait_in_sync(LB2);
    let tcp_b = Flows::start("--tcp", &format!("{VIP}:80"), TCP_FLOWS);
    let udp_b = Flows::start("--udp", &format!("{VIP}:53"), UDP_FLOWS);
    let wrk = start_wrk(8);
    // Junk from a stranger on the management network: counted, nothing else happens.
    let junk = "import socket,os\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\nfor i in range(50): s.sendto(os.urandom(100+i),('10.30.0.1',8848))";
    ns_exec_ok(LB2, &["python3", "-c", junk]);
    sleep(Duration::from_secs(1));
    let strangers = sync_status(LB1).and_then(|s| s["rejected"]["stranger"].as_u64());
    assert_eq!(strangers, Some(50), "lb1 did not count the stranger's datagrams: {:?}", sync_status(LB1));

    if syn_proxy {
        // Every TCP flow is proxied, so the takeover below needs their offsets on lb2.
        let handshakes = worker_counter(&status_of(LB1), "syn_proxy_handshakes");
        assert!(handshakes >= u64::from(2 * TCP_FLOWS), "lb1 proxied {handshakes} handshakes");
        eprintln!("sync[{}]: lb1 proxied {handshakes} handshakes before the crash", mode.name());
    }

    // 3. lb1 crashes.
    let crash = Instant::now();
    lab.stop_lb("lb1", true);
    wait_state(LB2, "master", Duration::from_secs(3));
    eprintln!("sync[{}]: lb2 master {:?} after lb1's SIGKILL", mode.name(), crash.elapsed());
    sleep(Duration::from_secs(2));
    for (client, before) in PERSIST_CLIENTS.iter().zip(&persisted).rev() {
        assert_eq!(&persistent_server(client), before, "{client} lost its persistent server at the takeover");
    }
    eprintln!("sync[{}]: lb2 after the takeover: {:?}", mode.name(), sync_status(LB2));

    // 4. lb1 returns, resyncs, and only then preempts.
    let back = Instant::now();
    lab.start_lb("lb1", Some(&lb1));
    wait_state(LB1, "master", SYNC_WAIT);
    assert!(in_sync(LB1), "lb1 preempted before it was in sync: {:?}", sync_status(LB1));
    eprintln!("sync[{}]: lb1 master again {:?} after its start", mode.name(), back.elapsed());
    wait_state(LB2, "backup", Duration::from_secs(1));
    sleep(Duration::from_secs(2));

    // 5. Every flow survived both takeovers.
    let out = wrk.wait_with_output().expect("wrk");
    let wrk_text = String::from_utf8_lossy(&out.stdout);
    let errors: Vec<&str> = wrk_text.lines().filter(|l| l.contains("errors") || l.contains("Requests/sec")).collect();
    eprintln!("sync[{}]: wrk across the crash: {}", mode.name(), errors.join("; "));
    for (flows, what) in
        [(tcp_a, "TCP flows A"), (udp_a, "UDP flows A"), (tcp_b, "TCP flows B"), (udp_b, "UDP flows B")]
    {
        let report = flows.finish();
        assert_intact(&report, &format!("{} {what}", mode.name()));
    }
    // lb1 restarted after the junk: the peers never refused each other's datagrams.
    for ns in [LB1, LB2] {
        let sync = sync_status(ns).expect("sync status");
        eprintln!("sync[{}]: {ns} at the end: {sync}", mode.name());
        assert_eq!(sync["in_sync"].as_bool(), Some(true), "{ns} is not in sync with its peer's current incarnation");
        let rejected = &sync["rejected"];
        assert!(
            rejected.as_object().is_some_and(|r| r.iter().all(|(k, v)| k == "stranger" || v.as_u64() == Some(0))),
            "{ns} rejected its peer's datagrams: {rejected}"
        );
    }
}

#[test]
#[ignore = "needs root, the lab and rvsd: run vm-testbed/test.sh"]
fn flows_survive_failover_and_failback_nat() {
    flows_survive_failover_and_failback(Mode::Nat, 1, false);
}

#[test]
#[ignore = "needs root, the lab and rvsd: run vm-testbed/test.sh"]
fn flows_survive_failover_and_failback_fullnat() {
    flows_survive_failover_and_failback(Mode::FullNat, 1, false);
}

#[test]
#[ignore = "needs root, the lab and rvsd: run vm-testbed/test.sh"]
fn flows_survive_failover_and_failback_dr() {
    flows_survive_failover_and_failback(Mode::Dr, 1, false);
}

#[test]
#[ignore = "needs root, the lab and rvsd: run vm-testbed/test.sh"]
fn flows_survive_failover_and_failback_tunnel() {
    flows_survive_failover_and_failback(Mode::Tunnel, 1, false);
}

/// Two workers on each node (af_packet, two queue pairs): records reach the worker that owns
/// each flow on the backup, and Full-NAT's local ports belong to the same worker on both.
#[test]
#[ignore = "needs root, the lab and rvsd: run vm-testbed/test.sh"]
fn flows_survive_failover_and_failback_fullnat_2w() {
    flows_survive_failover_and_failback(Mode::FullNat, 2, false);
}

/// NAT with the SYN proxy on every TCP connection: the sync records carry each flow's
/// sequence and timestamp offsets, so proxied flows survive both takeovers too.
#[test]
#[ignore = "needs root, the lab and rvsd: run vm-testbed/test.sh"]
fn flows_survive_failover_and_failback_nat_syn_proxy() {
    flows_survive_failover_and_failback(Mode::Nat, 1, true);
}

/// The lab's IPv6 VIP (lab.sh: on the real servers' lo, for DR).
const VIP6: &str = "2001:db8:10::100";
/// The real servers' IPv6 addresses (lab.sh).
const RS_IP6: [&str; 3] = ["2001:db8:20::11", "2001:db8:20::12", "2001:db8:20::13"];
/// Long-lived IPv6 TCP flows per group (A before lb2 exists, B after).
const TCP_FLOWS6: u32 = 20;

/// lb1's and lb2's HA configs with sync on and an IPv6 DR service (TCP [`VIP6`]:80, rr
/// over the three servers' IPv6 addresses) whose VIP is in the VRRP instance.
fn sync6_configs() -> [PathBuf; 2] {
    let key = key_file();
    let mut services =
        format!("[[service]]\nprotocol = \"tcp\"\naddress = \"{VIP6}\"\nport = 80\nscheduler = \"rr\"\n");
    for rs in RS_IP6 {
        services += &format!("\n[[service.server]]\naddress = \"{rs}\"\nport = 80\nweight = 1\nforward = \"dr\"\n");
    }
    let addresses = format!("addresses = [\"10.10.0.100\", \"10.20.0.100\", \"{VIP6}\"]");
    ["lb1", "lb2"].map(|lb| {
        let (me, peer) = if lb == "lb1" { (1, 2) } else { (2, 1) };
        let ha = format!(
            "{services}\n[ha]\nkey_file = \"{}\"\nsync_listen = \"10.30.0.{me}:8848\"\nsync_peer = \"10.30.0.{peer}:8848\"\n",
            key.display()
        );
        let edits = [("[ha]\n", ha.as_str()), ("addresses = [\"10.10.0.100\", \"10.20.0.100\"]", addresses.as_str())];
        variant_with(&format!("lab-ha-{lb}.toml"), &edits, &format!("sync6-dr-{lb}.toml"))
    })
}

/// The lab's IPv6 Full-NAT local addresses (config/lab-fullnat*.toml).
const LOCAL6: [&str; 2] = ["2001:db8:20::200", "2001:db8:20::201"];

/// lb1's and lb2's HA configs with sync on and an IPv6 Full-NAT service (TCP [`VIP6`]:80, rr
/// over the three servers' IPv6 addresses, from the IPv6 local addresses [`LOCAL6`], which
/// both nodes hold) whose VIP and local addresses are in the VRRP instance.
fn sync6_fullnat_configs() -> [PathBuf; 2] {
    let key = key_file();
    let mut services =
        format!("[[service]]\nprotocol = \"tcp\"\naddress = \"{VIP6}\"\nport = 80\nscheduler = \"rr\"\n");
    for rs in RS_IP6 {
        services +=
            &format!("\n[[service.server]]\naddress = \"{rs}\"\nport = 80\nweight = 1\nforward = \"fullnat\"\n");
    }
    let addresses =
        format!("addresses = [\"10.10.0.100\", \"10.20.0.100\", \"{VIP6}\", \"{}\", \"{}\"]", LOCAL6[0], LOCAL6[1]);
    let locals_from = "local_addresses = [\"10.20.0.200\", \"10.20.0.201\", \"10.20.0.202\", \"10.20.0.203\"]";
    let locals_to = format!(
        "local_addresses = [\"10.20.0.200\", \"10.20.0.201\", \"10.20.0.202\", \"10.20.0.203\", \"{}\", \"{}\"]",
        LOCAL6[0], LOCAL6[1]
    );
    ["lb1", "lb2"].map(|lb| {
        let (me, peer) = if lb == "lb1" { (1, 2) } else { (2, 1) };
        let ha = format!(
            "{services}\n[ha]\nkey_file = \"{}\"\nsync_listen = \"10.30.0.{me}:8848\"\nsync_peer = \"10.30.0.{peer}:8848\"\n",
            key.display()
        );
        let edits = [
            ("[ha]\n", ha.as_str()),
            ("addresses = [\"10.10.0.100\", \"10.20.0.100\"]", addresses.as_str()),
            (locals_from, locals_to.as_str()),
        ];
        variant_with(&format!("lab-ha-{lb}.toml"), &edits, &format!("sync6-fullnat-{lb}.toml"))
    })
}

/// How many connections of the IPv6 service lb `ns`'s `GET /v1/connections` lists.
fn listed6(ns: &str) -> u64 {
    let url = format!("http://{API}/v1/connections?service=tcp/{VIP6}/80&limit=1");
    let out = ns_exec(ns, &["curl", "-sfg", "-m", "5", &url]);
    serde_json::from_slice::<Value>(&out.stdout).ok().and_then(|v| v["total"].as_u64()).unwrap_or(0)
}

/// IPv6 connections survive a failover: lb1 (master) and lb2 (backup) sync their
/// connections; an IPv6 DR service's VIP is in the VRRP instance with the IPv4 ones.
/// 1. lb1 alone, master; flows A (long-lived IPv6 TCP keep-alive connections, each asking
///    every 50 ms and checking the answer is its first one) start. The client reaches the
///    VIP on-link (neighbour discovery), as IPv4 clients reach theirs by ARP.
/// 2. lb2 joins as backup and learns flows A by bulk resync; flows B start and reach it by
///    incremental records. lb2 lists all of them (`/v1/connections`, IPv6 addresses) and
///    counts them in its `conns6` gauge; the client's neighbour entry for the VIP is lb1's
///    MAC (the backup does not answer for the VIP).
/// 3. lb1 is SIGKILLed. lb2 takes over and announces the VIP by unsolicited neighbour
///    advertisement: the client's entry moves to lb2's MAC; every flow goes on (the
///    service's `unknown_flow` is "drop": only synced entries carry them) to its server;
///    new curl requests over IPv6 are answered through lb2.
#[test]
#[ignore = "needs root, the lab and rvsd: run vm-testbed/test.sh"]
fn ipv6_flows_survive_failover_dr() {
    let mut lab = Lab::up_without_lb();
    lab.start_real_servers(Mode::Dr);
    ns_exec_ok(CLIENT, &["ip", "-6", "route", "replace", &format!("{VIP6}/128"), "dev", "eth0"]);
    let [lb1, lb2] = sync6_configs();
    let url = format!("http://[{VIP6}]/");
    let to = format!("[{VIP6}]:80");

    // 1. lb1 alone.
    lab.start_lb("lb1", Some(&lb1));
    wait_state(LB1, "master", Duration::from_secs(3));
    let mut last = Vec::new();
    let ok = wait_until(Duration::from_secs(15), Duration::from_millis(300), || {
        last = http_who_many(CLIENT, &url, 1);
        last[0].is_ok()
    });
    assert!(ok, "no answer through {url} from lb1: {last:?}");
    let tcp_a = Flows::start("--tcp", &to, TCP_FLOWS6);

    // 2. lb2 joins.
    lab.start_lb("lb2", Some(&lb2));
    wait_state(LB2, "backup", Duration::from_secs(3));
    wait_in_sync(LB2);
    let tcp_b = Flows::start("--tcp", &to, TCP_FLOWS6);
    let want = u64::from(2 * TCP_FLOWS6);
    let all = wait_until(Duration::from_secs(5), Duration::from_millis(100), || listed6(LB2) >= want);
    assert!(all, "lb2 lists {} IPv6 connections of the {want} flows: {:?}", listed6(LB2), sync_status(LB2));
    let st2 = status_of(LB2);
    assert!(worker_counter(&st2, "conns6") >= want, "lb2's conns6 gauge: {}", worker_counter(&st2, "conns6"));
    let (lb1_mac, lb2_mac) = (port_mac(&status_of(LB1), "front"), port_mac(&st2, "front"));
    assert_eq!(neigh_mac(CLIENT, VIP6).as_deref(), Some(lb1_mac.as_str()), "the client's entry for the VIP");
    eprintln!("sync6: lb2 holds {} IPv6 connections before the crash", listed6(LB2));

    // 3. lb1 crashes.
    let crash = Instant::now();
    lab.stop_lb("lb1", true);
    wait_state(LB2, "master", Duration::from_secs(3));
    eprintln!("sync6: lb2 master {:?} after lb1's SIGKILL", crash.elapsed());
    let moved = wait_until(Duration::from_secs(2), Duration::from_millis(20), || {
        neigh_mac(CLIENT, VIP6).as_deref() == Some(lb2_mac.as_str())
    });
    assert!(
        moved,
        "the client's neighbour entry for {VIP6} is {:?}, not lb2's {lb2_mac}",
        ns_exec_ok(CLIENT, &["ip", "-6", "neigh", "show", VIP6])
    );
    eprintln!("sync6: the client's entry moved to lb2 {:?} after the crash", crash.elapsed());
    sleep(Duration::from_secs(2));
    let answers = http_who_many(CLIENT, &url, 6);
    let failed: Vec<&String> = answers.iter().filter_map(|a| a.as_ref().err()).collect();
    assert!(failed.is_empty(), "new IPv6 connections through lb2: {failed:?}");
    for (flows, what) in [(tcp_a, "IPv6 TCP flows A"), (tcp_b, "IPv6 TCP flows B")] {
        assert_intact(&flows.finish(), &format!("dr {what}"));
    }
    let st2 = status_of(LB2);
    eprintln!(
        "sync6: lb2 at the end: sync_installed {}, conns_created {}, tcp_no_conn {}",
        worker_counter(&st2, "sync_installed"),
        worker_counter(&st2, "conns_created"),
        drop_count(&st2, "tcp_no_conn")
    );
}

/// IPv6 Full-NAT connections survive a failover, as [`ipv6_flows_survive_failover_dr`]'s DR
/// ones: the records carry each flow's IPv6 local address and port, lb2 installs them and
/// reserves those ports; the local addresses are in the VRRP instance, so while lb1 is
/// master the servers resolve them to lb1's MAC and after the crash (lb2's unsolicited
/// neighbour advertisements) to lb2's; every flow goes on through lb2 from the same local
/// address and port to the same server, and lb2 is not asked to schedule any of them.
#[test]
#[ignore = "needs root, the lab and rvsd: run vm-testbed/test.sh"]
fn ipv6_fullnat_flows_survive_failover() {
    fullnat6_flows_survive_failover(sync6_fullnat_configs(), &LOCAL6, "sync6 fullnat");
}

/// lb1's and lb2's HA configs with sync on and a NAT64 service (TCP [`VIP6`]:80, rr over
/// the three servers' IPv4 addresses through Full-NAT, from the lab's IPv4 local
/// addresses [`LOCAL4`]) whose VIP and IPv4 local addresses are in the VRRP instance.
fn sync64_configs() -> [PathBuf; 2] {
    let key = key_file();
    let mut services =
        format!("[[service]]\nprotocol = \"tcp\"\naddress = \"{VIP6}\"\nport = 80\nscheduler = \"rr\"\n");
    for rs in REAL_SERVER_IPS {
        services +=
            &format!("\n[[service.server]]\naddress = \"{rs}\"\nport = 80\nweight = 1\nforward = \"fullnat\"\n");
    }
    let locals = LOCAL4.map(|l| format!("\"{l}\"")).join(", ");
    let addresses = format!("addresses = [\"10.10.0.100\", \"10.20.0.100\", \"{VIP6}\", {locals}]");
    ["lb1", "lb2"].map(|lb| {
        let (me, peer) = if lb == "lb1" { (1, 2) } else { (2, 1) };
        let ha = format!(
            "{services}\n[ha]\nkey_file = \"{}\"\nsync_listen = \"10.30.0.{me}:8848\"\nsync_peer = \"10.30.0.{peer}:8848\"\n",
            key.display()
        );
        let edits = [("[ha]\n", ha.as_str()), ("addresses = [\"10.10.0.100\", \"10.20.0.100\"]", addresses.as_str())];
        variant_with(&format!("lab-ha-{lb}.toml"), &edits, &format!("sync64-{lb}.toml"))
    })
}

/// The lab's IPv4 Full-NAT local addresses (config/lab-ha-lb*.toml).
const LOCAL4: [&str; 4] = ["10.20.0.200", "10.20.0.201", "10.20.0.202", "10.20.0.203"];

/// NAT64 connections survive a failover, as [`ipv6_fullnat_flows_survive_failover`]'s:
/// the records carry each flow's IPv4 local address and port and IPv4 server, lb2 installs
/// them into its IPv6 table and reserves those ports in its IPv4 allocator; the IPv4 local
/// addresses are in the VRRP instance (the servers' ARP entries move to lb2 on takeover).
#[test]
#[ignore = "needs root, the lab and rvsd: run vm-testbed/test.sh"]
fn nat64_flows_survive_failover() {
    fullnat6_flows_survive_failover(sync64_configs(), &LOCAL4, "sync64");
}

/// The failover of IPv6 flows through Full-NAT (IPv6 Full-NAT, or NAT64 with IPv4
/// servers) between lb1 and lb2 with `configs`, whose local addresses `locals` are in the
/// VRRP instance (see [`ipv6_fullnat_flows_survive_failover`]); `what` names the run.
fn fullnat6_flows_survive_failover(configs: [PathBuf; 2], locals: &[&str], what: &str) {
    let mut lab = Lab::up_without_lb();
    lab.start_real_servers(Mode::FullNat);
    ns_exec_ok(CLIENT, &["ip", "-6", "route", "replace", &format!("{VIP6}/128"), "dev", "eth0"]);
    let [lb1, lb2] = configs;
    let url = format!("http://[{VIP6}]/");
    let to = format!("[{VIP6}]:80");

    // 1. lb1 alone.
    lab.start_lb("lb1", Some(&lb1));
    wait_state(LB1, "master", Duration::from_secs(3));
    let mut last = Vec::new();
    let ok = wait_until(Duration::from_secs(15), Duration::from_millis(300), || {
        last = http_who_many(CLIENT, &url, 1);
        last[0].is_ok()
    });
    assert!(ok, "{what}: no answer through {url} from lb1: {last:?}");
    let tcp_a = Flows::start("--tcp", &to, TCP_FLOWS6);

    // 2. lb2 joins as backup: flows A by bulk resync, flows B by incremental records.
    lab.start_lb("lb2", Some(&lb2));
    wait_state(LB2, "backup", Duration::from_secs(3));
    wait_in_sync(LB2);
    let tcp_b = Flows::start("--tcp", &to, TCP_FLOWS6);
    let want = u64::from(2 * TCP_FLOWS6);
    let all = wait_until(Duration::from_secs(5), Duration::from_millis(100), || listed6(LB2) >= want);
    assert!(all, "{what}: lb2 lists {} IPv6 connections of the {want} flows: {:?}", listed6(LB2), sync_status(LB2));
    let st2 = status_of(LB2);
    assert_eq!(
        worker_counter(&st2, "sync_refused_port"),
        0,
        "{what}: lb2 took every local port: {:?}",
        sync_status(LB2)
    );
    let (lb1_mac, lb2_mac) = (port_mac(&status_of(LB1), "back"), port_mac(&st2, "back"));
    let lb2_front = port_mac(&st2, "front");
    let rs_neigh = |rs: &str| locals.iter().find_map(|l| neigh_mac(rs, l));
    assert!(
        REAL_SERVERS.iter().any(|rs| rs_neigh(rs).as_deref() == Some(lb1_mac.as_str())),
        "{what}: a server resolved a local address to lb1's back MAC {lb1_mac}"
    );
    assert!(
        REAL_SERVERS.iter().all(|rs| rs_neigh(rs).as_deref() != Some(lb2_mac.as_str())),
        "{what}: the backup answered for a local address"
    );
    eprintln!("{what}: lb2 holds {} IPv6 connections before the crash", listed6(LB2));
    let created_before = worker_counter(&st2, "conns_created");

    // 3. lb1 crashes; lb2 takes the VIP and the local addresses over.
    let crash = Instant::now();
    lab.stop_lb("lb1", true);
    wait_state(LB2, "master", Duration::from_secs(3));
    eprintln!("{what}: lb2 master {:?} after lb1's SIGKILL", crash.elapsed());
    let moved = wait_until(Duration::from_secs(2), Duration::from_millis(20), || {
        neigh_mac(CLIENT, VIP6).as_deref() == Some(lb2_front.as_str())
            && REAL_SERVERS.iter().all(|rs| rs_neigh(rs).is_none_or(|m| m == lb2_mac))
    });
    assert!(moved, "{what}: the client's and servers' neighbour entries did not move to lb2");
    eprintln!("{what}: neighbour entries moved to lb2 {:?} after the crash", crash.elapsed());
    sleep(Duration::from_secs(2));
    let reports =
        [(tcp_a, "flows A"), (tcp_b, "flows B")].map(|(flows, which)| (flows.finish(), format!("{what} {which}")));
    for (report, which) in &reports {
        assert_intact(report, which);
    }
    let st2 = status_of(LB2);
    let created = worker_counter(&st2, "conns_created") - created_before;
    assert_eq!(created, 0, "{what}: lb2 scheduled none of the synced flows");
    let answers = http_who_many(CLIENT, &url, 6);
    let failed: Vec<&String> = answers.iter().filter_map(|a| a.as_ref().err()).collect();
    assert!(failed.is_empty(), "{what}: new connections through lb2: {failed:?}");
    eprintln!(
        "{what}: {want} flows intact, longest gaps {} / {} ms; lb2 sync_installed {}, tcp_no_conn {}",
        reports[0].0["max_gap_ms"],
        reports[1].0["max_gap_ms"],
        worker_counter(&st2, "sync_installed"),
        drop_count(&st2, "tcp_no_conn")
    );
}
