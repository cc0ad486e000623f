//! IPv6 Full-NAT (DPVS's FNAT for IPv6): both ends of an IPv6 flow are translated, so the
//! real server only sees one of rvs's IPv6 local addresses and needs no route back
//! through rvs; the client's IPv6 address and port travel to the server in a 20-byte TOA
//! option.
//!
//! # Contract
//!
//! * [`inbound`] (client → VIP): source becomes a local address and port (allocated by
//!   the caller from the IPv6 local addresses), destination becomes the real server;
//!   when asked, and for TCP only, the TOA option is inserted ([`insert_toa6`]).
//! * [`outbound`] (real server → local): source becomes the VIP, destination the client
//!   again; a SYN-ACK's MSS is lowered by the TOA's 20 bytes when asked (below).
//! * Both decrement the hop limit like a router (RFC 8200 §3); the caller has refused a
//!   packet whose hop limit is 1 or 0 (`ip6_hop_limit`). IPv6 has no header checksum:
//!   only the TCP/UDP checksum changes, incrementally (RFC 1624) for the two addresses of
//!   its pseudo-header and the two ports. A UDP checksum that comes out as 0 is sent as
//!   0xffff (RFC 8200 §8.1).
//! * `frame`/`buf` is the frame the [`Layout6`] was parsed from
//!   ([`crate::view6::L4View6`]); every access stays inside the headers it vouches for.
//!
//! # TOA for IPv6 clients
//!
//! DPVS (`include/ipvs/proto_tcp.h`) defines the address option as kind
//! `TCP_OPT_ADDR` = 254 with length `TCP_OLEN_IP4_ADDR` = 8 for an IPv4 client and
//! `TCP_OLEN_IP6_ADDR` = 20 for an IPv6 one: kind, length, the client's port (network
//! order) and its 16-byte address (`struct tcpopt_ip6_addr`). Its `tcp_in_add_toa`
//! chooses the length by the *client's* family (`conn->af`), inserts the option right
//! after the fixed TCP header, and refuses when the packet would pass the MTU or the TCP
//! header would pass 60 bytes; so does [`insert_toa6`] (the packet then goes without
//! it, [`ToaSkip`]). When it is asked for is the caller's policy, the same as IPv4's
//! (see [`super::fullnat`]): the SYN and the handshake's final ACK.
//!
//! # MSS
//!
//! As for IPv4 ([`super::fullnat`]), the client's segments grow by the option between
//! rvs and the server, so the server's SYN-ACK is clamped on its way to the client, by
//! the option's 20 bytes (DPVS's `tcp_out_adjust_mss` subtracts `TCP_OLEN_IP6_ADDR` for
//! an IPv6 connection).

use std::net::Ipv6Addr;

use rvs_drivers::PacketBuf;

use super::fullnat::FullNatIn;
use super::l4::{self, ToaSkip, TOA_KIND};
use super::Endpoint6;
use crate::types::L4Proto;
use crate::view::L3_OFFSET;
use crate::view6::{Layout6, IPV6_HEADER_LEN};
use crate::wire::checksum::{delta16, delta_addr_v6, update16, update_delta};
use crate::wire::TcpPacket;

/// Length of the TOA option for an IPv6 client: kind, length, port, 16-byte address
/// (DPVS `TCP_OLEN_IP6_ADDR`). Also how much a SYN-ACK's MSS is lowered.
pub const TOA6_LEN: usize = 20;

/// Offset of the payload length in the frame.
const PAYLOAD_LEN: usize = L3_OFFSET + 4;
/// Offset of the hop limit in the frame.
const HOP_LIMIT: usize = L3_OFFSET + 7;
/// Offset of the source address in the frame.
const SRC: usize = L3_OFFSET + 8;
/// Offset of the destination address in the frame.
const DST: usize = L3_OFFSET + 24;

/// Full-NAT of an IPv6 client → VIP packet: source becomes `local`, destination `server`,
/// hop limit − 1; then, when `toa` is `Some(client)` and the packet is TCP, the 20-byte
/// TOA option is inserted unless the IPv6 packet would pass `mtu` bytes or the option
/// does not fit ([`insert_toa6`]). Cannot fail; a TOA that does not fit is reported in
/// the [`FullNatIn`]. After a TOA insertion `layout` no longer describes the frame.
pub fn inbound<B: PacketBuf>(
    buf: &mut B,
    layout: &Layout6,
    local: Endpoint6,
    server: Endpoint6,
    toa: Option<Endpoint6>,
    mtu: u16,
) -> FullNatIn {
    rewrite_both(buf.data_mut(), layout, local, server);
    let mut out = FullNatIn::default();
    if let (Some(client), L4Proto::Tcp) = (toa, layout.l4()) {
        match insert_toa6(buf, layout, client, mtu) {
            Ok(()) => out.toa_inserted = true,
            Err(why) => out.toa_skipped = Some(why),
        }
    }
    out
}

/// Full-NAT of a real server → local address reply: source becomes `vip`, destination
/// `client`, hop limit − 1; with `clamp_mss` and a TCP SYN-ACK carrying an MSS option,
/// the MSS is lowered by [`TOA6_LEN`] (a malformed option list is left alone).
pub fn outbound(frame: &mut [u8], layout: &Layout6, vip: Endpoint6, client: Endpoint6, clamp_mss: bool) {
    rewrite_both(frame, layout, vip, client);
    if clamp_mss && layout.l4() == L4Proto::Tcp {
        let seg = &mut frame[layout.l4_offset()..layout.ip_end()];
        let syn_ack = TcpPacket::new_checked(&*seg).is_ok_and(|t| t.flags().syn() && t.flags().ack());
        if syn_ack {
            l4::clamp_mss_by(seg, TOA6_LEN as u16, u16::MAX);
        }
    }
}

/// Full-NAT of a later fragment (offset above 0: no L4 header) of either direction:
/// source becomes `src`, destination `dst`, hop limit − 1; nothing else, and nothing at
/// all to a frame too short to hold the fixed header. With the first fragment rewritten by
/// [`inbound`] (without TOA) or [`outbound`] (without MSS clamp), that is the whole
/// translation of the datagram: the L4 checksum in the first fragment covers both
/// addresses through the pseudo-header and every data byte, and only the addresses (in
/// every fragment) and the ports (in the first) change, so the first fragment's
/// incremental update is the translated datagram's checksum (the argument of
/// [`super::nat66`]'s docs, with both ends).
pub fn later_fragment(frame: &mut [u8], src: Ipv6Addr, dst: Ipv6Addr) {
    if frame.len() < DST + 16 {
        return;
    }
    frame[SRC..SRC + 16].copy_from_slice(&src.octets());
    frame[DST..DST + 16].copy_from_slice(&dst.octets());
    frame[HOP_LIMIT] = frame[HOP_LIMIT].saturating_sub(1);
}

/// Reads the IPv6 address at `at` in `frame`.
fn addr_at(frame: &[u8], at: usize) -> Ipv6Addr {
    let mut a = [0u8; 16];
    a.copy_from_slice(&frame[at..at + 16]);
    Ipv6Addr::from(a)
}

/// Both ends rewritten, hop limit − 1, the L4 checksum updated once for all four words
/// groups (two addresses, two ports).
fn rewrite_both(frame: &mut [u8], layout: &Layout6, src: Endpoint6, dst: Endpoint6) {
    let l4 = layout.l4_offset();
    let (old_src, old_dst) = (addr_at(frame, SRC), addr_at(frame, DST));
    let old_sport = u16::from_be_bytes([frame[l4], frame[l4 + 1]]);
    let old_dport = u16::from_be_bytes([frame[l4 + 2], frame[l4 + 3]]);
    frame[SRC..SRC + 16].copy_from_slice(&src.addr.octets());
    frame[DST..DST + 16].copy_from_slice(&dst.addr.octets());
    frame[l4..l4 + 2].copy_from_slice(&src.port.to_be_bytes());
    frame[l4 + 2..l4 + 4].copy_from_slice(&dst.port.to_be_bytes());
    frame[HOP_LIMIT] = frame[HOP_LIMIT].saturating_sub(1);
    let c_at = l4 + checksum_offset(layout.l4());
    let csum = u16::from_be_bytes([frame[c_at], frame[c_at + 1]]);
    let delta = delta_addr_v6(old_src, src.addr)
        + delta_addr_v6(old_dst, dst.addr)
        + delta16(old_sport, src.port)
        + delta16(old_dport, dst.port);
    let mut new = update_delta(csum, delta);
    if layout.l4() == L4Proto::Udp && new == 0 {
        new = 0xffff;
    }
    frame[c_at..c_at + 2].copy_from_slice(&new.to_be_bytes());
}

/// Offset of the checksum in the TCP or UDP header.
fn checksum_offset(l4: L4Proto) -> usize {
    match l4 {
        L4Proto::Tcp => 16,
        L4Proto::Udp => 6,
    }
}

/// The 20 TOA bytes for an IPv6 `client`: kind 254, length 20, port and address in
/// network order (DPVS's `struct tcpopt_ip6_addr`).
pub fn toa6_bytes(client: Endpoint6) -> [u8; TOA6_LEN] {
    let mut b = [0u8; TOA6_LEN];
    b[0] = TOA_KIND;
    b[1] = TOA6_LEN as u8;
    b[2..4].copy_from_slice(&client.port.to_be_bytes());
    b[4..].copy_from_slice(&client.addr.octets());
    b
}

/// Inserts the 20-byte TOA option for `client` into the TCP segment of `buf`, right
/// after the fixed 20-byte TCP header (before any option, for the reasons
/// [`l4::insert_toa`] gives), provided the IPv6 packet (header, extension headers and
/// segment) stays within `mtu` bytes and the TCP header within 60. `layout` is this
/// frame's; not TCP: nothing done, `Ok`.
///
/// In place: the frame grows by 20 bytes at its end (Ethernet padding reused first, any
/// left over trimmed), options and payload move 20 bytes down, the option is written,
/// the data offset rises by 5 words and the payload length by 20. The TCP checksum is
/// updated incrementally: the data-offset word, the pseudo-header's upper-layer length
/// (below 65,536 since the packet fits a 16-bit MTU) and the option's ten words, each an
/// update from 0; the moved bytes shift by an even amount and keep their sum. On `Err`
/// the buffer is unchanged.
pub fn insert_toa6<B: PacketBuf>(buf: &mut B, layout: &Layout6, client: Endpoint6, mtu: u16) -> Result<(), ToaSkip> {
    if layout.l4() != L4Proto::Tcp {
        return Ok(());
    }
    let tcp_at = layout.l4_offset();
    let ip_end = layout.ip_end();
    let tcp_hl = TcpPacket::new_unchecked(&buf.data()[tcp_at..ip_end]).header_len();
    if tcp_hl + TOA6_LEN > TcpPacket::<&[u8]>::MAX_HEADER_LEN {
        return Err(ToaSkip::NoRoomForOption);
    }
    if layout.ip_len() + TOA6_LEN > usize::from(mtu) {
        return Err(ToaSkip::ExceedsMtu);
    }
    let new_frame_len = ip_end + TOA6_LEN;
    let len = buf.len();
    if new_frame_len > len {
        let grow = new_frame_len - len;
        if buf.tailroom() < grow || buf.append(grow).is_none() {
            return Err(ToaSkip::NoTailroom);
        }
    } else if new_frame_len < len {
        buf.trim(len - new_frame_len);
    }
    let frame = buf.data_mut();
    let opt_at = tcp_at + TcpPacket::<&[u8]>::MIN_HEADER_LEN;
    frame.copy_within(opt_at..ip_end, opt_at + TOA6_LEN);
    let toa = toa6_bytes(client);
    frame[opt_at..opt_at + TOA6_LEN].copy_from_slice(&toa);

    // `ip_len() + 20 <= mtu` keeps both lengths within 16 bits.
    let old_l4_len = layout.l4_len() as u16;
    let new_l4_len = old_l4_len + TOA6_LEN as u16;
    let mut tcp = TcpPacket::new_unchecked(&mut frame[tcp_at..new_frame_len]);
    let old_word = u16::from_be_bytes([tcp.as_bytes()[12], tcp.as_bytes()[13]]);
    tcp.set_header_len(tcp_hl + TOA6_LEN);
    let new_word = u16::from_be_bytes([tcp.as_bytes()[12], tcp.as_bytes()[13]]);
    let mut c = update16(tcp.checksum(), old_word, new_word);
    c = update16(c, old_l4_len, new_l4_len);
    for w in toa.chunks_exact(2) {
        c = update16(c, 0, u16::from_be_bytes([w[0], w[1]]));
    }
    tcp.set_checksum(c);

    let payload_len = (layout.ip_len() - IPV6_HEADER_LEN + TOA6_LEN) as u16;
    frame[PAYLOAD_LEN..PAYLOAD_LEN + 2].copy_from_slice(&payload_len.to_be_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    //! Golden packets: every checksum below was computed outside rvs (python3, RFC 1071
    //! over the RFC 8200 pseudo-header) for the packets as they must leave; the test
    //! also recomputes them with the wire module's full sum as a second opinion.
    use super::*;
    use crate::view6::L4View6;
    use crate::wire::checksum::{finish, pseudo_header_v6, sum};
    use crate::xmit::nat66::tests::fragment;
    use rvs_drivers::mem::MemBuf;

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    /// Ethernet + IPv6 (hop limit 64) + TCP (seq 0x01020304, window 0xffff, `flags`,
    /// `opts` as options) or UDP, `data` as payload, `csum` in the checksum field.
    fn frame(udp: bool, src: (&str, u16), dst: (&str, u16), flags: u8, opts: &[u8], csum: u16, data: &[u8]) -> Vec<u8> {
        let mut l4 = Vec::new();
        l4.extend_from_slice(&src.1.to_be_bytes());
        l4.extend_from_slice(&dst.1.to_be_bytes());
        if udp {
            l4.extend_from_slice(&((8 + data.len()) as u16).to_be_bytes());
            l4.extend_from_slice(&csum.to_be_bytes());
        } else {
            l4.extend_from_slice(&[1, 2, 3, 4, 0, 0, 0, 0]);
            l4.push((((20 + opts.len()) / 4) << 4) as u8);
            l4.push(flags);
            l4.extend_from_slice(&[0xff, 0xff]);
            l4.extend_from_slice(&csum.to_be_bytes());
            l4.extend_from_slice(&[0, 0]);
            l4.extend_from_slice(opts);
        }
        l4.extend_from_slice(data);
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
        f.extend_from_slice(&(l4.len() as u16).to_be_bytes());
        f.extend_from_slice(&[if udp { 17 } else { 6 }, 64]);
        f.extend_from_slice(&a(src.0).octets());
        f.extend_from_slice(&a(dst.0).octets());
        f.extend_from_slice(&l4);
        f
    }

    /// The L4 checksum of `f` summed in full (must be 0 for a correct packet).
    fn l4_sum_ok(f: &[u8]) -> bool {
        let v = L4View6::parse(f).unwrap();
        let l = v.layout();
        let seg = &f[l.l4_offset()..l.ip_end()];
        let proto = if l.l4() == L4Proto::Tcp { 6 } else { 17 };
        finish(pseudo_header_v6(v.src, v.dst, proto, seg.len() as u32) + sum(seg)) == 0
    }

    fn membuf(f: &[u8]) -> MemBuf {
        MemBuf::from_frame(f)
    }

    const CLIENT: (&str, u16) = ("2001:db8:10::2", 40000);
    const VIP: (&str, u16) = ("2001:db8:10::100", 80);
    const LOCAL: (&str, u16) = ("2001:db8:20::200", 1025);
    const SERVER: (&str, u16) = ("2001:db8:20::11", 8080);
    const MSS_1440: [u8; 4] = [2, 4, 0x05, 0xa0];

    #[test]
    fn inbound_syn_with_toa_golden() {
        let f = frame(false, CLIENT, VIP, 0x02, &MSS_1440, 0x9b10, b"");
        assert!(l4_sum_ok(&f));
        let v = L4View6::parse(&f).unwrap();
        let mut b = membuf(&f);
        let client = Endpoint6::new(a(CLIENT.0), CLIENT.1);
        let r = inbound(
            &mut b,
            v.layout(),
            Endpoint6::new(a(LOCAL.0), LOCAL.1),
            Endpoint6::new(a(SERVER.0), SERVER.1),
            Some(client),
            1500,
        );
        assert_eq!(r, FullNatIn { toa_inserted: true, toa_skipped: None });
        let mut opts = toa6_bytes(client).to_vec();
        opts.extend_from_slice(&MSS_1440);
        let mut want = frame(false, LOCAL, SERVER, 0x02, &opts, 0xfaab, b"");
        want[HOP_LIMIT] = 63;
        assert_eq!(b.data(), &want[..]);
        assert!(l4_sum_ok(b.data()));
        assert_eq!(&opts[..4], &[254, 20, 0x9c, 0x40]);
    }

    #[test]
    fn inbound_udp_and_data_without_toa_golden() {
        let f = frame(true, CLIENT, ("2001:db8:10::100", 53), 0, &[], 0xb6e2, b"query");
        assert!(l4_sum_ok(&f));
        let v = L4View6::parse(&f).unwrap();
        let mut b = membuf(&f);
        // A TOA asked for on UDP is not inserted, and not counted as skipped.
        let client = Endpoint6::new(a(CLIENT.0), CLIENT.1);
        let r = inbound(
            &mut b,
            v.layout(),
            Endpoint6::new(a(LOCAL.0), LOCAL.1),
            Endpoint6::new(a(SERVER.0), 53),
            Some(client),
            1500,
        );
        assert_eq!(r, FullNatIn::default());
        let mut want = frame(true, LOCAL, (SERVER.0, 53), 0, &[], 0x4df3, b"query");
        want[HOP_LIMIT] = 63;
        assert_eq!(b.data(), &want[..]);
        assert!(l4_sum_ok(b.data()));
    }

    #[test]
    fn reply_syn_ack_mss_is_lowered_by_the_toa_golden() {
        let f = frame(false, SERVER, LOCAL, 0x12, &MSS_1440, 0x12d1, b"");
        assert!(l4_sum_ok(&f));
        let v = L4View6::parse(&f).unwrap();
        let mut b = f.clone();
        outbound(&mut b, v.layout(), Endpoint6::new(a(VIP.0), VIP.1), Endpoint6::new(a(CLIENT.0), CLIENT.1), true);
        let mut want = frame(false, VIP, CLIENT, 0x12, &[2, 4, 0x05, 0x8c], 0x9b14, b"");
        want[HOP_LIMIT] = 63;
        assert_eq!(b, want);
        assert!(l4_sum_ok(&b));
    }

    #[test]
    fn toa_refusals_leave_the_packet_as_rewritten() {
        let client = Endpoint6::new(a(CLIENT.0), CLIENT.1);
        // 24 bytes of options already: 20 more would pass 60.
        let f = frame(false, CLIENT, VIP, 0x10, &[1; 24], 0, b"");
        let v = L4View6::parse(&f).unwrap();
        let mut b = membuf(&f);
        assert_eq!(insert_toa6(&mut b, v.layout(), client, 1500), Err(ToaSkip::NoRoomForOption));
        assert_eq!(b.data(), &f[..]);
        // 1441 bytes of IPv6 packet: 20 more pass a 1460 MTU, fit a 1461 one.
        let f = frame(false, CLIENT, VIP, 0x10, &[], 0, &[7; 1381]);
        let v = L4View6::parse(&f).unwrap();
        assert_eq!(v.layout().ip_len(), 1441);
        let mut b = membuf(&f);
        assert_eq!(insert_toa6(&mut b, v.layout(), client, 1460), Err(ToaSkip::ExceedsMtu));
        assert_eq!(b.data(), &f[..]);
        assert_eq!(insert_toa6(&mut b, v.layout(), client, 1461), Ok(()));
        assert_eq!(b.len(), f.len() + 20);
        // No tailroom.
        let mut b = MemBuf::with_room(0, f.len());
        assert!(b.set_len(f.len()));
        b.data_mut().copy_from_slice(&f);
        assert_eq!(insert_toa6(&mut b, v.layout(), client, 9000), Err(ToaSkip::NoTailroom));
        assert_eq!(b.data(), &f[..]);
    }

    #[test]
    fn toa_insertion_keeps_any_payload_checksum_right() {
        // Odd and even payload lengths, with options, through a padded frame too.
        let client = Endpoint6::new(a("2001:db8:ffff::abcd"), 65535);
        for n in [0usize, 1, 2, 3, 17, 600, 1000] {
            let data: Vec<u8> = (0..n).map(|i| (i * 7 + 3) as u8).collect();
            let mut f = frame(false, CLIENT, VIP, 0x18, &[1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2], 0, &data);
            let v = L4View6::parse(&f).unwrap();
            // Fill in the right checksum first.
            let l = *v.layout();
            let seg_sum = sum(&f[l.l4_offset()..l.ip_end()]);
            let c = finish(pseudo_header_v6(v.src, v.dst, 6, l.l4_len() as u32) + seg_sum);
            f[l.l4_offset() + 16..l.l4_offset() + 18].copy_from_slice(&c.to_be_bytes());
            f.extend_from_slice(&[0; 6]); // Ethernet padding
            let mut b = membuf(&f);
            insert_toa6(&mut b, &l, client, 1500).unwrap();
            assert_eq!(b.len(), l.ip_end() + 20, "{n}");
            assert!(l4_sum_ok(b.data()), "{n} bytes");
            let v2 = L4View6::parse(b.data()).unwrap();
            assert_eq!(v2.layout().l4_len(), l.l4_len() + 20);
            assert_eq!(&b.data()[l.l4_offset() + 20..l.l4_offset() + 40], &toa6_bytes(client));
            assert_eq!(&b.data()[l.l4_offset() + 52..l.ip_end() + 20], &data[..]);
        }
    }

    /// A UDP datagram of 32 data bytes cut in two fragments (UDP header and 16 bytes; 16
    /// bytes at offset 24), through Full-NAT both ways. The checksums are the whole
    /// datagram's, computed with python3 over the RFC 8200 pseudo-header: client:5000 →
    /// VIP:53 is 0xec9a, local:1025 → server:5353 is 0xe63e (and the reply the same
    /// two the other way round); the first fragment's incremental update must land on
    /// the translated datagram's sum, and a later fragment changes its addresses only.
    #[test]
    fn fragments_both_ways_golden() {
        let data = b"0123456789abcdefghijklmnopqrstuv";
        let head = |sport: u16, dport: u16, csum: u16| {
            let mut h = Vec::new();
            for w in [sport, dport, 40, csum] {
                h.extend_from_slice(&w.to_be_bytes());
            }
            h.extend_from_slice(&data[..16]);
            h
        };
        let ep = |e: (&str, u16)| Endpoint6::new(a(e.0), e.1);
        let (client, vip, local, server) =
            (ep((CLIENT.0, 5000)), ep((VIP.0, 53)), ep((LOCAL.0, 1025)), ep((SERVER.0, 5353)));
        let mut first = membuf(&fragment(CLIENT.0, VIP.0, 64, 0, true, &head(5000, 53, 0xec9a)));
        let mut later = fragment(CLIENT.0, VIP.0, 64, 24, false, &data[16..]);
        let ip = crate::wire::Ipv6Packet::new_checked(&first.data()[L3_OFFSET..]).unwrap();
        let v = L4View6::from_first_fragment(&ip, &ip.upper_layer().unwrap()).unwrap();
        assert_eq!(inbound(&mut first, v.layout(), local, server, None, 1500), FullNatIn::default());
        later_fragment(&mut later, local.addr, server.addr);
        assert_eq!(first.data(), &fragment(LOCAL.0, SERVER.0, 63, 0, true, &head(1025, 5353, 0xe63e))[..]);
        assert_eq!(later, fragment(LOCAL.0, SERVER.0, 63, 24, false, &data[16..]));
        // The reply, server:5353 → local:1025, back out as VIP:53 → client:5000.
        let mut first = fragment(SERVER.0, LOCAL.0, 64, 0, true, &head(5353, 1025, 0xe63e));
        let mut later = fragment(SERVER.0, LOCAL.0, 64, 24, false, &data[16..]);
        let ip = crate::wire::Ipv6Packet::new_checked(&first[L3_OFFSET..]).unwrap();
        let v = L4View6::from_first_fragment(&ip, &ip.upper_layer().unwrap()).unwrap();
        outbound(&mut first, v.layout(), vip, client, true);
        later_fragment(&mut later, vip.addr, client.addr);
        assert_eq!(first, fragment(VIP.0, CLIENT.0, 63, 0, true, &head(53, 5000, 0xec9a)));
        assert_eq!(later, fragment(VIP.0, CLIENT.0, 63, 24, false, &data[16..]));
        // Too short to hold a fixed header: left alone.
        let mut short = [0u8; 53];
        later_fragment(&mut short, local.addr, server.addr);
        assert_eq!(short, [0u8; 53]);
    }
}
