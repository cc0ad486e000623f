//! Two shells (lb1, lb2) wired back to back through their HA rings, on a virtual clock:
//! frames worker 0 would send on one node arrive as punted packets on the other.

use std::cell::Cell;
use std::time::{Duration, Instant};

use rvs_dataplane::ha::{ha_links, HaLink, VRRP_MAC_V6};
use rvs_dataplane::wire::vrrp::VrrpPacket;
use rvs_dataplane::wire::{EthernetFrame, ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6};

use super::*;
use crate::config::L4Proto;

const LB1: &str = r#"
[[port]]
name = "front"
device = "net_ring0"
address = "10.10.0.1/24"
mac = "02:00:00:00:00:01"
[[port]]
name = "back"
device = "net_ring1"
address = "10.20.0.1/24"
mac = "02:00:00:00:01:01"
[[service]]
protocol = "tcp"
address = "10.10.0.100"
port = 80
scheduler = "rr"
[[service.server]]
address = "10.20.0.11"
forward = "nat"
[ha]
[[ha.instance]]
vrid = 51
port = "front"
priority = PRIO
advert_interval = "100ms"
addresses = ["10.10.0.100", "10.20.0.100"]
track_services = ["tcp/10.10.0.100/80"]
"#;

struct Env {
    link: Cell<bool>,
    polls: Cell<u64>,
    down: Cell<bool>,
}

impl Env {
    fn new() -> Env {
        Env { link: Cell::new(true), polls: Cell::new(0), down: Cell::new(false) }
    }
}

impl Environment for Env {
    fn link_up(&self, _port: usize) -> bool {
        self.link.get()
    }
    fn worker_polls(&self) -> Vec<u64> {
        self.polls.set(self.polls.get() + 1);
        vec![self.polls.get()]
    }
    fn service_down(&self, _service: crate::config::ServiceKey) -> bool {
        self.down.get()
    }
}

struct Node {
    shell: Shell,
    link: HaLink,
    roles: Arc<HaRoles>,
    env: Env,
}

fn node(prio: u8, front: &str, mac: u8) -> Node {
    let text = LB1.replace("PRIO", &prio.to_string()).replace("10.10.0.1/24", front);
    let config = Config::from_toml(&text).unwrap_or_else(|e| panic!("{e}"));
    let roles = roles(&config).unwrap().unwrap();
    let (mut links, end) = ha_links(1, 256);
    let ports = config
        .ports
        .iter()
        .map(|p| HaPort {
            name: p.name.clone(),
            mac: MacAddr([2, 0, 0, 0, mac, p.address.addr().octets()[1]]),
            net: p.address,
        })
        .collect();
    let shell = Shell::new(&config, ports, end, Arc::clone(&roles), Instant::now());
    Node { shell, link: links.remove(0), roles, env: Env::new() }
}

/// Frames `from` sent: (port, ethertype) each, delivered to `to` (when given) as worker 0
/// would punt them.
fn carry(from: &Node, to: Option<&Node>) -> Vec<(u16, u16)> {
    let mut out = Vec::new();
    while let Some((port, frame)) = from.link.take_frame(|p, f| (p, f.to_vec())) {
        let eth = EthernetFrame::new_checked(&frame[..]).unwrap();
        out.push((port.0, eth.ethertype()));
        if let Some(to) = to {
            // Adverts of either family (the worker punts VRRP over IPv6 from its MAC
            // 33:33:00:00:00:12; neighbour advertisements are not VRRP).
            if eth.ethertype() == ETHERTYPE_IPV4 || eth.dst() == VRRP_MAC_V6 {
                to.link.punt(port, eth.payload()).unwrap();
            }
        }
    }
    out
}

/// Runs both nodes from `t` for `d` in 5 ms steps; `alive2` false cuts lb1 → lb2 only
/// when `cut` (lb1 dead).
fn run(a: &mut Node, b: &mut Node, t: &mut Instant, d: Duration, a_alive: bool) {
    let end = *t + d;
    while *t < end {
        if a_alive {
            a.shell.turn(*t, &a.env);
        }
        b.shell.turn(*t, &b.env);
        if a_alive {
            carry(a, Some(b));
        }
        carry(b, if a_alive { Some(a) } else { None });
        *t += Duration::from_millis(5);
    }
}

#[test]
fn higher_priority_is_master_and_the_backup_takes_over_when_it_dies() {
    let mut a = node(200, "10.10.0.1/24", 1);
    let mut b = node(100, "10.10.0.10/24", 2);
    let mut t = Instant::now();
    run(&mut a, &mut b, &mut t, Duration::from_secs(1), true);
    assert_eq!((a.shell.states(), b.shell.states()), (vec![State::Master], vec![State::Backup]));
    assert!(a.roles.is_master(HaGroup(0)) && !b.roles.is_master(HaGroup(0)));
    let st = b.shell.status();
    assert_eq!(st.instances[0].master.as_deref(), Some("10.10.0.1"));
    assert!(st.instances[0].adverts_received >= 5, "{st:?}");
    // lb1 dies silently: lb2 takes over 3 × 100 ms + skew (156/256 × 100 ms) after lb1's
    // last advert, which left up to one interval before it died.
    let died = t;
    while b.shell.states()[0] != State::Master {
        run(&mut a, &mut b, &mut t, Duration::from_millis(5), false);
        assert!(t - died < Duration::from_secs(1));
    }
    let gap = t - died;
    assert!(gap >= Duration::from_millis(260) && gap <= Duration::from_millis(370), "{gap:?}");
    assert!(b.roles.is_master(HaGroup(0)));
}

#[test]
fn a_new_master_announces_every_address_on_its_port_and_shutdown_sends_priority_zero() {
    let mut a = node(200, "10.10.0.1/24", 1);
    let mut t = Instant::now();
    let mut frames = Vec::new();
    while a.shell.states().first() != Some(&State::Master) {
        a.shell.turn(t, &a.env);
        frames.extend(carry(&a, None));
        t += Duration::from_millis(5);
    }
    // One advert on front, then 5 rounds of GARP: 10.10.0.100 on front (0), 10.20.0.100 on back (1).
    assert_eq!(frames[0], (0, ETHERTYPE_IPV4));
    let garps: Vec<_> = frames.iter().filter(|f| f.1 == ETHERTYPE_ARP).collect();
    assert_eq!(garps.len(), 10);
    assert_eq!(garps.iter().filter(|f| f.0 == 1).count(), 5);
    a.shell.shutdown(t);
    assert_eq!(carry(&a, None), [(0, ETHERTYPE_IPV4)]);
    assert!(!a.roles.is_master(HaGroup(0)));
    assert_eq!(a.shell.states(), [State::Init]);
}

#[test]
fn sigterm_hands_over_after_skew_and_step_down_holds() {
    let mut a = node(200, "10.10.0.1/24", 1);
    let mut b = node(100, "10.10.0.10/24", 2);
    let mut t = Instant::now();
    run(&mut a, &mut b, &mut t, Duration::from_secs(1), true);
    // Step-down: lb2 takes over after its skew, lb1 does not preempt back during the hold.
    assert_eq!(
        a.shell.step_down(t, 51, Some(AdvertFamily::Ipv6), Duration::from_secs(60)).unwrap_err(),
        StepDownError::NoSuchFamily(51, AdvertFamily::Ipv6)
    );
    // The VRID alone names its only instance.
    let st = a.shell.step_down(t, 51, None, Duration::from_secs(60)).unwrap();
    assert_eq!((st.state.as_str(), st.family.as_str()), ("backup", "ipv4"));
    assert_eq!(
        a.shell.step_down(t, 51, Some(AdvertFamily::Ipv4), Duration::from_secs(60)).unwrap_err(),
        StepDownError::NotMaster { vrid: 51, state: "backup".into() }
    );
    assert_eq!(
        a.shell.step_down(t, 51, None, Duration::from_secs(60)).unwrap_err(),
        StepDownError::NotMaster { vrid: 51, state: "backup".into() }
    );
    assert_eq!(a.shell.step_down(t, 9, None, Duration::from_secs(60)).unwrap_err(), StepDownError::NoSuchVrid(9));
    run(&mut a, &mut b, &mut t, Duration::from_secs(2), true);
    assert_eq!((a.shell.states(), b.shell.states()), (vec![State::Backup], vec![State::Master]));
    // Shutdown of the master (lb2): lb1 takes over after its skew only (22 ms at 200).
    b.shell.shutdown(t);
    carry(&b, Some(&a));
    let stopped = t;
    while a.shell.states()[0] != State::Master {
        a.shell.turn(t, &a.env);
        carry(&a, None);
        t += Duration::from_millis(1);
    }
    assert!(t - stopped < Duration::from_millis(40), "{:?}", t - stopped);
}

#[test]
fn tracking_faults_on_link_worker_and_service() {
    let mut a = node(200, "10.10.0.1/24", 1);
    let mut t = Instant::now();
    for _ in 0..200 {
        a.shell.turn(t, &a.env);
        carry(&a, None);
        t += Duration::from_millis(5);
    }
    assert_eq!(a.shell.states(), [State::Master]);
    a.env.link.set(false);
    a.shell.turn(t, &a.env);
    assert_eq!(a.shell.states(), [State::Fault]);
    assert!(a.shell.status().instances[0].reason.as_deref().unwrap().contains("`front` has no link"));
    a.env.link.set(true);
    a.shell.turn(t, &a.env);
    assert_eq!(a.shell.states(), [State::Backup]);
    a.env.down.set(true);
    a.shell.turn(t, &a.env);
    assert_eq!(a.shell.states(), [State::Fault]);
    assert!(a.shell.status().instances[0].reason.as_deref().unwrap().contains("tcp/10.10.0.100/80 has no server up"));
    a.env.down.set(false);
    a.shell.turn(t, &a.env);
    assert_eq!(a.shell.states(), [State::Backup]);
    // A worker whose poll counter stands still for WORKER_STALL.
    struct Stalled;
    impl Environment for Stalled {
        fn link_up(&self, _: usize) -> bool {
            true
        }
        fn worker_polls(&self) -> Vec<u64> {
            vec![7]
        }
        fn service_down(&self, _: crate::config::ServiceKey) -> bool {
            false
        }
    }
    a.shell.turn(t, &Stalled);
    a.shell.turn(t + WORKER_STALL, &Stalled);
    assert_eq!(a.shell.states(), [State::Fault]);
    assert!(a.shell.status().instances[0].reason.as_deref().unwrap().contains("worker 0 stopped polling"));
}

#[test]
fn unknown_vrids_and_malformed_packets_are_counted() {
    let mut a = node(200, "10.10.0.1/24", 1);
    let t = Instant::now();
    let r = VrrpRepr { version: 3, vrid: 9, priority: 100, interval_cs: 100, addresses: vec![] };
    let f = advert_frame(MacAddr([2, 0, 0, 0, 0, 9]), Ipv4Addr::new(10, 10, 0, 9).into(), &r, 1).unwrap();
    a.link.punt(PortId(0), &f[14..]).unwrap();
    a.link.punt(PortId(0), &f[14..30]).unwrap();
    // VRID 51 on the wrong port.
    let r = VrrpRepr { vrid: 51, ..r };
    let f = advert_frame(MacAddr([2, 0, 0, 0, 0, 9]), Ipv4Addr::new(10, 10, 0, 9).into(), &r, 1).unwrap();
    a.link.punt(PortId(1), &f[14..]).unwrap();
    // VRID 51 on the right port but over IPv6: another virtual router (RFC 5798 §7.3's
    // VRIDs are per family).
    let r = VrrpRepr { addresses: vec!["2001:db8:10::100".parse().unwrap()], ..r };
    let f = advert_frame(MacAddr([2, 0, 0, 0, 0, 9]), "fe80::9".parse().unwrap(), &r, 1).unwrap();
    a.link.punt(PortId(0), &f[14..]).unwrap();
    // An IPv6 packet that is no VRRP (next header 17).
    let mut udp = f[14..].to_vec();
    udp[6] = 17;
    a.link.punt(PortId(0), &udp).unwrap();
    a.shell.turn(t, &a.env);
    let st = a.shell.status();
    assert_eq!((st.adverts_unknown_vrid, st.packets_malformed), (3, 2));
}

/// An instance of IPv6 addresses only (an IPv6 VIP and a floating address on the front
/// prefix) on two nodes of equal priority.
const LB_V6: &str = r#"
[[port]]
name = "front"
device = "net_ring0"
address = "10.10.0.1/24"
ipv6_addresses = ["2001:db8:10::1/64"]
[[port]]
name = "back"
device = "net_ring1"
address = "10.20.0.1/24"
[[service]]
protocol = "tcp"
address = "2001:db8:10::100"
port = 80
scheduler = "rr"
[[service.server]]
address = "2001:db8:10::11"
forward = "dr"
[ha]
[[ha.instance]]
vrid = 51
port = "front"
priority = 100
advert_interval = "100ms"
addresses = ["2001:db8:10::100", "2001:db8:10::254"]
"#;

fn node_v6(front6: &str, mac: u8) -> Node {
    let text = LB_V6.replace("2001:db8:10::1/64", front6);
    let config = Config::from_toml(&text).unwrap_or_else(|e| panic!("{e}"));
    let roles = roles(&config).unwrap().unwrap();
    let (mut links, end) = ha_links(1, 256);
    let ports = config
        .ports
        .iter()
        .map(|p| HaPort { name: p.name.clone(), mac: MacAddr([2, 0, 0, 0, mac, 1]), net: p.address })
        .collect();
    let shell = Shell::new(&config, ports, end, Arc::clone(&roles), Instant::now());
    Node { shell, link: links.remove(0), roles, env: Env::new() }
}

/// VRRPv3 over IPv6: adverts from the port's link-local address to ff02::12 with hop
/// limit 255 carrying the IPv6 addresses; equal priorities are settled by the higher
/// link-local address; the backup takes over when the master dies and announces every
/// address by unsolicited neighbour advertisement; bad adverts are counted by reason.
#[test]
fn ipv6_only_instances_speak_vrrp_over_ipv6() {
    let mut a = node_v6("2001:db8:10::1/64", 1);
    let mut b = node_v6("2001:db8:10::10/64", 2);
    let (ll_a, ll_b) = (link_local(MacAddr([2, 0, 0, 0, 1, 1])), link_local(MacAddr([2, 0, 0, 0, 2, 1])));
    assert!(u128::from(ll_b) > u128::from(ll_a));
    let mut t = Instant::now();
    // lb2's first advert, as it leaves worker 0.
    let first = loop {
        b.shell.turn(t, &b.env);
        if let Some(f) = b.link.take_frame(|p, f| (p, f.to_vec())) {
            break f;
        }
        t += Duration::from_millis(5);
    };
    assert_eq!(first.0, PortId(0));
    let eth = EthernetFrame::new_checked(&first.1[..]).unwrap();
    assert_eq!((eth.dst(), eth.ethertype()), (VRRP_MAC_V6, ETHERTYPE_IPV6));
    let ip = Ipv6Packet::new_checked(eth.payload()).unwrap();
    assert_eq!((ip.src_addr(), ip.dst_addr(), ip.hop_limit(), ip.next_header()), (ll_b, VRRP_GROUP_V6, 255, 112));
    let v = VrrpPacket::new_checked(ip.payload(), Family::V6).unwrap();
    assert!(v.verify_checksum(ll_b.into(), VRRP_GROUP_V6.into()));
    assert_eq!(v.addresses().map(|a| a.to_string()).collect::<Vec<_>>(), ["2001:db8:10::100", "2001:db8:10::254"]);
    while b.link.take_frame(|_, _| ()).is_some() {}
    // Equal priority: the higher link-local address (lb2's) is master.
    run(&mut a, &mut b, &mut t, Duration::from_secs(1), true);
    assert_eq!((a.shell.states(), b.shell.states()), (vec![State::Backup], vec![State::Master]));
    let st = a.shell.status();
    assert_eq!(st.instances[0].master.as_deref(), Some(ll_b.to_string().as_str()));
    assert!(st.instances[0].adverts_received >= 5, "{st:?}");
    assert_eq!(st.instances[0].invalid.values().sum::<u64>(), 0, "{st:?}");
    assert!(b.roles.is_master(HaGroup(0)) && !a.roles.is_master(HaGroup(0)));
    // lb2 dies: lb1 takes over and announces both addresses on the front port.
    let mut frames = Vec::new();
    while a.shell.states()[0] != State::Master {
        a.shell.turn(t, &a.env);
        while let Some(f) = a.link.take_frame(|p, f| (p, f.to_vec())) {
            frames.push(f);
        }
        t += Duration::from_millis(5);
    }
    a.shell.turn(t, &a.env);
    while let Some(f) = a.link.take_frame(|p, f| (p, f.to_vec())) {
        frames.push(f);
    }
    let nas: Vec<Ipv6Addr> = frames
        .iter()
        .filter(|(_, f)| f[12..14] == [0x86, 0xdd] && f.get(14 + 40) == Some(&136))
        .map(|(p, f)| {
            assert_eq!(*p, PortId(0));
            Ipv6Addr::from(<[u8; 16]>::try_from(&f[14 + 48..14 + 64]).unwrap())
        })
        .collect();
    for addr in ["2001:db8:10::100", "2001:db8:10::254"] {
        let n = nas.iter().filter(|a| **a == addr.parse::<Ipv6Addr>().unwrap()).count();
        assert_eq!(n, 5, "garp_master_repeat rounds of NA for {addr}: {nas:?}");
    }
    assert!(a.roles.is_master(HaGroup(0)));
    // Bad adverts from lb2's address: hop limit 254, a bad checksum, version 2 (no IPv6
    // form), another address list, each counted and none changing the state.
    let repr = VrrpRepr {
        version: 3,
        vrid: 51,
        priority: 250,
        interval_cs: 10,
        addresses: vec!["2001:db8:10::100".parse().unwrap(), "2001:db8:10::254".parse().unwrap()],
    };
    let good = advert_frame(MacAddr([2, 0, 0, 0, 2, 1]), ll_b.into(), &repr, 0).unwrap()[14..].to_vec();
    let mut ttl = good.clone();
    ttl[7] = 254;
    let mut csum = good.clone();
    csum[40 + 6] ^= 1;
    let mut v2 = good.clone();
    v2[40] = 0x21;
    let other = VrrpRepr { addresses: vec!["2001:db8:10::100".parse().unwrap()], ..repr };
    let other = advert_frame(MacAddr([2, 0, 0, 0, 2, 1]), ll_b.into(), &other, 0).unwrap()[14..].to_vec();
    for p in [&ttl, &csum, &v2, &other] {
        a.link.punt(PortId(0), p).unwrap();
    }
    a.shell.turn(t, &a.env);
    let st = a.shell.status();
    let inv = &st.instances[0].invalid;
    assert_eq!(["ttl", "checksum", "version", "addresses"].map(|k| inv[k]), [1, 1, 1, 1], "{inv:?}");
    assert_eq!(a.shell.states(), [State::Master]);
    // The good one (priority 250) wins.
    a.link.punt(PortId(0), &good).unwrap();
    a.shell.turn(t, &a.env);
    assert_eq!(a.shell.states(), [State::Backup]);
}

/// Every frame `n` sends in one turn at `t`, by port.
fn frames_of(n: &mut Node, t: Instant) -> Vec<(PortId, Vec<u8>)> {
    n.shell.turn(t, &n.env);
    let mut out = Vec::new();
    while let Some(f) = n.link.take_frame(|p, f| (p, f.to_vec())) {
        out.push(f);
    }
    out
}

/// The target addresses of the unsolicited neighbour advertisements among `frames`.
fn na_targets(frames: &[(PortId, Vec<u8>)]) -> Vec<(PortId, Ipv6Addr)> {
    frames
        .iter()
        .filter(|(_, f)| f[12..14] == [0x86, 0xdd] && f.get(14 + 40) == Some(&136))
        .map(|(p, f)| (*p, Ipv6Addr::from(<[u8; 16]>::try_from(&f[14 + 48..14 + 64]).unwrap())))
        .collect()
}

/// With `virtual_link_local`, the IPv6 adverts carry it first (RFC 5798 §5.2.9, what
/// keepalived's `vrrp_strict` wants), both nodes accept each other's, the roles hold it on
/// the instance's port, and only the master announces it (on that port).
#[test]
fn the_virtual_link_local_address_leads_the_adverts_and_moves_with_the_role() {
    let with_ll = |front6: &str, mac: u8| {
        let text = LB_V6
            .replace("2001:db8:10::1/64", front6)
            .replace("priority = 100", "priority = 100\nvirtual_link_local = \"fe80::51\"");
        let config = Config::from_toml(&text).unwrap_or_else(|e| panic!("{e}"));
        let roles = roles(&config).unwrap().unwrap();
        let (mut links, end) = ha_links(1, 256);
        let ports = config
            .ports
            .iter()
            .map(|p| HaPort { name: p.name.clone(), mac: MacAddr([2, 0, 0, 0, mac, 1]), net: p.address })
            .collect();
        let shell = Shell::new(&config, ports, end, Arc::clone(&roles), Instant::now());
        Node { shell, link: links.remove(0), roles, env: Env::new() }
    };
    let ll: Ipv6Addr = "fe80::51".parse().unwrap();
    let mut a = with_ll("2001:db8:10::1/64", 1);
    let mut b = with_ll("2001:db8:10::10/64", 2);
    assert_eq!(a.roles.group_of(IpAddr::V6(ll)), Some(HaGroup(0)));
    assert_eq!(a.roles.link_local_port(ll), Some(PortId(0)), "answered on the instance's port");
    let mut t = Instant::now();
    let first = loop {
        let f = frames_of(&mut b, t);
        if let Some(f) = f.into_iter().next() {
            break f;
        }
        t += Duration::from_millis(5);
    };
    let ip = Ipv6Packet::new_checked(&first.1[14..]).unwrap();
    let v = VrrpPacket::new_checked(ip.payload(), Family::V6).unwrap();
    assert!(v.verify_checksum(ip.src_addr().into(), VRRP_GROUP_V6.into()));
    assert_eq!(
        v.addresses().map(|a| a.to_string()).collect::<Vec<_>>(),
        ["fe80::51", "2001:db8:10::100", "2001:db8:10::254"],
        "the virtual link-local address first"
    );
    run(&mut a, &mut b, &mut t, Duration::from_secs(1), true);
    assert_eq!((a.shell.states(), b.shell.states()), (vec![State::Backup], vec![State::Master]));
    for n in [&a, &b] {
        let st = n.shell.status();
        assert_eq!(st.instances[0].invalid.values().sum::<u64>(), 0, "{st:?}");
        assert_eq!(st.instances[0].virtual_link_local.as_deref(), Some("fe80::51"));
        assert_eq!(st.instances[0].family, "ipv6");
    }
    assert!(a.shell.status().instances[0].adverts_received >= 5);
    // An advert without it (a peer that lists the global addresses only) is another list.
    let repr = VrrpRepr {
        version: 3,
        vrid: 51,
        priority: 250,
        interval_cs: 10,
        addresses: vec!["2001:db8:10::100".parse().unwrap(), "2001:db8:10::254".parse().unwrap()],
    };
    let peer = link_local(MacAddr([2, 0, 0, 0, 9, 1]));
    let without = advert_frame(MacAddr([2, 0, 0, 0, 9, 1]), peer.into(), &repr, 0).unwrap()[14..].to_vec();
    a.link.punt(PortId(0), &without).unwrap();
    a.shell.turn(t, &a.env);
    assert_eq!(a.shell.status().instances[0].invalid["addresses"], 1);
    // lb2 dies: lb1 takes over and announces the virtual link-local address on front, as
    // many rounds as the others; the backup announced nothing.
    let mut frames = Vec::new();
    while a.shell.states()[0] != State::Master {
        let f = frames_of(&mut a, t);
        if a.shell.states()[0] == State::Backup {
            assert!(na_targets(&f).is_empty(), "a backup announced: {f:?}");
        }
        frames.extend(f);
        t += Duration::from_millis(5);
    }
    frames.extend(frames_of(&mut a, t));
    let nas = na_targets(&frames);
    assert_eq!(nas.iter().filter(|x| **x == (PortId(0), ll)).count(), 5, "{nas:?}");
    assert_eq!(nas.iter().filter(|x| x.1 == ll).count(), 5, "on the instance's port only: {nas:?}");
    assert_eq!(nas.first().map(|x| x.1), Some(ll), "announced first");
}

/// One VRID for an IPv4 and an IPv6 instance of one port: each family's adverts reach
/// their own instance only; step-down needs the family when the VRID is ambiguous; the
/// status names the family.
#[test]
fn one_vrid_serves_an_ipv4_and_an_ipv6_instance_of_a_port() {
    let two = |p4: u8, p6: u8, front: &str, front6: &str, mac: u8| {
        let text = format!(
            "{}\n[[ha.instance]]\nvrid = 51\nport = \"front\"\npriority = {p4}\nadvert_interval = \"100ms\"\naddresses = [\"10.10.0.150\"]\n",
            LB_V6
                .replace("2001:db8:10::1/64", front6)
                .replace("address = \"10.10.0.1/24\"", &format!("address = \"{front}\""))
                .replace("priority = 100", &format!("priority = {p6}"))
        );
        let config = Config::from_toml(&text).unwrap_or_else(|e| panic!("{e}"));
        let roles = roles(&config).unwrap().unwrap();
        let (mut links, end) = ha_links(1, 256);
        let ports = config
            .ports
            .iter()
            .map(|p| HaPort { name: p.name.clone(), mac: MacAddr([2, 0, 0, 0, mac, 1]), net: p.address })
            .collect();
        let shell = Shell::new(&config, ports, end, Arc::clone(&roles), Instant::now());
        Node { shell, link: links.remove(0), roles, env: Env::new() }
    };
    // lb1 wins VRID 51 over IPv6, lb2 over IPv4.
    let mut a = two(100, 200, "10.10.0.1/24", "2001:db8:10::1/64", 1);
    let mut b = two(200, 100, "10.10.0.10/24", "2001:db8:10::10/64", 2);
    let mut t = Instant::now();
    run(&mut a, &mut b, &mut t, Duration::from_secs(2), true);
    assert_eq!(a.shell.states(), [State::Master, State::Backup]);
    assert_eq!(b.shell.states(), [State::Backup, State::Master]);
    for n in [&a, &b] {
        let st = n.shell.status();
        assert_eq!(st.instances.iter().map(|i| i.family.as_str()).collect::<Vec<_>>(), ["ipv6", "ipv4"]);
        assert_eq!(st.adverts_unknown_vrid, 0, "{st:?}");
        for i in &st.instances {
            assert!(i.invalid.values().sum::<u64>() == 0 && i.adverts_received + i.adverts_sent >= 10, "{i:?}");
        }
    }
    assert_eq!(a.shell.status().instances[1].master.as_deref(), Some("10.10.0.10"));
    // Step-down: ambiguous without the family, refused for a family the VRID lacks.
    let hold = Duration::from_secs(60);
    assert_eq!(a.shell.step_down(t, 51, None, hold).unwrap_err(), StepDownError::Ambiguous(51));
    assert_eq!(
        a.shell.step_down(t, 51, Some(AdvertFamily::Ipv4), hold).unwrap_err(),
        StepDownError::NotMaster { vrid: 51, state: "backup".into() }
    );
    let st = a.shell.step_down(t, 51, Some(AdvertFamily::Ipv6), hold).unwrap();
    assert_eq!((st.family.as_str(), st.state.as_str()), ("ipv6", "backup"));
    assert_eq!(a.shell.states(), [State::Backup, State::Backup]);
    run(&mut a, &mut b, &mut t, Duration::from_secs(1), true);
    assert_eq!(b.shell.states(), [State::Master, State::Master]);
    assert!(StepDownError::Ambiguous(51).to_string().contains("?family=ipv4 or ?family=ipv6"));
}

#[test]
fn service_down_needs_every_checked_server_down() {
    use crate::config::ServiceKey;
    use crate::status::HealthView;
    let key = ServiceKey { proto: L4Proto::Tcp, vip: Ipv4Addr::new(10, 10, 0, 100).into(), port: 80 };
    let view = |s: &str| HealthView { state: s.into(), ..HealthView::unchecked("") };
    let mut board = HashMap::new();
    board.insert((key, Ipv4Addr::new(10, 20, 0, 11).into(), 80), view("down"));
    board.insert((key, Ipv4Addr::new(10, 20, 0, 12).into(), 80), view("up"));
    assert!(!service_down(&board, key));
    board.insert((key, Ipv4Addr::new(10, 20, 0, 12).into(), 80), view("down"));
    assert!(service_down(&board, key));
    assert!(
        !service_down(&board, ServiceKey { proto: L4Proto::Udp, ..key }),
        "a service with no checked server is not down"
    );
}

/// Two instances with opposite priorities: each node is master of one and backup of the
/// other (the seeds' wackamole VIP pool, active/active).
#[test]
fn active_active_splits_the_instances() {
    let two = |p51: u8, p52: u8, front: &str, mac: u8| {
        let text = format!(
            "{}\n[[ha.instance]]\nvrid = 52\nport = \"front\"\npriority = {p52}\nadvert_interval = \"100ms\"\naddresses = [\"10.10.0.150\"]\n",
            LB1.replace("PRIO", &p51.to_string()).replace("10.10.0.1/24", front)
        );
        let config = Config::from_toml(&text).unwrap_or_else(|e| panic!("{e}"));
        let roles = roles(&config).unwrap().unwrap();
        let (mut links, end) = ha_links(1, 256);
        let ports = config
            .ports
            .iter()
            .map(|p| HaPort { name: p.name.clone(), mac: MacAddr([2, 0, 0, 0, mac, 1]), net: p.address })
            .collect();
        let shell = Shell::new(&config, ports, end, Arc::clone(&roles), Instant::now());
        Node { shell, link: links.remove(0), roles, env: Env::new() }
    };
    let mut a = two(200, 100, "10.10.0.1/24", 1);
    let mut b = two(100, 200, "10.10.0.10/24", 2);
    let mut t = Instant::now();
    run(&mut a, &mut b, &mut t, Duration::from_secs(2), true);
    assert_eq!(a.shell.states(), [State::Master, State::Backup]);
    assert_eq!(b.shell.states(), [State::Backup, State::Master]);
    assert!(a.roles.is_master(HaGroup(0)) && !a.roles.is_master(HaGroup(1)));
    assert!(!b.roles.is_master(HaGroup(0)) && b.roles.is_master(HaGroup(1)));
    assert_eq!(a.roles.group_of("10.10.0.150".parse().unwrap()), Some(HaGroup(1)));
}

/// `notify` runs on every transition with the state in its environment.
#[test]
fn notify_runs_with_the_transition_in_its_environment() {
    let out = std::env::temp_dir().join(format!("rvs-vrrp-notify-{}", std::process::id()));
    let _ = std::fs::remove_file(&out);
    let script =
        format!("echo \"$RVS_VRRP_VRID $RVS_VRRP_PREVIOUS $RVS_VRRP_STATE $RVS_VRRP_PRIORITY\" >> {}", out.display());
    let text = LB1.replace("PRIO", "200").replace(
        "track_services",
        &format!("notify = [\"/bin/sh\", \"-c\", {}]\ntrack_services", serde_json::to_string(&script).unwrap()),
    );
    let config = Config::from_toml(&text).unwrap_or_else(|e| panic!("{e}"));
    let roles = roles(&config).unwrap().unwrap();
    let (links, end) = ha_links(1, 256);
    let ports = config
        .ports
        .iter()
        .map(|p| HaPort { name: p.name.clone(), mac: MacAddr([2, 0, 0, 0, 0, 1]), net: p.address })
        .collect();
    let mut shell = Shell::new(&config, ports, end, roles, Instant::now());
    let env = Env::new();
    let mut t = Instant::now();
    while shell.states() != [State::Master] {
        shell.turn(t, &env);
        while links[0].take_frame(|_, _| ()).is_some() {}
        t += Duration::from_millis(5);
    }
    let lines = || std::fs::read_to_string(&out).unwrap_or_default();
    assert!(wait(|| lines().lines().count() == 2), "{}", lines());
    // Two processes: their lines may land in either order.
    let mut got: Vec<String> = lines().lines().map(String::from).collect();
    got.sort();
    assert_eq!(got, ["51 backup master 200", "51 init backup 200"]);
    let _ = std::fs::remove_file(&out);
}

fn wait(mut f: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while std::time::Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}
