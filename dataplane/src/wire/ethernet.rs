//! Ethernet II frames and MAC addresses.
//!
//! The view covers the 14-byte header (destination, source, EtherType) and the payload.
//! The frame check sequence is not part of the buffer (NICs strip it). An 802.1Q tag is
//! not parsed here: a tagged frame shows [`ETHERTYPE_VLAN`](super::ETHERTYPE_VLAN) as
//! its EtherType.

use core::fmt;
use core::str::FromStr;

use super::{Result, WireError};

/// An Ethernet (EUI-48) MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// ff:ff:ff:ff:ff:ff.
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);
    /// 00:00:00:00:00:00 (the unknown target of an ARP request).
    pub const ZERO: MacAddr = MacAddr([0; 6]);

    /// The six bytes, in wire order.
    pub const fn octets(&self) -> [u8; 6] {
        self.0
    }

    /// Whether this is ff:ff:ff:ff:ff:ff.
    pub fn is_broadcast(&self) -> bool {
        *self == Self::BROADCAST
    }

    /// Whether the group bit (the low bit of the first byte) is set; broadcast included.
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }

    /// Whether this is an individual address: neither multicast nor broadcast.
    pub fn is_unicast(&self) -> bool {
        !self.is_multicast()
    }

    /// Whether this is 00:00:00:00:00:00.
    pub fn is_zero(&self) -> bool {
        *self == Self::ZERO
    }

    /// Whether the locally administered bit (bit 1 of the first byte) is set.
    pub fn is_local(&self) -> bool {
        self.0[0] & 0x02 != 0
    }
}

impl From<[u8; 6]> for MacAddr {
    fn from(b: [u8; 6]) -> Self {
        MacAddr(b)
    }
}

impl fmt::Display for MacAddr {
    /// Lower-case hex bytes separated by colons: `52:54:00:12:34:56`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.0;
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2], b[3], b[4], b[5])
    }
}

/// The string given to [`MacAddr::from_str`] is not six hex bytes separated by `:` or `-`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid MAC address (expected six hex bytes separated by ':' or '-', e.g. 52:54:00:12:34:56)")]
pub struct ParseMacAddrError;

impl FromStr for MacAddr {
    type Err = ParseMacAddrError;

    /// Parses `aa:bb:cc:dd:ee:ff` or `aa-bb-cc-dd-ee-ff` (either case; one separator kind
    /// throughout; exactly two hex digits per byte).
    fn from_str(s: &str) -> core::result::Result<Self, Self::Err> {
        let b = s.as_bytes();
        if b.len() != 17 {
            return Err(ParseMacAddrError);
        }
        let sep = b[2];
        if sep != b':' && sep != b'-' {
            return Err(ParseMacAddrError);
        }
        let mut out = [0u8; 6];
        for (i, byte) in out.iter_mut().enumerate() {
            let at = i * 3;
            if i > 0 && b[at - 1] != sep {
                return Err(ParseMacAddrError);
            }
            let hi = hex_digit(b[at]).ok_or(ParseMacAddrError)?;
            let lo = hex_digit(b[at + 1]).ok_or(ParseMacAddrError)?;
            *byte = hi << 4 | lo;
        }
        Ok(MacAddr(out))
    }
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

mod field {
    use core::ops::{Range, RangeFrom};

    pub const DST: Range<usize> = 0..6;
    pub const SRC: Range<usize> = 6..12;
    pub const ETHERTYPE: Range<usize> = 12..14;
    pub const PAYLOAD: RangeFrom<usize> = 14..;
}

/// A view of an Ethernet II frame.
///
/// After [`EthernetFrame::new_checked`] succeeds, no getter panics.
#[derive(Debug, Clone)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Length of the Ethernet II header.
    pub const HEADER_LEN: usize = field::PAYLOAD.start;

    /// Wraps `buffer` without any check; getters panic if it is shorter than the header.
    pub const fn new_unchecked(buffer: T) -> Self {
        EthernetFrame { buffer }
    }

    /// Wraps `buffer` after checking it holds a full header ([`WireError::Truncated`]
    /// otherwise). No getter of the result panics.
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

    /// The whole frame, header included.
    pub fn as_bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// Destination address.
    pub fn dst(&self) -> MacAddr {
        MacAddr(read6(&self.buffer.as_ref()[field::DST]))
    }

    /// Source address.
    pub fn src(&self) -> MacAddr {
        MacAddr(read6(&self.buffer.as_ref()[field::SRC]))
    }

    /// EtherType (e.g. [`ETHERTYPE_IPV4`](super::ETHERTYPE_IPV4)).
    pub fn ethertype(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::ETHERTYPE];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// Everything after the header (may include trailing padding of short frames).
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    /// Sets the destination address.
    pub fn set_dst(&mut self, addr: MacAddr) {
        self.buffer.as_mut()[field::DST].copy_from_slice(&addr.0);
    }

    /// Sets the source address.
    pub fn set_src(&mut self, addr: MacAddr) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(&addr.0);
    }

    /// Sets the EtherType.
    pub fn set_ethertype(&mut self, ethertype: u16) {
        self.buffer.as_mut()[field::ETHERTYPE].copy_from_slice(&ethertype.to_be_bytes());
    }

    /// Everything after the header, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD]
    }
}

fn read6(b: &[u8]) -> [u8; 6] {
    [b[0], b[1], b[2], b[3], b[4], b[5]]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{ETHERTYPE_ARP, ETHERTYPE_IPV4};

    // The first 14 bytes of the ARP request in arp.rs: broadcast from 52:54:00:12:34:56.
    const HEADER: [u8; 14] = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x08, 0x06];

    #[test]
    fn parse() {
        let mut bytes = HEADER.to_vec();
        bytes.extend_from_slice(&[1, 2, 3]);
        let f = EthernetFrame::new_checked(&bytes[..]).unwrap();
        assert_eq!(f.dst(), MacAddr::BROADCAST);
        assert_eq!(f.src(), MacAddr([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]));
        assert_eq!(f.ethertype(), ETHERTYPE_ARP);
        assert_eq!(f.payload(), &[1, 2, 3]);
    }

    #[test]
    fn build() {
        let mut bytes = [0u8; 14];
        let mut f = EthernetFrame::new_unchecked(&mut bytes[..]);
        f.set_dst(MacAddr::BROADCAST);
        f.set_src("52:54:00:12:34:56".parse().unwrap());
        f.set_ethertype(ETHERTYPE_ARP);
        assert!(f.payload_mut().is_empty());
        assert_eq!(bytes, HEADER);
    }

    #[test]
    fn round_trip() {
        let mut bytes = HEADER;
        let mut f = EthernetFrame::new_checked(&mut bytes[..]).unwrap();
        let (d, s) = (f.dst(), f.src());
        f.set_dst(s);
        f.set_src(d);
        f.set_ethertype(ETHERTYPE_IPV4);
        let f = EthernetFrame::new_checked(&bytes[..]).unwrap();
        assert_eq!(f.dst(), MacAddr([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]));
        assert_eq!(f.src(), MacAddr::BROADCAST);
        assert_eq!(f.ethertype(), 0x0800);
        assert_eq!(f.into_inner().len(), 14);
    }

    #[test]
    fn truncated_at_every_length() {
        for n in 0..EthernetFrame::<&[u8]>::HEADER_LEN {
            assert_eq!(EthernetFrame::new_checked(&HEADER[..n]).unwrap_err(), WireError::Truncated);
        }
    }

    #[test]
    fn mac_classes() {
        assert!(MacAddr::BROADCAST.is_broadcast());
        assert!(MacAddr::BROADCAST.is_multicast());
        assert!(!MacAddr::BROADCAST.is_unicast());
        let mcast = MacAddr([0x01, 0x00, 0x5e, 0x00, 0x00, 0x12]);
        assert!(mcast.is_multicast() && !mcast.is_broadcast() && !mcast.is_unicast());
        let ucast = MacAddr([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
        assert!(ucast.is_unicast() && !ucast.is_multicast() && ucast.is_local());
        assert!(MacAddr::ZERO.is_zero() && MacAddr::ZERO.is_unicast());
    }

    #[test]
    fn mac_display_and_parse() {
        let m = MacAddr([0x52, 0x54, 0x00, 0xab, 0xcd, 0xef]);
        assert_eq!(m.to_string(), "52:54:00:ab:cd:ef");
        assert_eq!("52:54:00:AB:cd:EF".parse::<MacAddr>(), Ok(m));
        assert_eq!("52-54-00-ab-cd-ef".parse::<MacAddr>(), Ok(m));
        for bad in [
            "",
            "52:54:00:ab:cd",
            "52:54:00:ab:cd:ef:01",
            "52:54:00-ab:cd:ef",
            "52:54:00:ab:cd:eg",
            "5:54:00:ab:cd:ef0",
            "52.54.00.ab.cd.ef",
            "52:54:00:ab:cd:é",
        ] {
            assert_eq!(bad.parse::<MacAddr>(), Err(ParseMacAddrError), "{bad}");
        }
    }
}
