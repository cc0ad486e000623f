//! The segments of the SYN proxy: what rvs reads from the client's SYN and ACK, the
//! segments it builds (the cookie SYN-ACK, the SYN to the server, the ACK that completes
//! the server's handshake, a RST to the client), and the per-packet translation of an
//! established proxied flow.
//!
//! # Contract
//!
//! * Builders work in place on the received frame (no allocation), for either family
//!   (generic over the endpoint type, [`SegEndpoint`]: [`Endpoint`] for IPv4,
//!   [`Endpoint6`] for IPv6): the Ethernet header stays (the neighbour layer sets the
//!   MACs), the EtherType becomes the segment's family's (a NAT64 flow's segments change
//!   family: the client's IPv6 ACK becomes the server's IPv4 SYN, the server's IPv4
//!   SYN-ACK the client's IPv6 window update), a fresh IP header follows — IPv4: 20 bytes, no options, DF, TTL 64; IPv6: 40
//!   bytes, no extension header, traffic class and flow label 0, hop limit 64 (the
//!   segment is rvs's own) — then the TCP header; the payload is dropped, the frame is
//!   resized with `PacketBuf::set_len`, and the checksums are computed in full (the
//!   segments are at most 94 bytes). They return the view ([`L4View`] or [`L4View6`])
//!   of the frame they built, or `None` (buffer unchanged in length, nothing to send)
//!   when the buffer cannot hold it.
//! * Translation ([`translate_to_server`], [`translate_to_client`]) rewrites sequence
//!   numbers, SACK blocks, timestamps and the window in place with incremental checksum
//!   updates, whatever the options' alignment.
//! * Options are read with the wire module's iterator; a malformed option list stops the
//!   walk (what was read so far counts; the segment is not refused for it).

use rvs_drivers::PacketBuf;

use super::cookie::TsOptions;
use crate::view::{L4View, Layout, L3_OFFSET};
use crate::view6::{L4View6, Layout6, IPV6_HEADER_LEN};
use crate::wire::{checksum, Ipv4Packet, TcpFlags, TcpOption, TcpPacket, ETHERTYPE_IPV4, ETHERTYPE_IPV6, IPPROTO_TCP};
use crate::xmit::{Endpoint, Endpoint6};

/// IPv4 header length of the segments rvs builds (no options).
const IP_LEN: usize = 20;
/// TCP header length without options.
const TCP_LEN: usize = 20;
/// TTL of the segments rvs builds (Linux's default).
pub const OWN_TTL: u8 = 64;

/// What rvs needs from a client's SYN (or, for the timestamp, from any segment).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SegInfo {
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgement number.
    pub ack: u32,
    /// Flags.
    pub flags: TcpFlags,
    /// Window field (unscaled, as on the wire).
    pub window: u16,
    /// MSS option.
    pub mss: Option<u16>,
    /// Window-scale option.
    pub wscale: Option<u8>,
    /// SACK-permitted option.
    pub sack_ok: bool,
    /// Timestamps option: (TSval, TSecr).
    pub ts: Option<(u32, u32)>,
    /// Payload bytes.
    pub payload_len: usize,
}

/// Reads the fields of the TCP segment of a frame parsed into `layout`.
pub fn read(frame: &[u8], layout: &Layout) -> SegInfo {
    read_segment(&frame[layout.l4_offset()..layout.ip_end()])
}

/// [`read`] for an IPv6 frame parsed into `layout`.
pub fn read6(frame: &[u8], layout: &Layout6) -> SegInfo {
    read_segment(&frame[layout.l4_offset()..layout.ip_end()])
}

/// Reads the fields of `seg`, a TCP header (checked by the view) and its payload.
#[inline]
fn read_segment(seg: &[u8]) -> SegInfo {
    let tcp = TcpPacket::new_unchecked(seg);
    let mut info = SegInfo {
        seq: tcp.seq(),
        ack: tcp.ack(),
        flags: tcp.flags(),
        window: tcp.window(),
        payload_len: seg.len().saturating_sub(tcp.header_len()),
        ..SegInfo::default()
    };
    for opt in tcp.options_iter() {
        match opt {
            Ok(TcpOption::Mss(m)) => info.mss = Some(m),
            Ok(TcpOption::WindowScale(w)) => info.wscale = Some(w),
            Ok(TcpOption::SackPermitted) => info.sack_ok = true,
            Ok(TcpOption::Timestamps { tsval, tsecr }) => info.ts = Some((tsval, tsecr)),
            Ok(_) => {}
            Err(_) => break,
        }
    }
    info
}

/// The option bytes of a SYN or SYN-ACK in Linux's order and padding: MSS; then
/// SACK-permitted and timestamps (`SACK_PERM, TS` or `NOP, NOP, TS`, or without
/// timestamps `NOP, NOP, SACK_PERM`); then `NOP, WSCALE`. At most 20 bytes.
pub fn syn_options(out: &mut [u8; 20], mss: u16, sack: bool, ts: Option<(u32, u32)>, wscale: Option<u8>) -> usize {
    let mut n = 0;
    let mut put = |b: &[u8]| {
        out[n..n + b.len()].copy_from_slice(b);
        n += b.len();
    };
    let m = mss.to_be_bytes();
    put(&[2, 4, m[0], m[1]]);
    match (ts, sack) {
        (Some((v, e)), _) => {
            if sack {
                put(&[4, 2]);
            } else {
                put(&[1, 1]);
            }
            let (v, e) = (v.to_be_bytes(), e.to_be_bytes());
            put(&[8, 10, v[0], v[1], v[2], v[3], e[0], e[1], e[2], e[3]]);
        }
        (None, true) => put(&[1, 1, 4, 2]),
        (None, false) => {}
    }
    if let Some(w) = wscale {
        put(&[1, 3, 3, w]);
    }
    n
}

/// The options of a segment with only timestamps (`NOP, NOP, TS`), or none.
fn ts_only(out: &mut [u8; 20], ts: Option<(u32, u32)>) -> usize {
    let Some((v, e)) = ts else { return 0 };
    let (v, e) = (v.to_be_bytes(), e.to_be_bytes());
    out[..12].copy_from_slice(&[1, 1, 8, 10, v[0], v[1], v[2], v[3], e[0], e[1], e[2], e[3]]);
    12
}

/// The fields of a TCP segment rvs builds, between endpoints `E` ([`Endpoint`] for
/// IPv4, [`Endpoint6`] for IPv6).
#[derive(Debug, Clone, Copy)]
pub struct Emit<'a, E = Endpoint> {
    /// Source address and port.
    pub src: E,
    /// Destination address and port.
    pub dst: E,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgement number.
    pub ack: u32,
    /// Flags.
    pub flags: TcpFlags,
    /// Window field.
    pub window: u16,
    /// Option bytes (a multiple of 4, at most 40).
    pub options: &'a [u8],
}

/// An address family's endpoint as the builders take it: what a built segment's frame
/// looks like and the view of it they return.
pub trait SegEndpoint: Copy {
    /// The view of a built frame.
    type View;
    /// Replaces the IP packet of `buf` with rvs's own header and the TCP segment `e`
    /// ([`emit`], [`emit6`]).
    fn emit<B: PacketBuf>(buf: &mut B, e: &Emit<'_, Self>) -> Option<Self::View>;
}

impl SegEndpoint for Endpoint {
    type View = L4View;
    #[inline]
    fn emit<B: PacketBuf>(buf: &mut B, e: &Emit<'_, Self>) -> Option<L4View> {
        emit(buf, e)
    }
}

impl SegEndpoint for Endpoint6 {
    type View = L4View6;
    #[inline]
    fn emit<B: PacketBuf>(buf: &mut B, e: &Emit<'_, Self>) -> Option<L4View6> {
        emit6(buf, e)
    }
}

/// Replaces the packet of `buf` (an Ethernet II frame of either family; the EtherType
/// becomes IPv6's) with a 40-byte IPv6 header
/// (no extension header, traffic class and flow label 0, hop limit [`OWN_TTL`]) and the
/// TCP segment `e` (no payload). `None` when the buffer cannot be resized.
pub fn emit6<B: PacketBuf>(buf: &mut B, e: &Emit<'_, Endpoint6>) -> Option<L4View6> {
    let tcp_len = TCP_LEN + e.options.len();
    let total = IPV6_HEADER_LEN + tcp_len;
    if !buf.set_len(L3_OFFSET + total) {
        return None;
    }
    let frame = buf.data_mut();
    frame[L3_OFFSET - 2..L3_OFFSET].copy_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
    {
        let ip = &mut frame[L3_OFFSET..L3_OFFSET + IPV6_HEADER_LEN];
        ip[..4].copy_from_slice(&0x6000_0000u32.to_be_bytes());
        ip[4..6].copy_from_slice(&(tcp_len as u16).to_be_bytes());
        ip[6] = IPPROTO_TCP;
        ip[7] = OWN_TTL;
        ip[8..24].copy_from_slice(&e.src.addr.octets());
        ip[24..40].copy_from_slice(&e.dst.addr.octets());
    }
    let seg = &mut frame[L3_OFFSET + IPV6_HEADER_LEN..L3_OFFSET + total];
    seg[TCP_LEN..].copy_from_slice(e.options);
    let mut tcp = TcpPacket::new_unchecked(&mut *seg);
    tcp.set_src_port(e.src.port);
    tcp.set_dst_port(e.dst.port);
    tcp.set_seq(e.seq);
    tcp.set_ack(e.ack);
    tcp.set_header_len(tcp_len);
    tcp.set_flags(e.flags);
    tcp.set_window(e.window);
    tcp.set_urgent_ptr(0);
    tcp.set_checksum(0);
    let sum = checksum::pseudo_header_v6(e.src.addr, e.dst.addr, IPPROTO_TCP, tcp_len as u32) + checksum::sum(seg);
    TcpPacket::new_unchecked(seg).set_checksum(checksum::finish(sum));
    L4View6::parse(buf.data()).ok()
}

/// Replaces the packet of `buf` (an Ethernet II frame of either family; the EtherType
/// becomes IPv4's) with the option-less IPv4 header and TCP segment `e` (no payload). `None` when the buffer cannot be resized.
pub fn emit<B: PacketBuf>(buf: &mut B, e: &Emit<'_>) -> Option<L4View> {
    let tcp_len = TCP_LEN + e.options.len();
    let total = IP_LEN + tcp_len;
    if !buf.set_len(L3_OFFSET + total) {
        return None;
    }
    let frame = buf.data_mut();
    frame[L3_OFFSET - 2..L3_OFFSET].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
    {
        let mut ip = Ipv4Packet::new_unchecked(&mut frame[L3_OFFSET..L3_OFFSET + IP_LEN]);
        ip.set_version(4);
        ip.set_header_len(IP_LEN);
        ip.set_tos(0);
        ip.set_total_len(total as u16);
        ip.set_ident(0);
        ip.set_dont_frag(true);
        ip.set_more_frags(false);
        ip.set_frag_offset(0);
        ip.set_ttl(OWN_TTL);
        ip.set_protocol(IPPROTO_TCP);
        ip.set_src_addr(e.src.addr);
        ip.set_dst_addr(e.dst.addr);
        ip.fill_checksum();
    }
    let seg = &mut frame[L3_OFFSET + IP_LEN..L3_OFFSET + total];
    seg[TCP_LEN..].copy_from_slice(e.options);
    let mut tcp = TcpPacket::new_unchecked(seg);
    tcp.set_src_port(e.src.port);
    tcp.set_dst_port(e.dst.port);
    tcp.set_seq(e.seq);
    tcp.set_ack(e.ack);
    tcp.set_header_len(tcp_len);
    tcp.set_flags(e.flags);
    tcp.set_window(e.window);
    tcp.set_urgent_ptr(0);
    tcp.fill_checksum(e.src.addr, e.dst.addr);
    L4View::parse(buf.data()).ok()
}

/// What the cookie SYN-ACK advertises: rvs's MSS and window scale, chosen once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Advertised {
    /// The MSS rvs advertises to clients.
    pub mss: u16,
    /// The window-scale shift rvs advertises to clients that offer scaling; the server's
    /// windows are rescaled to it ([`WindowRewrite`]).
    pub wscale: u8,
    /// The window field of the SYN-ACK.
    pub window: u16,
}

/// Turns the client's SYN (`syn`, read from this frame) to `vip` into the cookie SYN-ACK
/// with initial sequence number `cookie` and, when the SYN had timestamps, TSval
/// `tsval` (the options encoded by [`TsOptions::tsval`]).
pub fn write_cookie_syn_ack<B: PacketBuf, E: SegEndpoint>(
    buf: &mut B,
    client: E,
    vip: E,
    syn: &SegInfo,
    cookie: u32,
    tsval: u32,
    adv: &Advertised,
) -> Option<E::View> {
    let mut opts = [0u8; 20];
    let ts = syn.ts.map(|(client_ts, _)| (tsval, client_ts));
    // Without timestamps there is nowhere to keep SACK and window scale: neither is
    // offered (as Linux's cookies).
    let (sack, ws) = match ts {
        Some(_) => (syn.sack_ok, syn.wscale.map(|_| adv.wscale)),
        None => (false, None),
    };
    let n = syn_options(&mut opts, adv.mss, sack, ts, ws);
    let ecn = ts.is_some() && syn_asks_ecn(syn.flags);
    let mut flags = TcpFlags::SYN | TcpFlags::ACK;
    if ecn {
        flags |= TcpFlags::ECE;
    }
    let e = Emit {
        src: vip,
        dst: client,
        seq: cookie,
        ack: syn.seq.wrapping_add(1),
        flags,
        window: adv.window,
        options: &opts[..n],
    };
    E::emit(buf, &e)
}

/// Whether a SYN asks for ECN (RFC 3168: ECE and CWR both set).
pub fn syn_asks_ecn(flags: TcpFlags) -> bool {
    flags.ece() && flags.cwr()
}

/// What the SYN to the server carries: the client's own parameters, recovered from the
/// cookie and the echoed timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerSyn {
    /// The client's initial sequence number.
    pub client_isn: u32,
    /// The client's MSS (from the cookie's table).
    pub mss: u16,
    /// The client's options from the echoed timestamp; `None` without timestamps.
    pub ts_opts: Option<TsOptions>,
    /// The client's current TSval (its ACK's), when timestamps are on.
    pub tsval: Option<u32>,
    /// The window the client advertised, unscaled to the SYN's 16 bits.
    pub window: u16,
}

/// Turns the client's ACK into the SYN to the server, from `from` (the client for NAT,
/// the local address for Full-NAT) to `server`.
pub fn write_server_syn<B: PacketBuf, E: SegEndpoint>(
    buf: &mut B,
    from: E,
    server: E,
    s: &ServerSyn,
) -> Option<E::View> {
    let mut opts = [0u8; 20];
    let o = s.ts_opts.unwrap_or_default();
    let ts = s.tsval.filter(|_| s.ts_opts.is_some()).map(|v| (v, 0));
    let n = syn_options(&mut opts, s.mss, o.sack && ts.is_some(), ts, o.wscale.filter(|_| ts.is_some()));
    let mut flags = TcpFlags::SYN;
    if o.ecn && ts.is_some() {
        flags |= TcpFlags::ECE | TcpFlags::CWR;
    }
    let e = Emit { src: from, dst: server, seq: s.client_isn, ack: 0, flags, window: s.window, options: &opts[..n] };
    E::emit(buf, &e)
}

/// Turns the server's SYN-ACK (`syn_ack`, read from this frame, from `server` to
/// `to_us`) into the ACK that completes its handshake, back to the server: sequence
/// number its acknowledgement, acknowledging its ISN, timestamps echoed, its own window
/// (the client's next segment brings the client's real one; Linux's SYNPROXY target does
/// the same).
pub fn write_server_ack<B: PacketBuf, E: SegEndpoint>(
    buf: &mut B,
    server: E,
    to_us: E,
    syn_ack: &SegInfo,
) -> Option<E::View> {
    let mut opts = [0u8; 20];
    let n = ts_only(&mut opts, syn_ack.ts.map(|(v, e)| (e, v)));
    let e = Emit {
        src: to_us,
        dst: server,
        seq: syn_ack.ack,
        ack: syn_ack.seq.wrapping_add(1),
        flags: TcpFlags::ACK,
        window: syn_ack.window,
        options: &opts[..n],
    };
    E::emit(buf, &e)
}

/// Turns the server's first SYN-ACK (`syn_ack`, read from this frame) into the segment
/// that opens the client's window: an ACK from `vip` to `client` at the cookie's next
/// sequence number `seq`, acknowledging the client's SYN again (`syn_ack.ack`), with the
/// server's window re-expressed in rvs's advertised shift (`ws`; a SYN-ACK's window is
/// never scaled) and, with timestamps, TSval `tsval` (the server's, translated) and the
/// server's TSecr. The cookie SYN-ACK advertised a zero window, so until this segment
/// the client sends nothing but its ACK (see the module docs of `crate::synproxy`).
pub fn write_client_window_update<B: PacketBuf, E: SegEndpoint>(
    buf: &mut B,
    vip: E,
    client: E,
    seq: u32,
    syn_ack: &SegInfo,
    tsval: u32,
    ws: &WindowRewrite,
) -> Option<E::View> {
    let mut opts = [0u8; 20];
    let n = ts_only(&mut opts, syn_ack.ts.map(|(_, e)| (tsval, e)));
    let unscaled = WindowRewrite { server: 0, ..*ws };
    let e = Emit {
        src: vip,
        dst: client,
        seq,
        ack: syn_ack.ack,
        flags: TcpFlags::ACK,
        window: unscaled.to_client(syn_ack.window),
        options: &opts[..n],
    };
    E::emit(buf, &e)
}

/// A RST from `vip` to `client` at sequence number `seq` (the client's next expected
/// byte): what the client gets when the server refuses the proxied connection.
pub fn write_client_rst<B: PacketBuf, E: SegEndpoint>(buf: &mut B, vip: E, client: E, seq: u32) -> Option<E::View> {
    let e = Emit { src: vip, dst: client, seq, ack: 0, flags: TcpFlags::RST, window: 0, options: &[] };
    E::emit(buf, &e)
}

/// How an established proxied flow's windows are rewritten: packed in one byte
/// ([`crate::conn::Conn::synproxy_ws`]).
///
/// The client was told rvs's shift ([`Advertised::wscale`]) in the cookie SYN-ACK; the
/// server chose its own in its SYN-ACK, or declined scaling. So:
/// * server → client: the window the server means (`field << server shift`, shift 0 when
///   it declined) is re-expressed with rvs's shift, rounded up so that a small open
///   window never becomes 0 (at most `2^shift - 1` bytes too generous), capped at 65535;
/// * client → server: when the server declined scaling it reads the client's field
///   unscaled, so the field becomes `field << client shift` (capped at 65535);
/// * when the client offered no scaling nobody scales and nothing is rewritten.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WindowRewrite {
    /// Rewrite at all (the client offered window scaling).
    pub on: bool,
    /// The server's shift (0 when it declined).
    pub server: u8,
    /// Shift the client's windows left by this towards the server (non-zero only when
    /// the server declined).
    pub client: u8,
    /// rvs's advertised shift.
    pub ours: u8,
}

impl WindowRewrite {
    /// The rewrite for a client that offered `client_ws` (None: no scaling) to a server
    /// that answered `server_ws`, rvs having advertised `ours`.
    pub fn new(client_ws: Option<u8>, server_ws: Option<u8>, ours: u8) -> Self {
        match client_ws {
            None => WindowRewrite::default(),
            Some(c) => WindowRewrite {
                on: true,
                server: server_ws.unwrap_or(0).min(14),
                client: if server_ws.is_some() { 0 } else { c.min(14) },
                ours,
            },
        }
    }

    /// Packed in one byte: 0 when off, else the low nibble is the server's shift + 1
    /// (1..=15) and the high nibble the client's shift towards the server (rvs's own
    /// shift is the engine's constant and is not stored).
    pub fn pack(&self) -> u8 {
        if !self.on {
            return 0;
        }
        (self.server + 1).min(15) | (self.client.min(15) << 4)
    }

    /// The rewrite from its packed byte, with rvs's shift `ours`.
    pub fn unpack(b: u8, ours: u8) -> Self {
        if b == 0 {
            return WindowRewrite::default();
        }
        WindowRewrite { on: true, server: (b & 0xf).saturating_sub(1), client: b >> 4, ours }
    }

    /// The server → client window field for the server's field `w`.
    pub fn to_client(&self, w: u16) -> u16 {
        if !self.on || self.server == self.ours {
            return w;
        }
        let bytes = u64::from(w) << self.server;
        let unit = 1u64 << self.ours;
        bytes.div_ceil(unit).min(u64::from(u16::MAX)) as u16
    }

    /// The client → server window field for the client's field `w`.
    pub fn to_server(&self, w: u16) -> u16 {
        if !self.on || self.client == 0 {
            return w;
        }
        (u64::from(w) << self.client).min(u64::from(u16::MAX)) as u16
    }
}

/// The RFC 1624 term of one byte at offset `at` of a segment changing from `old` to
/// `new`: the high byte of its 16-bit word at an even offset, the low byte at an odd one.
#[inline]
fn byte_delta(at: usize, old: u8, new: u8) -> u32 {
    if at.is_multiple_of(2) {
        checksum::delta16(u16::from(old) << 8, u16::from(new) << 8)
    } else {
        checksum::delta16(u16::from(old), u16::from(new))
    }
}

/// Writes `new` at `seg[at..at + 4]` and adds the checksum terms to `acc`.
#[inline]
fn put_u32(seg: &mut [u8], at: usize, new: u32, acc: &mut u32) {
    let n = new.to_be_bytes();
    if at.is_multiple_of(2) {
        let o = u32::from_be_bytes([seg[at], seg[at + 1], seg[at + 2], seg[at + 3]]);
        *acc += checksum::delta16((o >> 16) as u16, (new >> 16) as u16) + checksum::delta16(o as u16, new as u16);
    } else {
        for (i, &b) in n.iter().enumerate() {
            *acc += byte_delta(at + i, seg[at + i], b);
        }
    }
    seg[at..at + 4].copy_from_slice(&n);
}

/// [`put_u32`] for a field at an even offset (the sequence and acknowledgement numbers):
/// two 16-bit words, no byte case; always inlined, so the per-packet translation of a
/// proxied flow does not call the general version for its fixed fields.
#[inline(always)]
fn put_u32_even(seg: &mut [u8], at: usize, new: u32, acc: &mut u32) {
    debug_assert!(at.is_multiple_of(2));
    let o = u32::from_be_bytes([seg[at], seg[at + 1], seg[at + 2], seg[at + 3]]);
    *acc += checksum::delta16((o >> 16) as u16, (new >> 16) as u16) + checksum::delta16(o as u16, new as u16);
    seg[at..at + 4].copy_from_slice(&new.to_be_bytes());
}

/// Offsets (in the segment) of the TSval and of the SACK blocks, if present.
#[inline]
fn option_offsets(seg: &[u8]) -> (Option<usize>, Option<(usize, usize)>) {
    let tcp = TcpPacket::new_unchecked(seg);
    if tcp.header_len() <= TCP_LEN {
        // No options (most data segments without timestamps): nothing to scan.
        return (None, None);
    }
    let mut at = TCP_LEN;
    let (mut ts, mut sack) = (None, None);
    for opt in tcp.options_iter() {
        match opt {
            Ok(o) => {
                match o {
                    TcpOption::Timestamps { .. } => ts = Some(at + 2),
                    TcpOption::Sack(b) => sack = Some((at + 2, b.len())),
                    _ => {}
                }
                at += o.buffer_len();
            }
            Err(_) => break,
        }
    }
    (ts, sack)
}

/// Client → server translation of a segment of an established proxied flow (`seg`: the
/// TCP header and payload): acknowledgement number and SACK edges `+ seq_off` (the
/// client acknowledges in the cookie's sequence space), TSecr `+ ts_off` (it echoes
/// timestamps rvs translated), window per `ws`. Checksum updated incrementally.
pub fn translate_to_server(seg: &mut [u8], seq_off: u32, ts_off: u32, ws: &WindowRewrite) {
    let tcp = TcpPacket::new_unchecked(&*seg);
    let (flags, ack, win) = (tcp.flags(), tcp.ack(), tcp.window());
    let mut acc = 0u32;
    if flags.ack() {
        put_u32_even(seg, 8, ack.wrapping_add(seq_off), &mut acc);
    }
    let new_win = ws.to_server(win);
    if new_win != win {
        acc += checksum::delta16(win, new_win);
        seg[14..16].copy_from_slice(&new_win.to_be_bytes());
    }
    let (ts, sack) = option_offsets(seg);
    if let Some(at) = ts {
        let ecr = u32::from_be_bytes([seg[at + 4], seg[at + 5], seg[at + 6], seg[at + 7]]);
        put_u32(seg, at + 4, ecr.wrapping_add(ts_off), &mut acc);
    }
    if let Some((at, len)) = sack {
        for edge in (at..at + len).step_by(4) {
            let v = u32::from_be_bytes([seg[edge], seg[edge + 1], seg[edge + 2], seg[edge + 3]]);
            put_u32(seg, edge, v.wrapping_add(seq_off), &mut acc);
        }
    }
    let mut tcp = TcpPacket::new_unchecked(seg);
    tcp.update_checksum_delta(acc);
}

/// Server → client translation: sequence number `- seq_off`, TSval `- ts_off`, window per
/// `ws`. The server's SACK blocks and acknowledgements are in the client's own sequence
/// space, which rvs never shifts: untouched.
pub fn translate_to_client(seg: &mut [u8], seq_off: u32, ts_off: u32, ws: &WindowRewrite) {
    let tcp = TcpPacket::new_unchecked(&*seg);
    let (seq, win) = (tcp.seq(), tcp.window());
    let mut acc = 0u32;
    put_u32_even(seg, 4, seq.wrapping_sub(seq_off), &mut acc);
    let new_win = ws.to_client(win);
    if new_win != win {
        acc += checksum::delta16(win, new_win);
        seg[14..16].copy_from_slice(&new_win.to_be_bytes());
    }
    let (ts, _) = option_offsets(seg);
    if let Some(at) = ts {
        let val = u32::from_be_bytes([seg[at], seg[at + 1], seg[at + 2], seg[at + 3]]);
        put_u32(seg, at, val.wrapping_sub(ts_off), &mut acc);
    }
    let mut tcp = TcpPacket::new_unchecked(seg);
    tcp.update_checksum_delta(acc);
}
