//! End-to-end tests of rvsd's IPv6 lite stack in the netns lab: the kernels of the lab's hosts
//! ping rvsd's IPv6 port addresses (global and link-local), resolve them by neighbour
//! discovery, and a forged claim of rvsd's address from another host is counted and changes
//! nothing; an off-link source is answered through the static IPv6 route; IPv4 forwarding
//! goes on throughout.
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
