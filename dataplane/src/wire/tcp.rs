//! TCP segments (RFC 9293) and their options.
//!
//! The view covers the whole segment: build it over
//! [`Ipv4Packet::payload`](super::Ipv4Packet::payload), because the checksum covers the
//! header, the data and an IPv4 pseudo-header whose length is the segment's length.
//!
//! `new_checked` validates the data offset only; the option list is parsed lazily by
//! [`TcpOptionIter`], which reports a malformed list as [`WireError::BadTcpOption`]
//! instead of panicking. rvs forwards options it does not understand untouched.
//!
//! NAT rewrites change ports (in the header) and addresses (in the pseudo-header only):
//! [`TcpPacket::set_src_port_incremental`], [`TcpPacket::set_dst_port_incremental`] and
//! [`TcpPacket::update_checksum_for_addr`] keep the checksum valid without summing the
//! segment again (RFC 1624).

use core::fmt;
use core::ops::{BitAnd, BitOr, BitOrAssign};
use std::net::Ipv4Addr;

use super::checksum;
use super::ipv4::IPPROTO_TCP;
use super::{Result, WireError};

mod field {
    use core::ops::Range;

    pub const SRC_PORT: Range<usize> = 0..2;
    pub const DST_PORT: Range<usize> = 2..4;
    pub const SEQ: Range<usize> = 4..8;
    pub const ACK: Range<usize> = 8..12;
    /// Data offset in the high nibble (the low nibble is reserved + NS).
    pub const DATA_OFF: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WINDOW: Range<usize> = 14..16;
    pub const CHECKSUM: Range<usize> = 16..18;
    pub const URGENT: Range<usize> = 18..20;
    /// Options start here; the header ends at `header_len()`.
    pub const OPTIONS: usize = 20;
}

/// The eight TCP flag bits (byte 13 of the header).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TcpFlags(u8);

impl TcpFlags {
    /// FIN: no more data from the sender.
    pub const FIN: TcpFlags = TcpFlags(0x01);
    /// SYN: synchronize sequence numbers.
    pub const SYN: TcpFlags = TcpFlags(0x02);
    /// RST: reset the connection.
    pub const RST: TcpFlags = TcpFlags(0x04);
    /// PSH: push.
    pub const PSH: TcpFlags = TcpFlags(0x08);
    /// ACK: the acknowledgment field is significant.
    pub const ACK: TcpFlags = TcpFlags(0x10);
    /// URG: the urgent pointer is significant.
    pub const URG: TcpFlags = TcpFlags(0x20);
    /// ECE: ECN echo.
    pub const ECE: TcpFlags = TcpFlags(0x40);
    /// CWR: congestion window reduced.
    pub const CWR: TcpFlags = TcpFlags(0x80);
    /// No flag set.
    pub const NONE: TcpFlags = TcpFlags(0);

    /// From the raw byte.
    pub const fn from_bits(bits: u8) -> Self {
        TcpFlags(bits)
    }

    /// The raw byte.
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// Whether every flag of `other` is set.
    pub const fn contains(self, other: TcpFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// FIN is set.
    pub const fn fin(self) -> bool {
        self.contains(Self::FIN)
    }

    /// SYN is set.
    pub const fn syn(self) -> bool {
        self.contains(Self::SYN)
    }

    /// RST is set.
    pub const fn rst(self) -> bool {
        self.contains(Self::RST)
    }

    /// PSH is set.
    pub const fn psh(self) -> bool {
        self.contains(Self::PSH)
    }

    /// ACK is set.
    pub const fn ack(self) -> bool {
        self.contains(Self::ACK)
    }

    /// URG is set.
    pub const fn urg(self) -> bool {
        self.contains(Self::URG)
    }

    /// ECE is set.
    pub const fn ece(self) -> bool {
        self.contains(Self::ECE)
    }

    /// CWR is set.
    pub const fn cwr(self) -> bool {
        self.contains(Self::CWR)
    }
}

impl BitOr for TcpFlags {
    type Output = TcpFlags;
    fn bitor(self, rhs: TcpFlags) -> TcpFlags {
        TcpFlags(self.0 | rhs.0)
    }
}

impl BitOrAssign for TcpFlags {
    fn bitor_assign(&mut self, rhs: TcpFlags) {
        self.0 |= rhs.0;
    }
}

impl BitAnd for TcpFlags {
    type Output = TcpFlags;
    fn bitand(self, rhs: TcpFlags) -> TcpFlags {
        TcpFlags(self.0 & rhs.0)
    }
}

impl fmt::Debug for TcpFlags {
    /// Names of the set flags joined by `|` (`SYN|ACK`), or `(none)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: [&str; 8] = ["FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"];
        if self.0 == 0 {
            return f.write_str("(none)");
        }
        let mut first = true;
        for (i, name) in NAMES.iter().enumerate() {
            if self.0 & (1 << i) != 0 {
                if !first {
                    f.write_str("|")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        Ok(())
    }
}

/// Option kinds rvs knows by name.
mod kind {
    pub const END: u8 = 0;
    pub const NOP: u8 = 1;
    pub const MSS: u8 = 2;
    pub const WINDOW_SCALE: u8 = 3;
    pub const SACK_PERMITTED: u8 = 4;
    pub const SACK: u8 = 5;
    pub const TIMESTAMPS: u8 = 8;
}

/// One TCP option, borrowed from the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpOption<'a> {
    /// Kind 0, end of option list; the iterator stops after it (the rest is padding).
    End,
    /// Kind 1, no-operation (padding between options).
    Nop,
    /// Kind 2, maximum segment size (length 4).
    Mss(u16),
    /// Kind 3, window scale shift count (length 3).
    WindowScale(u8),
    /// Kind 4, SACK permitted (length 2).
    SackPermitted,
    /// Kind 5, SACK blocks: the raw left/right edge pairs (8 bytes each).
    Sack(&'a [u8]),
    /// Kind 8, timestamps (length 10).
    Timestamps {
        /// The sender's timestamp value.
        tsval: u32,
        /// The echoed timestamp.
        tsecr: u32,
    },
    /// Any other kind (e.g. TOA, kind 254) with its data (after kind and length).
    Other {
        /// The option kind.
        kind: u8,
        /// The bytes after the kind and length bytes.
        data: &'a [u8],
    },
}

impl TcpOption<'_> {
    /// Number of bytes the option takes on the wire.
    pub fn buffer_len(&self) -> usize {
        match self {
            TcpOption::End | TcpOption::Nop => 1,
            TcpOption::Mss(_) => 4,
            TcpOption::WindowScale(_) => 3,
            TcpOption::SackPermitted => 2,
            TcpOption::Sack(blocks) => 2 + blocks.len(),
            TcpOption::Timestamps { .. } => 10,
            TcpOption::Other { data, .. } => 2 + data.len(),
        }
    }

    /// Writes the option at the start of `buf` and returns its length. Fails with
    /// [`WireError::Truncated`] if `buf` is too short, [`WireError::BadTcpOption`] if the
    /// option cannot be encoded (data longer than 253 bytes, or `Other` with kind 0 or 1).
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        let len = self.buffer_len();
        if len > 255 || matches!(self, TcpOption::Other { kind: 0 | 1, .. }) {
            return Err(WireError::BadTcpOption);
        }
        let Some(out) = buf.get_mut(..len) else {
            return Err(WireError::Truncated);
        };
        let (k, body): (u8, &[u8]) = match *self {
            TcpOption::End => {
                out[0] = kind::END;
                return Ok(1);
            }
            TcpOption::Nop => {
                out[0] = kind::NOP;
                return Ok(1);
            }
            TcpOption::Mss(mss) => {
                out[2..4].copy_from_slice(&mss.to_be_bytes());
                (kind::MSS, &[])
            }
            TcpOption::WindowScale(shift) => {
                out[2] = shift;
                (kind::WINDOW_SCALE, &[])
            }
            TcpOption::SackPermitted => (kind::SACK_PERMITTED, &[]),
            TcpOption::Sack(blocks) => (kind::SACK, blocks),
            TcpOption::Timestamps { tsval, tsecr } => {
                out[2..6].copy_from_slice(&tsval.to_be_bytes());
                out[6..10].copy_from_slice(&tsecr.to_be_bytes());
                (kind::TIMESTAMPS, &[])
            }
            TcpOption::Other { kind, data } => (kind, data),
        };
        out[0] = k;
        out[1] = len as u8; // <= 255, checked above
        if !body.is_empty() {
            out[2..].copy_from_slice(body);
        }
        Ok(len)
    }
}

/// Iterator over a TCP option list, yielding `Ok(option)` or, once, `Err(BadTcpOption)`
/// for a malformed list (an option without its length byte, a length below 2 or running
/// past the header, or a known kind with the wrong length), then stopping. Never panics.
#[derive(Debug, Clone)]
pub struct TcpOptionIter<'a> {
    rest: &'a [u8],
}

impl<'a> TcpOptionIter<'a> {
    /// Iterates over raw option bytes (the header between byte 20 and the data offset).
    pub fn new(options: &'a [u8]) -> Self {
        TcpOptionIter { rest: options }
    }
}

impl<'a> Iterator for TcpOptionIter<'a> {
    type Item = Result<TcpOption<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        let (&k, after_kind) = self.rest.split_first()?;
        match k {
            kind::END => {
                self.rest = &[];
                return Some(Ok(TcpOption::End));
            }
            kind::NOP => {
                self.rest = after_kind;
                return Some(Ok(TcpOption::Nop));
            }
            _ => {}
        }
        let bad = |it: &mut Self| {
            it.rest = &[];
            Some(Err(WireError::BadTcpOption))
        };
        let Some(&len) = after_kind.first() else {
            return bad(self);
        };
        let len = usize::from(len);
        if len < 2 || len > self.rest.len() {
            return bad(self);
        }
        let data = &self.rest[2..len];
        self.rest = &self.rest[len..];
        let opt = match (k, data.len()) {
            (kind::MSS, 2) => TcpOption::Mss(u16::from_be_bytes([data[0], data[1]])),
            (kind::WINDOW_SCALE, 1) => TcpOption::WindowScale(data[0]),
            (kind::SACK_PERMITTED, 0) => TcpOption::SackPermitted,
            (kind::SACK, n) if n > 0 && n % 8 == 0 => TcpOption::Sack(data),
            (kind::TIMESTAMPS, 8) => TcpOption::Timestamps {
                tsval: u32::from_be_bytes([data[0], data[1], data[2], data[3]]),
                tsecr: u32::from_be_bytes([data[4], data[5], data[6], data[7]]),
            },
            (kind::MSS | kind::WINDOW_SCALE | kind::SACK_PERMITTED | kind::SACK | kind::TIMESTAMPS, _) => {
                return bad(self)
            }
            (kind, _) => TcpOption::Other { kind, data },
        };
        Some(Ok(opt))
    }
}

impl core::iter::FusedIterator for TcpOptionIter<'_> {}

/// A view of a TCP segment.
///
/// After [`TcpPacket::new_checked`] succeeds, no getter panics: `20 <= header_len() <=
/// buffer length`, so `options()` and `payload()` are in bounds, and the option iterator
/// never panics on any bytes.
#[derive(Debug, Clone)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    /// Length of a header without options.
    pub const MIN_HEADER_LEN: usize = field::OPTIONS;
    /// Length of the longest header (data offset 15).
    pub const MAX_HEADER_LEN: usize = 60;

    /// Wraps `buffer` without any check; getters may panic on a short buffer.
    pub const fn new_unchecked(buffer: T) -> Self {
        TcpPacket { buffer }
    }

    /// Wraps `buffer` after checking it holds 20 bytes ([`WireError::Truncated`]) and a data
    /// offset of at least 5 words that fits the buffer ([`WireError::BadDataOffset`]).
    /// Neither the checksum nor the options are checked. No getter of the result panics.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let len = buffer.as_ref().len();
        if len < Self::MIN_HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let p = Self::new_unchecked(buffer);
        let hl = p.header_len();
        if hl < Self::MIN_HEADER_LEN || hl > len {
            return Err(WireError::BadDataOffset);
        }
        Ok(p)
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The whole segment.
    pub fn as_bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// Source port.
    pub fn src_port(&self) -> u16 {
        self.read_u16(field::SRC_PORT.start)
    }

    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        self.read_u16(field::DST_PORT.start)
    }

    /// Sequence number.
    pub fn seq(&self) -> u32 {
        self.read_u32(field::SEQ.start)
    }

    /// Acknowledgment number.
    pub fn ack(&self) -> u32 {
        self.read_u32(field::ACK.start)
    }

    /// Header length in bytes (data offset × 4), options included.
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::DATA_OFF] >> 4) * 4
    }

    /// The flag bits.
    pub fn flags(&self) -> TcpFlags {
        TcpFlags(self.buffer.as_ref()[field::FLAGS])
    }

    /// Receive window (unscaled).
    pub fn window(&self) -> u16 {
        self.read_u16(field::WINDOW.start)
    }

    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        self.read_u16(field::CHECKSUM.start)
    }

    /// Urgent pointer.
    pub fn urgent_ptr(&self) -> u16 {
        self.read_u16(field::URGENT.start)
    }

    /// The raw option bytes (empty when the data offset is 5).
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[field::OPTIONS..self.header_len()]
    }

    /// Iterates over the options; see [`TcpOptionIter`] for the error rule.
    pub fn options_iter(&self) -> TcpOptionIter<'_> {
        TcpOptionIter::new(self.options())
    }

    /// The value of the MSS option, if present and the list before it is well formed.
    pub fn mss(&self) -> Option<u16> {
        self.options_iter().find_map(|o| match o {
            Ok(TcpOption::Mss(mss)) => Some(mss),
            _ => None,
        })
    }

    /// The data after the header.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }

    /// Whether the checksum is correct for a segment carried from `src` to `dst`; the whole
    /// buffer is the segment.
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        checksum::fold(self.sum_with_pseudo_header(src, dst)) == 0xffff
    }

    #[inline]
    fn sum_with_pseudo_header(&self, src: Ipv4Addr, dst: Ipv4Addr) -> u32 {
        let b = self.buffer.as_ref();
        // A segment longer than 65535 bytes cannot be in an IPv4 packet; its length wraps
        // and the checksum simply does not verify.
        checksum::pseudo_header(src, dst, IPPROTO_TCP, b.len() as u16) + checksum::sum(b)
    }

    // Always inlined: a field read is two loads; a call per field costs more than the
    // read (the compiler once outlined it from `L4View::parse`, +3 % per handshake).
    #[inline(always)]
    fn read_u16(&self, at: usize) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[at], b[at + 1]])
    }

    // Always inlined: a field read is two loads; a call per field costs more than the
    // read (the compiler once outlined it from `L4View::parse`, +3 % per handshake).
    #[inline(always)]
    fn read_u32(&self, at: usize) -> u32 {
        let b = self.buffer.as_ref();
        u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
    /// Sets the source port (checksum not updated).
    pub fn set_src_port(&mut self, port: u16) {
        self.write_u16(field::SRC_PORT.start, port);
    }

    /// Sets the destination port (checksum not updated).
    pub fn set_dst_port(&mut self, port: u16) {
        self.write_u16(field::DST_PORT.start, port);
    }

    /// Sets the sequence number (checksum not updated).
    pub fn set_seq(&mut self, seq: u32) {
        self.buffer.as_mut()[field::SEQ].copy_from_slice(&seq.to_be_bytes());
    }

    /// Sets the acknowledgment number (checksum not updated).
    pub fn set_ack(&mut self, ack: u32) {
        self.buffer.as_mut()[field::ACK].copy_from_slice(&ack.to_be_bytes());
    }

    /// Sets the header length in bytes; must be a multiple of 4 in 20..=60 (the data
    /// offset gets `len / 4`, truncated to 4 bits). The reserved bits are kept.
    pub fn set_header_len(&mut self, len: usize) {
        let b = &mut self.buffer.as_mut()[field::DATA_OFF];
        *b = (*b & 0x0f) | (((len / 4) as u8 & 0x0f) << 4);
    }

    /// Sets the flag bits.
    pub fn set_flags(&mut self, flags: TcpFlags) {
        self.buffer.as_mut()[field::FLAGS] = flags.0;
    }

    /// Sets the receive window.
    pub fn set_window(&mut self, window: u16) {
        self.write_u16(field::WINDOW.start, window);
    }

    /// Sets the checksum field.
    pub fn set_checksum(&mut self, csum: u16) {
        self.write_u16(field::CHECKSUM.start, csum);
    }

    /// Sets the urgent pointer.
    pub fn set_urgent_ptr(&mut self, ptr: u16) {
        self.write_u16(field::URGENT.start, ptr);
    }

    /// The raw option bytes, writable.
    pub fn options_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        &mut self.buffer.as_mut()[field::OPTIONS..hl]
    }

    /// The data after the header, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        &mut self.buffer.as_mut()[hl..]
    }

    /// Computes the checksum over the pseudo-header and the whole buffer, and writes it.
    // Inlined: the SYN proxy fills three segments per handshake; after the IPv6 stack grew
    // the crate, the compiler outlined it (+1.3 % per proxied handshake in perf/guard.sh).
    #[inline]
    pub fn fill_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.set_checksum(0);
        let c = checksum::finish(self.sum_with_pseudo_header(src, dst));
        self.set_checksum(c);
    }

    /// Sets the source port and updates the checksum incrementally.
    pub fn set_src_port_incremental(&mut self, port: u16) {
        let old = self.src_port();
        self.set_checksum(checksum::update16(self.checksum(), old, port));
        self.set_src_port(port);
    }

    /// Sets the destination port and updates the checksum incrementally.
    pub fn set_dst_port_incremental(&mut self, port: u16) {
        let old = self.dst_port();
        self.set_checksum(checksum::update16(self.checksum(), old, port));
        self.set_dst_port(port);
    }

    /// Updates the checksum for an IPv4 address of the pseudo-header changed from `old` to
    /// `new` (the IP header itself is rewritten separately, e.g. with
    /// [`Ipv4Packet::set_src_addr_incremental`](super::Ipv4Packet::set_src_addr_incremental)).
    /// Call once per changed address.
    pub fn update_checksum_for_addr(&mut self, old: Ipv4Addr, new: Ipv4Addr) {
        self.set_checksum(checksum::update_addr(self.checksum(), old, new));
    }

    /// Applies a sum of RFC 1624 terms (see [`checksum::update_delta`]) to the checksum:
    /// several changed words (pseudo-header address, port) in one update.
    #[inline]
    pub fn update_checksum_delta(&mut self, delta: u32) {
        self.set_checksum(checksum::update_delta(self.checksum(), delta));
    }

    /// Sets the sequence number and updates the checksum incrementally.
    pub fn set_seq_incremental(&mut self, seq: u32) {
        let old = self.seq();
        self.set_checksum(checksum::update32(self.checksum(), old, seq));
        self.set_seq(seq);
    }

    /// Sets the acknowledgment number and updates the checksum incrementally.
    pub fn set_ack_incremental(&mut self, ack: u32) {
        let old = self.ack();
        self.set_checksum(checksum::update32(self.checksum(), old, ack));
        self.set_ack(ack);
    }

    fn write_u16(&mut self, at: usize, value: u16) {
        self.buffer.as_mut()[at..at + 2].copy_from_slice(&value.to_be_bytes());
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::wire::{Ipv4Packet, IPPROTO_TCP};
    use proptest::prelude::*;

    /// A Linux-style SYN 10.0.0.2:54321 → 10.0.0.100:80, seq 0x12345678, window 64240,
    /// options MSS 1460, SACK permitted, timestamps (0x0a0b0c0d, 0), NOP, window scale 7.
    /// Checksums (IP 0x2657, TCP 0xe563) computed independently with python3 (struct +
    /// RFC 1071 sum over pseudo-header and segment), not with this code.
    #[rustfmt::skip]
    pub(crate) const SYN: [u8; 60] = [
        0x45, 0x00, 0x00, 0x3c, 0x00, 0x00, 0x40, 0x00, 0x40, 0x06, 0x26, 0x57, 0x0a, 0x00, 0x00, 0x02,
        0x0a, 0x00, 0x00, 0x64, 0xd4, 0x31, 0x00, 0x50, 0x12, 0x34, 0x56, 0x78, 0x00, 0x00, 0x00, 0x00,
        0xa0, 0x02, 0xfa, 0xf0, 0xe5, 0x63, 0x00, 0x00, 0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a,
        0x0a, 0x0b, 0x0c, 0x0d, 0x00, 0x00, 0x00, 0x00, 0x01, 0x03, 0x03, 0x07,
    ];
    const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
    const VIP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 100);
    const OPTIONS: [TcpOption<'static>; 5] = [
        TcpOption::Mss(1460),
        TcpOption::SackPermitted,
        TcpOption::Timestamps { tsval: 0x0a0b_0c0d, tsecr: 0 },
        TcpOption::Nop,
        TcpOption::WindowScale(7),
    ];

    fn segment() -> [u8; 40] {
        let mut b = [0u8; 40];
        b.copy_from_slice(&SYN[20..]);
        b
    }

    #[test]
    fn parse_syn() {
        let ip = Ipv4Packet::new_checked(&SYN[..]).unwrap();
        assert!(ip.verify_checksum());
        assert_eq!(ip.protocol(), IPPROTO_TCP);
        let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
        assert_eq!(tcp.src_port(), 54321);
        assert_eq!(tcp.dst_port(), 80);
        assert_eq!(tcp.seq(), 0x1234_5678);
        assert_eq!(tcp.ack(), 0);
        assert_eq!(tcp.header_len(), 40);
        assert_eq!(tcp.flags(), TcpFlags::SYN);
        assert!(tcp.flags().syn() && !tcp.flags().ack() && !tcp.flags().fin());
        assert!(!tcp.flags().rst() && !tcp.flags().psh() && !tcp.flags().urg());
        assert_eq!(tcp.window(), 64240);
        assert_eq!(tcp.checksum(), 0xe563);
        assert_eq!(tcp.urgent_ptr(), 0);
        assert_eq!(tcp.options().len(), 20);
        let opts: Vec<_> = tcp.options_iter().collect::<Result<_>>().unwrap();
        assert_eq!(opts, OPTIONS);
        assert_eq!(tcp.mss(), Some(1460));
        assert!(tcp.payload().is_empty());
        assert!(tcp.verify_checksum(ip.src_addr(), ip.dst_addr()));
        assert!(!tcp.verify_checksum(ip.src_addr(), Ipv4Addr::new(10, 0, 0, 101)));
    }

    #[test]
    fn build_syn() {
        let mut b = [0u8; 40];
        let mut tcp = TcpPacket::new_unchecked(&mut b[..]);
        tcp.set_src_port(54321);
        tcp.set_dst_port(80);
        tcp.set_seq(0x1234_5678);
        tcp.set_ack(0);
        tcp.set_header_len(40);
        tcp.set_flags(TcpFlags::SYN);
        tcp.set_window(64240);
        tcp.set_urgent_ptr(0);
        let mut at = 0;
        for o in OPTIONS {
            at += o.emit(&mut tcp.options_mut()[at..]).unwrap();
        }
        assert_eq!(at, 20);
        tcp.fill_checksum(CLIENT, VIP);
        assert_eq!(b, segment());
    }

    #[test]
    fn fullnat_rewrite_round_trip() {
        // Client → VIP:80 becomes LIP:5000 → RS:8080, all incrementally.
        let (lip, rs) = (Ipv4Addr::new(192, 168, 0, 1), Ipv4Addr::new(192, 168, 0, 50));
        let mut pkt = SYN;
        let mut ip = Ipv4Packet::new_checked(&mut pkt[..]).unwrap();
        ip.set_src_addr_incremental(lip);
        ip.set_dst_addr_incremental(rs);
        let mut tcp = TcpPacket::new_checked(ip.payload_mut()).unwrap();
        tcp.update_checksum_for_addr(CLIENT, lip);
        tcp.update_checksum_for_addr(VIP, rs);
        tcp.set_src_port_incremental(5000);
        tcp.set_dst_port_incremental(8080);
        tcp.set_seq_incremental(0xdead_beef);
        let ip = Ipv4Packet::new_checked(&pkt[..]).unwrap();
        assert!(ip.verify_checksum());
        let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
        assert!(tcp.verify_checksum(lip, rs));
        assert_eq!((tcp.src_port(), tcp.dst_port(), tcp.seq()), (5000, 8080, 0xdead_beef));
        assert_eq!(tcp.options(), &SYN[40..]);
        // And back: the reply direction restores the original bytes exactly.
        let mut ip = Ipv4Packet::new_checked(&mut pkt[..]).unwrap();
        ip.set_src_addr_incremental(CLIENT);
        ip.set_dst_addr_incremental(VIP);
        let mut tcp = TcpPacket::new_checked(ip.payload_mut()).unwrap();
        tcp.update_checksum_for_addr(lip, CLIENT);
        tcp.update_checksum_for_addr(rs, VIP);
        tcp.set_src_port_incremental(54321);
        tcp.set_dst_port_incremental(80);
        tcp.set_seq_incremental(0x1234_5678);
        assert_eq!(pkt, SYN);
    }

    #[test]
    fn truncated_at_every_length() {
        let b = segment();
        for n in 0..b.len() {
            let err = TcpPacket::new_checked(&b[..n]).unwrap_err();
            let want = if n < 20 { WireError::Truncated } else { WireError::BadDataOffset };
            assert_eq!(err, want, "length {n}");
        }
    }

    #[test]
    fn bad_data_offset() {
        for off in 0..5u8 {
            let mut b = segment();
            b[12] = off << 4;
            assert_eq!(TcpPacket::new_checked(&b[..]).unwrap_err(), WireError::BadDataOffset);
        }
        let mut b = segment();
        b[12] = 0xb0; // 44 bytes in a 40-byte buffer
        assert_eq!(TcpPacket::new_checked(&b[..]).unwrap_err(), WireError::BadDataOffset);
        b[12] = 0x50;
        let tcp = TcpPacket::new_checked(&b[..]).unwrap();
        assert!(tcp.options().is_empty());
        assert_eq!(tcp.payload().len(), 20);
    }

    #[test]
    fn bad_checksum() {
        let mut b = segment();
        b[39] ^= 0x01;
        assert!(!TcpPacket::new_checked(&b[..]).unwrap().verify_checksum(CLIENT, VIP));
    }

    fn parse_opts(bytes: &[u8]) -> Vec<Result<TcpOption<'_>>> {
        TcpOptionIter::new(bytes).collect()
    }

    #[test]
    fn truncated_options() {
        let opts = &SYN[40..];
        // Cut the list at every length: never panics; a cut inside an option is an error,
        // a cut between options is just a shorter list.
        for n in 0..opts.len() {
            let got = parse_opts(&opts[..n]);
            let boundary = [0, 4, 6, 16, 17, 20].contains(&n);
            assert_eq!(got.iter().any(|r| r.is_err()), !boundary, "cut at {n}");
            if let Some(Err(_)) = got.last() {
                assert_eq!(got.iter().filter(|r| r.is_err()).count(), 1);
            }
        }
    }

    #[test]
    fn garbage_options() {
        let err = Err(WireError::BadTcpOption);
        assert_eq!(parse_opts(&[2]), vec![err]); // kind without length
        assert_eq!(parse_opts(&[2, 0, 1, 1]), vec![err]); // length 0
        assert_eq!(parse_opts(&[254, 1, 1, 1]), vec![err]); // length 1
        assert_eq!(parse_opts(&[2, 5, 5, 180]), vec![err]); // past the end
        assert_eq!(parse_opts(&[2, 3, 5, 1]), vec![err]); // MSS of wrong length
        assert_eq!(parse_opts(&[3, 4, 7, 0]), vec![err]); // window scale of wrong length
        assert_eq!(parse_opts(&[4, 3, 0, 1]), vec![err]); // SACK-permitted of wrong length
        assert_eq!(parse_opts(&[5, 6, 0, 0, 0, 0]), vec![err]); // SACK, not 8-byte blocks
        assert_eq!(parse_opts(&[1, 8, 6, 0, 0, 0, 0]), vec![Ok(TcpOption::Nop), err]);
        // Unknown kinds, End, and bytes after End.
        assert_eq!(
            parse_opts(&[254, 6, 10, 0, 0, 2, 0, 0xff, 0xff]),
            vec![Ok(TcpOption::Other { kind: 254, data: &[10, 0, 0, 2] }), Ok(TcpOption::End)]
        );
        assert_eq!(parse_opts(&[5, 10, 0, 0, 0, 1, 0, 0, 0, 2]), vec![Ok(TcpOption::Sack(&[0, 0, 0, 1, 0, 0, 0, 2]))]);
    }

    #[test]
    fn option_emit_errors() {
        let mut small = [0u8; 3];
        assert_eq!(TcpOption::Mss(1).emit(&mut small), Err(WireError::Truncated));
        assert_eq!(TcpOption::Other { kind: 1, data: &[] }.emit(&mut small), Err(WireError::BadTcpOption));
        let big = [0u8; 254];
        let mut buf = [0u8; 300];
        assert_eq!(TcpOption::Other { kind: 254, data: &big }.emit(&mut buf), Err(WireError::BadTcpOption));
        assert_eq!(TcpOption::Other { kind: 254, data: &big[..253] }.emit(&mut buf), Ok(255));
    }

    #[test]
    fn flags() {
        let sa = TcpFlags::SYN | TcpFlags::ACK;
        assert!(sa.syn() && sa.ack() && sa.contains(TcpFlags::ACK));
        assert_eq!(sa.bits(), 0x12);
        assert_eq!(TcpFlags::from_bits(0x12), sa);
        assert_eq!(format!("{sa:?}"), "SYN|ACK");
        assert_eq!(format!("{:?}", TcpFlags::NONE), "(none)");
        assert_eq!(sa & TcpFlags::SYN, TcpFlags::SYN);
        let mut f = TcpFlags::FIN;
        f |= TcpFlags::PSH | TcpFlags::URG | TcpFlags::ECE | TcpFlags::CWR | TcpFlags::RST;
        assert!(f.fin() && f.psh() && f.urg() && f.ece() && f.cwr() && f.rst() && !f.syn());
    }

    /// A random segment (header 20..60 bytes with random option bytes, random payload of
    /// either parity) with a correct checksum for the given addresses.
    fn arb_segment() -> impl Strategy<Value = (Vec<u8>, u32, u32)> {
        (5u8..=15, proptest::collection::vec(any::<u8>(), 60..120), any::<u32>(), any::<u32>()).prop_map(
            |(off, mut b, src, dst)| {
                b[12] = (off << 4) | (b[12] & 0x0f);
                TcpPacket::new_unchecked(&mut b[..]).fill_checksum(src.into(), dst.into());
                (b, src, dst)
            },
        )
    }

    proptest! {
        #[test]
        fn incremental_equals_recompute(
            (mut b, src, dst) in arb_segment(),
            new_src in any::<u32>(),
            new_dst in any::<u32>(),
            sport in any::<u16>(),
            dport in any::<u16>(),
            seq in any::<u32>(),
            ack in any::<u32>(),
        ) {
            let (src, dst) = (Ipv4Addr::from(src), Ipv4Addr::from(dst));
            let (new_src, new_dst) = (Ipv4Addr::from(new_src), Ipv4Addr::from(new_dst));
            let mut tcp = TcpPacket::new_checked(&mut b[..]).unwrap();
            prop_assert!(tcp.verify_checksum(src, dst));
            tcp.update_checksum_for_addr(src, new_src);
            tcp.set_src_port_incremental(sport);
            tcp.update_checksum_for_addr(dst, new_dst);
            tcp.set_dst_port_incremental(dport);
            tcp.set_seq_incremental(seq);
            tcp.set_ack_incremental(ack);
            let incremental = tcp.checksum();
            prop_assert!(tcp.verify_checksum(new_src, new_dst));
            tcp.fill_checksum(new_src, new_dst);
            prop_assert_eq!(incremental, tcp.checksum());
        }

        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            if let Ok(tcp) = TcpPacket::new_checked(&bytes[..]) {
                let _ = (tcp.src_port(), tcp.dst_port(), tcp.seq(), tcp.ack(), tcp.flags());
                let _ = (tcp.window(), tcp.checksum(), tcp.urgent_ptr(), tcp.mss());
                let _ = (tcp.options(), tcp.payload(), tcp.verify_checksum(0.into(), 0.into()));
                let mut errors = 0;
                for o in tcp.options_iter() {
                    match o {
                        Ok(o) => {
                            let mut buf = [0u8; 60];
                            let _ = o.emit(&mut buf);
                        }
                        Err(_) => errors += 1,
                    }
                }
                prop_assert!(errors <= 1);
            }
        }

        #[test]
        fn options_emit_parse_round_trip(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            // Whatever parses re-emits to the same bytes (up to End).
            let mut out = [0u8; 40];
            let mut at = 0;
            for o in TcpOptionIter::new(&bytes) {
                let Ok(o) = o else { return Ok(()) };
                at += o.emit(&mut out[at..]).unwrap();
            }
            prop_assert_eq!(&out[..at], &bytes[..at]);
        }
    }
}
