//! UDP datagrams (RFC 768).
//!
//! Build the view over [`Ipv4Packet::payload`](super::Ipv4Packet::payload). The length
//! field bounds the datagram: `new_checked` requires `8 <= len <= buffer length`, and
//! [`UdpPacket::payload`] stops at `len` (bytes after it are ignored).
//!
//! Over IPv4 a checksum field of 0 means "no checksum" (RFC 768): verification passes,
//! and the incremental helpers leave the field at 0. A computed checksum of 0 is sent as
//! 0xffff (its ones' complement equivalent), by [`UdpPacket::fill_checksum`] and by the
//! incremental helpers alike.

use std::net::Ipv4Addr;

use super::checksum;
use super::ipv4::IPPROTO_UDP;
use super::{Result, WireError};

mod field {
    use core::ops::Range;

    pub const SRC_PORT: Range<usize> = 0..2;
    pub const DST_PORT: Range<usize> = 2..4;
    pub const LENGTH: Range<usize> = 4..6;
    pub const CHECKSUM: Range<usize> = 6..8;
    pub const PAYLOAD: usize = 8;
}

/// A view of a UDP datagram.
///
/// After [`UdpPacket::new_checked`] succeeds, no getter panics: `8 <= len() <= buffer
/// length`, so `payload()` is in bounds.
#[derive(Debug, Clone)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    /// Length of the header.
    pub const HEADER_LEN: usize = field::PAYLOAD;

    /// Wraps `buffer` without any check; getters may panic on a short buffer.
    pub const fn new_unchecked(buffer: T) -> Self {
        UdpPacket { buffer }
    }

    /// Wraps `buffer` after checking it holds the 8-byte header ([`WireError::Truncated`])
    /// and a length field in `8..=buffer length` ([`WireError::BadUdpLength`]). The
    /// checksum is not checked. No getter of the result panics.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let buf_len = buffer.as_ref().len();
        if buf_len < Self::HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let p = Self::new_unchecked(buffer);
        let len = usize::from(p.len());
        if len < Self::HEADER_LEN || len > buf_len {
            return Err(WireError::BadUdpLength);
        }
        Ok(p)
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The whole buffer (may extend past `len()`).
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

    /// Length field: header plus payload, in bytes.
    #[allow(clippy::len_without_is_empty)] // a field, not a container length
    pub fn len(&self) -> u16 {
        self.read_u16(field::LENGTH.start)
    }

    /// Checksum field; 0 means the sender did not compute one.
    pub fn checksum(&self) -> u16 {
        self.read_u16(field::CHECKSUM.start)
    }

    /// Whether the sender computed a checksum (the field is not 0).
    pub fn has_checksum(&self) -> bool {
        self.checksum() != 0
    }

    /// The payload: from byte 8 up to `len()`.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD..usize::from(self.len())]
    }

    /// Whether the checksum is correct for a datagram carried from `src` to `dst`, over
    /// the first `len()` bytes. A checksum field of 0 ("none") passes.
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        !self.has_checksum() || checksum::fold(self.sum_with_pseudo_header(src, dst)) == 0xffff
    }

    fn sum_with_pseudo_header(&self, src: Ipv4Addr, dst: Ipv4Addr) -> u32 {
        let len = self.len();
        let data = &self.buffer.as_ref()[..usize::from(len)];
        checksum::pseudo_header(src, dst, IPPROTO_UDP, len) + checksum::sum(data)
    }

    // Always inlined: a field read is two loads; a call per field costs more than the
    // read (the compiler once outlined it from `L4View::parse`, +3 % per handshake).
    #[inline(always)]
    fn read_u16(&self, at: usize) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[at], b[at + 1]])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    /// Sets the source port (checksum not updated).
    pub fn set_src_port(&mut self, port: u16) {
        self.write_u16(field::SRC_PORT.start, port);
    }

    /// Sets the destination port (checksum not updated).
    pub fn set_dst_port(&mut self, port: u16) {
        self.write_u16(field::DST_PORT.start, port);
    }

    /// Sets the length field.
    pub fn set_len(&mut self, len: u16) {
        self.write_u16(field::LENGTH.start, len);
    }

    /// Sets the checksum field (0 = none).
    pub fn set_checksum(&mut self, csum: u16) {
        self.write_u16(field::CHECKSUM.start, csum);
    }

    /// The payload (up to `len()`), writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let len = usize::from(self.len());
        &mut self.buffer.as_mut()[field::PAYLOAD..len]
    }

    /// Computes the checksum over the pseudo-header and the first `len()` bytes and writes
    /// it; a computed 0 is written as 0xffff.
    pub fn fill_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.set_checksum(0);
        let c = checksum::finish(self.sum_with_pseudo_header(src, dst));
        self.set_checksum(if c == 0 { 0xffff } else { c });
    }

    /// Sets the source port and updates the checksum incrementally (unless it is 0, "none").
    pub fn set_src_port_incremental(&mut self, port: u16) {
        let old = self.src_port();
        self.adjust_checksum(|c| checksum::update16(c, old, port));
        self.set_src_port(port);
    }

    /// Sets the destination port and updates the checksum incrementally (unless it is 0,
    /// "none").
    pub fn set_dst_port_incremental(&mut self, port: u16) {
        let old = self.dst_port();
        self.adjust_checksum(|c| checksum::update16(c, old, port));
        self.set_dst_port(port);
    }

    /// Updates the checksum for an IPv4 address of the pseudo-header changed from `old` to
    /// `new` (unless it is 0, "none"). Call once per changed address.
    pub fn update_checksum_for_addr(&mut self, old: Ipv4Addr, new: Ipv4Addr) {
        self.adjust_checksum(|c| checksum::update_addr(c, old, new));
    }

    /// Applies a sum of RFC 1624 terms (see [`checksum::update_delta`]) to the checksum,
    /// unless it is 0 ("none"); a result of 0 is written as 0xffff.
    #[inline]
    pub fn update_checksum_delta(&mut self, delta: u32) {
        self.adjust_checksum(|c| checksum::update_delta(c, delta));
    }

    /// Applies an RFC 1624 update to a present checksum, keeping 0 for "none" and writing
    /// a result of 0 as 0xffff.
    fn adjust_checksum(&mut self, update: impl FnOnce(u16) -> u16) {
        let c = self.checksum();
        if c == 0 {
            return;
        }
        let c = update(c);
        self.set_checksum(if c == 0 { 0xffff } else { c });
    }

    fn write_u16(&mut self, at: usize, value: u16) {
        self.buffer.as_mut()[at..at + 2].copy_from_slice(&value.to_be_bytes());
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::wire::{Ipv4Packet, IPPROTO_UDP};
    use proptest::prelude::*;

    /// A DNS query for example.com/A, 10.0.0.2:40000 → 8.8.8.8:53, 29-byte payload (odd
    /// length, so the checksum pads a byte). Checksums (IP 0x1e61, UDP 0xbabf) computed
    /// independently with python3 (struct + RFC 1071 sum), not with this code.
    #[rustfmt::skip]
    pub(crate) const DNS: [u8; 57] = [
        0x45, 0x00, 0x00, 0x39, 0x42, 0x42, 0x00, 0x00, 0x40, 0x11, 0x1e, 0x61, 0x0a, 0x00, 0x00, 0x02,
        0x08, 0x08, 0x08, 0x08, 0x9c, 0x40, 0x00, 0x35, 0x00, 0x25, 0xba, 0xbf, 0xbe, 0xef, 0x01, 0x00,
        0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07, 0x65, 0x78, 0x61, 0x6d, 0x70, 0x6c, 0x65,
        0x03, 0x63, 0x6f, 0x6d, 0x00, 0x00, 0x01, 0x00, 0x01,
    ];
    const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
    const SERVER: Ipv4Addr = Ipv4Addr::new(8, 8, 8, 8);

    fn datagram() -> [u8; 37] {
        let mut b = [0u8; 37];
        b.copy_from_slice(&DNS[20..]);
        b
    }

    #[test]
    fn parse_dns() {
        let ip = Ipv4Packet::new_checked(&DNS[..]).unwrap();
        assert!(ip.verify_checksum());
        assert_eq!(ip.protocol(), IPPROTO_UDP);
        assert!(!ip.dont_frag());
        let udp = UdpPacket::new_checked(ip.payload()).unwrap();
        assert_eq!(udp.src_port(), 40000);
        assert_eq!(udp.dst_port(), 53);
        assert_eq!(udp.len(), 37);
        assert_eq!(udp.checksum(), 0xbabf);
        assert!(udp.has_checksum());
        assert_eq!(udp.payload().len(), 29);
        assert_eq!(&udp.payload()[..2], &[0xbe, 0xef]);
        assert!(udp.verify_checksum(CLIENT, SERVER));
        assert!(!udp.verify_checksum(SERVER, CLIENT.to_bits().wrapping_add(1).into()));
    }

    #[test]
    fn build_dns() {
        let mut b = [0u8; 37];
        b[8..].copy_from_slice(&DNS[28..]);
        let mut udp = UdpPacket::new_unchecked(&mut b[..]);
        udp.set_src_port(40000);
        udp.set_dst_port(53);
        udp.set_len(37);
        udp.fill_checksum(CLIENT, SERVER);
        assert_eq!(b, datagram());
    }

    #[test]
    fn nat_rewrite_round_trip() {
        let rs = Ipv4Addr::new(192, 168, 0, 53);
        let mut pkt = DNS;
        let mut ip = Ipv4Packet::new_checked(&mut pkt[..]).unwrap();
        ip.set_dst_addr_incremental(rs);
        let mut udp = UdpPacket::new_checked(ip.payload_mut()).unwrap();
        udp.update_checksum_for_addr(SERVER, rs);
        udp.set_dst_port_incremental(5353);
        udp.set_src_port_incremental(1024);
        let ip = Ipv4Packet::new_checked(&pkt[..]).unwrap();
        assert!(ip.verify_checksum());
        let udp = UdpPacket::new_checked(ip.payload()).unwrap();
        assert!(udp.verify_checksum(CLIENT, rs));
        assert_eq!((udp.src_port(), udp.dst_port()), (1024, 5353));
        let mut ip = Ipv4Packet::new_checked(&mut pkt[..]).unwrap();
        ip.set_dst_addr_incremental(SERVER);
        let mut udp = UdpPacket::new_checked(ip.payload_mut()).unwrap();
        udp.update_checksum_for_addr(rs, SERVER);
        udp.set_dst_port_incremental(53);
        udp.set_src_port_incremental(40000);
        assert_eq!(pkt, DNS);
    }

    #[test]
    fn zero_checksum_means_none() {
        let mut b = datagram();
        let mut udp = UdpPacket::new_checked(&mut b[..]).unwrap();
        udp.set_checksum(0);
        assert!(!udp.has_checksum());
        assert!(udp.verify_checksum(CLIENT, SERVER));
        udp.set_dst_port_incremental(5353);
        udp.update_checksum_for_addr(SERVER, CLIENT);
        assert_eq!(udp.checksum(), 0);
    }

    #[test]
    fn computed_zero_is_sent_as_ffff() {
        // Pick the last payload word so that the datagram's checksum computes to 0.
        let mut b = datagram();
        b[34] = 0; // the payload word at even offset 34 of the datagram
        b[35] = 0;
        let mut udp = UdpPacket::new_checked(&mut b[..]).unwrap();
        udp.fill_checksum(CLIENT, SERVER);
        // Adding the current checksum value to the data makes the sum 0xffff (-0).
        let fix = udp.checksum();
        udp.set_checksum(0);
        udp.payload_mut()[26..28].copy_from_slice(&fix.to_be_bytes());
        udp.fill_checksum(CLIENT, SERVER);
        assert_eq!(udp.checksum(), 0xffff);
        assert!(udp.verify_checksum(CLIENT, SERVER));
        // An incremental update landing on 0 is written as 0xffff too: swap two ports
        // back and forth and check it stays equal to recomputation.
        udp.set_src_port_incremental(53);
        udp.set_dst_port_incremental(40000);
        let c = udp.checksum();
        udp.fill_checksum(CLIENT, SERVER);
        assert_eq!(c, udp.checksum());
        udp.set_src_port_incremental(40000);
        udp.set_dst_port_incremental(53);
        assert_eq!(udp.checksum(), 0xffff);
    }

    #[test]
    fn truncated_at_every_length() {
        let b = datagram();
        for n in 0..b.len() {
            let err = UdpPacket::new_checked(&b[..n]).unwrap_err();
            let want = if n < 8 { WireError::Truncated } else { WireError::BadUdpLength };
            assert_eq!(err, want, "length {n}");
        }
    }

    #[test]
    fn bad_length() {
        let mut b = datagram();
        for len in [0u16, 7, 38, 0xffff] {
            b[4..6].copy_from_slice(&len.to_be_bytes());
            assert_eq!(UdpPacket::new_checked(&b[..]).unwrap_err(), WireError::BadUdpLength);
        }
        b[4..6].copy_from_slice(&8u16.to_be_bytes());
        assert!(UdpPacket::new_checked(&b[..]).unwrap().payload().is_empty());
    }

    #[test]
    fn bytes_after_len_are_ignored() {
        let mut b = datagram().to_vec();
        b.extend_from_slice(&[0xaa; 3]);
        let udp = UdpPacket::new_checked(&b[..]).unwrap();
        assert_eq!(udp.payload().len(), 29);
        assert!(udp.verify_checksum(CLIENT, SERVER));
    }

    #[test]
    fn bad_checksum() {
        let mut b = datagram();
        b[20] ^= 0x40;
        assert!(!UdpPacket::new_checked(&b[..]).unwrap().verify_checksum(CLIENT, SERVER));
    }

    /// A random datagram (payload 0..64 bytes, either parity) with a correct checksum, or
    /// with the checksum left at 0 ("none") when `none` is set.
    fn arb_datagram() -> impl Strategy<Value = (Vec<u8>, u32, u32)> {
        (proptest::collection::vec(any::<u8>(), 8..72), any::<u32>(), any::<u32>(), any::<bool>()).prop_map(
            |(mut b, src, dst, none)| {
                let len = b.len() as u16;
                let mut udp = UdpPacket::new_unchecked(&mut b[..]);
                udp.set_len(len);
                if none {
                    udp.set_checksum(0);
                } else {
                    udp.fill_checksum(src.into(), dst.into());
                }
                (b, src, dst)
            },
        )
    }

    proptest! {
        #[test]
        fn incremental_equals_recompute(
            (mut b, src, dst) in arb_datagram(),
            new_src in any::<u32>(),
            new_dst in any::<u32>(),
            sport in any::<u16>(),
            dport in any::<u16>(),
        ) {
            let (src, dst) = (Ipv4Addr::from(src), Ipv4Addr::from(dst));
            let (new_src, new_dst) = (Ipv4Addr::from(new_src), Ipv4Addr::from(new_dst));
            let mut udp = UdpPacket::new_checked(&mut b[..]).unwrap();
            prop_assert!(udp.verify_checksum(src, dst));
            let had = udp.has_checksum();
            udp.update_checksum_for_addr(src, new_src);
            udp.set_src_port_incremental(sport);
            udp.update_checksum_for_addr(dst, new_dst);
            udp.set_dst_port_incremental(dport);
            let incremental = udp.checksum();
            prop_assert_eq!(udp.has_checksum(), had);
            prop_assert!(udp.verify_checksum(new_src, new_dst));
            if had {
                udp.fill_checksum(new_src, new_dst);
                prop_assert_eq!(incremental, udp.checksum());
            }
        }

        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            if let Ok(udp) = UdpPacket::new_checked(&bytes[..]) {
                let _ = (udp.src_port(), udp.dst_port(), udp.len(), udp.checksum());
                let _ = (udp.payload(), udp.verify_checksum(1.into(), 2.into()));
            }
        }
    }
}
