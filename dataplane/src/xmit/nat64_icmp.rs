//! ICMP errors about NAT64 flows (RFC 7915 §4.2, §4.3, §5.2, §5.3, as a stateful
//! translator, RFC 6146 §3.5.3): an ICMPv4 error from the server's side about a packet
//! rvs translated to IPv4 becomes an ICMPv6 error to the client, and an ICMPv6 error from
//! the client's side about a reply rvs translated to IPv6 becomes an ICMPv4 error to the
//! server.
//!
//! # Contract
//!
//! * [`v4_err_to_v6`]: the error `X → L` (the server, or a router on the way to it, to
//!   one of our IPv4 local addresses) about `L:lp → RS:rp` becomes `VIP → C` about
//!   `C:cp → VIP:vp`, the client's packet as the client sent it.
//! * [`v6_err_to_v4`]: the error `X → VIP` (the client, or a router on the way to it)
//!   about `VIP:vp → C:cp` becomes `L → RS` about `RS:rp → L:lp`, the server's packet as
//!   the server sent it.
//! * The error's parse ([`icmp_err::parse`], [`icmp6_err::parse`], which verified its
//!   checksum) locates the parts; the caller found the connection, decremented the TTL or
//!   hop limit (the translated one carries it on) and gives the two links' MTUs
//!   ([`Nat64Mtus`]).
//! * Nothing is allocated; the quoted TCP/UDP bytes stay where they are in the buffer and
//!   the frame grows (ICMPv4 → ICMPv6: 40 bytes of headers at its front) or shrinks at
//!   its front. Everything is checked before the first write: on `Err` the buffer is
//!   unchanged.
//!
//! # What is written
//!
//! * The outer header: ICMPv6 from the VIP to the client, traffic class the IPv4 TOS
//!   (RFC 7915 §4.1), hop limit the (decremented) TTL; ICMPv4 from the local address to
//!   the server, TOS the traffic class, identification 0 and DF set (an atomic datagram,
//!   as the flow's larger packets are, [`super::nat64::DF_CLEAR_MAX`]), TTL the
//!   (decremented) hop limit.
//! * The quoted header (RFC 7915 §4.3 and §5.3: translated as the outer one is, its
//!   options or extension headers not carried): [`super::nat64`]'s IPv4 or IPv6 header
//!   with the quoted TOS or traffic class, TTL or hop limit, protocol, the addresses of
//!   the flow's other side and the quoted packet's length translated.
//! * The quoted TCP/UDP header: its ports, and its checksum when the quote holds it,
//!   updated incrementally for the addresses (an IPv4 address folded in as its
//!   IPv4-mapped form, see [`super::nat64`]) and the ports; a UDP checksum of 0 stays 0.
//!   The 20-byte TOA a quoted SYN carried is left in the quote (the sockets match errors
//!   by addresses and ports).
//! * The ICMP or ICMPv6 header: type, code and rest of header mapped by [`map_to_v6`] and
//!   [`map_to_v4`]; the checksum computed in full (the message is rebuilt, and was
//!   verified on receipt).
//! * Length: an ICMPv6 error stays within the IPv6 minimum MTU (RFC 4443 §2.4 (c), the
//!   quote cut to [`icmp6_err::MAX_QUOTE`] with its header); an ICMPv4 error within 576
//!   bytes (RFC 1812 §4.3.2.3).
//!
//! # Type and code mapping
//!
//! ICMPv4 → ICMPv6 (RFC 7915 §4.2): destination unreachable codes 0, 1, 5-8, 11, 12 →
//! destination unreachable 0 (no route); 2 (protocol) → parameter problem 1 pointing at
//! the next header (6); 3 (port) → destination unreachable 4; 4 (fragmentation needed) →
//! packet too big, MTU = min(next-hop MTU + 20, the client link's MTU, the server link's
//! MTU + 20), a next-hop MTU of 0 (a router older than RFC 1191) taken as the RFC 1191
//! plateau below the quoted packet's total length; 9, 10, 13, 15 (prohibited, precedence
//! cutoff) → destination unreachable 1; time exceeded → time exceeded, same code;
//! parameter problem codes 0 and 2 → parameter problem 0, the pointer per RFC 7915's
//! Figure 3. Not translated (RFC 7915 drops them): code 14 and unknown codes, source
//! quench, redirect, parameter problem code 1, a pointer at a field IPv6 does not have.
//!
//! ICMPv6 → ICMPv4 (RFC 7915 §5.2): destination unreachable 0, 2, 3 → destination
//! unreachable 1 (host); 1 → 10 (prohibited); 4 → 3 (port); packet too big →
//! fragmentation needed, MTU = min(MTU − 20, the server link's MTU, the client link's
//! MTU − 20); time exceeded → time exceeded, same code; parameter problem 0 → parameter
//! problem 0 with the pointer per Figure 6; parameter problem 1 → destination unreachable
//! 2 (protocol). Not translated: other codes, a pointer at a field IPv4 does not have.
//!
//! The IPv6 minimum MTU is not imposed on the packet too big: RFC 8021 and RFC 7915 keep
//! the translated value, and a client told less than 1280 sends 1280 (RFC 8200 §5).

use std::net::Ipv6Addr;

use rvs_drivers::PacketBuf;

use super::icmp6_err::{self, Icmp6ErrView};
use super::icmp_err::{self, ErrorHead, IcmpErrView, ICMP_PARAM_PROBLEM};
use super::nat64::{proto_number, write_ipv4_header, write_ipv6_header, HEADER_SHRINK, IPV4_HEADER_LEN};
use super::{Endpoint, Endpoint6};
use crate::stats::DropReason;
use crate::types::L4Proto;
use crate::view::L3_OFFSET;
use crate::view6::IPV6_HEADER_LEN;
use crate::wire::checksum::{delta16, delta_addr_v6, update_delta};
use crate::wire::icmpv6::{ICMPV6_DEST_UNREACH, ICMPV6_PACKET_TOO_BIG, ICMPV6_PARAM_PROBLEM, ICMPV6_TIME_EXCEEDED};
use crate::wire::{ETHERTYPE_IPV4, ETHERTYPE_IPV6, ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED, ICMP_TIME_EXCEEDED};

/// Length of the Ethernet addresses carried over (the EtherType is rewritten).
const MACS_LEN: usize = 12;
/// ICMP and ICMPv6 header length.
const ICMP_HDR: usize = 8;
/// The longest ICMPv4 error rvs sends (RFC 1812 §4.3.2.3).
const MAX_ERROR4: usize = 576;
/// Offset of the quoted TCP/UDP header in a translated ICMPv6 error.
const L4_IN_V6: usize = L3_OFFSET + IPV6_HEADER_LEN + ICMP_HDR + IPV6_HEADER_LEN;
/// Offset of the quoted TCP/UDP header in a translated ICMPv4 error.
const L4_IN_V4: usize = L3_OFFSET + IPV4_HEADER_LEN + ICMP_HDR + IPV4_HEADER_LEN;
/// The RFC 1191 §7 plateaus, highest first.
const PLATEAUS: [u16; 11] = [65535, 32000, 17914, 8166, 4352, 2002, 1492, 1006, 508, 296, 68];

/// Why an ICMP error about a NAT64 flow was not translated; the buffer is then unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Nat64IcmpError {
    /// RFC 7915 translates no message of this type and code (module docs).
    #[error("ICMP type {icmp_type} code {code} has no translation")]
    Untranslatable {
        /// The received error's type.
        icmp_type: u8,
        /// The received error's code.
        code: u8,
    },
    /// The buffer has too little headroom for the IPv6 headers.
    #[error("no headroom for the ICMPv6 error")]
    NoHeadroom,
    /// The parsed error does not fit the frame (a caller bug).
    #[error("the parsed error does not fit the frame")]
    Mismatch,
}

impl Nat64IcmpError {
    /// The drop reason of a received ICMPv4 error not translated: `icmp_unhandled` for
    /// no translation, `no_mbuf` for no headroom, `icmp_malformed` otherwise.
    pub fn icmp_reason(self) -> DropReason {
        match self {
            Self::Untranslatable { .. } => DropReason::IcmpUnhandled,
            Self::NoHeadroom => DropReason::NoMbuf,
            Self::Mismatch => DropReason::IcmpMalformed,
        }
    }

    /// The drop reason of a received ICMPv6 error not translated: `icmp6_unhandled` for
    /// no translation, `no_mbuf` for no headroom, `icmp6_malformed` otherwise.
    pub fn icmp6_reason(self) -> DropReason {
        match self {
            Self::Untranslatable { .. } => DropReason::Icmp6Unhandled,
            Self::NoHeadroom => DropReason::NoMbuf,
            Self::Mismatch => DropReason::Icmp6Malformed,
        }
    }
}

/// The MTUs of the two links a NAT64 flow crosses, which cap a translated packet too big
/// or fragmentation needed (RFC 7915 §4.2, §5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Nat64Mtus {
    /// The MTU of the port towards the IPv4 server.
    pub v4: u16,
    /// The MTU of the port towards the IPv6 client.
    pub v6: u16,
}

/// An ICMP or ICMPv6 message head: type, code, rest of header.
pub type IcmpMsg = (u8, u8, u32);

/// The ICMPv6 message an ICMPv4 error (`icmp_type`, `code`, its rest of header `rest`)
/// becomes (module docs), `quoted_total` the total length its quoted IPv4 header gives;
/// `None` when it has no translation.
pub fn map_to_v6(icmp_type: u8, code: u8, rest: u32, quoted_total: u16, mtus: Nat64Mtus) -> Option<IcmpMsg> {
    let shrink = HEADER_SHRINK as u32;
    match (icmp_type, code) {
        (ICMP_DEST_UNREACH, 0 | 1 | 5..=8 | 11 | 12) => Some((ICMPV6_DEST_UNREACH, 0, 0)),
        (ICMP_DEST_UNREACH, 2) => Some((ICMPV6_PARAM_PROBLEM, 1, 6)),
        (ICMP_DEST_UNREACH, 3) => Some((ICMPV6_DEST_UNREACH, 4, 0)),
        (ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED) => {
            let next_hop = match rest as u16 {
                0 => PLATEAUS.iter().copied().find(|&p| p < quoted_total).unwrap_or(68),
                m => m,
            };
            let mtu = (u32::from(next_hop) + shrink).min(u32::from(mtus.v6)).min(u32::from(mtus.v4) + shrink);
            Some((ICMPV6_PACKET_TOO_BIG, 0, mtu))
        }
        (ICMP_DEST_UNREACH, 9 | 10 | 13 | 15) => Some((ICMPV6_DEST_UNREACH, 1, 0)),
        (ICMP_TIME_EXCEEDED, _) => Some((ICMPV6_TIME_EXCEEDED, code, 0)),
        (ICMP_PARAM_PROBLEM, 0 | 2) => {
            // RFC 7915 Figure 3: the IPv4 header field → the IPv6 one.
            let pointer = match (rest >> 24) as u8 {
                0 => 0,
                1 => 1,
                2 | 3 => 4,
                8 => 7,
                9 => 6,
                12..=15 => 8,
                16..=19 => 24,
                _ => return None,
            };
            Some((ICMPV6_PARAM_PROBLEM, 0, pointer))
        }
        _ => None,
    }
}

/// The ICMPv4 message an ICMPv6 error (`icmp_type`, `code`, its rest of header `rest`)
/// becomes (module docs); `None` when it has no translation.
pub fn map_to_v4(icmp_type: u8, code: u8, rest: u32, mtus: Nat64Mtus) -> Option<IcmpMsg> {
    let shrink = HEADER_SHRINK as u32;
    match (icmp_type, code) {
        (ICMPV6_DEST_UNREACH, 0 | 2 | 3) => Some((ICMP_DEST_UNREACH, 1, 0)),
        (ICMPV6_DEST_UNREACH, 1) => Some((ICMP_DEST_UNREACH, 10, 0)),
        (ICMPV6_DEST_UNREACH, 4) => Some((ICMP_DEST_UNREACH, 3, 0)),
        (ICMPV6_PACKET_TOO_BIG, _) => {
            let mtu =
                rest.saturating_sub(shrink).min(u32::from(mtus.v4)).min(u32::from(mtus.v6).saturating_sub(shrink));
            Some((ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED, mtu))
        }
        (ICMPV6_TIME_EXCEEDED, _) => Some((ICMP_TIME_EXCEEDED, code, 0)),
        (ICMPV6_PARAM_PROBLEM, 0) => {
            // RFC 7915 Figure 6: the IPv6 header field → the IPv4 one.
            let pointer: u32 = match rest {
                0 => 0,
                1 => 1,
                4 | 5 => 2,
                6 => 9,
                7 => 8,
                8..=23 => 12,
                24..=39 => 16,
                _ => return None,
            };
            Some((ICMP_PARAM_PROBLEM, 0, pointer << 24))
        }
        (ICMPV6_PARAM_PROBLEM, 1) => Some((ICMP_DEST_UNREACH, 2, 0)),
        _ => None,
    }
}

fn rd16(d: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([d[at], d[at + 1]])
}

fn rd32(d: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([d[at], d[at + 1], d[at + 2], d[at + 3]])
}

/// Rewrites the quoted TCP/UDP bytes `seg` (at least the 4 of the ports) of a packet
/// from `old_src` to `old_dst` as one from `src` to `dst`: the ports, and the checksum
/// when quoted, incrementally (module docs).
fn rewrite_quoted_l4(seg: &mut [u8], proto: L4Proto, old: (Ipv6Addr, Ipv6Addr), src: Endpoint6, dst: Endpoint6) {
    let c_at = match proto {
        L4Proto::Udp if seg.len() >= 8 => Some(6),
        L4Proto::Tcp if seg.len() >= 18 => Some(16),
        _ => None,
    };
    if let Some(at) = c_at {
        let old_csum = rd16(seg, at);
        if !(proto == L4Proto::Udp && old_csum == 0) {
            let delta = delta_addr_v6(old.0, src.addr)
                + delta_addr_v6(old.1, dst.addr)
                + delta16(rd16(seg, 0), src.port)
                + delta16(rd16(seg, 2), dst.port);
            let mut c = update_delta(old_csum, delta);
            if proto == L4Proto::Udp && c == 0 {
                c = 0xffff;
            }
            seg[at..at + 2].copy_from_slice(&c.to_be_bytes());
        }
    }
    seg[0..2].copy_from_slice(&src.port.to_be_bytes());
    seg[2..4].copy_from_slice(&dst.port.to_be_bytes());
}

/// Translates the ICMPv4 error in `buf` (parsed into `err`, its TTL already decremented)
/// about the NAT64 packet `L:lp → RS:rp` into an ICMPv6 error from `vip` to `client`
/// about `client → vip` (module docs).
///
/// # Errors
///
/// [`Nat64IcmpError`]; the buffer is then unchanged.
pub fn v4_err_to_v6<B: PacketBuf>(
    buf: &mut B,
    err: &IcmpErrView,
    vip: Endpoint6,
    client: Endpoint6,
    mtus: Nat64Mtus,
) -> Result<(), Nat64IcmpError> {
    let (icmp_at, quote_at) = err.icmp_and_quote();
    let (l4_at, l4_len) = err.quoted_l4();
    let emb = *err.embedded();
    let frame = buf.data();
    let Some(proto) = L4Proto::from_ipproto(emb.proto) else { return Err(Nat64IcmpError::Mismatch) };
    if frame.len() < err.ip_end() || l4_len < 4 || l4_at < quote_at + IPV4_HEADER_LEN {
        return Err(Nat64IcmpError::Mismatch);
    }
    let q = &frame[quote_at..l4_at];
    let (q_tos, q_total, q_ttl) = (q[1], rd16(q, 2), q[8]);
    let rest = rd32(frame, icmp_at + 4);
    let msg = map_to_v6(emb.icmp_type, emb.icmp_code, rest, q_total, mtus)
        .ok_or(Nat64IcmpError::Untranslatable { icmp_type: emb.icmp_type, code: emb.icmp_code })?;
    let (tos, hop_limit) = (frame[L3_OFFSET + 1], frame[L3_OFFSET + 8]);
    let mut macs = [0u8; MACS_LEN];
    macs.copy_from_slice(&frame[..MACS_LEN]);
    // The quoted packet's payload, as it was sent.
    let q_payload = q_total.saturating_sub((l4_at - quote_at) as u16);
    let quote_l4 = l4_len.min(icmp6_err::MAX_QUOTE - IPV6_HEADER_LEN);
    let grow = L4_IN_V6.saturating_sub(l4_at);
    if grow > buf.headroom() {
        return Err(Nat64IcmpError::NoHeadroom);
    }
    // Nothing fails from here on: the frame ends with the quote, and starts where the
    // new headers put the quoted TCP/UDP bytes in place.
    let len = buf.len();
    buf.trim(len - (l4_at + quote_l4));
    if grow > 0 {
        buf.prepend(grow);
    } else {
        buf.adj(l4_at - L4_IN_V6);
    }
    let frame = buf.data_mut();
    frame[..MACS_LEN].copy_from_slice(&macs);
    frame[MACS_LEN..L3_OFFSET].copy_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
    let old = (emb.src.addr.to_ipv6_mapped(), emb.dst.addr.to_ipv6_mapped());
    rewrite_quoted_l4(&mut frame[L4_IN_V6..], proto, old, client, vip);
    let q6 = L4_IN_V6 - IPV6_HEADER_LEN;
    write_ipv6_header(&mut frame[q6..L4_IN_V6], q_tos, q_payload, emb.proto, q_ttl, client.addr, vip.addr);
    icmp6_err::write_error_head(frame, IPV6_HEADER_LEN + quote_l4, vip.addr, client.addr, msg);
    // Neither is covered by the ICMPv6 checksum.
    frame[L3_OFFSET] = 0x60 | (tos >> 4);
    frame[L3_OFFSET + 1] = tos << 4;
    frame[L3_OFFSET + 7] = hop_limit;
    Ok(())
}

/// Translates the ICMPv6 error in `buf` (parsed into `err`, not tunnelled, its hop limit
/// already decremented) about the NAT64 reply `VIP:vp → C:cp` into an ICMPv4 error from
/// `local` to `server` about `server → local` (module docs).
///
/// # Errors
///
/// [`Nat64IcmpError`]; the buffer is then unchanged.
pub fn v6_err_to_v4<B: PacketBuf>(
    buf: &mut B,
    err: &Icmp6ErrView,
    server: Endpoint,
    local: Endpoint,
    mtus: Nat64Mtus,
) -> Result<(), Nat64IcmpError> {
    let (icmp_at, quote_at) = err.icmp_and_quote();
    let (l4_at, l4_len) = err.quoted_l4();
    let emb = *err.embedded();
    let frame = buf.data();
    if err.tunnelled() || frame.len() < err.ip_end() || l4_len < 4 || l4_at < quote_at + IPV6_HEADER_LEN {
        return Err(Nat64IcmpError::Mismatch);
    }
    let rest = rd32(frame, icmp_at + 4);
    let msg = map_to_v4(emb.icmp_type, emb.icmp_code, rest, mtus)
        .ok_or(Nat64IcmpError::Untranslatable { icmp_type: emb.icmp_type, code: emb.icmp_code })?;
    let q = &frame[quote_at..quote_at + IPV6_HEADER_LEN];
    let (q_tc, q_payload, q_hop_limit) = ((q[0] << 4) | (q[1] >> 4), usize::from(rd16(q, 4)), q[7]);
    // The quoted packet's IPv4 length: its payload less the extension headers.
    let ext = l4_at - quote_at - IPV6_HEADER_LEN;
    let q_total = (q_payload.saturating_sub(ext) + IPV4_HEADER_LEN).min(usize::from(u16::MAX)) as u16;
    let outer = &frame[L3_OFFSET..L3_OFFSET + IPV6_HEADER_LEN];
    let (tc, hop_limit) = ((outer[0] << 4) | (outer[1] >> 4), outer[7]);
    let mut macs = [0u8; MACS_LEN];
    macs.copy_from_slice(&frame[..MACS_LEN]);
    let quote_l4 = l4_len.min(MAX_ERROR4 - (L4_IN_V4 - L3_OFFSET));
    // The IPv6 error's headers are at least 88 bytes, the IPv4 error's 48: the frame
    // shrinks at its front.
    let len = buf.len();
    buf.trim(len - (l4_at + quote_l4));
    buf.adj(l4_at - L4_IN_V4);
    let frame = buf.data_mut();
    frame[..MACS_LEN].copy_from_slice(&macs);
    frame[MACS_LEN..L3_OFFSET].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
    let (server6, local6) = (
        Endpoint6::new(server.addr.to_ipv6_mapped(), server.port),
        Endpoint6::new(local.addr.to_ipv6_mapped(), local.port),
    );
    rewrite_quoted_l4(&mut frame[L4_IN_V4..], emb.proto, (emb.src.addr, emb.dst.addr), server6, local6);
    let q4 = L4_IN_V4 - IPV4_HEADER_LEN;
    let proto = proto_number(emb.proto);
    write_ipv4_header(&mut frame[q4..L4_IN_V4], q_tc, q_total, None, q_hop_limit, proto, server.addr, local.addr);
    let head = ErrorHead { from: local.addr, to: server.addr, tos: tc, ident: 0, dont_frag: true, ttl: hop_limit };
    icmp_err::write_error_head(frame, IPV4_HEADER_LEN + quote_l4, &head, msg);
    Ok(())
}

#[cfg(test)]
mod tests {
    //! The RFC 7915 tables, and both translations checked by the other family's parser
    //! (which verifies the checksum); the golden frames are in `tests/ipv6_nat64.rs`.
    use super::*;
    use crate::wire::checksum::{finish, sum};
    use rvs_drivers::mem::MemBuf;
    use std::net::Ipv4Addr;

    const MTUS: Nat64Mtus = Nat64Mtus { v4: 1500, v6: 1500 };

    #[test]
    fn icmpv4_to_icmpv6_table() {
        let cases: [((u8, u8, u32), Option<IcmpMsg>); 14] = [
            ((3, 0, 0), Some((1, 0, 0))),
            ((3, 1, 0), Some((1, 0, 0))),
            ((3, 2, 0), Some((4, 1, 6))),
            ((3, 3, 0), Some((1, 4, 0))),
            ((3, 4, 1400), Some((2, 0, 1420))),
            ((3, 9, 0), Some((1, 1, 0))),
            ((3, 13, 0), Some((1, 1, 0))),
            ((3, 14, 0), None),
            ((4, 0, 0), None),
            ((5, 1, 0), None),
            ((11, 1, 0), Some((3, 1, 0))),
            ((12, 0, 9 << 24), Some((4, 0, 6))),
            ((12, 0, 4 << 24), None),
            ((12, 1, 0), None),
        ];
        for ((t, c, rest), want) in cases {
            assert_eq!(map_to_v6(t, c, rest, 1500, MTUS), want, "ICMP {t}/{c}");
        }
        // Capped by either link.
        assert_eq!(map_to_v6(3, 4, 1500, 1500, Nat64Mtus { v4: 1400, v6: 1500 }), Some((2, 0, 1420)));
        assert_eq!(map_to_v6(3, 4, 1500, 1500, Nat64Mtus { v4: 1500, v6: 1280 }), Some((2, 0, 1280)));
        // No next-hop MTU: the plateau below the quoted length (1492 + 20, capped by
        // the client link's 1500 unless it is larger).
        assert_eq!(map_to_v6(3, 4, 0, 1500, MTUS), Some((2, 0, 1500)));
        assert_eq!(map_to_v6(3, 4, 0, 1500, Nat64Mtus { v4: 9000, v6: 9000 }), Some((2, 0, 1512)));
        assert_eq!(map_to_v6(3, 4, 0, 40, MTUS), Some((2, 0, 88)));
    }

    #[test]
    fn icmpv6_to_icmpv4_table() {
        let cases: [((u8, u8, u32), Option<IcmpMsg>); 11] = [
            ((1, 0, 0), Some((3, 1, 0))),
            ((1, 1, 0), Some((3, 10, 0))),
            ((1, 3, 0), Some((3, 1, 0))),
            ((1, 4, 0), Some((3, 3, 0))),
            ((1, 5, 0), None),
            ((2, 0, 1280), Some((3, 4, 1260))),
            ((3, 0, 0), Some((11, 0, 0))),
            ((4, 0, 7), Some((12, 0, 8 << 24))),
            ((4, 0, 30), Some((12, 0, 16 << 24))),
            ((4, 0, 2), None),
            ((4, 1, 0), Some((3, 2, 0))),
        ];
        for ((t, c, rest), want) in cases {
            assert_eq!(map_to_v4(t, c, rest, MTUS), want, "ICMPv6 {t}/{c}");
        }
        assert_eq!(map_to_v4(2, 0, 9000, Nat64Mtus { v4: 1400, v6: 1500 }), Some((3, 4, 1400)));
        assert_eq!(map_to_v4(2, 0, 9000, Nat64Mtus { v4: 1500, v6: 1400 }), Some((3, 4, 1380)));
    }

    fn client() -> Endpoint6 {
        Endpoint6::new("2001:db8:10::2".parse().unwrap(), 40000)
    }
    fn vip() -> Endpoint6 {
        Endpoint6::new("2001:db8:10::100".parse().unwrap(), 53)
    }
    fn local() -> Endpoint {
        Endpoint::new(Ipv4Addr::new(10, 20, 0, 200), 1025)
    }
    fn server() -> Endpoint {
        Endpoint::new(Ipv4Addr::new(10, 20, 0, 11), 5353)
    }

    /// An ICMPv4 port unreachable from the server to the local address quoting the UDP
    /// datagram `local → server` (a header and 8 bytes).
    fn err4() -> Vec<u8> {
        let mut q = vec![0x45, 0, 0, 33, 0, 0, 0x40, 0, 63, 17, 0, 0];
        q.extend_from_slice(&local().addr.octets());
        q.extend_from_slice(&server().addr.octets());
        let c = finish(sum(&q));
        q[10..12].copy_from_slice(&c.to_be_bytes());
        q.extend_from_slice(&[0x04, 0x01, 0x14, 0xe9, 0, 13, 0x12, 0x34]);
        let mut m = vec![3, 3, 0, 0, 0, 0, 0, 0];
        m.extend_from_slice(&q);
        let c = finish(sum(&m));
        m[2..4].copy_from_slice(&c.to_be_bytes());
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x08, 0x00, 0x45, 0, 0, (20 + m.len()) as u8, 0, 0, 0, 0, 63, 1, 0, 0]);
        f.extend_from_slice(&server().addr.octets());
        f.extend_from_slice(&local().addr.octets());
        let c = finish(sum(&f[14..34]));
        f[24..26].copy_from_slice(&c.to_be_bytes());
        f.extend_from_slice(&m);
        f
    }

    #[test]
    fn both_translations_parse_in_the_other_family() {
        let f = err4();
        let err = icmp_err::parse(&f).unwrap();
        let mut b = MemBuf::from_frame(&f);
        v4_err_to_v6(&mut b, &err, vip(), client(), MTUS).unwrap();
        assert_eq!(b.len(), f.len() + 40);
        let e6 = icmp6_err::parse(b.data()).unwrap();
        let emb = *e6.embedded();
        assert_eq!((emb.icmp_type, emb.icmp_code, emb.src, emb.dst), (1, 4, client(), vip()));
        // And back: the same error as if from the client about `vip → client`, which
        // becomes the server's own datagram `server → local`.
        let mut b = MemBuf::from_frame(&f);
        v4_err_to_v6(&mut b, &err, client(), vip(), MTUS).unwrap();
        let e6 = icmp6_err::parse(b.data()).unwrap();
        v6_err_to_v4(&mut b, &e6, server(), local(), MTUS).unwrap();
        let e4 = icmp_err::parse(b.data()).unwrap();
        let emb = *e4.embedded();
        assert_eq!((emb.icmp_type, emb.icmp_code, emb.src, emb.dst), (3, 3, server(), local()));
        assert_eq!(finish(sum(&b.data()[14..34])), 0);
    }

    /// `f` with its outer ICMP checksum made right again (so that mutated frames get
    /// past the parse and into the translation).
    fn fix_icmp_checksum(f: &mut [u8]) {
        f[36..38].copy_from_slice(&[0, 0]);
        let c = finish(sum(&f[34..]));
        f[36..38].copy_from_slice(&c.to_be_bytes());
    }

    proptest::proptest! {
        /// Whatever the error's bytes after its outer header (type, code, rest of header,
        /// the quote, its length), a parsed error translates without a panic, and what
        /// comes out parses as an error of the other family about the flow; then back.
        #[test]
        fn any_parsed_error_translates_or_is_refused(
            edits in proptest::collection::vec((34usize..70, proptest::prelude::any::<u8>()), 0..6),
            cut in 0usize..12,
            mtus in (68u16..9000, 1280u16..9000),
        ) {
            let mut f = err4();
            for (at, v) in edits {
                f[at] = v;
            }
            let keep = f.len() - cut;
            f.truncate(keep);
            let total = (keep - 14) as u16;
            f[16..18].copy_from_slice(&total.to_be_bytes());
            f[24..26].copy_from_slice(&[0, 0]);
            let c = finish(sum(&f[14..34]));
            f[24..26].copy_from_slice(&c.to_be_bytes());
            fix_icmp_checksum(&mut f);
            let Ok(err) = icmp_err::parse(&f) else { return Ok(()) };
            let mtus = Nat64Mtus { v4: mtus.0, v6: mtus.1 };
            let mut b = MemBuf::from_frame(&f);
            match v4_err_to_v6(&mut b, &err, client(), vip(), mtus) {
                Err(_) => proptest::prop_assert_eq!(b.data(), &f[..]),
                Ok(()) => {
                    let e6 = icmp6_err::parse(b.data()).expect("a translated error parses");
                    proptest::prop_assert_eq!((e6.embedded().src, e6.embedded().dst), (vip(), client()));
                    let _ = v6_err_to_v4(&mut b, &e6, server(), local(), mtus);
                }
            }
        }
    }

    #[test]
    fn refusals_leave_the_buffer_unchanged() {
        let mut f = err4();
        // Source quench: no translation.
        f[34] = 4;
        f[34 + 2..34 + 4].copy_from_slice(&[0, 0]);
        let c = finish(sum(&f[34..]));
        f[36..38].copy_from_slice(&c.to_be_bytes());
        let err = icmp_err::parse(&f).unwrap();
        let mut b = MemBuf::from_frame(&f);
        let r = v4_err_to_v6(&mut b, &err, vip(), client(), MTUS);
        assert_eq!(r, Err(Nat64IcmpError::Untranslatable { icmp_type: 4, code: 3 }));
        assert_eq!(r.unwrap_err().icmp_reason(), DropReason::IcmpUnhandled);
        assert_eq!(b.data(), &f[..]);
        // No headroom for the 40 more bytes.
        let f = err4();
        let err = icmp_err::parse(&f).unwrap();
        let mut b = MemBuf::with_room(10, 256);
        b.append(f.len()).unwrap().copy_from_slice(&f);
        assert_eq!(v4_err_to_v6(&mut b, &err, vip(), client(), MTUS), Err(Nat64IcmpError::NoHeadroom));
        assert_eq!(b.data(), &f[..]);
    }
}
