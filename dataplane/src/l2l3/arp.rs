//! ARP (RFC 826) for our addresses: answering requests in place, deciding what to learn,
//! and building requests and gratuitous announcements.
//!
//! Contract:
//! * [`handle`] looks at one received ARP frame (Ethernet header included) and returns
//!   what to do with it: a [`Verdict`] plus, optionally, a sender to learn. A request for
//!   one of our addresses *on that port* (port address, Full-NAT local address, VIP — see
//!   [`AddressBook::answers_arp`]) is turned into the reply inside the received buffer; no
//!   allocation, no copy. Under VRRP roles ([`handle_with_roles`]) an address whose
//!   group this node is backup for is not answered (`ha_backup`).
//! * Learning follows RFC 826's algorithm: the sender is *merged* (an existing entry is
//!   updated) whatever the target, and *added* only when the target is us. A sender is
//!   learnable only from a plausible neighbour: a unicast MAC, a source address that is
//!   not martian, not ours, and on the receiving port's connected prefix (an ARP cache
//!   must not be filled with off-link or spoofed addresses).
//! * Built frames ([`write_request`], [`write_gratuitous`]) are [`ARP_FRAME_LEN`] bytes:
//!   the 42 bytes of Ethernet + ARP padded with zeros to the 60-byte Ethernet minimum, as
//!   not every DPDK PMD pads runt frames (the kernel's drivers do it for `arp_create`).

use std::net::Ipv4Addr;

use super::{is_martian_source, AddressBook, RouteTable, Verdict};
use crate::ha::HaRoles;
use crate::stats::DropReason;
use crate::types::PortId;
use crate::wire::{ArpPacket, EthernetFrame, MacAddr, ARP_REPLY, ARP_REQUEST, ETHERTYPE_ARP};

/// Length of the ARP frames rvs builds: the Ethernet minimum (60 bytes without FCS).
pub const ARP_FRAME_LEN: usize = 60;

/// A sender the worker should record in its neighbour table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpLearn {
    /// Sender protocol address.
    pub ip: Ipv4Addr,
    /// Sender hardware address.
    pub mac: MacAddr,
    /// True when the packet was addressed to us, so a missing entry is created (RFC 826);
    /// false: only update an existing one.
    pub create: bool,
}

/// What [`handle`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpOutcome {
    /// What to do with the frame: `Tx(port)` for a reply built in place, `Consumed` for a
    /// reply to us, `Drop(..)` otherwise.
    pub verdict: Verdict,
    /// The sender to merge or add, if it is a plausible neighbour.
    pub learn: Option<ArpLearn>,
}

impl ArpOutcome {
    fn drop(reason: DropReason) -> Self {
        ArpOutcome { verdict: Verdict::Drop(reason), learn: None }
    }
}

/// Handles one ARP frame received on `port` (whose MAC is `port_mac`). `frame` starts at
/// the Ethernet header, whose destination the caller has already accepted (ours or
/// broadcast). A request for one of our addresses is rewritten into its reply in place.
pub fn handle(
    frame: &mut [u8],
    port: PortId,
    port_mac: MacAddr,
    book: &AddressBook,
    routes: &RouteTable,
) -> ArpOutcome {
    handle_with_roles(frame, port, port_mac, book, routes, None)
}

/// [`handle`] under VRRP roles: an ARP packet whose target is one of our addresses on
/// this port but in a group this node is backup for ([`super::OwnedAddr::active`]) is not
/// answered: it is dropped as `ha_backup`, and its sender is only merged, never added
/// (the address is not ours while backup).
pub fn handle_with_roles(
    frame: &mut [u8],
    port: PortId,
    port_mac: MacAddr,
    book: &AddressBook,
    routes: &RouteTable,
    roles: Option<&HaRoles>,
) -> ArpOutcome {
    let Some(body) = frame.get_mut(EthernetFrame::<&[u8]>::HEADER_LEN..) else {
        return ArpOutcome::drop(DropReason::EthTruncated);
    };
    let Ok(mut arp) = ArpPacket::new_checked(body) else {
        return ArpOutcome::drop(DropReason::ArpMalformed);
    };
    let op = arp.operation();
    let (sender_ip, sender_mac, target_ip) = (arp.sender_ip(), arp.sender_mac(), arp.target_ip());
    if (op != ARP_REQUEST && op != ARP_REPLY) || !sender_mac.is_unicast() || sender_mac.is_zero() {
        return ArpOutcome::drop(DropReason::ArpMalformed);
    }
    let target = book.get(target_ip).filter(|o| o.port.is_none_or(|p| p == port));
    let for_us = target.is_some();
    let active = target.is_some_and(|o| o.active(roles));
    let learnable = !is_martian_source(sender_ip)
        && !book.is_ours(sender_ip)
        && routes.lookup(sender_ip).is_some_and(|nh| nh.port == port && nh.via.is_none());
    let learn = learnable.then_some(ArpLearn { ip: sender_ip, mac: sender_mac, create: active });
    if !for_us {
        return ArpOutcome { verdict: Verdict::Drop(DropReason::ArpNotForUs), learn };
    }
    if !active {
        return ArpOutcome { verdict: Verdict::Drop(DropReason::HaBackup), learn };
    }
    if op == ARP_REPLY {
        return ArpOutcome { verdict: Verdict::Consumed, learn };
    }
    // RFC 826: "swap hardware and protocol fields, putting the local hardware and protocol
    // addresses in the sender fields", set the opcode to reply, send to the requester.
    arp.set_operation(ARP_REPLY);
    arp.set_target_mac(sender_mac);
    arp.set_target_ip(sender_ip);
    arp.set_sender_mac(port_mac);
    arp.set_sender_ip(target_ip);
    let mut eth = EthernetFrame::new_unchecked(&mut *frame);
    eth.set_dst(sender_mac);
    eth.set_src(port_mac);
    ArpOutcome { verdict: Verdict::Tx(port), learn }
}

/// Writes a complete ARP frame into `frame`, which must be at least 42 bytes (bytes past
/// 42 are zeroed as padding). Returns false, writing nothing, when it is shorter.
#[allow(clippy::too_many_arguments)] // the eight fields of an ARP frame; a struct would only rename them
fn write_arp(
    frame: &mut [u8],
    eth_dst: MacAddr,
    op: u16,
    sender_mac: MacAddr,
    sender_ip: Ipv4Addr,
    target_mac: MacAddr,
    target_ip: Ipv4Addr,
) -> bool {
    const MIN: usize = 14 + 28;
    if frame.len() < MIN {
        return false;
    }
    frame[MIN..].fill(0);
    let mut eth = EthernetFrame::new_unchecked(&mut *frame);
    eth.set_dst(eth_dst);
    eth.set_src(sender_mac);
    eth.set_ethertype(ETHERTYPE_ARP);
    let mut arp = ArpPacket::new_unchecked(eth.payload_mut());
    arp.init_fixed_fields();
    arp.set_operation(op);
    arp.set_sender_mac(sender_mac);
    arp.set_sender_ip(sender_ip);
    arp.set_target_mac(target_mac);
    arp.set_target_ip(target_ip);
    true
}

/// Writes a broadcast ARP request "who has `target`? tell `our_ip`" from `our_mac` into
/// `frame` (at least 42 bytes; [`ARP_FRAME_LEN`] recommended). False if too short.
pub fn write_request(frame: &mut [u8], our_mac: MacAddr, our_ip: Ipv4Addr, target: Ipv4Addr) -> bool {
    write_arp(frame, MacAddr::BROADCAST, ARP_REQUEST, our_mac, our_ip, MacAddr::ZERO, target)
}

/// Writes a gratuitous ARP announcing that `ip` is at `our_mac`: a broadcast request with
/// sender and target address both `ip` (RFC 5227 §3 "ARP Announcement"; the request form
/// is the one every stack updates its cache from). False if `frame` is too short.
pub fn write_gratuitous(frame: &mut [u8], our_mac: MacAddr, ip: Ipv4Addr) -> bool {
    write_arp(frame, MacAddr::BROADCAST, ARP_REQUEST, our_mac, ip, MacAddr::ZERO, ip)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ha::HaGroup;
    use crate::l2l3::{AddrKind, OwnedAddr};

    const OUR: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);
    const PEER: MacAddr = MacAddr([2, 0, 0, 0, 0, 9]);

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn setup() -> (AddressBook, RouteTable) {
        let mut b = AddressBook::new();
        b.insert(ip("10.0.0.1"), OwnedAddr::new(AddrKind::Port, Some(PortId(0)))).unwrap();
        (b, RouteTable::new(&[(PortId(0), "10.0.0.1/24".parse().unwrap())], &[]).unwrap())
    }

    fn request(sender_ip: &str, target: &str) -> Vec<u8> {
        let mut f = vec![0; ARP_FRAME_LEN];
        assert!(write_request(&mut f, PEER, ip(sender_ip), ip(target)));
        f
    }

    #[test]
    fn request_for_us_becomes_reply_in_place() {
        let (b, r) = setup();
        let mut f = request("10.0.0.9", "10.0.0.1");
        let out = handle(&mut f, PortId(0), OUR, &b, &r);
        assert_eq!(out.verdict, Verdict::Tx(PortId(0)));
        assert_eq!(out.learn, Some(ArpLearn { ip: ip("10.0.0.9"), mac: PEER, create: true }));
        let mut expected = vec![0; ARP_FRAME_LEN];
        write_arp(&mut expected, PEER, ARP_REPLY, OUR, ip("10.0.0.1"), PEER, ip("10.0.0.9"));
        assert_eq!(f, expected);
    }

    #[test]
    fn not_for_us_merges_only_and_off_link_is_not_learned() {
        let (b, r) = setup();
        let mut f = request("10.0.0.9", "10.0.0.2");
        let out = handle(&mut f, PortId(0), OUR, &b, &r);
        assert_eq!(out.verdict, Verdict::Drop(DropReason::ArpNotForUs));
        assert_eq!(out.learn, Some(ArpLearn { ip: ip("10.0.0.9"), mac: PEER, create: false }));
        let mut f = request("10.9.0.9", "10.0.0.1");
        let out = handle(&mut f, PortId(0), OUR, &b, &r);
        assert_eq!(out.verdict, Verdict::Tx(PortId(0)));
        assert_eq!(out.learn, None, "off-link sender");
        let mut f = request("10.0.0.1", "10.0.0.1");
        assert_eq!(handle(&mut f, PortId(0), OUR, &b, &r).learn, None, "someone claims our address");
    }

    #[test]
    fn backup_group_is_not_answered_until_master() {
        let (mut b, r) = setup();
        let g = ip("10.0.0.100");
        b.insert(g, OwnedAddr { group: Some(HaGroup(0)), ..OwnedAddr::new(AddrKind::Floating, Some(PortId(0))) })
            .unwrap();
        let roles = HaRoles::new(1, [(g.into(), HaGroup(0))]).unwrap();
        let mut f = request("10.0.0.9", "10.0.0.100");
        let out = handle_with_roles(&mut f, PortId(0), OUR, &b, &r, Some(&roles));
        assert_eq!(out.verdict, Verdict::Drop(DropReason::HaBackup));
        assert_eq!(out.learn, Some(ArpLearn { ip: ip("10.0.0.9"), mac: PEER, create: false }));
        let mut f = request("10.0.0.9", "10.0.0.1");
        let out = handle_with_roles(&mut f, PortId(0), OUR, &b, &r, Some(&roles));
        assert_eq!(out.verdict, Verdict::Tx(PortId(0)), "an address with no group is always answered");
        roles.set_master(HaGroup(0), true);
        let mut f = request("10.0.0.9", "10.0.0.100");
        assert_eq!(handle_with_roles(&mut f, PortId(0), OUR, &b, &r, Some(&roles)).verdict, Verdict::Tx(PortId(0)));
        let mut f = request("10.0.0.9", "10.0.0.100");
        assert_eq!(handle(&mut f, PortId(0), OUR, &b, &r).verdict, Verdict::Drop(DropReason::HaBackup), "no roles");
    }

    #[test]
    fn malformed() {
        let (b, r) = setup();
        let mut f = request("10.0.0.9", "10.0.0.1");
        f[14 + 4] = 8; // hlen
        assert_eq!(handle(&mut f, PortId(0), OUR, &b, &r).verdict, Verdict::Drop(DropReason::ArpMalformed));
        let mut f = request("10.0.0.9", "10.0.0.1");
        f[14 + 7] = 3; // op
        assert_eq!(handle(&mut f, PortId(0), OUR, &b, &r).verdict, Verdict::Drop(DropReason::ArpMalformed));
        let mut f = request("10.0.0.9", "10.0.0.1");
        f[14 + 8] = 1; // multicast sender MAC
        assert_eq!(handle(&mut f, PortId(0), OUR, &b, &r).verdict, Verdict::Drop(DropReason::ArpMalformed));
        let mut f = request("10.0.0.9", "10.0.0.1");
        assert_eq!(handle(&mut f[..30], PortId(0), OUR, &b, &r).verdict, Verdict::Drop(DropReason::ArpMalformed));
        assert!(!write_request(&mut [0; 41], OUR, ip("10.0.0.1"), ip("10.0.0.2")));
    }

    #[test]
    fn gratuitous_bytes() {
        let mut f = [0xaa; ARP_FRAME_LEN];
        assert!(write_gratuitous(&mut f, OUR, ip("10.0.0.1")));
        let expected: [u8; 42] = [
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 1, 0x08, 0x06, // ethernet
            0, 1, 0x08, 0, 6, 4, 0, 1, // htype, ptype, hlen, plen, op=request
            2, 0, 0, 0, 0, 1, 10, 0, 0, 1, // sender
            0, 0, 0, 0, 0, 0, 10, 0, 0, 1, // target
        ];
        assert_eq!(&f[..42], &expected);
        assert!(f[42..].iter().all(|&b| b == 0));
    }
}
