//! ARP for IPv4 over Ethernet (RFC 826).
//!
//! Only the Ethernet/IPv4 form exists for rvs (hardware type 1, protocol type 0x0800,
//! address lengths 6 and 4), so the view has fixed offsets and `new_checked` rejects any
//! other form with [`WireError::BadArpFormat`].

use std::net::Ipv4Addr;

use super::{MacAddr, Result, WireError, ETHERTYPE_IPV4};

/// ARP operation: request ("who has").
pub const ARP_REQUEST: u16 = 1;
/// ARP operation: reply ("is at").
pub const ARP_REPLY: u16 = 2;

/// Hardware type of Ethernet.
const HTYPE_ETHERNET: u16 = 1;

mod field {
    use core::ops::Range;

    pub const HTYPE: Range<usize> = 0..2;
    pub const PTYPE: Range<usize> = 2..4;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: Range<usize> = 6..8;
    pub const SHA: Range<usize> = 8..14;
    pub const SPA: Range<usize> = 14..18;
    pub const THA: Range<usize> = 18..24;
    pub const TPA: Range<usize> = 24..28;
}

/// A view of an Ethernet/IPv4 ARP packet.
///
/// After [`ArpPacket::new_checked`] succeeds, no getter panics. Bytes after
/// [`ArpPacket::LEN`] (Ethernet padding) are ignored.
#[derive(Debug, Clone)]
pub struct ArpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    /// Length of an Ethernet/IPv4 ARP packet.
    pub const LEN: usize = field::TPA.end;

    /// Wraps `buffer` without any check; getters panic if it is shorter than [`Self::LEN`].
    pub const fn new_unchecked(buffer: T) -> Self {
        ArpPacket { buffer }
    }

    /// Wraps `buffer` after checking its length ([`WireError::Truncated`]) and that it is
    /// Ethernet/IPv4 ARP ([`WireError::BadArpFormat`]). No getter of the result panics.
    pub fn new_checked(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < Self::LEN {
            return Err(WireError::Truncated);
        }
        let p = Self::new_unchecked(buffer);
        if p.hardware_type() != HTYPE_ETHERNET
            || p.protocol_type() != ETHERTYPE_IPV4
            || p.hardware_len() != 6
            || p.protocol_len() != 4
        {
            return Err(WireError::BadArpFormat);
        }
        Ok(p)
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Hardware type (1 for Ethernet).
    pub fn hardware_type(&self) -> u16 {
        self.read_u16(field::HTYPE.start)
    }

    /// Protocol type (0x0800 for IPv4).
    pub fn protocol_type(&self) -> u16 {
        self.read_u16(field::PTYPE.start)
    }

    /// Hardware address length (6).
    pub fn hardware_len(&self) -> u8 {
        self.buffer.as_ref()[field::HLEN]
    }

    /// Protocol address length (4).
    pub fn protocol_len(&self) -> u8 {
        self.buffer.as_ref()[field::PLEN]
    }

    /// Operation: [`ARP_REQUEST`], [`ARP_REPLY`] or something else.
    pub fn operation(&self) -> u16 {
        self.read_u16(field::OPER.start)
    }

    /// Sender hardware address.
    pub fn sender_mac(&self) -> MacAddr {
        self.read_mac(field::SHA.start)
    }

    /// Sender protocol address.
    pub fn sender_ip(&self) -> Ipv4Addr {
        self.read_ip(field::SPA.start)
    }

    /// Target hardware address (zero in a request).
    pub fn target_mac(&self) -> MacAddr {
        self.read_mac(field::THA.start)
    }

    /// Target protocol address.
    pub fn target_ip(&self) -> Ipv4Addr {
        self.read_ip(field::TPA.start)
    }

    // Always inlined: a field read is two loads; a call per field costs more than the
    // read (the compiler once outlined it from `L4View::parse`, +3 % per handshake).
    #[inline(always)]
    fn read_u16(&self, at: usize) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[at], b[at + 1]])
    }

    fn read_mac(&self, at: usize) -> MacAddr {
        let b = &self.buffer.as_ref()[at..at + 6];
        MacAddr([b[0], b[1], b[2], b[3], b[4], b[5]])
    }

    fn read_ip(&self, at: usize) -> Ipv4Addr {
        let b = &self.buffer.as_ref()[at..at + 4];
        Ipv4Addr::new(b[0], b[1], b[2], b[3])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ArpPacket<T> {
    /// Writes the Ethernet/IPv4 constants: hardware type 1, protocol type 0x0800,
    /// lengths 6 and 4. The first step of building a packet.
    pub fn init_fixed_fields(&mut self) {
        self.set_hardware_type(HTYPE_ETHERNET);
        self.set_protocol_type(ETHERTYPE_IPV4);
        self.set_hardware_len(6);
        self.set_protocol_len(4);
    }

    /// Sets the hardware type.
    pub fn set_hardware_type(&mut self, value: u16) {
        self.buffer.as_mut()[field::HTYPE].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the protocol type.
    pub fn set_protocol_type(&mut self, value: u16) {
        self.buffer.as_mut()[field::PTYPE].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the hardware address length.
    pub fn set_hardware_len(&mut self, value: u8) {
        self.buffer.as_mut()[field::HLEN] = value;
    }

    /// Sets the protocol address length.
    pub fn set_protocol_len(&mut self, value: u8) {
        self.buffer.as_mut()[field::PLEN] = value;
    }

    /// Sets the operation.
    pub fn set_operation(&mut self, value: u16) {
        self.buffer.as_mut()[field::OPER].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the sender hardware address.
    pub fn set_sender_mac(&mut self, addr: MacAddr) {
        self.buffer.as_mut()[field::SHA].copy_from_slice(&addr.0);
    }

    /// Sets the sender protocol address.
    pub fn set_sender_ip(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[field::SPA].copy_from_slice(&addr.octets());
    }

    /// Sets the target hardware address.
    pub fn set_target_mac(&mut self, addr: MacAddr) {
        self.buffer.as_mut()[field::THA].copy_from_slice(&addr.0);
    }

    /// Sets the target protocol address.
    pub fn set_target_ip(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[field::TPA].copy_from_slice(&addr.octets());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{EthernetFrame, ETHERTYPE_ARP};

    /// "Who has 10.0.0.1? Tell 10.0.0.2" from 52:54:00:12:34:56, as captured on the wire:
    /// a broadcast Ethernet frame padded to the 60-byte minimum (bytes written out with
    /// python3 struct.pack, independently of this module).
    #[rustfmt::skip]
    const REQUEST_FRAME: [u8; 60] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x08, 0x06, 0x00, 0x01,
        0x08, 0x00, 0x06, 0x04, 0x00, 0x01, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x0a, 0x00, 0x00, 0x02,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0a, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    ];
    const MAC: MacAddr = MacAddr([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);

    #[test]
    fn parse_request() {
        let eth = EthernetFrame::new_checked(&REQUEST_FRAME[..]).unwrap();
        assert_eq!(eth.ethertype(), ETHERTYPE_ARP);
        assert!(eth.dst().is_broadcast());
        let arp = ArpPacket::new_checked(eth.payload()).unwrap();
        assert_eq!(arp.hardware_type(), 1);
        assert_eq!(arp.protocol_type(), 0x0800);
        assert_eq!((arp.hardware_len(), arp.protocol_len()), (6, 4));
        assert_eq!(arp.operation(), ARP_REQUEST);
        assert_eq!(arp.sender_mac(), MAC);
        assert_eq!(arp.sender_ip(), Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(arp.target_mac(), MacAddr::ZERO);
        assert_eq!(arp.target_ip(), Ipv4Addr::new(10, 0, 0, 1));
    }

    #[test]
    fn build_request() {
        let mut frame = [0u8; 60];
        let mut eth = EthernetFrame::new_unchecked(&mut frame[..]);
        eth.set_dst(MacAddr::BROADCAST);
        eth.set_src(MAC);
        eth.set_ethertype(ETHERTYPE_ARP);
        let mut arp = ArpPacket::new_unchecked(eth.payload_mut());
        arp.init_fixed_fields();
        arp.set_operation(ARP_REQUEST);
        arp.set_sender_mac(MAC);
        arp.set_sender_ip(Ipv4Addr::new(10, 0, 0, 2));
        arp.set_target_mac(MacAddr::ZERO);
        arp.set_target_ip(Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(frame, REQUEST_FRAME);
    }

    #[test]
    fn round_trip_request_to_reply() {
        // Turn the request into the reply 10.0.0.1 would send, in place.
        let ours = MacAddr([0x02, 0, 0, 0, 0, 1]);
        let mut frame = REQUEST_FRAME;
        let mut arp = ArpPacket::new_checked(&mut frame[14..]).unwrap();
        let (sha, spa, tpa) = (arp.sender_mac(), arp.sender_ip(), arp.target_ip());
        arp.set_operation(ARP_REPLY);
        arp.set_target_mac(sha);
        arp.set_target_ip(spa);
        arp.set_sender_mac(ours);
        arp.set_sender_ip(tpa);
        let arp = ArpPacket::new_checked(&frame[14..]).unwrap();
        assert_eq!(arp.operation(), ARP_REPLY);
        assert_eq!(arp.sender_mac(), ours);
        assert_eq!(arp.sender_ip(), Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(arp.target_mac(), MAC);
        assert_eq!(arp.target_ip(), Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(arp.into_inner().len(), 46);
    }

    #[test]
    fn truncated_at_every_length() {
        let arp = &REQUEST_FRAME[14..14 + ArpPacket::<&[u8]>::LEN];
        for n in 0..arp.len() {
            assert_eq!(ArpPacket::new_checked(&arp[..n]).unwrap_err(), WireError::Truncated);
        }
        assert!(ArpPacket::new_checked(arp).is_ok());
    }

    #[test]
    fn bad_format() {
        // htype, ptype (both bytes), hlen, plen: each corrupted alone.
        for (at, value) in [(1, 6), (2, 0x86), (3, 0x06), (4, 8), (5, 16)] {
            let mut arp = [0u8; 28];
            arp.copy_from_slice(&REQUEST_FRAME[14..42]);
            arp[at] = value;
            assert_eq!(ArpPacket::new_checked(&arp[..]).unwrap_err(), WireError::BadArpFormat);
        }
    }
}
