//! Parse arbitrary bytes as an Ethernet frame, then ARP or IPv4, then ICMP (and the
//! datagram an ICMP error quotes), TCP (with its option list) or UDP, touching every
//! getter of every view that `new_checked` accepts. The property is "no panic": after
//! `new_checked` succeeds no getter may panic, and the option iterator never panics. The
//! fragment path's views (`L4View::from_first_fragment`, `FragView::new`) are built from
//! every IPv4 header too, and must describe the packet they came from.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rvs_dataplane::wire::*;

fuzz_target!(|data: &[u8]| {
    let Ok(eth) = EthernetFrame::new_checked(data) else {
        return;
    };
    let _ = (eth.dst().is_multicast(), eth.src().is_unicast());
    match eth.ethertype() {
        ETHERTYPE_ARP => {
            if let Ok(arp) = ArpPacket::new_checked(eth.payload()) {
                let _ = (arp.operation(), arp.sender_mac(), arp.sender_ip());
                let _ = (arp.target_mac(), arp.target_ip());
            }
        }
        ETHERTYPE_IPV4 => ipv4(eth.payload(), 0),
        _ => {}
    }
});

fn ipv4(bytes: &[u8], depth: u8) {
    let Ok(ip) = Ipv4Packet::new_checked(bytes) else {
        return;
    };
    let _ = (
        ip.header_len(),
        ip.total_len(),
        ip.ident(),
        ip.tos(),
        ip.ttl(),
    );
    let _ = (
        ip.dont_frag(),
        ip.more_frags(),
        ip.frag_offset(),
        ip.is_fragment(),
    );
    let _ = (
        ip.checksum(),
        ip.verify_checksum(),
        ip.options(),
        ip.header(),
    );
    assert_eq!(
        ip.header_len() + ip.payload().len(),
        usize::from(ip.total_len())
    );
    if depth == 0 {
        first_fragment_views(&ip);
    }
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    match ip.protocol() {
        IPPROTO_ICMP => {
            let Ok(icmp) = IcmpPacket::new_checked(ip.payload()) else {
                return;
            };
            let _ = (
                icmp.msg_type(),
                icmp.code(),
                icmp.checksum(),
                icmp.rest_of_header(),
            );
            let _ = (
                icmp.ident(),
                icmp.seq_no(),
                icmp.next_hop_mtu(),
                icmp.verify_checksum(),
            );
            if depth == 0 && matches!(icmp.msg_type(), ICMP_DEST_UNREACH | ICMP_TIME_EXCEEDED) {
                ipv4(icmp.data(), 1);
            }
        }
        IPPROTO_TCP => {
            let Ok(tcp) = TcpPacket::new_checked(ip.payload()) else {
                return;
            };
            let _ = (
                tcp.src_port(),
                tcp.dst_port(),
                tcp.seq(),
                tcp.ack(),
                tcp.flags().syn(),
            );
            let _ = (
                tcp.window(),
                tcp.checksum(),
                tcp.urgent_ptr(),
                tcp.payload(),
            );
            let _ = (tcp.verify_checksum(src, dst), tcp.mss());
            let mut errors = 0;
            for opt in tcp.options_iter() {
                match opt {
                    Ok(o) => {
                        let _ = o.buffer_len();
                    }
                    Err(e) => {
                        assert_eq!(e, WireError::BadTcpOption);
                        errors += 1;
                    }
                }
            }
            assert!(errors <= 1);
        }
        IPPROTO_UDP => {
            let Ok(udp) = UdpPacket::new_checked(ip.payload()) else {
                return;
            };
            let _ = (
                udp.src_port(),
                udp.dst_port(),
                udp.len(),
                udp.checksum(),
                udp.payload(),
            );
            let _ = udp.verify_checksum(src, dst);
        }
        _ => {}
    }
}

/// The fragment path's views of `ip` (as if after a 14-byte Ethernet header): whatever
/// they accept lies within the packet.
fn first_fragment_views(ip: &Ipv4Packet<&[u8]>) {
    use rvs_dataplane::view::{FragView, L4View};
    let ip_end = 14 + usize::from(ip.total_len());
    if let Ok(v) = L4View::from_first_fragment(ip) {
        let l = v.layout();
        assert!(l.l4_offset() + 8 <= l.ip_end() && l.ip_end() == ip_end);
    }
    if let Ok(f) = FragView::new(ip, 1, 2) {
        assert_eq!(f.ip_end, ip_end);
        assert_eq!(f.first.is_some(), ip.frag_offset() == 0);
    }
}
