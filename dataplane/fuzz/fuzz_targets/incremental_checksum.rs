//! Incremental checksum updates (RFC 1624) agree with full recomputation.
//!
//! Input: 13 bytes of rewrite parameters (new source address, new destination address,
//! new source port, new destination port, new TTL), then an IPv4 packet. The packet's
//! checksums are first made correct with `fill_checksum`; then the NAT-style rewrite is
//! applied incrementally and every checksum must equal a fresh full computation.
#![no_main]

use std::net::Ipv4Addr;

use libfuzzer_sys::fuzz_target;
use rvs_dataplane::wire::*;

fuzz_target!(|data: &[u8]| {
    if data.len() < 13 {
        return;
    }
    let (p, packet) = data.split_at(13);
    let new_src = Ipv4Addr::new(p[0], p[1], p[2], p[3]);
    let new_dst = Ipv4Addr::new(p[4], p[5], p[6], p[7]);
    let sport = u16::from_be_bytes([p[8], p[9]]);
    let dport = u16::from_be_bytes([p[10], p[11]]);
    let ttl = p[12];

    let mut buf = packet.to_vec();
    let Ok(mut ip) = Ipv4Packet::new_checked(&mut buf[..]) else {
        return;
    };
    ip.fill_checksum();
    let (src, dst, proto) = (ip.src_addr(), ip.dst_addr(), ip.protocol());
    // L4 first, with the old addresses, so its checksum starts correct.
    if !ip.is_fragment() {
        match proto {
            IPPROTO_TCP => {
                if let Ok(mut tcp) = TcpPacket::new_checked(ip.payload_mut()) {
                    tcp.fill_checksum(src, dst);
                    tcp.update_checksum_for_addr(src, new_src);
                    tcp.update_checksum_for_addr(dst, new_dst);
                    tcp.set_src_port_incremental(sport);
                    tcp.set_dst_port_incremental(dport);
                    let c = tcp.checksum();
                    assert!(tcp.verify_checksum(new_src, new_dst));
                    tcp.fill_checksum(new_src, new_dst);
                    assert_eq!(c, tcp.checksum());
                }
            }
            IPPROTO_UDP => {
                if let Ok(mut udp) = UdpPacket::new_checked(ip.payload_mut()) {
                    let none = udp.checksum() == 0; // keep the sender's "no checksum"
                    if !none {
                        udp.fill_checksum(src, dst);
                    }
                    udp.update_checksum_for_addr(src, new_src);
                    udp.update_checksum_for_addr(dst, new_dst);
                    udp.set_src_port_incremental(sport);
                    udp.set_dst_port_incremental(dport);
                    let c = udp.checksum();
                    assert_eq!(c == 0, none);
                    assert!(udp.verify_checksum(new_src, new_dst));
                    if !none {
                        udp.fill_checksum(new_src, new_dst);
                        assert_eq!(c, udp.checksum());
                    }
                }
            }
            _ => {}
        }
    }
    ip.set_src_addr_incremental(new_src);
    ip.set_dst_addr_incremental(new_dst);
    ip.set_ttl_incremental(ttl);
    ip.decrement_ttl();
    let c = ip.checksum();
    assert!(ip.verify_checksum());
    ip.fill_checksum();
    assert_eq!(c, ip.checksum());
});
