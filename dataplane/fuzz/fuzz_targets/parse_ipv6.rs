//! The IPv6 view, the extension-header walk, and the ICMPv6 / neighbour discovery views on
//! arbitrary bytes: after `new_checked` no getter panics; the walk stays within the payload
//! and its bounds; the ND option walk is bounded; a solicitation that parses is answered
//! with an advertisement that parses back (same target, verifying checksum, S and O set
//! as RFC 4861 §7.2.4 asks); an error message's quoted packet parses or is refused. The
//! TCP/UDP and fragment views (`view6`) vouch only for bytes within the packet; the ICMPv6
//! errors rvs builds about the packet (`xmit::icmp6_err`) leave the buffer unchanged when
//! refused, and otherwise parse back with a valid checksum within 1,280 bytes; an ICMPv6
//! error rvs receives that parses (`icmp6_err::parse`) translates, and parses back with
//! the new endpoints.
//!
//! Input: an IPv6 packet (version nibble 6); any other first byte is taken as a next
//! header value and the rest as a bare chain of extension headers for the walk alone.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rvs_dataplane::wire::icmpv6::{emit_na_for_ns, Icmpv6Packet, NdKind, NdRepr, MAX_ND_OPTIONS, ND_PACKET_LEN};
use rvs_dataplane::wire::ipv6::{walk_ext_headers, Ipv6Packet, MAX_EXT_LEN};
use rvs_dataplane::types::L4Proto;
use rvs_dataplane::view6::{fragment_protocol, FragView6, L4View6};
use rvs_dataplane::wire::{MacAddr, IPPROTO_ICMPV6};
use rvs_dataplane::xmit::icmp6_err::{self, MIN_MTU};
use rvs_dataplane::xmit::Endpoint6;
use rvs_drivers::mem::MemBuf;
use rvs_drivers::PacketBuf;

fuzz_target!(|data: &[u8]| {
    let Some(&first) = data.first() else { return };
    if first >> 4 != 6 {
        if let Ok(u) = walk_ext_headers(first, &data[1..]) {
            assert!(u.offset <= data.len() - 1 && u.offset <= MAX_EXT_LEN);
        }
        return;
    }
    let Ok(ip) = Ipv6Packet::new_checked(data) else { return };
    let _ = (ip.version(), ip.traffic_class(), ip.flow_label(), ip.hop_limit(), ip.header());
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    assert_eq!(ip.payload().len(), usize::from(ip.payload_len()));
    let Ok(u) = ip.upper_layer() else { return };
    assert!(u.offset <= ip.payload().len() && u.offset <= MAX_EXT_LEN);
    if let Some(f) = u.frag {
        assert!(f.offset % 8 == 0 && f.header_offset + 8 <= ip.payload().len());
        let _ = (f.is_atomic(), f.ident);
    }
    // The views of the L4 path and the fragment path: what they vouch for is in the packet
    // (offsets in the frame, after a 14-byte Ethernet header).
    let ip_end = 14 + 40 + ip.payload().len();
    if let Ok(v) = L4View6::from_ipv6(&ip, &u) {
        assert!(v.layout().l4_offset() + 8 <= ip_end && v.layout().ip_end() == ip_end);
    }
    for proto in [L4Proto::Tcp, L4Proto::Udp] {
        if let Ok(fv) = FragView6::new(&ip, &u, proto, 1, 2) {
            let f = u.frag.expect("a fragment view has a fragment header");
            assert!(!f.is_atomic() && fv.ip_len == (ip_end - 14) as u64 && fv.key.proto == proto);
            // TCP, UDP, or final destination options before them.
            assert!(matches!(fragment_protocol(&ip, &f), Some(6 | 17 | 60)));
            if let Some(first) = fv.first {
                assert!(f.is_first() && first.layout().l4_offset() + 8 <= ip_end && first.proto() == proto);
            }
        }
    }
    // The ICMPv6 errors about this packet.
    let mut frame = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x86, 0xdd];
    frame.extend_from_slice(data);
    let ours = "2001:db8::1".parse().unwrap();
    for too_big in [false, true] {
        let mut b = MemBuf::from_frame(&frame);
        let r = if too_big { icmp6_err::packet_too_big(&mut b, ours, 1280) } else { icmp6_err::time_exceeded(&mut b, ours) };
        match r {
            Err(_) => assert_eq!(b.data(), &frame[..]),
            Ok(to) => {
                assert!(b.data().len() <= 14 + MIN_MTU && to == src);
                let e = Ipv6Packet::new_checked(&b.data()[14..]).expect("the error parses");
                let icmp = Icmpv6Packet::new_checked(e.payload()).expect("an ICMPv6 header");
                assert!(icmp.is_error() && icmp.verify_checksum(ours, src));
            }
        }
    }
    // A received ICMPv6 error about a flow: translated as NAT66 and Full-NAT translate
    // one, it parses back (its checksum still verifies) naming the new endpoints.
    if let Ok(err) = icmp6_err::parse(&frame) {
        assert!(err.ip_end() <= frame.len());
        if !err.tunnelled() {
            let (vip, client) = ("2001:db8::100".parse().unwrap(), "2001:db8::2".parse().unwrap());
            let (c, v) = (Endpoint6 { addr: client, port: 1234 }, Endpoint6 { addr: vip, port: 80 });
            let mut b = MemBuf::from_frame(&frame);
            icmp6_err::translate(&mut b, &err, Some(vip), Some(client), Some(c), Some(v)).expect("a parsed error translates");
            let back = icmp6_err::parse(b.data()).expect("a translated error parses back");
            assert_eq!((back.embedded().src, back.embedded().dst), (c, v));
        }
    }
    if u.protocol != IPPROTO_ICMPV6 || !u.has_l4_header() {
        return;
    }
    let Ok(icmp) = Icmpv6Packet::new_checked(&ip.payload()[u.offset..]) else { return };
    let _ = (icmp.msg_type(), icmp.code(), icmp.checksum(), icmp.ident(), icmp.seq_no(), icmp.mtu());
    let _ = (icmp.pointer(), icmp.nd_target(), icmp.na_flags(), icmp.verify_checksum(src, dst));
    assert!(icmp.nd_options().count() <= MAX_ND_OPTIONS + 1);
    if icmp.is_error() {
        let _ = Ipv6Packet::new_checked(icmp.data()).map(|q| q.upper_layer());
    }
    // The ND checks need the chain to be the bare fixed header (the view's offset 0).
    if u.offset != 0 {
        return;
    }
    let Ok(nd) = NdRepr::parse(&ip, &icmp) else { return };
    assert!(!nd.target.is_multicast());
    if nd.kind != NdKind::Solicit {
        return;
    }
    let mac = MacAddr([0x02, 0, 0, 0, 0, 0x01]);
    let mut out = [0u8; ND_PACKET_LEN];
    let (n, to) = emit_na_for_ns(&mut out, &nd, mac).expect("room for an NA");
    let ip2 = Ipv6Packet::new_checked(&out[..n]).expect("an emitted NA parses");
    let icmp2 = Icmpv6Packet::new_checked(ip2.payload()).expect("an emitted NA has an ICMPv6 header");
    let na = NdRepr::parse(&ip2, &icmp2).expect("an emitted NA passes the ND checks");
    assert_eq!((na.target, na.target_ll, na.dst, na.src), (nd.target, Some(mac), to, nd.target));
    let NdKind::Advert(f) = na.kind else { panic!("not an advert") };
    assert!(f.override_ && f.solicited == !nd.src.is_unspecified());
});
