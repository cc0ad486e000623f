//! The workers' side of VRRP high availability through whole workers on the in-memory
//! driver: a backup neither answers nor forwards for the addresses of its instances and
//! counts what reaches it (`ha_backup`), a master does; floating addresses are answered on
//! the port whose subnet holds them; VRRP adverts are handed to the control plane with
//! their port; the control plane's frames leave worker 0 unchanged.

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use common::l4::*;
use common::*;
use rvs_dataplane::ha::{ha_links, HaEnd, HaGroup, HaRoles, VRRP_GROUP_V4, VRRP_MAC_V4};
use rvs_dataplane::l2l3::neigh::NeighSync;
use rvs_dataplane::l2l3::AddrKind;
use rvs_dataplane::server::ServerStats;
use rvs_dataplane::service::{Service, ServiceTable, SharedServices, TableIds, TableSettings};
use rvs_dataplane::stats::DropReason;
use rvs_dataplane::types::{ForwardMode, L4Proto, SchedulerKind, ServiceKey, VipConfig};
use rvs_dataplane::worker::Worker;
use rvs_drivers::mem::MemPool;

/// The NAT gateway real servers route through, floating on the back network.
const GW: Ipv4Addr = Ipv4Addr::new(10, 20, 0, 100);
/// The other director, on the front network.
const PEER_IP: Ipv4Addr = Ipv4Addr::new(10, 10, 0, 3);
const PEER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x0f, 0x03];
/// A VIP of group 1 that no service table names yet.
const VIP2: Ipv4Addr = Ipv4Addr::new(10, 10, 0, 101);

const G0: HaGroup = HaGroup(0);
const G1: HaGroup = HaGroup(1);
const CPORT: u16 = 40001;

/// Group 0: the VIP, a Full-NAT local address and the NAT gateway; group 1: VIP2.
fn roles() -> Arc<HaRoles> {
    let addrs = [(VIP, G0), (LOCAL_IP, G0), (GW, G0), (VIP2, G1)];
    Arc::new(HaRoles::new(2, addrs.map(|(a, g)| (IpAddr::V4(a), g))).expect("roles"))
}

/// One NAT service on the VIP and a worker with the HA link and `roles`, every group backup.
fn setup(capacity: usize) -> (MemWorker, HaEnd, Arc<HaRoles>) {
    let (w, end, roles, _) = setup_shared(capacity);
    (w, end, roles)
}

/// [`setup`], and the service table the worker follows.
fn setup_shared(capacity: usize) -> (MemWorker, HaEnd, Arc<HaRoles>, SharedServices) {
    let shared =
        publish(vec![service(1, L4Proto::Tcp, 80, SchedulerKind::Rr, &[rs(RS1, 80, 1, ForwardMode::Nat)], None)]);
    let (mut links, end) = ha_links(1, capacity);
    let roles = roles();
    let w = lb_worker(&shared).with_ha(links.remove(0), Arc::clone(&roles));
    (w, end, roles, shared)
}

fn syn() -> Seg {
    Seg::tcp(CLIENT_IP, CPORT, VIP, 80, SYN)
}

fn arp_is_reply_for(frames: &[Vec<u8>], ip: Ipv4Addr, mac: [u8; 6]) -> bool {
    frames.len() == 1
        && frames[0][12..14] == [0x08, 0x06]
        && frames[0][20..22] == [0, 2]
        && frames[0][22..28] == mac
        && frames[0][28..32] == ip.octets()
}

/// A ping from a server on the back network to `dst`.
fn back_ping(dst: Ipv4Addr) -> Vec<u8> {
    pad60(eth(BACK_MAC, RS1_MAC, ETH_IPV4, &ipv4(Ip::new(RS1, dst, 1), &icmp_echo(8, 0x77, 1, PING_DATA))))
}

/// A VRRPv3 advert (contents are not the worker's business) from `src` to 224.0.0.18.
fn advert_ip(src: Ipv4Addr, proto: u8) -> Vec<u8> {
    let vrrp = [0x31, 51, 200, 1, 0, 100, 0, 0, 10, 10, 0, 100];
    ipv4(Ip { ttl: 255, ..Ip::new(src, VRRP_GROUP_V4, proto) }, &vrrp)
}

fn advert_frame(src_mac: [u8; 6], ip: &[u8]) -> Vec<u8> {
    pad60(eth(VRRP_MAC_V4.0, src_mac, ETH_IPV4, ip))
}

#[test]
fn backup_does_not_answer_or_forward_a_grouped_vip_until_master() {
    let (mut w, _end, roles) = setup(8);
    let (front, back) = roundtrip(&mut w, FRONT, &arp_request(CLIENT_MAC, CLIENT_IP, VIP), SEC);
    assert!(front.is_empty() && back.is_empty(), "no ARP reply from a backup");
    let (front, back) = roundtrip(&mut w, FRONT, &ping(CLIENT_MAC, CLIENT_IP, VIP, 1), SEC);
    assert!(front.is_empty() && back.is_empty(), "no echo reply from a backup");
    let (front, back) = roundtrip(&mut w, FRONT, &syn().by_client(), SEC);
    assert!(front.is_empty() && back.is_empty(), "no forwarding by a backup");
    assert_eq!(drops_of(&w), vec![("ha_backup", 3)]);
    assert_eq!(w.lb().expect("engine").conns().len(), 0);
    assert_eq!(snapshot(&w).arp_replies_sent, 0);

    roles.set_master(G0, true);
    let (front, _) = roundtrip(&mut w, FRONT, &arp_request(CLIENT_MAC, CLIENT_IP, VIP), SEC);
    assert!(arp_is_reply_for(&front, VIP, FRONT_MAC), "master answers ARP: {front:?}");
    let (front, _) = roundtrip(&mut w, FRONT, &ping(CLIENT_MAC, CLIENT_IP, VIP, 2), SEC);
    assert_eq!(front, vec![expected_pong(CLIENT_MAC, VIP, CLIENT_IP, 2)]);
    let (_, back) = roundtrip(&mut w, FRONT, &syn().by_client(), SEC);
    assert_eq!(back.len(), 1, "master forwards the SYN");
    assert_eq!(seen(&back[0]).dst, RS1);
    assert_eq!(drops_of(&w), vec![("ha_backup", 3)], "nothing more dropped");

    // Back to backup: the established flow's packets are dropped too (the new master has
    // no connection state until connection sync exists).
    roles.set_master(G0, false);
    let (front, back) = roundtrip(&mut w, FRONT, &Seg::tcp(CLIENT_IP, CPORT, VIP, 80, ACK).by_client(), SEC);
    assert!(front.is_empty() && back.is_empty());
    assert_eq!(snapshot(&w).drop_count(DropReason::HaBackup), 4);
    assert_accounting(&w);
}

#[test]
fn nat_replies_are_forwarded_whatever_the_role() {
    let (mut w, _end, roles) = setup(8);
    roles.set_master(G0, true);
    let (_, back) = roundtrip(&mut w, FRONT, &syn().by_client(), SEC);
    assert_eq!(back.len(), 1);
    roles.set_master(G0, false);
    // A server's reply is addressed to the client, not to an HA address: not gated.
    let reply = Seg::tcp(RS1, 80, CLIENT_IP, CPORT, SYN | ACK).ack(1);
    let (front, _) = roundtrip(&mut w, BACK, &reply.by_server(RS1_MAC), SEC);
    assert_eq!(front.len(), 1, "the reply reaches the client");
    assert_eq!(seen(&front[0]).src, VIP);
    assert!(drops_of(&w).is_empty(), "{:?}", drops_of(&w));
    assert_accounting(&w);
}

#[test]
fn full_nat_reply_to_a_grouped_local_address_is_dropped_by_a_backup() {
    let (mut w, _end, _roles) = setup(8);
    let reply = Seg::tcp(RS1, 80, LOCAL_IP, 5000, SYN | ACK);
    roundtrip(&mut w, BACK, &reply.by_server(RS1_MAC), SEC);
    assert_single_drop(&w, DropReason::HaBackup);
    // The other local address is in no group: handled as without HA.
    let reply = Seg::tcp(RS1, 80, LOCAL_IP2, 5000, SYN | ACK);
    roundtrip(&mut w, BACK, &reply.by_server(RS1_MAC), SEC);
    assert_eq!(snapshot(&w).drop_count(DropReason::ReplyNoConn), 1);
    assert_accounting(&w);
}

#[test]
fn floating_gateway_is_answered_on_its_port_only_when_master() {
    let (mut w, _end, roles) = setup(8);
    let gw = w.addresses().get(GW).expect("the gateway is in the book");
    assert_eq!((gw.kind, gw.port, gw.group), (AddrKind::Floating, Some(BACK), Some(G0)));
    let (front, back) = roundtrip(&mut w, BACK, &arp_request(RS1_MAC, RS1, GW), SEC);
    assert!(front.is_empty() && back.is_empty());
    let (front, back) = roundtrip(&mut w, BACK, &back_ping(GW), SEC);
    assert!(front.is_empty() && back.is_empty());
    assert_eq!(drops_of(&w), vec![("ha_backup", 2)]);

    roles.set_master(G0, true);
    let (_, back) = roundtrip(&mut w, BACK, &arp_request(RS1_MAC, RS1, GW), SEC);
    assert!(arp_is_reply_for(&back, GW, BACK_MAC), "{back:?}");
    let (_, back) = roundtrip(&mut w, BACK, &back_ping(GW), SEC);
    assert_eq!(back.len(), 1, "echo reply");
    assert_eq!(back[0][26..30], GW.octets(), "from the gateway");
    // Only on the back port.
    let (front, _) = roundtrip(&mut w, FRONT, &arp_request(CLIENT_MAC, CLIENT_IP, GW), SEC);
    assert!(front.is_empty());
    assert_eq!(snapshot(&w).drop_count(DropReason::ArpNotForUs), 1);
    // TCP to it is nobody's service.
    roundtrip(&mut w, BACK, &Seg::tcp(RS1, 80, GW, 80, SYN).by_server(RS1_MAC), SEC);
    assert_eq!(snapshot(&w).drop_count(DropReason::L4NoService), 1);
    assert_accounting(&w);
}

#[test]
fn ungrouped_port_address_is_always_answered() {
    let (mut w, _end, _roles) = setup(8);
    let (front, _) = roundtrip(&mut w, FRONT, &arp_request(CLIENT_MAC, CLIENT_IP, FRONT_IP), SEC);
    assert!(arp_is_reply_for(&front, FRONT_IP, FRONT_MAC));
    let (front, _) = roundtrip(&mut w, FRONT, &ping(CLIENT_MAC, CLIENT_IP, FRONT_IP, 1), SEC);
    assert_eq!(front, vec![expected_pong(CLIENT_MAC, FRONT_IP, CLIENT_IP, 1)]);
    assert!(drops_of(&w).is_empty());
    assert_accounting(&w);
}

#[test]
fn gratuitous_arp_skips_backup_addresses() {
    let (mut w, _end, roles) = setup(8);
    // Port addresses and the ungrouped local address only.
    assert_eq!(w.send_gratuitous_arp(0), 3);
    let (front, back) = (take_tx(&mut w, FRONT), take_tx(&mut w, BACK));
    let announced = |frames: &[Vec<u8>]| -> Vec<Ipv4Addr> {
        frames.iter().map(|f| Ipv4Addr::new(f[28], f[29], f[30], f[31])).collect()
    };
    assert_eq!(announced(&front), vec![FRONT_IP]);
    assert_eq!(announced(&back), vec![BACK_IP, LOCAL_IP2]);
    roles.set_master(G0, true);
    assert_eq!(w.send_gratuitous_arp(0), 6);
    let (front, back) = (take_tx(&mut w, FRONT), take_tx(&mut w, BACK));
    assert_eq!(announced(&front), vec![FRONT_IP, VIP]);
    assert_eq!(announced(&back), vec![BACK_IP, LOCAL_IP, LOCAL_IP2, GW]);
    assert_accounting(&w);
}

#[test]
fn a_vip_added_live_takes_its_group() {
    let (mut w, _end, roles, shared) = setup_shared(8);
    // Not a VIP yet: a floating address of group 1 on the front port.
    assert_eq!(w.addresses().get(VIP2).map(|o| o.kind), Some(AddrKind::Floating));
    let old = shared.load_full();
    let s = &old.services()[0];
    let mk = |vip: Ipv4Addr| Service {
        key: ServiceKey { proto: L4Proto::Tcp, vip: vip.into(), port: 80 },
        scheduler: s.scheduler,
        sched: Arc::clone(&s.sched),
        persist: None,
        servers: s.servers.clone(),
        local_addrs: s.local_addrs.clone(),
        local_addrs6: s.local_addrs6.clone(),
        stats: Arc::new(ServerStats::new(1)),
        admission: Default::default(),
        syn_proxy: Default::default(),
        unknown_flow: Default::default(),
    };
    let settings = TableSettings {
        timeouts: None,
        expire_nodest_conn: false,
        vips: Some(vec![VipConfig { address: VIP, port: Some(FRONT) }, VipConfig { address: VIP2, port: Some(FRONT) }]),
    };
    let ids = TableIds { services: vec![0, 1], servers: vec![vec![0], vec![1]] };
    shared.store(Arc::new(ServiceTable::with_ids(2, vec![mk(VIP), mk(VIP2)], ids, settings).expect("table")));
    let syn2 = Seg::tcp(CLIENT_IP, CPORT, VIP2, 80, SYN);
    let (front, back) = roundtrip(&mut w, FRONT, &syn2.by_client(), SEC);
    assert!(front.is_empty(), "no gratuitous ARP for a backup VIP: {front:?}");
    assert!(back.is_empty());
    let vip2 = w.addresses().get(VIP2).expect("VIP2");
    assert_eq!((vip2.kind, vip2.group), (AddrKind::Vip, Some(G1)));
    assert_single_drop(&w, DropReason::HaBackup);
    roles.set_master(G1, true);
    let (_, back) = roundtrip(&mut w, FRONT, &syn2.by_client(), SEC);
    assert_eq!(back.len(), 1, "served once master");
    assert_accounting(&w);
}

#[test]
fn vrrp_adverts_are_punted_with_their_port_and_other_multicast_dropped() {
    let (mut w, mut end, _roles) = setup(8);
    let ip = advert_ip(PEER_IP, 112);
    let (front, back) = roundtrip(&mut w, FRONT, &advert_frame(PEER_MAC, &ip), SEC);
    assert!(front.is_empty() && back.is_empty());
    assert_eq!(end.recv(), Some((FRONT, ip)), "the IP packet, Ethernet header and padding cut");
    assert_eq!(end.recv(), None);
    let s = snapshot(&w);
    assert_eq!((s.ha_rx, s.rx_consumed), (1, 1));
    assert!(drops_of(&w).is_empty());
    // On the back port too, tagged so.
    let ip = advert_ip(Ipv4Addr::new(10, 20, 0, 2), 112);
    roundtrip(&mut w, BACK, &advert_frame(RS1_MAC, &ip), SEC);
    assert_eq!(end.recv(), Some((BACK, ip)));

    // Other multicast, and non-VRRP to the VRRP MAC, are not for us.
    let igmp =
        ipv4(Ip { ttl: 1, ..Ip::new(PEER_IP, Ipv4Addr::new(224, 0, 0, 1), 2) }, &[0x11, 0, 0xee, 0xff, 0, 0, 0, 0]);
    roundtrip(&mut w, FRONT, &pad60(eth([1, 0, 0x5e, 0, 0, 1], PEER_MAC, ETH_IPV4, &igmp)), SEC);
    roundtrip(&mut w, FRONT, &advert_frame(PEER_MAC, &advert_ip(PEER_IP, 17)), SEC);
    assert_eq!(drops_of(&w), vec![("eth_not_for_us", 2)]);
    // Our own advert looped back, and a broken header, are dropped as any packet.
    roundtrip(&mut w, FRONT, &advert_frame(PEER_MAC, &advert_ip(FRONT_IP, 112)), SEC);
    roundtrip(&mut w, FRONT, &advert_frame(FRONT_MAC, &advert_ip(PEER_IP, 112)), SEC);
    let mut bad = advert_ip(PEER_IP, 112);
    bad[10] ^= 0xff;
    roundtrip(&mut w, FRONT, &advert_frame(PEER_MAC, &bad), SEC);
    let s = snapshot(&w);
    assert_eq!(
        [DropReason::IpBadSource, DropReason::EthBadSource, DropReason::IpBadChecksum].map(|r| s.drop_count(r)),
        [1, 1, 1]
    );
    assert_eq!(end.recv(), None);
    assert_eq!(snapshot(&w).ha_rx, 2);
    assert_accounting(&w);
}

#[test]
fn a_full_vrrp_ring_drops_and_counts() {
    let (mut w, mut end, _roles) = setup(1);
    let frame = advert_frame(PEER_MAC, &advert_ip(PEER_IP, 112));
    roundtrip(&mut w, FRONT, &frame, SEC);
    roundtrip(&mut w, FRONT, &frame, SEC);
    assert_single_drop(&w, DropReason::HaRingFull);
    assert!(end.recv().is_some());
    roundtrip(&mut w, FRONT, &frame, SEC);
    assert_eq!(snapshot(&w).ha_rx, 2);
    assert_accounting(&w);
}

#[test]
fn without_ha_adverts_are_multicast_not_for_us() {
    let shared =
        publish(vec![service(1, L4Proto::Tcp, 80, SchedulerKind::Rr, &[rs(RS1, 80, 1, ForwardMode::Nat)], None)]);
    let mut w = lb_worker(&shared);
    roundtrip(&mut w, FRONT, &advert_frame(PEER_MAC, &advert_ip(PEER_IP, 112)), SEC);
    assert_single_drop(&w, DropReason::EthNotForUs);
    assert_eq!(snapshot(&w).ha_rx, 0);
    assert!(w.addresses().iter().all(|(_, o)| o.group.is_none()));
    let (front, _) = roundtrip(&mut w, FRONT, &arp_request(CLIENT_MAC, CLIENT_IP, VIP), SEC);
    assert!(arp_is_reply_for(&front, VIP, FRONT_MAC));
    assert_accounting(&w);
}

#[test]
fn control_plane_frames_leave_worker_0_unchanged() {
    let (mut w, mut end, _roles) = setup(8);
    let garp: Vec<u8> = pad60(eth(BCAST, FRONT_MAC, ETH_ARP, &arp(1, FRONT_MAC, VIP, [0; 6], VIP)));
    let advert = advert_frame(FRONT_MAC, &advert_ip(FRONT_IP, 112));
    assert!(end.send_frame(FRONT, &garp));
    assert!(end.send_frame(BACK, &advert));
    assert!(end.send_frame(rvs_dataplane::types::PortId(7), &advert));
    w.poll_once(SEC);
    assert_eq!(take_tx(&mut w, FRONT), vec![garp]);
    assert_eq!(take_tx(&mut w, BACK), vec![advert]);
    let s = snapshot(&w);
    assert_eq!((s.ha_tx, s.local_originated, s.tx_packets), (2, 3, 2));
    assert_single_drop(&w, DropReason::HaBadPort);
    assert_accounting(&w);
}

#[test]
fn only_worker_0_sends_the_control_planes_frames() {
    let (links, mut end) = ha_links(2, 8);
    let shared =
        publish(vec![service(2, L4Proto::Tcp, 80, SchedulerKind::Rr, &[rs(RS1, 80, 1, ForwardMode::Nat)], None)]);
    let roles = roles();
    let mut ws: Vec<MemWorker> = lb_workers(&shared, 2, &LbOpts::default())
        .into_iter()
        .zip(links)
        .map(|(w, l)| w.with_ha(l, Arc::clone(&roles)))
        .collect();
    let frame = pad60(eth(BCAST, BACK_MAC, ETH_ARP, &arp(1, BACK_MAC, GW, [0; 6], GW)));
    assert!(end.send_frame(BACK, &frame));
    ws[1].poll_once(SEC);
    assert!(take_tx(&mut ws[1], BACK).is_empty());
    ws[0].poll_once(SEC);
    assert_eq!(take_tx(&mut ws[0], BACK), vec![frame]);
    // Adverts are punted by whichever worker receives them.
    let ip = advert_ip(PEER_IP, 112);
    inject(&mut ws[1], FRONT, &advert_frame(PEER_MAC, &ip));
    ws[1].poll_once(SEC);
    assert_eq!(end.recv(), Some((FRONT, ip)));
    assert_accounting_all(&ws);
}

#[test]
fn a_frame_finding_the_pool_empty_is_no_mbuf() {
    let (mut links, mut end) = ha_links(1, 8);
    let mut w = Worker::new(&lab_config(), queues(), MemPool::with_limit(0), NeighSync::none())
        .expect("valid config")
        .with_ha(links.remove(0), roles());
    let garp = pad60(eth(BCAST, BACK_MAC, ETH_ARP, &arp(1, BACK_MAC, GW, [0; 6], GW)));
    assert!(end.send_frame(BACK, &garp));
    w.poll_once(SEC);
    assert!(take_tx(&mut w, BACK).is_empty());
    assert_single_drop(&w, DropReason::NoMbuf);
    assert_eq!(snapshot(&w).ha_tx, 0);
    assert_accounting(&w);
}
