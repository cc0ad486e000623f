//! ICMPv4 messages (RFC 792, RFC 1191 for "fragmentation needed").
//!
//! The view covers the whole ICMP message: build it over
//! [`Ipv4Packet::payload`](super::Ipv4Packet::payload), because the checksum covers every
//! byte of the message. The 4 bytes after type/code/checksum ("rest of header") mean
//! different things per type: identifier and sequence number for echo, next-hop MTU for
//! "fragmentation needed", unused for the other errors. Error messages carry the
//! offending IPv4 header plus at least 8 bytes of its payload in [`IcmpPacket::data`].

use super::checksum;
use super::{Result, WireError};

/// Type: echo reply.
pub const ICMP_ECHO_REPLY: u8 = 0;
/// Type: destination unreachable.
pub const ICMP_DEST_UNREACH: u8 = 3;
/// Type: echo request.
pub const ICMP_ECHO_REQUEST: u8 = 8;
/// Type: time exceeded.
pub const ICMP_TIME_EXCEEDED: u8 = 11;
/// Code of [`ICMP_DEST_UNREACH`]: port unreachable.
pub const ICMP_PORT_UNREACH: u8 = 3;
/// Code of [`ICMP_DEST_UNREACH`]: fragmentation needed and DF set (carries the next-hop
/// MTU).
pub const ICMP_FRAG_NEEDED: u8 = 4;

mod field {
    use core::ops::{Range, RangeFrom};

    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Range<usize> = 2..4;
    pub const REST: Range<usize> = 4..8;
    /// Echo identifier (within REST).
    pub const IDENT: Range<usize> = 4..6;
    /// Echo sequence number (within REST).
    pub const SEQ_NO: Range<usize> = 6..8;
    /// Next-hop MTU of "fragmentation needed" (within REST, RFC 1191).
    pub const MTU: Range<usize> = 6..8;
    pub const DATA: RangeFrom<usize> = 8..;
}

/// A view of an ICMPv4 message.
///
/// After [`IcmpPacket::new_checked`] succeeds, no getter panics.
#[derive(Debug, Clone)]
pub struct IcmpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> IcmpPacket<T> {
    /// Length of the fixed header (type, code, checksum, rest of header).
    pub const HEADER_LEN: usize = field::DATA.start;

    /// Wraps `buffer` without any check; getters panic if it is shorter than the header.
    pub const fn new_unchecked(buffer: T) -> Self {
        IcmpPacket { buffer }
    }

    /// Wraps `buffer` after checking it holds the 8-byte header ([`WireError::Truncated`]).
    /// The checksum is not checked. No getter of the result panics.
    pub fn new_checked(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < Self::HEADER_LEN {
            return Err(WireError::Truncated);
        }
        Ok(Self::new_unchecked(buffer))
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The whole message.
    pub fn as_bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// Message type ([`ICMP_ECHO_REQUEST`], ...).
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }

    /// Message code (meaning depends on the type).
    pub fn code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        self.read_u16(field::CHECKSUM.start)
    }

    /// The 4 bytes after the checksum, as one big-endian word.
    pub fn rest_of_header(&self) -> u32 {
        let b = &self.buffer.as_ref()[field::REST];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    /// Echo identifier (echo request and reply).
    pub fn ident(&self) -> u16 {
        self.read_u16(field::IDENT.start)
    }

    /// Echo sequence number (echo request and reply).
    pub fn seq_no(&self) -> u16 {
        self.read_u16(field::SEQ_NO.start)
    }

    /// Next-hop MTU of a "fragmentation needed" message (RFC 1191; 0 from old routers).
    pub fn next_hop_mtu(&self) -> u16 {
        self.read_u16(field::MTU.start)
    }

    /// Everything after the 8-byte header: echo data, or the quoted datagram of an error.
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[field::DATA]
    }

    /// Whether the checksum over the whole message is correct.
    pub fn verify_checksum(&self) -> bool {
        checksum::fold(checksum::sum(self.buffer.as_ref())) == 0xffff
    }

    // Always inlined: a field read is two loads; a call per field costs more than the
    // read (the compiler once outlined it from `L4View::parse`, +3 % per handshake).
    #[inline(always)]
    fn read_u16(&self, at: usize) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[at], b[at + 1]])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> IcmpPacket<T> {
    /// Sets the message type (checksum not updated).
    pub fn set_msg_type(&mut self, value: u8) {
        self.buffer.as_mut()[field::TYPE] = value;
    }

    /// Sets the code (checksum not updated).
    pub fn set_code(&mut self, value: u8) {
        self.buffer.as_mut()[field::CODE] = value;
    }

    /// Sets the checksum field.
    pub fn set_checksum(&mut self, value: u16) {
        self.write_u16(field::CHECKSUM.start, value);
    }

    /// Sets the 4 bytes after the checksum.
    pub fn set_rest_of_header(&mut self, value: u32) {
        self.buffer.as_mut()[field::REST].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the echo identifier.
    pub fn set_ident(&mut self, value: u16) {
        self.write_u16(field::IDENT.start, value);
    }

    /// Sets the echo sequence number.
    pub fn set_seq_no(&mut self, value: u16) {
        self.write_u16(field::SEQ_NO.start, value);
    }

    /// Sets the next-hop MTU of "fragmentation needed" (the two bytes before it are
    /// unused and should be zero: use `set_rest_of_header(0)` first when building).
    pub fn set_next_hop_mtu(&mut self, value: u16) {
        self.write_u16(field::MTU.start, value);
    }

    /// Everything after the header, writable.
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::DATA]
    }

    /// Computes the checksum over the whole message and writes it.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = checksum::finish(checksum::sum(self.buffer.as_ref()));
        self.set_checksum(c);
    }

    /// Sets the message type and updates the checksum incrementally — e.g. an echo
    /// request turned into a reply in place, without summing the data again.
    pub fn set_msg_type_incremental(&mut self, value: u8) {
        let old = self.read_u16(field::TYPE);
        self.set_msg_type(value);
        let new = self.read_u16(field::TYPE);
        self.set_checksum(checksum::update16(self.checksum(), old, new));
    }

    fn write_u16(&mut self, at: usize, value: u16) {
        self.buffer.as_mut()[at..at + 2].copy_from_slice(&value.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Ipv4Packet;
    use proptest::prelude::*;

    /// The ICMP part of `ipv4::tests::ICMP_ECHO`: echo request, ident 0x1234, seq 1, 40
    /// data bytes 0x10..0x37; checksum 0x26f8 computed with python3 (RFC 1071 sum).
    fn echo() -> [u8; 48] {
        let mut b = [0u8; 48];
        b.copy_from_slice(&crate::wire::ipv4::tests::ICMP_ECHO[20..]);
        b
    }

    #[test]
    fn parse_echo() {
        let ip = Ipv4Packet::new_checked(&crate::wire::ipv4::tests::ICMP_ECHO[..]).unwrap();
        let p = IcmpPacket::new_checked(ip.payload()).unwrap();
        assert_eq!(p.msg_type(), ICMP_ECHO_REQUEST);
        assert_eq!(p.code(), 0);
        assert_eq!(p.checksum(), 0x26f8);
        assert_eq!(p.ident(), 0x1234);
        assert_eq!(p.seq_no(), 1);
        assert_eq!(p.rest_of_header(), 0x1234_0001);
        assert_eq!(p.data().len(), 40);
        assert_eq!(p.data()[0], 0x10);
        assert!(p.verify_checksum());
    }

    #[test]
    fn build_echo() {
        let mut b = [0u8; 48];
        let mut p = IcmpPacket::new_unchecked(&mut b[..]);
        p.set_msg_type(ICMP_ECHO_REQUEST);
        p.set_code(0);
        p.set_ident(0x1234);
        p.set_seq_no(1);
        for (i, d) in p.data_mut().iter_mut().enumerate() {
            *d = 0x10 + i as u8;
        }
        p.fill_checksum();
        assert_eq!(b, echo());
    }

    #[test]
    fn echo_reply_in_place() {
        let mut b = echo();
        let mut p = IcmpPacket::new_checked(&mut b[..]).unwrap();
        p.set_msg_type_incremental(ICMP_ECHO_REPLY);
        assert!(p.verify_checksum());
        let c = p.checksum();
        p.fill_checksum();
        assert_eq!(c, p.checksum());
        assert_eq!(p.into_inner()[0], 0);
    }

    #[test]
    fn frag_needed() {
        let mut b = [0u8; 8 + 28];
        let mut p = IcmpPacket::new_unchecked(&mut b[..]);
        p.set_msg_type(ICMP_DEST_UNREACH);
        p.set_code(ICMP_FRAG_NEEDED);
        p.set_rest_of_header(0);
        p.set_next_hop_mtu(1480);
        p.data_mut().copy_from_slice(&crate::wire::ipv4::tests::ICMP_ECHO[..28]);
        p.fill_checksum();
        let p = IcmpPacket::new_checked(&b[..]).unwrap();
        assert_eq!((p.msg_type(), p.code(), p.next_hop_mtu()), (3, 4, 1480));
        assert_eq!(&b[4..8], &[0, 0, 0x05, 0xc8]);
        assert!(p.verify_checksum());
        let quoted = Ipv4Packet::new_unchecked(p.data());
        assert_eq!(quoted.dst_addr(), std::net::Ipv4Addr::new(192, 168, 1, 1));
    }

    #[test]
    fn truncated_at_every_length() {
        let b = echo();
        for n in 0..IcmpPacket::<&[u8]>::HEADER_LEN {
            assert_eq!(IcmpPacket::new_checked(&b[..n]).unwrap_err(), WireError::Truncated);
        }
        assert!(IcmpPacket::new_checked(&b[..8]).unwrap().data().is_empty());
    }

    #[test]
    fn bad_checksum() {
        let mut b = echo();
        b[47] ^= 0xff;
        assert!(!IcmpPacket::new_checked(&b[..]).unwrap().verify_checksum());
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            if let Ok(p) = IcmpPacket::new_checked(&bytes[..]) {
                let _ = (p.msg_type(), p.code(), p.checksum(), p.rest_of_header());
                let _ = (p.ident(), p.seq_no(), p.next_hop_mtu(), p.data(), p.verify_checksum());
            }
        }

        #[test]
        fn incremental_type_equals_recompute(
            mut bytes in proptest::collection::vec(any::<u8>(), 8..64),
            t in any::<u8>(),
        ) {
            bytes[1] |= 0x01; // never all-zero (the code byte stays), as no real message is
            let mut p = IcmpPacket::new_checked(&mut bytes[..]).unwrap();
            p.fill_checksum();
            p.set_msg_type_incremental(t);
            let c = p.checksum();
            p.fill_checksum();
            prop_assert_eq!(c, p.checksum());
        }
    }
}
