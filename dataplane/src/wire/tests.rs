//! Cross-layer tests: the whole Ethernet → ARP/IPv4/IPv6 → ICMP/ICMPv6/TCP/UDP parse never panics,
//! whatever the bytes.

use proptest::prelude::*;

use super::*;

/// Parses `frame` the way the worker does and touches every getter and iterator of every
/// view that `new_checked` accepts. Returns how many layers parsed.
fn walk(frame: &[u8]) -> usize {
    let Ok(eth) = EthernetFrame::new_checked(frame) else {
        return 0;
    };
    let _ = (eth.dst().is_unicast(), eth.src().to_string());
    match eth.ethertype() {
        ETHERTYPE_ARP => {
            let Ok(arp) = ArpPacket::new_checked(eth.payload()) else {
                return 1;
            };
            let _ = (arp.operation(), arp.sender_mac(), arp.sender_ip());
            let _ = (arp.target_mac(), arp.target_ip());
            2
        }
        ETHERTYPE_IPV4 => {
            let Ok(ip) = Ipv4Packet::new_checked(eth.payload()) else {
                return 1;
            };
            let _ = (ip.header_len(), ip.total_len(), ip.ident(), ip.is_fragment());
            let _ = (ip.frag_offset(), ip.ttl(), ip.checksum(), ip.verify_checksum());
            let _ = (ip.options(), ip.tos(), ip.dont_frag());
            let (src, dst) = (ip.src_addr(), ip.dst_addr());
            match ip.protocol() {
                IPPROTO_ICMP => {
                    let Ok(icmp) = IcmpPacket::new_checked(ip.payload()) else {
                        return 2;
                    };
                    let _ = (icmp.msg_type(), icmp.code(), icmp.ident(), icmp.seq_no());
                    let _ = (icmp.next_hop_mtu(), icmp.data(), icmp.verify_checksum());
                    // An error quotes a datagram: parse it too (its total length may
                    // exceed the quote, which is then rejected).
                    let _ = Ipv4Packet::new_checked(icmp.data()).map(|q| q.payload().len());
                    3
                }
                IPPROTO_TCP => {
                    let Ok(tcp) = TcpPacket::new_checked(ip.payload()) else {
                        return 2;
                    };
                    let _ = (tcp.src_port(), tcp.dst_port(), tcp.seq(), tcp.ack());
                    let _ = (tcp.flags(), tcp.window(), tcp.payload(), tcp.mss());
                    let _ = tcp.verify_checksum(src, dst);
                    let n = tcp.options_iter().count();
                    assert!(n <= 40);
                    3
                }
                IPPROTO_UDP => {
                    let Ok(udp) = UdpPacket::new_checked(ip.payload()) else {
                        return 2;
                    };
                    let _ = (udp.src_port(), udp.dst_port(), udp.payload());
                    let _ = udp.verify_checksum(src, dst);
                    3
                }
                _ => 2,
            }
        }
        ETHERTYPE_IPV6 => {
            let Ok(ip) = Ipv6Packet::new_checked(eth.payload()) else {
                return 1;
            };
            let _ = (ip.traffic_class(), ip.flow_label(), ip.hop_limit(), ip.src_addr(), ip.dst_addr());
            let Ok(u) = ip.upper_layer() else {
                return 2;
            };
            let l4 = &ip.payload()[u.offset..];
            match u.protocol {
                IPPROTO_ICMPV6 if u.has_l4_header() => {
                    let Ok(icmp) = icmpv6::Icmpv6Packet::new_checked(l4) else {
                        return 2;
                    };
                    let _ = (icmp.msg_type(), icmp.mtu(), icmp.nd_target(), icmp.na_flags());
                    let _ = icmp.verify_checksum(ip.src_addr(), ip.dst_addr());
                    assert!(icmp.nd_options().count() <= icmpv6::MAX_ND_OPTIONS + 1);
                    let _ = icmpv6::NdRepr::parse(&ip, &icmp);
                    let _ = Ipv6Packet::new_checked(icmp.data()).map(|q| q.upper_layer());
                    3
                }
                _ => 2,
            }
        }
        _ => 1,
    }
}

fn frame(ethertype: u16, l3: &[u8]) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2];
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(l3);
    f
}

#[test]
fn real_packets_parse_all_layers() {
    assert_eq!(walk(&frame(ETHERTYPE_IPV4, &ipv4::tests::ICMP_ECHO)), 3);
    assert_eq!(walk(&frame(ETHERTYPE_IPV4, &tcp::tests::SYN)), 3);
    assert_eq!(walk(&frame(ETHERTYPE_IPV4, &udp::tests::DNS)), 3);
    assert_eq!(walk(&frame(ETHERTYPE_ARP, &[0u8; 28])), 1); // htype 0: BadArpFormat
    assert_eq!(walk(&frame(ETHERTYPE_IPV6, &[0u8; 40])), 1);
    assert_eq!(walk(&frame(ETHERTYPE_IPV6, &ipv6::tests::ECHO6)), 3);
}

/// The first layer whose `new_checked` refuses `frame`, and its error; `None` when every
/// layer (Ethernet, IPv4, then ICMP/TCP/UDP) parses.
fn refusal(frame: &[u8]) -> Option<(&'static str, WireError)> {
    let eth = match EthernetFrame::new_checked(frame) {
        Ok(eth) => eth,
        Err(e) => return Some(("ethernet", e)),
    };
    let ip = match Ipv4Packet::new_checked(eth.payload()) {
        Ok(ip) => ip,
        Err(e) => return Some(("ipv4", e)),
    };
    match ip.protocol() {
        IPPROTO_ICMP => IcmpPacket::new_checked(ip.payload()).err().map(|e| ("icmp", e)),
        IPPROTO_TCP => TcpPacket::new_checked(ip.payload()).err().map(|e| ("tcp", e)),
        IPPROTO_UDP => UdpPacket::new_checked(ip.payload()).err().map(|e| ("udp", e)),
        _ => None,
    }
}

const REAL_PACKETS: [(&str, &[u8]); 3] =
    [("icmp", &ipv4::tests::ICMP_ECHO), ("tcp", &tcp::tests::SYN), ("udp", &udp::tests::DNS)];

#[test]
fn every_truncation_of_real_packets_is_refused_with_its_reason() {
    for (name, l3) in REAL_PACKETS {
        let f = frame(ETHERTYPE_IPV4, l3);
        assert_eq!(refusal(&f), None, "{name}: the whole frame parses");
        for n in 0..f.len() {
            let want = if n < 14 {
                ("ethernet", WireError::Truncated)
            } else if n < 14 + 20 {
                ("ipv4", WireError::Truncated)
            } else {
                // The header is there but the total length runs past the frame.
                ("ipv4", WireError::BadTotalLength)
            };
            assert_eq!(refusal(&f[..n]), Some(want), "{name} cut to {n} of {} bytes", f.len());
            let _ = walk(&f[..n]);
        }
    }
}

/// Truncations of the layer-4 header and payload with the IPv4 total length cut to match,
/// so the IPv4 layer accepts them and the ICMP/TCP/UDP check is the one that must refuse.
#[test]
fn every_truncation_of_a_real_l4_packet_is_refused_with_its_reason() {
    for (name, l3) in REAL_PACKETS {
        let ihl = usize::from(l3[0] & 0x0f) * 4;
        let l4 = &l3[ihl..];
        for m in 0..l4.len() {
            let mut cut = l3[..ihl + m].to_vec();
            cut[2..4].copy_from_slice(&((ihl + m) as u16).to_be_bytes());
            let f = frame(ETHERTYPE_IPV4, &cut);
            let want = match name {
                "icmp" if m < 8 => Some(("icmp", WireError::Truncated)),
                "icmp" => None, // shorter echo data is still an echo; its checksum fails below
                "tcp" if m < 20 => Some(("tcp", WireError::Truncated)),
                "tcp" if m < usize::from(l4[12] >> 4) * 4 => Some(("tcp", WireError::BadDataOffset)),
                "tcp" => None,
                "udp" if m < 8 => Some(("udp", WireError::Truncated)),
                "udp" => Some(("udp", WireError::BadUdpLength)), // its length field says more
                _ => unreachable!(),
            };
            assert_eq!(refusal(&f), want, "{name}: layer 4 cut to {m} of {} bytes", l4.len());
            if want.is_none() {
                // Accepted views of a cut packet must still fail their checksum.
                let ip = Ipv4Packet::new_checked(&cut[..]).unwrap();
                let ok = match name {
                    "icmp" => IcmpPacket::new_checked(ip.payload()).unwrap().verify_checksum(),
                    _ => TcpPacket::new_checked(ip.payload()).unwrap().verify_checksum(ip.src_addr(), ip.dst_addr()),
                };
                assert!(!ok, "{name}: layer 4 cut to {m} bytes verifies its checksum");
            }
            let _ = walk(&f);
        }
    }
}

#[test]
fn errors_display_their_reason() {
    assert_eq!(WireError::BadIhl.to_string(), "IPv4 header length (IHL) below 5");
    assert_eq!(WireError::Truncated.to_string(), "packet truncated");
}

/// Frames built around a real header with random bytes mixed in, so the generator reaches
/// the inner layers more often than pure noise would.
fn arb_frame() -> impl Strategy<Value = Vec<u8>> {
    let noise = proptest::collection::vec(any::<u8>(), 0..120);
    let seeded = (
        prop_oneof![
            Just(ipv4::tests::ICMP_ECHO.to_vec()),
            Just(tcp::tests::SYN.to_vec()),
            Just(udp::tests::DNS.to_vec()),
        ],
        proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
        any::<prop::sample::Index>(),
    )
        .prop_map(|(mut l3, edits, cut)| {
            for (i, v) in edits {
                let at = i.index(l3.len());
                l3[at] = v;
            }
            l3.truncate(cut.index(l3.len() + 1));
            frame(ETHERTYPE_IPV4, &l3)
        });
    let seeded6 =
        (proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8), any::<prop::sample::Index>())
            .prop_map(|(edits, cut)| {
                let mut l3 = ipv6::tests::ECHO6.to_vec();
                for (i, v) in edits {
                    let at = i.index(l3.len());
                    l3[at] = v;
                }
                l3.truncate(cut.index(l3.len() + 1));
                frame(ETHERTYPE_IPV6, &l3)
            });
    prop_oneof![noise, seeded, seeded6]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]
    #[test]
    fn stack_never_panics(f in arb_frame()) {
        let _ = walk(&f);
    }
}

#[test]
fn ipv4_header_errors_count_under_their_own_reason() {
    use crate::stats::DropReason;
    let cases = [
        (WireError::Truncated, DropReason::IpTruncated),
        (WireError::BadVersion, DropReason::IpBadVersion),
        (WireError::BadIhl, DropReason::IpBadIhl),
        (WireError::BadTotalLength, DropReason::IpBadLength),
        (WireError::BadChecksum, DropReason::IpBadChecksum),
        (WireError::BadDataOffset, DropReason::IpTruncated),
    ];
    for (e, want) in cases {
        assert_eq!(DropReason::from(e), want, "{e:?}");
    }
}
