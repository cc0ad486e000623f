//! Helpers shared by the NAT and Full-NAT rewrites: rewriting one or both ends of a flow
//! ([`rewrite_src`], [`rewrite_dst`], [`rewrite_both`]), inserting the TOA option ([`insert_toa`]) and
//! lowering a SYN-ACK's MSS ([`clamp_mss`]).
//!
//! # Contract
//!
//! * The frame was parsed once, on receive, into an [`L4View`](crate::view::L4View); its
//!   [`Layout`] holds everything these helpers index with (IPv4 header and total length,
//!   TCP data offset or UDP length within the segment), and the helpers take the same
//!   `frame` and that `Layout` and **do not panic** on it.
//!   Passing a `Layout` parsed from another frame is a caller bug; the slicing is still
//!   bounds-checked by Rust, so the worst outcome is a panic, never memory unsafety.
//! * Every checksum change is incremental (RFC 1624 eqn 3 via [`checksum`]); the cost is a
//!   handful of 16-bit words whatever the packet size. The only bytes moved are those of
//!   TOA insertion (options and payload, shifted by 8 within the buffer).

use rvs_drivers::PacketBuf;

use super::ttl::TtlDecrement;
use super::Endpoint;
use crate::types::L4Proto;
use crate::view::{Layout, L3_OFFSET};
use crate::wire::{checksum, Ipv4Packet, TcpOption, TcpPacket, UdpPacket};

/// TCP option kind of TOA ("TCP Option Address"), as DPVS (`TCPOPT_ADDR`) and the
/// `toa` kernel module of Alibaba's LVS/Full-NAT that real servers load to read it.
pub const TOA_KIND: u8 = 254;

/// Length of the IPv4 TOA option: kind, length, 2-byte port, 4-byte address
/// (DPVS `TCPOLEN_ADDR`). Also how much the MSS of a SYN-ACK is lowered, see
/// [`clamp_mss`].
pub const TOA_LEN: usize = 8;

/// Rewrites the source address and port to `to`, updating the IPv4 header checksum and the
/// TCP/UDP checksum (pseudo-header address and port) incrementally. A UDP checksum of 0
/// stays 0.
pub fn rewrite_src(frame: &mut [u8], layout: &Layout, to: Endpoint) {
    rewrite(frame, layout, Some(to), None, 0);
}

/// Rewrites the destination address and port to `to`; checksums as [`rewrite_src`].
pub fn rewrite_dst(frame: &mut [u8], layout: &Layout, to: Endpoint) {
    rewrite(frame, layout, None, Some(to), 0);
}

/// Rewrites both ends at once (Full-NAT): source to `src`, destination to `dst`; the
/// bytes written are exactly those of [`rewrite_src`] then [`rewrite_dst`], with one
/// update per checksum instead of two.
pub fn rewrite_both(frame: &mut [u8], layout: &Layout, src: Endpoint, dst: Endpoint) {
    rewrite(frame, layout, Some(src), Some(dst), 0);
}

/// The rewrites above for a packet whose TTL was just decremented with
/// [`ttl::decrement`](super::ttl::decrement): the decrement's header checksum term is
/// folded into the rewrite's one header update. The bytes are exactly those of
/// [`ttl::forward`](super::ttl::forward) followed by the plain rewrite. `src`/`dst` as
/// for the plain ones (at least one given).
#[inline(always)]
pub fn rewrite_after_ttl(
    frame: &mut [u8],
    layout: &Layout,
    src: Option<Endpoint>,
    dst: Option<Endpoint>,
    ttl: TtlDecrement,
) {
    rewrite(frame, layout, src, dst, ttl.term());
}

/// The rewrite of the ends given. Each checksum gets one RFC 1624 update of all its
/// changed words together (one fold: the IPv4 header's for the addresses, the L4 one for
/// the pseudo-header addresses and the ports), bit for bit the result of word-by-word
/// updates ([`checksum::update_delta`]). Inlined into each caller, where `src` and `dst`
/// are constants, so the choice of ends costs no branch. `ip_term` is any other change
/// of the IPv4 header to fold into its update (a TTL decrement's term, or 0).
#[inline(always)]
fn rewrite(frame: &mut [u8], layout: &Layout, src: Option<Endpoint>, dst: Option<Endpoint>, ip_term: u32) {
    let packet = &mut frame[L3_OFFSET..layout.ip_end()];
    let mut ip = Ipv4Packet::new_unchecked(&mut *packet);
    let mut addr_delta = 0;
    if let Some(to) = src {
        addr_delta += checksum::delta_addr(ip.src_addr(), to.addr);
        ip.set_src_addr(to.addr);
    }
    if let Some(to) = dst {
        addr_delta += checksum::delta_addr(ip.dst_addr(), to.addr);
        ip.set_dst_addr(to.addr);
    }
    ip.set_checksum(checksum::update_delta(ip.checksum(), addr_delta + ip_term));
    let seg = &mut packet[layout.ip_header_len()..];
    match layout.l4() {
        L4Proto::Tcp => {
            let mut tcp = TcpPacket::new_unchecked(seg);
            let mut delta = addr_delta;
            if let Some(to) = src {
                delta += checksum::delta16(tcp.src_port(), to.port);
                tcp.set_src_port(to.port);
            }
            if let Some(to) = dst {
                delta += checksum::delta16(tcp.dst_port(), to.port);
                tcp.set_dst_port(to.port);
            }
            tcp.update_checksum_delta(delta);
        }
        L4Proto::Udp => {
            // UdpPacket's update keeps a 0 ("no checksum") field at 0 and writes a
            // computed 0 as 0xffff (RFC 768).
            let mut udp = UdpPacket::new_unchecked(seg);
            let mut delta = addr_delta;
            if let Some(to) = src {
                delta += checksum::delta16(udp.src_port(), to.port);
                udp.set_src_port(to.port);
            }
            if let Some(to) = dst {
                delta += checksum::delta16(udp.dst_port(), to.port);
                udp.set_dst_port(to.port);
            }
            udp.update_checksum_delta(delta);
        }
    }
}

/// Why a TOA was not inserted. The packet is forwarded anyway (without the option): losing
/// the client address on one packet is better than losing the packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum ToaSkip {
    /// The TCP options already take more than 32 bytes, so 8 more would exceed the
    /// 60-byte maximum TCP header.
    #[error("no room for TOA: TCP options already longer than 32 bytes")]
    NoRoomForOption,
    /// The IPv4 packet would grow beyond the egress MTU (or beyond 65535 bytes).
    #[error("no room for TOA: packet would exceed the MTU")]
    ExceedsMtu,
    /// The buffer has too little tailroom to grow by 8 bytes.
    #[error("no room for TOA: buffer tailroom too short")]
    NoTailroom,
}

/// The 8 TOA bytes for `client`: kind 254, length 8, port and IPv4 address in network
/// order — DPVS's `struct tcpopt_addr` for IPv4.
pub fn toa_bytes(client: Endpoint) -> [u8; TOA_LEN] {
    let p = client.port.to_be_bytes();
    let a = client.addr.octets();
    [TOA_KIND, TOA_LEN as u8, p[0], p[1], a[0], a[1], a[2], a[3]]
}

/// Inserts the TOA option for `client` into the TCP segment of `buf`, right after the
/// fixed 20-byte TCP header (before any existing option, as DPVS's `tcp_in_add_toa`),
/// provided the packet stays within `mtu` (the largest IPv4 total length the egress link
/// carries).
///
/// `layout` must come from the [`L4View`](crate::view::L4View) of this very frame and say TCP (otherwise
/// nothing is done and `Ok` is returned — callers only ask for TCP).
///
/// Why first: the option list may end with End-of-List (kind 0) and padding, after which
/// nothing is parsed, so appending could hide the TOA; and the `toa` module on real
/// servers takes the first kind-254 option it finds, so a TOA forged by the client
/// (which we pass through untouched) comes after ours and is ignored.
///
/// Steps, all in place (no allocation): grow the frame by 8 bytes at the end (`append`;
/// Ethernet padding is reused first and any left over is trimmed), shift options and
/// payload 8 bytes down with `copy_within`, write the option, raise the data offset by 2
/// words, the IPv4 total length by 8.
///
/// Checksums, incrementally:
/// * IPv4: the total-length word (RFC 1624 on one word).
/// * TCP: the data-offset/flags word changes, the pseudo-header's TCP length changes, and
///   four words appear (an absent word is a word of value 0, so each is an update from 0).
///   The moved options and payload keep their sum: they shift by 8 bytes, an even
///   amount, so every byte keeps its position within its 16-bit word (an odd final byte
///   stays the high byte of a zero-padded word). Seven word updates, whatever the size.
///
/// On `Err` the buffer is unchanged.
pub fn insert_toa<B: PacketBuf>(buf: &mut B, layout: &Layout, client: Endpoint, mtu: u16) -> Result<(), ToaSkip> {
    if layout.l4() != L4Proto::Tcp {
        return Ok(());
    }
    let tcp_at = layout.l4_offset();
    let ip_end = layout.ip_end();
    let tcp_hl = TcpPacket::new_unchecked(&buf.data()[tcp_at..ip_end]).header_len();
    if tcp_hl + TOA_LEN > TcpPacket::<&[u8]>::MAX_HEADER_LEN {
        return Err(ToaSkip::NoRoomForOption);
    }
    let new_total = layout.ip_total_len() + TOA_LEN;
    if new_total > usize::from(mtu) {
        return Err(ToaSkip::ExceedsMtu);
    }
    // `mtu` is a u16, so `new_total` fits the IPv4 total-length field.
    let new_total_u16 = new_total as u16;
    let new_frame_len = ip_end + TOA_LEN;
    let len = buf.len();
    if new_frame_len > len {
        let grow = new_frame_len - len;
        if buf.tailroom() < grow || buf.append(grow).is_none() {
            return Err(ToaSkip::NoTailroom);
        }
    } else if new_frame_len < len {
        // Padding longer than 8 bytes: drop what is left of it. `trim` of fewer bytes than
        // the length cannot fail.
        buf.trim(len - new_frame_len);
    }

    let frame = buf.data_mut();
    let opt_at = tcp_at + TcpPacket::<&[u8]>::MIN_HEADER_LEN;
    frame.copy_within(opt_at..ip_end, opt_at + TOA_LEN);
    let toa = toa_bytes(client);
    frame[opt_at..opt_at + TOA_LEN].copy_from_slice(&toa);

    let old_tcp_len = (layout.ip_total_len() - layout.ip_header_len()) as u16;
    let new_tcp_len = old_tcp_len + TOA_LEN as u16;
    let mut tcp = TcpPacket::new_unchecked(&mut frame[tcp_at..new_frame_len]);
    let old_word = offset_flags_word(tcp.as_bytes());
    tcp.set_header_len(tcp_hl + TOA_LEN);
    let new_word = offset_flags_word(tcp.as_bytes());
    let mut c = tcp.checksum();
    c = checksum::update16(c, old_word, new_word);
    c = checksum::update16(c, old_tcp_len, new_tcp_len);
    for w in toa.chunks_exact(2) {
        c = checksum::update16(c, 0, u16::from_be_bytes([w[0], w[1]]));
    }
    tcp.set_checksum(c);

    let mut ip = Ipv4Packet::new_unchecked(&mut frame[L3_OFFSET..new_frame_len]);
    ip.set_total_len_incremental(new_total_u16);
    Ok(())
}

/// The TCP header's word 6 (data offset, reserved bits, flags), as the checksum sees it.
fn offset_flags_word(seg: &[u8]) -> u16 {
    u16::from_be_bytes([seg[12], seg[13]])
}

/// Lowers the MSS option of a TCP segment to `min(mss - TOA_LEN, max)` (saturating at 0;
/// never raised) and returns `(old, new)` when it changed it.
///
/// `seg` is the TCP segment (header and payload, no Ethernet padding), e.g.
/// `&mut frame[layout.l4_offset()..layout.ip_end()]`; its data offset must fit it (as
/// the [`Layout`] guarantees). The option list is walked with the wire module's
/// [`TcpOptionIter`](crate::wire::TcpOptionIter); a list that is malformed before the MSS
/// option, or a segment without one, is left alone (`None`).
///
/// The checksum is updated incrementally. Options are not word-aligned: after an odd
/// number of NOPs the MSS value starts at an odd offset, where its high byte is the low
/// byte of one checksum word and its low byte the high byte of the next. The ones'
/// complement sum is byte-order independent (RFC 1071 §2(B)), so the change is then
/// applied as an update of the byte-swapped values.
pub fn clamp_mss(seg: &mut [u8], max: u16) -> Option<(u16, u16)> {
    clamp_mss_by(seg, TOA_LEN as u16, max)
}

/// [`clamp_mss`] lowering by `by` bytes instead of the IPv4 TOA's 8: the MSS becomes
/// `min(mss - by, max)` (IPv6 Full-NAT lowers it by its 20-byte TOA,
/// [`super::fullnat66`]).
pub fn clamp_mss_by(seg: &mut [u8], by: u16, max: u16) -> Option<(u16, u16)> {
    let tcp = TcpPacket::new_checked(&*seg).ok()?;
    let mut at = TcpPacket::<&[u8]>::MIN_HEADER_LEN;
    let mut found = None;
    for opt in tcp.options_iter() {
        match opt {
            Ok(TcpOption::Mss(mss)) => {
                found = Some((at + 2, mss));
                break;
            }
            Ok(o) => at += o.buffer_len(),
            Err(_) => return None,
        }
    }
    let (value_at, old) = found?;
    let new = old.saturating_sub(by).min(max);
    if new == old {
        return None;
    }
    let (m, m2) = if value_at % 2 == 0 { (old, new) } else { (old.swap_bytes(), new.swap_bytes()) };
    let mut tcp = TcpPacket::new_unchecked(&mut *seg);
    let c = checksum::update16(tcp.checksum(), m, m2);
    tcp.set_checksum(c);
    seg[value_at..value_at + 2].copy_from_slice(&new.to_be_bytes());
    Some((old, new))
}
