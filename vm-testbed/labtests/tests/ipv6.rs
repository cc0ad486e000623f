//! End-to-end tests of rvsd's IPv6 lite stack in the netns lab: the kernels of the lab's hosts
//! ping rvsd's IPv6 port addresses (global and link-local), resolve them by neighbour
//! discovery, and a forged claim of rvsd's address from another host is counted and changes
//! nothing; an off-link source is answered through the static IPv6 route; IPv4 forwarding
//! goes on throughout. IPv6 services in DR, NAT66 and IPv6-in-IPv6 tunnel mode; persistence
//! by prefix length and a deny list of an IPv6 prefix on an IPv6 service.
//!
//! All `#[ignore]`: they need root and a built rvsd. Run them with `sudo bash
//! vm-testbed/test.sh`, or by hand: `cargo test --release -p rvs-labtests --test ipv6 --
//! --ignored --test-threads=1`. The lab's IPv6 plan is in vm-testbed/lab.sh's header.

use std::time::Duration;

use rvs_labtests::*;
use serde_json::Value;

/// lb1's front and back IPv6 addresses (config/lab*.toml `ipv6_addresses`).
const LB1_FRONT_IP6: &str = "2001:db8:10::1";
const LB1_BACK_IP6: &str = "2001:db8:20::1";
/// The client's IPv6 address (lab.sh).
const CLIENT_IP6: &str = "2001:db8:10::2";
/// An address on no lab prefix, which the test gives the router: lb1 reaches it only
/// through its static route `::/0 via 2001:db8:10::254` (config/lab*.toml).
const FAR_IP6: &str = "2001:db8:99::1";

fn assert_pings6(ns: &str, dst: &str) {
    let out = ping(ns, dst, 3);
    assert!(
        out.status.success() && ping_received(&out) == 3,
        "ping -c 3 {dst} from {ns}: expected 3 replies: {}",
        describe(&out)
    );
}

/// The IPv6 addresses the status lists for port `name`.
fn port_ipv6(status: &Value, name: &str) -> Vec<String> {
    port(status, name)
        .and_then(|p| p.get("ipv6_addresses"))
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default()
}

/// `count` GETs of the VIP from the client, all answered by a real server.
fn assert_vip_answers(count: u32) {
    let answers = http_who_many(CLIENT, &format!("http://{VIP}/"), count);
    let failed: Vec<&String> = answers.iter().filter_map(|a| a.as_ref().err()).collect();
    assert!(failed.is_empty(), "IPv4 through the VIP: {} of {count} failed: {failed:?}", failed.len());
}

#[test]
#[ignore = "needs root, the lab and rvsd: run vm-testbed/test.sh"]
fn ping6_neighbour_discovery_and_spoofing() {
    let mut lab = Lab::up_without_lb();
    lab.start_lb("lb1", Some(&Mode::Dr.config(1)));
    lab.start_real_servers(Mode::Dr);

    // The status shows the configured addresses and the link-local one.
    let st = status();
    let front_mac = port_mac(&st, "front");
    let front6 = port_ipv6(&st, "front");
    assert!(front6.iter().any(|a| a == &format!("{LB1_FRONT_IP6}/64")), "front's IPv6 addresses: {front6:?}");
    let link_local = front6
        .iter()
        .find(|a| a.starts_with("fe80:"))
        .and_then(|a| a.split('/').next())
        .unwrap_or_else(|| panic!("front has no link-local address in the status: {front6:?}"))
        .to_string();

    // ping -6: global on both sides, link-local on the front.
    assert_pings6(CLIENT, LB1_FRONT_IP6);
    assert_pings6(REAL_SERVERS[0], LB1_BACK_IP6);
    assert_pings6(CLIENT, &format!("{link_local}%eth0"));
    // The kernel resolved rvsd by neighbour discovery to the port's MAC.
    assert_eq!(neigh_mac(CLIENT, LB1_FRONT_IP6).as_deref(), Some(front_mac.as_str()), "client's ip -6 neigh");
    let st = status();
    assert!(worker_counter(&st, "icmp6_echo_replies") >= 9, "icmp6_echo_replies: {st:#}");
    assert!(worker_counter(&st, "nd_advertisements_sent") > 0, "nd_advertisements_sent: {st:#}");

    // Another host (the router's front side) claims lb1's address, unicast to lb1's MAC.
    let before = drop_count(&status(), "nd_spoofed_own");
    let tool = tool("nd_spoof.py");
    let out = ns_exec_ok(
        ROUTER,
        &[
            "python3",
            "-B",
            &tool.to_string_lossy(),
            "--iface",
            "front",
            "--dst-mac",
            &front_mac,
            "--addr",
            LB1_FRONT_IP6,
            "--other",
            CLIENT_IP6,
            "--count",
            "200",
        ],
    );
    let summary: Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("nd_spoof.py: {e}: {out}"));
    let sent = summary["total"].as_u64().expect("nd_spoof.py total");
    assert_eq!(sent, 400, "{summary}");
    let counted = wait_until(Duration::from_secs(10), Duration::from_millis(250), || {
        try_status_of(LB1).map(|s| drop_count(&s, "nd_spoofed_own") >= before + sent).unwrap_or(false)
    });
    let after = status();
    assert!(
        counted,
        "nd_spoofed_own rose by {} for {sent} forged frames: {:?}",
        drop_count(&after, "nd_spoofed_own").saturating_sub(before),
        drops(&after)
    );

    // lb1 still answers for its address with its own MAC: a fresh resolution by the client
    // gets the port's MAC, and pings are answered.
    ns_exec_ok(CLIENT, &["ip", "-6", "neigh", "flush", "dev", "eth0"]);
    assert_pings6(CLIENT, LB1_FRONT_IP6);
    assert_eq!(
        neigh_mac(CLIENT, LB1_FRONT_IP6).as_deref(),
        Some(front_mac.as_str()),
        "after the spoofing, the client resolved lb1's address to another MAC"
    );

    // An off-link source: the router pings lb1 from FAR_IP6; the answers go back through
    // the static IPv6 default route to the router.
    ns_exec_ok(ROUTER, &["ip", "-6", "addr", "replace", &format!("{FAR_IP6}/128"), "dev", "back", "nodad"]);
    let before = drop_count(&status(), "no_route");
    let out = ns_exec(ROUTER, &["ping", "-6", "-n", "-c", "3", "-i", "0.2", "-W", "2", "-I", FAR_IP6, LB1_FRONT_IP6]);
    assert_eq!(ping_received(&out), 3, "ping -6 from the off-link {FAR_IP6}: {}", describe(&out));
    assert_eq!(drop_count(&status(), "no_route"), before, "no_route rose for an off-link source");

    // IPv4 forwarding went on: ARP, ping and the DR service.
    let out = ping(CLIENT, LB1_FRONT_IP, 3);
    assert!(ping_received(&out) == 3, "IPv4 ping of lb1: {}", describe(&out));
    assert_vip_answers(6);
}

/// The client's IPv6 VIP (lab.sh: on the real servers' lo, routed via lb1 by the client).
const VIP6: &str = "2001:db8:10::100";
/// The real servers' IPv6 addresses (lab.sh).
const RS_IP6: [&str; 3] = ["2001:db8:20::11", "2001:db8:20::12", "2001:db8:20::13"];
/// The IPv6 Full-NAT local addresses (config/lab-fullnat*.toml `local_addresses`; nothing
/// else in the lab uses them).
const LOCAL_IP6: [&str; 2] = ["2001:db8:20::200", "2001:db8:20::201"];

/// A UDP port of [`VIP6`] served by a port no real server listens on: the servers'
/// kernels answer with ICMPv6 port unreachable.
const CLOSED_UDP6: u16 = 5999;

/// `mode`'s one-worker lab config with IPv6 services appended: TCP :80 and UDP :53 on
/// [`VIP6`], and UDP :[`CLOSED_UDP6`], round robin over the three servers' IPv6 addresses.
fn config6(mode: Mode) -> std::path::PathBuf {
    config6_with(mode, "", "ipv6-services")
}

/// [`config6`] with `extra` lines in each IPv6 service (after its scheduler), written as
/// `name-MODE.toml` in the lab's run folder.
fn config6_with(mode: Mode, extra: &str, name: &str) -> std::path::PathBuf {
    let path = mode.config(1);
    let mut text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    for (proto, port) in [("tcp", 80), ("udp", 53), ("udp", CLOSED_UDP6)] {
        text.push_str(&format!(
            "\n[[service]]\nprotocol = \"{proto}\"\naddress = \"{VIP6}\"\nport = {port}\nscheduler = \"rr\"\n{extra}"
        ));
        for rs in RS_IP6 {
            text.push_str(&format!(
                "\n[[service.server]]\naddress = \"{rs}\"\nport = {port}\nweight = 1\nforward = \"{}\"\n",
                mode.name()
            ));
        }
    }
    std::fs::create_dir_all(run_dir()).expect("create vm-testbed/run");
    let out = run_dir().join(format!("{name}-{}.toml", mode.name()));
    std::fs::write(&out, text).expect("write the IPv6 services config");
    out
}

/// Whether the server saw the right peer for `who`: the client itself, or with Full-NAT
/// an IPv6 local address whose connection's TOA (the server's toa_reader.py log) names
/// the client's IPv6 address.
fn check_peer6(mode: Mode, who: &Who) -> Result<(), String> {
    if mode.server_sees_client() {
        return if who.peer_ip == CLIENT_IP6 { Ok(()) } else { Err(format!("the server saw {who:?}")) };
    }
    if !LOCAL_IP6.contains(&who.peer_ip.as_str()) {
        return Err(format!("{who:?}: the peer is not an IPv6 local address ({LOCAL_IP6:?})"));
    }
    let idx = REAL_SERVER_NAMES.iter().position(|n| *n == who.server).ok_or("an unknown server")?;
    let src = format!("[{}]:{}", who.peer_ip, who.peer_port);
    let mut client = None;
    wait_until(Duration::from_secs(5), Duration::from_millis(100), || {
        client = toa_entries(idx).into_iter().rev().find(|(s, _)| *s == src).map(|(_, c)| c);
        client.is_some()
    });
    match client {
        Some(c) if c.starts_with(&format!("[{CLIENT_IP6}]:")) => Ok(()),
        Some(c) => Err(format!("{who:?}: the TOA names {c}, not the client {CLIENT_IP6}")),
        None => Err(format!(
            "{who:?}: {}'s TOA reader logged nothing for {src}; log {}",
            who.server,
            rs_log_path(idx, "toa").display()
        )),
    }
}

/// IPv6 services through `mode`: curl round robin over the three servers, each seeing the
/// client's own IPv6 address (or with Full-NAT a local address and the client in TOA);
/// the UDP echo; a 20 MB download byte exact; the service's counters; and IPv4 through
/// the same rvsd meanwhile.
fn services6(mode: Mode) {
    let mut lab = Lab::up_without_lb();
    lab.start_real_servers(mode);
    lab.start_lb("lb1", Some(&config6(mode)));
    let url = format!("http://[{VIP6}]/");
    let mut last = Vec::new();
    let first_ok = wait_until(Duration::from_secs(15), Duration::from_millis(500), || {
        last = http_who_many(CLIENT, &url, 1);
        last[0].is_ok()
    });
    assert!(first_ok, "{}: no answer through {url} within 15 s: {last:?}", mode.name());

    // Round robin: 30 new connections, 10 per server, each seeing the client's address.
    let answers = http_who_many(CLIENT, &url, 30);
    let failed: Vec<&String> = answers.iter().filter_map(|a| a.as_ref().err()).collect();
    assert!(failed.is_empty(), "{} over IPv6: {} of 30 failed: {failed:?}", mode.name(), failed.len());
    let mut per_server = std::collections::BTreeMap::new();
    for who in answers.iter().flatten() {
        if let Err(e) = check_peer6(mode, who) {
            panic!("{}: {e}", mode.name());
        }
        *per_server.entry(who.server.clone()).or_insert(0u32) += 1;
    }
    // The first request above took one turn of the round robin.
    let counts: Vec<u32> = per_server.values().copied().collect();
    assert!(
        per_server.len() == 3 && counts.iter().all(|&n| (9..=11).contains(&n)),
        "{}: round robin over IPv6 gave {per_server:?}",
        mode.name()
    );

    // UDP echo: 6 datagrams, 2 per server.
    let replies = udp_who(CLIENT, &format!("[{VIP6}]:53"), 6, "v6");
    let failed: Vec<&String> = replies.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(failed.is_empty(), "{} UDP over IPv6: {failed:?}", mode.name());

    // A closed port behind NAT66 and Full-NAT: the server's port unreachable, translated
    // by rvsd, refuses the client's connected socket (DR and tunnel servers answer the
    // client directly, rvsd never sees it).
    if matches!(mode, Mode::Nat | Mode::FullNat) {
        check_port_unreachable6(mode);
    }

    // 4,000-byte datagrams, fragmented by the client's kernel (and the replies by the
    // servers'), echoed intact, in every mode.
    check_fragmented_udp6(mode);

    // 20 MB, byte exact.
    let n = 20 * 1024 * 1024;
    let got = download_sha256(CLIENT, &format!("http://[{VIP6}]/bytes/{n}"), Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{}: {e}", mode.name()));
    assert_eq!(got, expected_sha256(n), "{}: the 20 MB download over IPv6 differs", mode.name());

    // The service counted its connections on every server.
    let st = status();
    for rs in RS_IP6 {
        let conns = service_server_stat(&st, "tcp", VIP6, 80, rs, STAT_CONNS);
        assert!(conns.is_some_and(|c| c >= 10), "{}: tcp [{VIP6}]:80 server {rs}: conns {conns:?}", mode.name());
    }
    // IPv4 went on through the same rvsd.
    assert_vip_answers(6);
}

/// A connected UDP socket of the client's (python3) to `[VIP6]:CLOSED_UDP6` sends a
/// datagram and gets ECONNREFUSED: the real server's ICMPv6 port unreachable (NAT64: its
/// ICMP one, translated to ICMPv6) came back through rvsd from the VIP, about the
/// client's own datagram (the kernel matches the quote to the socket); rvsd counted it in
/// `icmp_errors_translated`.
fn check_port_unreachable6(mode: Mode) {
    const CLIENT_PY: &str = r#"import socket, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.settimeout(2)
s.connect((sys.argv[1], int(sys.argv[2])))
for _ in range(3):
    s.send(b"anyone there?")
    try:
        s.recv(100)
        print("answered")
        break
    except ConnectionRefusedError:
        print("refused")
        break
    except socket.timeout:
        pass
else:
    print("timeout")
"#;
    let before = worker_counter(&status(), "icmp_errors_translated");
    let port = CLOSED_UDP6.to_string();
    let out = ns_exec_ok(CLIENT, &["python3", "-c", CLIENT_PY, VIP6, &port]);
    let after = worker_counter(&status(), "icmp_errors_translated");
    assert_eq!(out.trim(), "refused", "{}: a UDP datagram to [{VIP6}]:{port} (closed on the servers)", mode.name());
    assert!(after > before, "{}: icmp_errors_translated stayed at {before}", mode.name());
    eprintln!("  udp [{VIP6}]:{port}: ECONNREFUSED, icmp_errors_translated +{}", after - before);
}

/// Bytes of each fragmented IPv6 UDP request: 3 fragments at the lab's 1,500-byte MTU.
const BIG_UDP6_BYTES: u32 = 4000;

/// 6 UDP requests of [`BIG_UDP6_BYTES`] through `[VIP6]:53`, each echoed intact; the
/// servers received each whole (their kernels reassembled it) from the peer `mode` shows
/// them (the client, or with Full-NAT a local address); rvsd's workers matched the
/// fragments to the flows (`frag6_forwarded`: 3 per request, and 3 more per reply through
/// NAT66 and Full-NAT, whose replies come back through rvsd fragmented by the server) and
/// no `frag_*` or `ip6_fragment` drop rose.
///
/// Tunnel: the client's kernel cuts its fragments for the 1,500-byte path, and with the
/// 40-byte outer header they no longer fit the back link: rvsd answers the first with a
/// packet too big naming 1,460 (`tunnel_too_big`), as for a whole packet, and the client's
/// kernel cuts smaller from then on. One request first learns that path MTU; if its reply
/// is lost, the packet too big must be why.
fn check_fragmented_udp6(mode: Mode) {
    let to = format!("[{VIP6}]:53");
    if mode == Mode::Tunnel {
        let before = status();
        let first = udp_who_sized(CLIENT, &to, 1, "frag6-pmtu", BIG_UDP6_BYTES);
        let after = status();
        let too_big = drop_count(&after, "tunnel_too_big") - drop_count(&before, "tunnel_too_big");
        let intact = matches!(&first[0], Ok((_, v)) if *v == format!("intact-{BIG_UDP6_BYTES}"));
        assert!(intact || too_big > 0, "tunnel: the first fragmented request {first:?}, tunnel_too_big +{too_big}");
        eprintln!("  tunnel path MTU: {first:?}, tunnel_too_big +{too_big}");
    }
    let before = status();
    let seen_before = big_udp6_seen(mode);
    let replies = udp_who_sized(CLIENT, &to, 6, "frag6", BIG_UDP6_BYTES);
    let after = status();
    let intact = format!("intact-{BIG_UDP6_BYTES}");
    let bad: Vec<_> = replies.iter().filter(|r| !matches!(r, Ok((_, v)) if *v == intact)).collect();
    let (d0, d1) = (drops(&before), drops(&after));
    let grown: std::collections::BTreeMap<&String, u64> =
        d1.iter().map(|(r, n)| (r, n - d0.get(r).copied().unwrap_or(0))).filter(|&(_, g)| g > 0).collect();
    assert!(bad.is_empty(), "{}: fragmented UDP over IPv6: {bad:?}; drops that rose: {grown:?}", mode.name());
    let seen = big_udp6_seen(mode) - seen_before;
    assert_eq!(
        seen,
        6,
        "{}: the servers logged {seen} whole {BIG_UDP6_BYTES}-byte datagrams from the expected peer",
        mode.name()
    );
    let forwarded = worker_counter(&after, "frag6_forwarded") - worker_counter(&before, "frag6_forwarded");
    let per_request = if matches!(mode, Mode::Nat | Mode::FullNat) { 6 } else { 3 };
    assert!(
        forwarded >= per_request * 6,
        "{}: frag6_forwarded rose by {forwarded}, expected at least {} ({per_request} per request)",
        mode.name(),
        per_request * 6
    );
    let refused: Vec<_> = grown
        .keys()
        .filter(|r| r.starts_with("frag_") || r.as_str() == "ip6_fragment" || r.as_str() == "tunnel_too_big")
        .collect();
    assert!(refused.is_empty(), "{}: fragment drops rose: {grown:?}", mode.name());
    eprintln!("  fragmented udp [{VIP6}]:53: {replies:?}, frag6_forwarded +{forwarded}");
}

/// How many [`BIG_UDP6_BYTES`]-byte UDP datagrams the real servers' IPv6 echo logged
/// (rs_server.py: `rs1 udp [peer]:port to [local] bytes`) from the peer `mode` shows them:
/// the client, or with Full-NAT one of the IPv6 local addresses.
fn big_udp6_seen(mode: Mode) -> usize {
    let peers: Vec<String> = if mode.server_sees_client() {
        vec![format!("[{CLIENT_IP6}]:")]
    } else {
        LOCAL_IP6.iter().map(|l| format!("[{l}]:")).collect()
    };
    (0..REAL_SERVER_NAMES.len())
        .map(|i| {
            let text = std::fs::read_to_string(rs_log_path(i, "server6")).unwrap_or_default();
            text.lines()
                .filter(|l| {
                    let mut w = l.split_whitespace().skip(1);
                    w.next() == Some("udp")
                        && w.next().is_some_and(|p| peers.iter().any(|x| p.starts_with(x.as_str())))
                        && l.ends_with(&format!(" {BIG_UDP6_BYTES}"))
                })
                .count()
        })
        .sum()
}

#[test]
#[ignore = "needs root, the lab and rvsd: run vm-testbed/test.sh"]
fn services6_dr() {
    services6(Mode::Dr);
}

#[test]
#[ignore = "needs root, the lab and rvsd: run vm-testbed/test.sh"]
fn services6_nat() {
    services6(Mode::Nat);
}

/// IPv6-in-IPv6 tunnel: each real server's `ipip_decap.py` takes the outer IPv6 header off
/// (the lab's kernel has no ip6_tunnel) and its kernel answers the client directly.
#[test]
#[ignore = "needs root, the lab and rvsd: run vm-testbed/test.sh"]
fn services6_tunnel() {
    services6(Mode::Tunnel);
}

/// One REST call from inside lab-lb1; returns (HTTP status, body).
fn rest(method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    let url = format!("http://127.0.0.1:8700{path}");
    let mut args = vec!["curl", "-s", "-o", "/dev/stdout", "-w", "\n%{http_code}", "-X", method, url.as_str()];
    if let Some(b) = body {
        args.extend(["-H", "Content-Type: application/json", "--data-binary", b]);
    }
    let out = ns_exec(LB1, &args);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", text.as_str()));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// Persistence on an IPv6 service (`persistence_netmask = "64"`, round robin): 20 new
/// connections from the client's IPv6 address all reach one server, and the persistence
/// entry is the client's /64. Then a deny list with the client's IPv6 prefix, set over
/// REST: the client's SYNs are refused and counted (`acl_denied`, and the service's own
/// count), while IPv4 through the same rvsd is served.
#[test]
#[ignore = "needs root, the lab and rvsd: run vm-testbed/test.sh"]
fn services6_persist() {
    let mode = Mode::Dr;
    let mut lab = Lab::up_without_lb();
    lab.start_real_servers(mode);
    let config = config6_with(mode, "persistence = \"300s\"\npersistence_netmask = \"64\"\n", "ipv6-persist");
    lab.start_lb("lb1", Some(&config));
    let url = format!("http://[{VIP6}]/");
    let mut last = Vec::new();
    let first_ok = wait_until(Duration::from_secs(15), Duration::from_millis(500), || {
        last = http_who_many(CLIENT, &url, 1);
        last[0].is_ok()
    });
    assert!(first_ok, "no answer through {url} within 15 s: {last:?}");

    // 20 new connections (new source ports): round robin alone would spread them.
    let answers = http_who_many(CLIENT, &url, 20);
    let failed: Vec<&String> = answers.iter().filter_map(|a| a.as_ref().err()).collect();
    assert!(failed.is_empty(), "{} of 20 failed: {failed:?}", failed.len());
    let servers: std::collections::BTreeSet<&str> = answers.iter().flatten().map(|w| w.server.as_str()).collect();
    assert_eq!(servers.len(), 1, "persistence by /64 sent the client to {servers:?}");
    assert!(answers.iter().flatten().all(|w| w.peer_ip == CLIENT_IP6), "{answers:?}");
    let svc = format!("/v1/services/tcp/{VIP6}/80");
    let (code, body) = rest("GET", &svc, None);
    assert_eq!(code, 200, "{body}");
    let v: Value = serde_json::from_str(&body).expect("service JSON");
    assert_eq!(v["persistence_netmask"], "64", "{body}");
    // rvsadm (next to $RVSD_BIN, when built) lists it as ipvsadm does.
    let rvsadm = std::path::Path::new(&std::env::var("RVSD_BIN").unwrap_or_default()).with_file_name("rvsadm");
    if rvsadm.exists() {
        let out = ns_exec_ok(LB1, &[&rvsadm.to_string_lossy(), "-Ln", "-t", &format!("[{VIP6}]:80")]);
        assert!(out.contains("rr persistent 300 mask 64"), "rvsadm -Ln: {out}");
    }

    // Deny the client's /64 live: its new connections are refused and counted.
    let (code, body) = rest("PUT", &svc, Some(r#"{"deny":["2001:db8:10::/64"]}"#));
    assert_eq!(code, 200, "{body}");
    let before = drop_count(&status(), "acl_denied");
    let refused = http_who_many(CLIENT, &url, 3);
    assert!(refused.iter().all(Result::is_err), "the denied client was answered: {refused:?}");
    let after = drop_count(&status(), "acl_denied");
    assert!(after >= before + 3, "acl_denied did not count the refused SYNs ({before} -> {after})");
    let (_, body) = rest("GET", &svc, None);
    let v: Value = serde_json::from_str(&body).expect("service JSON");
    assert!(v["stats"]["acl_denied"].as_u64().unwrap_or(0) >= 3, "the service counts its refusals: {body}");
    // IPv4 through the same rvsd is served.
    assert_vip_answers(6);
}

#[test]
#[ignore = "needs root, the lab and rvsd: run vm-testbed/test.sh"]
fn services6_fullnat() {
    services6(Mode::FullNat);
}

/// The Full-NAT one-worker lab config with IPv6 services on the IPv4 real servers (NAT64
/// through Full-NAT): TCP :80 and UDP :53 on [`VIP6`], round robin over the three
/// servers' IPv4 addresses, served from the config's IPv4 local addresses; and UDP
/// :[`CLOSED_UDP6`] (closed on the servers). `syn_proxy` is the TCP service's setting
/// (`None`: the default, `auto`).
fn config64(syn_proxy: Option<&str>) -> std::path::PathBuf {
    let path = Mode::FullNat.config(1);
    let mut text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    for (proto, port) in [("tcp", 80), ("udp", 53), ("udp", CLOSED_UDP6)] {
        text.push_str(&format!(
            "\n[[service]]\nprotocol = \"{proto}\"\naddress = \"{VIP6}\"\nport = {port}\nscheduler = \"rr\"\n"
        ));
        if let (Some(mode), "tcp") = (syn_proxy, proto) {
            text.push_str(&format!("syn_proxy = \"{mode}\"\n"));
        }
        for rs in REAL_SERVER_IPS {
            text.push_str(&format!(
                "\n[[service.server]]\naddress = \"{rs}\"\nport = {port}\nweight = 1\nforward = \"fullnat\"\n"
            ));
        }
    }
    std::fs::create_dir_all(run_dir()).expect("create vm-testbed/run");
    let out = run_dir().join(if syn_proxy.is_some() { "ipv6-nat64-proxied.toml" } else { "ipv6-nat64.toml" });
    std::fs::write(&out, text).expect("write the NAT64 config");
    out
}

/// Whether the server saw NAT64's peer for `who`: one of rvsd's IPv4 local addresses,
/// whose connection's TOA (the server's toa_reader.py log, the 20-byte IPv6 option on an
/// IPv4 segment) names the client's IPv6 address.
fn check_peer64(who: &Who) -> Result<(), String> {
    if !LOCAL_ADDRESSES.contains(&who.peer_ip.as_str()) {
        return Err(format!("{who:?}: the peer is not an IPv4 local address ({LOCAL_ADDRESSES:?})"));
    }
    let idx = REAL_SERVER_NAMES.iter().position(|n| *n == who.server).ok_or("an unknown server")?;
    let src = format!("{}:{}", who.peer_ip, who.peer_port);
    let mut client = None;
    wait_until(Duration::from_secs(5), Duration::from_millis(100), || {
        client = toa_entries(idx).into_iter().rev().find(|(s, _)| *s == src).map(|(_, c)| c);
        client.is_some()
    });
    match client {
        Some(c) if c.starts_with(&format!("[{CLIENT_IP6}]:")) => Ok(()),
        Some(c) => Err(format!("{who:?}: the TOA names {c}, not the client {CLIENT_IP6}")),
        None => Err(format!(
            "{who:?}: {}'s TOA reader logged nothing for {src}; log {}",
            who.server,
            rs_log_path(idx, "toa").display()
        )),
    }
}

/// NAT64: 6 UDP requests of [`BIG_UDP6_BYTES`] from the IPv6 client through
/// `[VIP6]:53`, each echoed intact by an IPv4 server. The client's IPv6 fragments reach
/// the servers as IPv4 fragments (their kernels reassemble each whole datagram, logged
/// from a local address); each server's 4,004-byte echo leaves its kernel as IPv4
/// fragments of up to 1,480 bytes, which rvsd translates to IPv6 fragments 28 bytes
/// longer, cutting those over the client link's 1,500 bytes in two (`nat64_fragments`),
/// and the client's kernel reassembles the reply. rvsd's workers matched the client's
/// fragments (`frag6_forwarded`, 3 per request) and the server's (the IPv4 part of
/// `frag_forwarded`, 3 per reply) to the flows, and no fragment, `reply_no_conn` or
/// NAT64 drop rose.
fn check_fragmented_udp64() {
    let to = format!("[{VIP6}]:53");
    let before = status();
    let seen_before = big_udp64_seen();
    let replies = udp_who_sized(CLIENT, &to, 6, "frag64", BIG_UDP6_BYTES);
    let after = status();
    let intact = format!("intact-{BIG_UDP6_BYTES}");
    let bad: Vec<_> = replies.iter().filter(|r| !matches!(r, Ok((_, v)) if *v == intact)).collect();
    let (d0, d1) = (drops(&before), drops(&after));
    let grown: std::collections::BTreeMap<&String, u64> =
        d1.iter().map(|(r, n)| (r, n - d0.get(r).copied().unwrap_or(0))).filter(|&(_, g)| g > 0).collect();
    assert!(bad.is_empty(), "nat64: fragmented UDP: {bad:?}; drops that rose: {grown:?}");
    let seen = big_udp64_seen() - seen_before;
    assert_eq!(
        seen, 6,
        "nat64: the IPv4 servers logged {seen} whole {BIG_UDP6_BYTES}-byte datagrams from a local address"
    );
    let rose = |name: &str| worker_counter(&after, name) - worker_counter(&before, name);
    let (v6, all, cut) = (rose("frag6_forwarded"), rose("frag_forwarded"), rose("nat64_fragments"));
    assert!(v6 >= 3 * 6, "nat64: frag6_forwarded rose by {v6}, expected at least 18 (3 per request)");
    assert!(all - v6 >= 3 * 6, "nat64: IPv4 frag_forwarded rose by {}, expected at least 18 (3 per reply)", all - v6);
    assert!(cut >= 6, "nat64: nat64_fragments rose by {cut}, expected at least one extra piece per reply");
    let refused: Vec<_> = grown
        .keys()
        .filter(|r| {
            r.starts_with("frag_")
                || r.starts_with("nat64_")
                || ["ip_fragment", "ip6_fragment", "ip6_too_big", "reply_no_conn"].contains(&r.as_str())
        })
        .collect();
    assert!(refused.is_empty(), "nat64: fragment drops rose: {grown:?}");
    eprintln!("  fragmented udp {to}: {replies:?}, frag6_forwarded +{v6}, IPv4 +{}, nat64_fragments +{cut}", all - v6);
}

/// How many [`BIG_UDP6_BYTES`]-byte UDP datagrams the real servers' IPv4 echo logged
/// (rs_server.py: `rs1 udp peer:port to local bytes`) from one of the IPv4 local
/// addresses (the NAT64 flows' peer).
fn big_udp64_seen() -> usize {
    (0..REAL_SERVER_NAMES.len())
        .map(|i| {
            let text = std::fs::read_to_string(rs_log_path(i, "server")).unwrap_or_default();
            text.lines()
                .filter(|l| {
                    let mut w = l.split_whitespace().skip(1);
                    w.next() == Some("udp")
                        && w.next().is_some_and(|p| LOCAL_ADDRESSES.iter().any(|a| p.starts_with(&format!("{a}:"))))
                        && l.ends_with(&format!(" {BIG_UDP6_BYTES}"))
                })
                .count()
        })
        .sum()
}

/// NAT64 through Full-NAT: the IPv6 client curls `[VIP6]:80`, served by the IPv4 real
/// servers round robin, each seeing an IPv4 local address as its peer and the client's
/// IPv6 address in the TOA; the UDP echo; ECONNREFUSED from a closed UDP port (the
/// server's ICMP error translated to ICMPv6); 4,000-byte UDP datagrams echoed intact
/// ([`check_fragmented_udp64`]); a 20 MB download byte exact; the service's
/// counters on each IPv4 server; IPv4 through the same rvsd meanwhile.
#[test]
#[ignore = "needs root, the lab and rvsd: run vm-testbed/test.sh"]
fn services6_nat64() {
    let mode = Mode::FullNat;
    let mut lab = Lab::up_without_lb();
    lab.start_real_servers(mode);
    lab.start_lb("lb1", Some(&config64(None)));
    let url = format!("http://[{VIP6}]/");
    let mut last = Vec::new();
    let first_ok = wait_until(Duration::from_secs(15), Duration::from_millis(500), || {
        last = http_who_many(CLIENT, &url, 1);
        last[0].is_ok()
    });
    assert!(first_ok, "nat64: no answer through {url} within 15 s: {last:?}; drops {:?}", drops(&status()));

    let answers = http_who_many(CLIENT, &url, 30);
    let failed: Vec<&String> = answers.iter().filter_map(|a| a.as_ref().err()).collect();
    assert!(failed.is_empty(), "nat64: {} of 30 failed: {failed:?}", failed.len());
    let mut per_server = std::collections::BTreeMap::new();
    for who in answers.iter().flatten() {
        if let Err(e) = check_peer64(who) {
            panic!("nat64: {e}");
        }
        *per_server.entry(who.server.clone()).or_insert(0u32) += 1;
    }
    let counts: Vec<u32> = per_server.values().copied().collect();
    assert!(
        per_server.len() == 3 && counts.iter().all(|&n| (9..=11).contains(&n)),
        "nat64: round robin gave {per_server:?}"
    );

    // UDP echo: 6 datagrams, 2 per server.
    let replies = udp_who(CLIENT, &format!("[{VIP6}]:53"), 6, "v64");
    let failed: Vec<&String> = replies.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(failed.is_empty(), "nat64 UDP: {failed:?}");
    let servers: std::collections::BTreeSet<&str> = replies.iter().flatten().map(|(s, _)| s.as_str()).collect();
    assert_eq!(servers.len(), 3, "nat64 UDP round robin: {replies:?}");

    // A closed port on the IPv4 servers: the server's ICMP port unreachable, translated
    // by rvsd to ICMPv6 from the VIP (RFC 7915), refuses the client's connected socket.
    check_port_unreachable6(mode);

    // 4,000-byte datagrams, fragmented both ways, echoed intact.
    check_fragmented_udp64();

    // 20 MB, byte exact.
    let n = 20 * 1024 * 1024;
    let got = download_sha256(CLIENT, &format!("http://[{VIP6}]/bytes/{n}"), Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("nat64: {e}"));
    assert_eq!(got, expected_sha256(n), "nat64: the 20 MB download differs");

    // The service counted its connections on every IPv4 server; no TOA was skipped.
    let st = status();
    for rs in REAL_SERVER_IPS {
        let conns = service_server_stat(&st, "tcp", VIP6, 80, rs, STAT_CONNS);
        assert!(conns.is_some_and(|c| c >= 10), "nat64: tcp [{VIP6}]:80 server {rs}: conns {conns:?}");
    }
    assert_eq!(worker_counter(&st, "toa_skipped"), 0, "toa_skipped: {st:#}");
    assert_vip_answers(6);
}

/// NAT64 with `syn_proxy = "always"`: every connection's handshake is rvsd's IPv6
/// cookie exchange and its SYN to the IPv4 server the proxied one; the curls still go
/// round robin with the client's IPv6 address in the TOA, a 20 MB download (sequence,
/// timestamp and window translation across the families for every segment) is byte
/// exact, and the proxy's counters saw every connection.
#[test]
#[ignore = "needs root, the lab and rvsd: run vm-testbed/test.sh"]
fn services6_nat64_syn_proxy_always() {
    let mut lab = Lab::up_without_lb();
    lab.start_real_servers(Mode::FullNat);
    lab.start_lb("lb1", Some(&config64(Some("always"))));
    let url = format!("http://[{VIP6}]/");
    let mut last = Vec::new();
    let first_ok = wait_until(Duration::from_secs(15), Duration::from_millis(500), || {
        last = http_who_many(CLIENT, &url, 1);
        last[0].is_ok()
    });
    assert!(first_ok, "nat64 proxied: no answer through {url} within 15 s: {last:?}; drops {:?}", drops(&status()));
    let answers = http_who_many(CLIENT, &url, 30);
    let failed: Vec<&String> = answers.iter().filter_map(|a| a.as_ref().err()).collect();
    assert!(failed.is_empty(), "nat64 proxied: {} of 30 failed: {failed:?}", failed.len());
    let mut per_server = std::collections::BTreeMap::new();
    for who in answers.iter().flatten() {
        if let Err(e) = check_peer64(who) {
            panic!("nat64 proxied: {e}");
        }
        *per_server.entry(who.server.clone()).or_insert(0u32) += 1;
    }
    assert_eq!(per_server.len(), 3, "nat64 proxied: round robin gave {per_server:?}");
    let n = 20 * 1024 * 1024;
    let got = download_sha256(CLIENT, &format!("http://[{VIP6}]/bytes/{n}"), Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("nat64 proxied: {e}"));
    assert_eq!(got, expected_sha256(n), "nat64 proxied: the 20 MB download differs");
    let st = status();
    let (cookies, acks, done) = (
        worker_counter(&st, "syn_proxy_cookies_sent"),
        worker_counter(&st, "syn_proxy_valid_acks"),
        worker_counter(&st, "syn_proxy_handshakes"),
    );
    println!("nat64 proxied: cookies {cookies} valid ACKs {acks} handshakes {done}");
    // The first curl, the 30 and the download at least.
    assert!(cookies >= 32 && acks >= 32 && done >= 32, "cookies {cookies}, valid ACKs {acks}, handshakes {done}");
    assert_eq!(worker_counter(&st, "toa_skipped"), 0, "toa_skipped: {st:#}");
    assert_eq!(drop_count(&st, "syn_proxy_bad_cookie"), 0, "{st:#}");
    drop(lab);
}
