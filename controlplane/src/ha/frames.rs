//! The Ethernet frames the VRRP thread sends through worker 0: adverts and gratuitous ARP.
//!
//! Adverts go from the port's own MAC (as keepalived does without `use_vmac`: rvs answers
//! ARP for its addresses with the port's MAC, so the network learns that one) to
//! 01:00:5e:00:00:12, in an IPv4 packet from the port's address to 224.0.0.18 with TTL 255,
//! TOS 0xc0 (internetwork control, keepalived's choice) and protocol 112. Over IPv6 (an
//! instance whose addresses are all IPv6, RFC 5798 §5.1.2) they go to 33:33:00:00:00:12 in
//! an IPv6 packet from the port's link-local address to ff02::12, hop limit 255, traffic
//! class 0xc0 (keepalived's `IPV6_TCLASS`), next header 112 and no extension header; the
//! VRRP checksum covers the IPv6 pseudo-header (RFC 8200 §8.1), as keepalived's kernel
//! socket (`IPV6_CHECKSUM`) computes and checks it. Gratuitous ARP
//! is the data path's own announcement ([`rvs_dataplane::l2l3::arp::write_gratuitous`]),
//! and so is the unsolicited neighbour advertisement of an IPv6 address
//! ([`rvs_dataplane::l2l3::nd::write_unsolicited_na_frame`], RFC 4861 §7.2.6: to
//! all-nodes, override set, as keepalived announces an IPv6 VIP on takeover).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use rvs_dataplane::ha::{VRRP_GROUP_V4, VRRP_GROUP_V6, VRRP_MAC_V4, VRRP_MAC_V6};
use rvs_dataplane::l2l3::arp::{write_gratuitous, ARP_FRAME_LEN};
use rvs_dataplane::l2l3::nd::{write_unsolicited_na_frame, ND_FRAME_LEN};
use rvs_dataplane::wire::vrrp::Family;
use rvs_dataplane::wire::vrrp::IPPROTO_VRRP;
use rvs_dataplane::wire::{EthernetFrame, Ipv4Packet, Ipv6Packet, MacAddr, VrrpRepr, ETHERTYPE_IPV4, ETHERTYPE_IPV6};

/// Ethernet header length.
const ETH_LEN: usize = 14;
/// IPv4 header length (no options).
const IP_LEN: usize = 20;
/// IPv6 header length.
const IP6_LEN: usize = 40;
/// The IPv4 TOS (and IPv6 traffic class) of adverts: precedence "internetwork control".
pub const ADVERT_TOS: u8 = 0xc0;

/// An advert frame from `mac`/`src` carrying `repr`: VRRP over IPv4 (IP identification
/// `ident`) when `src` is IPv4, over IPv6 (to ff02::12) when it is IPv6. `None` if
/// `repr`'s addresses are not all of `src`'s family (an instance's adverts carry the
/// addresses of their own family only) or too many for one packet.
pub fn advert_frame(mac: MacAddr, src: IpAddr, repr: &VrrpRepr, ident: u16) -> Option<Vec<u8>> {
    if repr.addresses.iter().any(|a| Family::of(a) != Family::of(&src)) {
        return None;
    }
    match src {
        IpAddr::V4(src) => advert_frame4(mac, src, repr, ident),
        IpAddr::V6(src) => advert_frame6(mac, src, repr),
    }
}

fn advert_frame6(mac: MacAddr, src: Ipv6Addr, repr: &VrrpRepr) -> Option<Vec<u8>> {
    let vrrp_len = repr.buffer_len();
    let payload = u16::try_from(vrrp_len).ok()?;
    let mut frame = vec![0u8; ETH_LEN + IP6_LEN + vrrp_len];
    let mut eth = EthernetFrame::new_unchecked(&mut frame[..]);
    eth.set_dst(VRRP_MAC_V6);
    eth.set_src(mac);
    eth.set_ethertype(ETHERTYPE_IPV6);
    let mut ip = Ipv6Packet::new_unchecked(&mut frame[ETH_LEN..]);
    ip.set_version(6);
    ip.set_traffic_class(ADVERT_TOS);
    ip.set_payload_len(payload);
    ip.set_next_header(IPPROTO_VRRP);
    ip.set_hop_limit(255);
    ip.set_src_addr(src);
    ip.set_dst_addr(VRRP_GROUP_V6);
    if !repr.emit(&mut frame[ETH_LEN + IP6_LEN..], IpAddr::V6(src), IpAddr::V6(VRRP_GROUP_V6)) {
        return None;
    }
    Some(frame)
}

fn advert_frame4(mac: MacAddr, src: Ipv4Addr, repr: &VrrpRepr, ident: u16) -> Option<Vec<u8>> {
    let vrrp_len = repr.buffer_len();
    let total = u16::try_from(IP_LEN + vrrp_len).ok()?;
    let mut frame = vec![0u8; ETH_LEN + IP_LEN + vrrp_len];
    let mut eth = EthernetFrame::new_unchecked(&mut frame[..]);
    eth.set_dst(VRRP_MAC_V4);
    eth.set_src(mac);
    eth.set_ethertype(ETHERTYPE_IPV4);
    let mut ip = Ipv4Packet::new_unchecked(&mut frame[ETH_LEN..]);
    ip.set_version(4);
    ip.set_header_len(IP_LEN);
    ip.set_tos(ADVERT_TOS);
    ip.set_total_len(total);
    ip.set_ident(ident);
    ip.set_ttl(255);
    ip.set_protocol(IPPROTO_VRRP);
    ip.set_src_addr(src);
    ip.set_dst_addr(VRRP_GROUP_V4);
    ip.fill_checksum();
    if !repr.emit(&mut frame[ETH_LEN + IP_LEN..], IpAddr::V4(src), IpAddr::V4(VRRP_GROUP_V4)) {
        return None;
    }
    Some(frame)
}

/// An unsolicited neighbour advertisement announcing that `ip` is at `mac`.
pub fn na_frame(mac: MacAddr, ip: Ipv6Addr) -> Vec<u8> {
    let mut frame = vec![0u8; ND_FRAME_LEN];
    // ND_FRAME_LEN is long enough by the data path's own contract.
    let _ = write_unsolicited_na_frame(&mut frame, mac, ip);
    frame
}

/// A gratuitous ARP frame announcing that `ip` is at `mac`.
pub fn garp_frame(mac: MacAddr, ip: Ipv4Addr) -> Vec<u8> {
    let mut frame = vec![0u8; ARP_FRAME_LEN];
    // ARP_FRAME_LEN is long enough by the data path's own contract.
    let _ = write_gratuitous(&mut frame, mac, ip);
    frame
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvs_dataplane::wire::vrrp::VrrpPacket;
    use rvs_dataplane::wire::{ArpPacket, ARP_REQUEST, ETHERTYPE_ARP};

    #[test]
    fn advert_frame_is_what_keepalived_expects() {
        let mac = MacAddr([2, 0, 0, 0, 0, 1]);
        let src = Ipv4Addr::new(10, 10, 0, 1);
        let repr = VrrpRepr {
            version: 3,
            vrid: 51,
            priority: 200,
            interval_cs: 10,
            addresses: vec![IpAddr::V4(Ipv4Addr::new(10, 10, 0, 100)), IpAddr::V4(Ipv4Addr::new(10, 20, 0, 100))],
        };
        let f = advert_frame(mac, IpAddr::V4(src), &repr, 7).unwrap();
        let eth = EthernetFrame::new_checked(&f[..]).unwrap();
        assert_eq!((eth.dst(), eth.src(), eth.ethertype()), (VRRP_MAC_V4, mac, ETHERTYPE_IPV4));
        let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
        assert!(ip.verify_checksum());
        assert_eq!((ip.ttl(), ip.protocol(), ip.tos(), ip.ident()), (255, 112, 0xc0, 7));
        assert_eq!((ip.src_addr(), ip.dst_addr()), (src, VRRP_GROUP_V4));
        let v = VrrpPacket::new_checked(ip.payload(), Family::V4).unwrap();
        assert!(v.verify_checksum(IpAddr::V4(src), IpAddr::V4(VRRP_GROUP_V4)));
        // The same bytes as the hand-checked advert of the wire module's tests.
        assert_eq!(ip.payload(), [0x31, 51, 200, 2, 0, 10, 0x07, 0x3c, 10, 10, 0, 100, 10, 20, 0, 100]);
        let v6 = VrrpRepr { addresses: vec!["fd00::1".parse().unwrap()], ..repr };
        assert_eq!(advert_frame(mac, IpAddr::V4(src), &v6, 0), None, "an IPv4 advert carries IPv4 addresses only");
    }

    /// A VRRPv3 advert over IPv6 from fe80::ff:fe00:1 (the link-local address of
    /// 02:00:00:00:00:01): VRID 51, priority 200, 100 ms, address 2001:db8:10::100.
    /// Checksum worked out independently of the code (16-bit words, ones' complement,
    /// end-around carries folded):
    ///   pseudo-header: source fe80+00ff+fe00+0001 = fd81 (folded); destination
    ///     ff02+0012 = ff14; upper-layer length 0018 and next header 0070 = 0088
    ///   message: 3133 + c801 + 000a + 2001 + 0db8 + 0010 + 0100 = 2808 (folded)
    ///   total: fd81 + ff14 + 0088 + 2808 = 2527 (folded); checksum = !2527 = 0xdad8
    /// (cross-checked with python3's sum over the same bytes.)
    #[rustfmt::skip]
    const V6_FRAME: [u8; 14 + 40 + 24] = [
        // Ethernet: 33:33:00:00:00:12 from 02:00:00:00:00:01, IPv6.
        0x33, 0x33, 0, 0, 0, 0x12, 2, 0, 0, 0, 0, 1, 0x86, 0xdd,
        // IPv6: version 6, traffic class 0xc0, flow 0; payload 24; next header 112; hop limit 255.
        0x6c, 0x00, 0, 0, 0, 24, 112, 255,
        0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xfe, 0, 0, 1,
        0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x12,
        // VRRP: v3 advert, VRID 51, priority 200, one address, 10 cs, checksum.
        0x31, 51, 200, 1, 0x00, 0x0a, 0xda, 0xd8,
        0x20, 0x01, 0x0d, 0xb8, 0, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x00,
    ];

    #[test]
    fn ipv6_advert_frame_is_the_golden_one() {
        let mac = MacAddr([2, 0, 0, 0, 0, 1]);
        let src: Ipv6Addr = "fe80::ff:fe00:1".parse().unwrap();
        assert_eq!(src, rvs_dataplane::l2l3::nd::link_local(mac), "the port's link-local address");
        let repr = VrrpRepr {
            version: 3,
            vrid: 51,
            priority: 200,
            interval_cs: 10,
            addresses: vec![IpAddr::V6("2001:db8:10::100".parse().unwrap())],
        };
        let f = advert_frame(mac, IpAddr::V6(src), &repr, 7).unwrap();
        assert_eq!(f, V6_FRAME);
        // And the wire module's view reads it back, checksum verified.
        let ip = Ipv6Packet::new_checked(&f[14..]).unwrap();
        let v = VrrpPacket::new_checked(ip.payload(), Family::V6).unwrap();
        assert!(v.verify_checksum(IpAddr::V6(src), IpAddr::V6(VRRP_GROUP_V6)));
        assert_eq!(VrrpRepr::parse(&v), repr);
        // Families never mix: IPv4 addresses from an IPv6 source, or the reverse.
        let v4 = VrrpRepr { addresses: vec![IpAddr::V4(Ipv4Addr::new(10, 10, 0, 100))], ..repr.clone() };
        assert_eq!(advert_frame(mac, IpAddr::V6(src), &v4, 0), None);
        let mixed = VrrpRepr { addresses: vec![repr.addresses[0], IpAddr::V4(Ipv4Addr::new(10, 10, 0, 100))], ..repr };
        assert_eq!(advert_frame(mac, IpAddr::V6(src), &mixed, 0), None);
    }

    #[test]
    fn na_announces_the_ipv6_address_with_override() {
        let mac = MacAddr([2, 0, 0, 0, 0, 1]);
        let f = na_frame(mac, "2001:db8:10::100".parse().unwrap());
        // Ethernet to 33:33:00:00:00:01 (all-nodes), IPv6 fe80::… is not used: the source is
        // the data path's choice; what a peer acts on is below.
        assert_eq!(&f[..6], &[0x33, 0x33, 0, 0, 0, 1]);
        assert_eq!(&f[6..12], &mac.0);
        assert_eq!(&f[12..14], &[0x86, 0xdd]);
        let ip = &f[14..];
        assert_eq!((ip[6], ip[7]), (58, 255), "ICMPv6, hop limit 255 (RFC 4861 §7.1.2)");
        assert_eq!(&ip[24..40], &"ff02::1".parse::<Ipv6Addr>().unwrap().octets());
        let na = &ip[40..];
        assert_eq!(na[0], 136, "a neighbour advertisement");
        assert_eq!(na[4] & 0xe0, 0x20, "override set, solicited and router clear");
        assert_eq!(&na[8..24], &"2001:db8:10::100".parse::<Ipv6Addr>().unwrap().octets());
        assert_eq!(&na[24..32], &[2, 1, 2, 0, 0, 0, 0, 1], "target link-layer address option: our MAC");
    }

    #[test]
    fn garp_announces_the_address() {
        let mac = MacAddr([2, 0, 0, 0, 0, 1]);
        let ip = Ipv4Addr::new(10, 20, 0, 100);
        let f = garp_frame(mac, ip);
        let eth = EthernetFrame::new_checked(&f[..]).unwrap();
        assert_eq!((eth.dst(), eth.ethertype()), (MacAddr::BROADCAST, ETHERTYPE_ARP));
        let arp = ArpPacket::new_checked(eth.payload()).unwrap();
        assert_eq!((arp.operation(), arp.sender_mac(), arp.sender_ip(), arp.target_ip()), (ARP_REQUEST, mac, ip, ip));
    }
}
