//! End-to-end tests of rvsd's L2/L3 stack in the netns lab: ping, ARP, and a flood of
//! malformed frames that must all be dropped, each counted under its reason.
//!
//! All `#[ignore]`: they need root and a built rvsd. Run them with
//! `sudo bash vm-testbed/test.sh`, or by hand:
//! `RVSD_BIN=target/release/rvsd cargo test --release -p rvs-labtests -- --ignored --test-threads=1`.
//! Each test builds its own lab through [`Lab`], which tears it down even when the test fails.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rvs_labtests::*;
use serde_json::Value;

fn assert_pings(ns: &str, dst: &str) {
    let out = ping(ns, dst, 3);
    assert!(
        out.status.success() && ping_received(&out) == 3,
        "ping -c 3 {dst} from {ns}: expected 3 replies: {}",
        describe(&out)
    );
}

#[test]
#[ignore = "needs root, the lab and rvsd: run vm-testbed/test.sh"]
fn client_pings_front_port_and_vip() {
    let _lab = Lab::up();
    assert_pings(CLIENT, LB1_FRONT_IP);
    assert_pings(CLIENT, VIP);
}

#[test]
#[ignore = "needs root, the lab and rvsd: run vm-testbed/test.sh"]
fn real_server_pings_back_port() {
    let _lab = Lab::up();
    assert_pings(REAL_SERVERS[0], LB1_BACK_IP);
}

#[test]
#[ignore = "needs root, the lab and rvsd: run vm-testbed/test.sh"]
fn arp_resolves_rvsd_on_both_sides() {
    let _lab = Lab::up();
    let rs1 = REAL_SERVERS[0];
    assert_pings(CLIENT, LB1_FRONT_IP);
    assert_pings(rs1, LB1_BACK_IP);

    let st = status();
    for (ns, ip, port_name) in [(CLIENT, LB1_FRONT_IP, "front"), (rs1, LB1_BACK_IP, "back")] {
        let reported = port_mac(&st, port_name);
        // af_xdp ports take their veth's MAC, which lab.sh makes stable.
        assert_eq!(reported, link_mac(LB1, port_name), "port {port_name}: status MAC vs its veth's MAC");
        let learned = neigh_mac(ns, ip);
        assert_eq!(
            learned.as_deref(),
            Some(reported.as_str()),
            "{ns} resolved {ip} to {learned:?}, rvsd reports port {port_name} as {reported}"
        );
    }

    // arping from the client: rvsd answers for its port address and for the VIP.
    let front_mac = port_mac(&st, "front");
    for target in [LB1_FRONT_IP, VIP] {
        let out = ns_exec(CLIENT, &["timeout", "15", "arping", "-c", "3", "-i", "eth0", target]);
        let text = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
        assert!(
            out.status.success() && text.contains(&format!("from {front_mac}")),
            "arping {target} from the client: expected replies from {front_mac}: {}",
            describe(&out)
        );
    }

    let st = status();
    let replies = worker_counter(&st, "arp_replies_sent");
    assert!(replies > 0, "expected arp_replies_sent > 0 in the workers' counters, got {replies}: {st:#}");
}

/// What each kind of frame sent by `tools/malformed.py` must be counted as: a drop under one
/// of these reasons. Kinds that overlap in reasons are checked together (their reasons'
/// counters must rise by their frames together). `None`: anything, checked only in the total.
fn expected_reasons(kind: &str) -> Option<&'static [&'static str]> {
    Some(match kind {
        "random" => return None,
        "eth_not_for_us" => &["eth_not_for_us"],
        "eth_unknown_type" | "vlan" => &["eth_unknown_type"],
        // fe80::2 → fe80::1: no address of rvsd's (its link-local one is derived from its MAC).
        // With IPv6 services it is looked at as a possible NAT66 reply first: its random
        // ICMPv6 message is `icmp6_unhandled`, or, when its type is an error's, refused as a
        // received error (its random checksum, or a malformed quote); checked together
        // with `icmp6_bad_checksum`'s kind, which shares that reason.
        "ipv6" => &["ip6_not_for_us", "icmp6_unhandled", "icmp6_bad_checksum", "icmp6_malformed"],
        "ip6_ext_too_many" => &["ip6_ext_too_many"],
        "ip6_no_service" => &["ip6_no_service"],
        "icmp6_bad_checksum" => &["icmp6_bad_checksum"],
        "nd_bad_hop_limit" => &["nd_bad_hop_limit"],
        "ip_truncated" => &["ip_truncated"],
        "ip_bad_version" => &["ip_bad_version"],
        "ip_bad_ihl" => &["ip_bad_ihl"],
        "ip_length_below_header" => &["ip_bad_length"],
        // Total length beyond the frame: a bad length field, or a truncated packet.
        "ip_length_beyond_frame" => &["ip_bad_length", "ip_truncated"],
        "ip_bad_checksum" => &["ip_bad_checksum"],
        "ip_fragment" => &["ip_fragment"],
        // UDP fragments to the VIP, through the fragment table: a tiny first fragment is
        // inconsistent, first-less ones are held until the timeout (or refused by the bound
        // on held fragments), an overlapping pair goes whole. A random identification may
        // land one kind's fragment in another's train, so the three are checked together.
        "frag_tiny" | "frag_first_less" | "frag_overlap" => {
            &["frag_inconsistent", "frag_timeout", "frag_table_full", "frag_overlap"]
        }
        // The same, in IPv6, to the IPv6 VIP's UDP service (the same fragment table).
        "frag6_tiny" | "frag6_first_less" | "frag6_overlap" => {
            &["frag_inconsistent", "frag_timeout", "frag_table_full", "frag_overlap"]
        }
        // The longest chain walked, then UDP to a port of the IPv6 VIP with no service.
        "ip6_ext_max" => &["l4_no_service"],
        "ip6_ext_too_long" => &["ip6_ext_too_long"],
        "ip_bad_source" => &["ip_bad_source"],
        "ip_not_for_us" => &["ip_not_for_us"],
        "icmp_truncated" => &["icmp_malformed"],
        "icmp_bad_checksum" => &["icmp_bad_checksum"],
        "icmp_unhandled" => &["icmp_unhandled"],
        "arp_malformed" => &["arp_malformed"],
        "arp_not_for_us" => &["arp_not_for_us"],
        "tcp_to_vip" | "udp_to_vip" => &["l4_no_service"],
        other => panic!("malformed.py sent kind {other:?} that this test has no expectation for"),
    })
}

/// Groups of kinds whose reason sets overlap (transitively): (reasons, kinds, frames sent).
fn reason_groups(sent: &BTreeMap<String, u64>) -> Vec<(BTreeSet<&'static str>, Vec<String>, u64)> {
    let mut groups: Vec<(BTreeSet<&'static str>, Vec<String>, u64)> = Vec::new();
    for (kind, &n) in sent {
        let Some(reasons) = expected_reasons(kind) else {
            continue;
        };
        let mut merged: (BTreeSet<&'static str>, Vec<String>, u64) =
            (reasons.iter().copied().collect(), vec![kind.clone()], n);
        let mut rest = Vec::new();
        for g in groups {
            if g.0.is_disjoint(&merged.0) {
                rest.push(g);
            } else {
                merged.0.extend(g.0);
                merged.1.extend(g.1);
                merged.2 += g.2;
            }
        }
        rest.push(merged);
        groups = rest;
    }
    groups
}

#[test]
#[ignore = "needs root, the lab and rvsd: run vm-testbed/test.sh"]
fn malformed_flood_is_dropped_and_counted() {
    // The lab's default config (what `Lab::up` starts) with a UDP service on port 53 of the
    // IPv6 VIP (NAT66), for the IPv6 fragment kinds; its server is not needed (nothing
    // malformed reaches it).
    let mut lab = Lab::up_without_lb();
    let base_config = repo_root().join("config").join("lab.toml");
    let mut text = std::fs::read_to_string(&base_config).unwrap_or_else(|e| panic!("{}: {e}", base_config.display()));
    text.push_str(
        "\n[[service]]\nprotocol = \"udp\"\naddress = \"2001:db8:10::100\"\nport = 53\nscheduler = \"rr\"\n\
         \n[[service.server]]\naddress = \"2001:db8:20::11\"\nport = 53\nweight = 1\nforward = \"nat\"\n",
    );
    std::fs::create_dir_all(run_dir()).expect("create vm-testbed/run");
    let config = run_dir().join("malformed.toml");
    std::fs::write(&config, text).expect("write the malformed test's config");
    lab.start_lb("lb1", Some(&config));
    let before = status();
    // rvsd lists every reason it counts; it must be exactly the data path's list, so a reason
    // this test's expectations name cannot be missing and a new one cannot go unseen.
    let listed: BTreeSet<&str> =
        before["drops"].as_object().expect("status.drops").keys().map(String::as_str).collect();
    assert_eq!(listed, drop_reasons().into_iter().collect::<BTreeSet<_>>(), "status.drops vs DropReason::ALL");
    let front_mac = port_mac(&before, "front");
    let rx_before = link_stat(LB1, "front", "rx_packets");

    let tool = tool("malformed.py");
    let tool = tool.to_string_lossy();
    let stdout = ns_exec_ok(
        CLIENT,
        &["python3", &tool, "--iface", "eth0", "--dst-mac", &front_mac, "--count", "10000", "--seed", "1"],
    );
    let summary: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("malformed.py printed no JSON summary ({e}): {stdout}"));
    eprintln!("malformed.py: {summary}");
    let sent: BTreeMap<String, u64> = summary["sent"]
        .as_object()
        .expect("summary.sent")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().expect("a count")))
        .collect();
    let total: u64 = sent.values().sum();
    assert!(total >= 9_000, "malformed.py sent only {total} frames: {summary}");

    // The lab delivered them (else the fault is the lab's, not rvsd's).
    let delivered = link_stat(LB1, "front", "rx_packets").saturating_sub(rx_before);
    assert!(delivered >= total, "lab-lb1's front veth received {delivered} frames of {total} sent");

    // rvsd counts them as it polls; give an idle-sleeping worker time to catch up.
    let base = total_drops(&before);
    let settled = wait_until(Duration::from_secs(20), Duration::from_millis(250), || {
        try_status_of(LB1).map(|s| total_drops(&s) >= base + total).unwrap_or(false)
    });

    // rvsd survived and still answers.
    assert_pings(CLIENT, LB1_FRONT_IP);
    assert_pings(CLIENT, VIP);

    let after = status();
    let mut failures = Vec::new();
    let total_delta = total_drops(&after).saturating_sub(base);
    if !settled || total_delta < total {
        failures.push(format!("total drops rose by {total_delta}, expected >= {total} (every frame sent)"));
    }
    for (reasons, kinds, n) in reason_groups(&sent) {
        let delta: u64 = reasons.iter().map(|r| drop_count(&after, r).saturating_sub(drop_count(&before, r))).sum();
        if delta < n {
            failures.push(format!("kinds {kinds:?} ({n} frames): drops {reasons:?} rose by {delta}, expected >= {n}"));
        }
    }
    let deltas: BTreeMap<String, u64> = drops(&after)
        .into_iter()
        .map(|(k, v)| {
            let d = v.saturating_sub(drop_count(&before, &k));
            (k, d)
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{}\nsent: {sent:?}\ndrop deltas: {deltas:?}\nports after: {:#}",
        failures.join("\n"),
        after.get("ports").unwrap_or(&Value::Null)
    );
}

#[test]
fn malformed_kinds_all_have_expectations() {
    // Runs without the lab: ask the tool for its kinds and check this file maps each of them.
    let out = std::process::Command::new("python3")
        .arg("-B") // no __pycache__ in the source tree
        .arg("-c")
        .arg("import sys; sys.path.insert(0, sys.argv[1]); import malformed; print(' '.join(malformed.KINDS))")
        .arg(testbed_dir().join("tools"))
        .output();
    // No python3 is a failure, not a pass: the lab's tools need it.
    let out = out.unwrap_or_else(|e| panic!("python3 is needed to read tools/malformed.py's kinds: {e}"));
    assert!(out.status.success(), "{}", describe(&out));
    let kinds = String::from_utf8_lossy(&out.stdout);
    let sent: BTreeMap<String, u64> = kinds.split_whitespace().map(|k| (k.to_string(), 1)).collect();
    assert!(sent.len() >= 15, "too few kinds: {kinds}");
    let groups = reason_groups(&sent);
    for (reasons, _, _) in &groups {
        for r in reasons {
            assert!(drop_reasons().contains(r), "unknown drop reason {r}");
        }
    }
}

/// `lab.sh start-lb` says which rvsd it starts and refuses one older than a source it is built
/// from (cargo's dep-info `rvsd.d` next to it, or the crates' src/ without one), unless
/// `RVS_ALLOW_STALE=1`. Needs no lab: the config path does not exist, so nothing is started
/// even when a binary is accepted.
#[test]
#[ignore = "needs root (lab.sh refuses to run otherwise): run vm-testbed/test.sh"]
fn start_lb_refuses_an_rvsd_older_than_its_sources() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("rvs-stale-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bin = dir.join("rvsd");
    std::fs::write(&bin, "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let start = |env: &[(&str, &str)]| {
        let mut cmd = std::process::Command::new("bash");
        cmd.arg(testbed_dir().join("lab.sh")).args(["start-lb", "lb1", "/nonexistent/rvs-stale-test.toml"]);
        cmd.env("RVSD_BIN", &bin).env_remove("RVS_ALLOW_STALE").envs(env.iter().copied());
        let out = cmd.output().expect("bash");
        (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    // Dates the binary `offset` seconds after `source` (negative: before it).
    let date_bin = |source: &std::path::Path, offset: i64| {
        let t = std::fs::metadata(source).unwrap().modified().unwrap();
        let secs = t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64 + offset;
        let out = std::process::Command::new("touch").arg("-d").arg(format!("@{secs}")).arg(&bin).output().unwrap();
        assert!(out.status.success(), "touch: {}", describe(&out));
    };

    // With dep-info naming one source, a day older than that source: refused, naming both.
    let source = repo_root().join("controlplane/src/bin/rvsd.rs");
    std::fs::write(dir.join("rvsd.d"), format!("{}: {}\n", bin.display(), source.display())).unwrap();
    date_bin(&source, -86_400);
    let (ok, err) = start(&[]);
    assert!(!ok, "a stale binary was accepted: {err}");
    assert!(err.contains(&format!("rvsd binary: {}", bin.display())), "names the binary: {err}");
    assert!(err.contains("is older than the sources (controlplane/src/bin/rvsd.rs"), "names the source: {err}");
    assert!(err.contains("RVS_ALLOW_STALE=1"), "says how to override: {err}");

    let (ok, err) = start(&[("RVS_ALLOW_STALE", "1")]);
    assert!(!ok && err.contains("starting it anyway") && err.contains("config file"), "allowed: {err}");

    // Newer than its source: accepted (it then stops at the missing config).
    date_bin(&source, 86_400);
    let (ok, err) = start(&[]);
    assert!(!ok && !err.contains("older than") && err.contains("config file"), "a fresh binary: {err}");

    // Without dep-info the crates' src/ are the sources: an ancient binary is refused.
    std::fs::remove_file(dir.join("rvsd.d")).unwrap();
    date_bin(&source, -100 * 365 * 86_400 / 2);
    let (ok, err) = start(&[]);
    assert!(!ok && err.contains("is older than the sources ("), "no dep-info: {err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
