//! VRRP advertisements: version 3 (RFC 5798) and version 2 (RFC 3768).
//!
//! Build the view over [`Ipv4Packet::payload`](super::Ipv4Packet::payload) (or an IPv6
//! payload, once the data path has IPv6): the address family is the IP layer's, so
//! [`VrrpPacket::new_checked`] takes it, and every address in the list has that family's
//! length (4 or 16 bytes).
//!
//! ```text
//!  v3:  | ver 3 | type 1 | VRID | priority | count | rsvd(4) max adver int (12, cs) | checksum | addresses
//!  v2:  | ver 2 | type 1 | VRID | priority | count | auth type | adver int (s)     | checksum | addresses | auth data (8)
//! ```
//!
//! Checksums, as keepalived sends and checks them by default:
//! * version 3: over the IP pseudo-header (source, destination, protocol 112, VRRP length)
//!   and the VRRP message (RFC 5798 §5.2.8);
//! * version 2: over the VRRP message only (RFC 3768 §5.3.8). rvs sends authentication
//!   type 0 with eight zero bytes of authentication data, which RFC 3768 still carries.
//!
//! After `new_checked` succeeds, no getter or iterator panics: the buffer holds the header,
//! every address the count announces and (v2) the authentication data. Bytes after the
//! message (none in a well-formed packet) are ignored by the getters but covered by the
//! checksum, which is computed over the whole buffer: the IP payload is the VRRP message.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::checksum;

/// IP protocol number of VRRP.
pub const IPPROTO_VRRP: u8 = 112;
/// VRRP packet type of an advertisement (the only one).
pub const VRRP_TYPE_ADVERT: u8 = 1;
/// Length of a version 2 packet's authentication data.
pub const V2_AUTH_LEN: usize = 8;
/// The largest version 3 advert interval, in centiseconds (a 12-bit field: 40.95 s).
pub const V3_MAX_INTERVAL_CS: u16 = 0x0fff;

mod field {
    use core::ops::Range;

    pub const VER_TYPE: usize = 0;
    pub const VRID: usize = 1;
    pub const PRIORITY: usize = 2;
    pub const COUNT: usize = 3;
    /// v3: 4 reserved bits and the 12-bit interval in centiseconds.
    pub const V3_INTERVAL: Range<usize> = 4..6;
    /// v2: authentication type.
    pub const V2_AUTH_TYPE: usize = 4;
    /// v2: interval in seconds.
    pub const V2_INTERVAL: usize = 5;
    pub const CHECKSUM: Range<usize> = 6..8;
    pub const ADDRESSES: usize = 8;
}

/// The IP family of an advert's addresses: the family of the IP packet carrying it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// IPv4: 4-byte addresses.
    V4,
    /// IPv6: 16-byte addresses.
    V6,
}

impl Family {
    /// Length of one address.
    pub const fn addr_len(self) -> usize {
        match self {
            Family::V4 => 4,
            Family::V6 => 16,
        }
    }

    /// The family of `addr`.
    pub const fn of(addr: &IpAddr) -> Family {
        match addr {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }
}

/// Why a VRRP packet was rejected by [`VrrpPacket::new_checked`] or [`VrrpRepr::parse`].
/// Each variant is a distinct reason an advert is counted as invalid; the doc comment is
/// its message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum VrrpError {
    /// The packet is shorter than the 8-byte VRRP header.
    #[error("VRRP packet shorter than its header")]
    Truncated,
    /// The version is neither 2 nor 3.
    #[error("VRRP version is neither 2 nor 3")]
    BadVersion,
    /// The type is not 1 (advertisement).
    #[error("VRRP type is not advertisement")]
    BadType,
    /// The buffer ends before the address list (and, in v2, the authentication data)
    /// that the count announces.
    #[error("VRRP address list truncated")]
    TruncatedAddresses,
    /// Version 2 over IPv6, which RFC 3768 does not define.
    #[error("VRRP version 2 has no IPv6 form")]
    V2OverIpv6,
}

/// A view of a VRRP advertisement.
#[derive(Debug, Clone)]
pub struct VrrpPacket<T: AsRef<[u8]>> {
    buffer: T,
    family: Family,
}

impl<T: AsRef<[u8]>> VrrpPacket<T> {
    /// Length of the fixed header.
    pub const HEADER_LEN: usize = field::ADDRESSES;

    /// Wraps `buffer` without any check; getters may panic on a short buffer.
    pub const fn new_unchecked(buffer: T, family: Family) -> Self {
        VrrpPacket { buffer, family }
    }

    /// Wraps `buffer` after checking the header's length ([`VrrpError::Truncated`]), the
    /// version ([`VrrpError::BadVersion`], [`VrrpError::V2OverIpv6`]), the type
    /// ([`VrrpError::BadType`]) and that the address list (and v2's authentication data)
    /// fit ([`VrrpError::TruncatedAddresses`]). The checksum is not checked. No getter of
    /// the result panics.
    pub fn new_checked(buffer: T, family: Family) -> Result<Self, VrrpError> {
        if buffer.as_ref().len() < Self::HEADER_LEN {
            return Err(VrrpError::Truncated);
        }
        let p = Self::new_unchecked(buffer, family);
        match (p.version(), family) {
            (3, _) | (2, Family::V4) => {}
            (2, Family::V6) => return Err(VrrpError::V2OverIpv6),
            _ => return Err(VrrpError::BadVersion),
        }
        if p.kind() != VRRP_TYPE_ADVERT {
            return Err(VrrpError::BadType);
        }
        if p.buffer.as_ref().len() < p.message_len() {
            return Err(VrrpError::TruncatedAddresses);
        }
        Ok(p)
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The address family the view was built with.
    pub fn family(&self) -> Family {
        self.family
    }

    /// Version: 2 or 3 once checked.
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_TYPE] >> 4
    }

    /// Type: [`VRRP_TYPE_ADVERT`] once checked.
    pub fn kind(&self) -> u8 {
        self.buffer.as_ref()[field::VER_TYPE] & 0x0f
    }

    /// Virtual router identifier.
    pub fn vrid(&self) -> u8 {
        self.buffer.as_ref()[field::VRID]
    }

    /// Priority: 255 for the address owner, 0 for a master that resigns.
    pub fn priority(&self) -> u8 {
        self.buffer.as_ref()[field::PRIORITY]
    }

    /// Number of addresses.
    pub fn count(&self) -> u8 {
        self.buffer.as_ref()[field::COUNT]
    }

    /// The advert interval in centiseconds: v3's 12-bit field, or v2's seconds × 100.
    pub fn interval_cs(&self) -> u16 {
        let b = self.buffer.as_ref();
        if self.version() == 2 {
            u16::from(b[field::V2_INTERVAL]) * 100
        } else {
            u16::from_be_bytes([b[field::V3_INTERVAL.start], b[field::V3_INTERVAL.start + 1]]) & V3_MAX_INTERVAL_CS
        }
    }

    /// Version 2's authentication type (0: none); 0 for version 3, which has none.
    pub fn auth_type(&self) -> u8 {
        if self.version() == 2 {
            self.buffer.as_ref()[field::V2_AUTH_TYPE]
        } else {
            0
        }
    }

    /// The checksum field.
    pub fn checksum(&self) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[field::CHECKSUM.start], b[field::CHECKSUM.start + 1]])
    }

    /// Length of the message the header announces: header, addresses and (v2)
    /// authentication data.
    pub fn message_len(&self) -> usize {
        let auth = if self.version() == 2 { V2_AUTH_LEN } else { 0 };
        Self::HEADER_LEN + usize::from(self.count()) * self.family.addr_len() + auth
    }

    /// The raw address list.
    pub fn address_bytes(&self) -> &[u8] {
        let end = Self::HEADER_LEN + usize::from(self.count()) * self.family.addr_len();
        &self.buffer.as_ref()[Self::HEADER_LEN..end]
    }

    /// The addresses, in packet order.
    pub fn addresses(&self) -> impl Iterator<Item = IpAddr> + '_ {
        let family = self.family;
        self.address_bytes().chunks_exact(family.addr_len()).map(move |c| match family {
            Family::V4 => IpAddr::V4(Ipv4Addr::new(c[0], c[1], c[2], c[3])),
            Family::V6 => {
                let mut a = [0u8; 16];
                a.copy_from_slice(c);
                IpAddr::V6(Ipv6Addr::from(a))
            }
        })
    }

    /// Version 2's authentication data (empty for version 3).
    pub fn auth_data(&self) -> &[u8] {
        if self.version() == 2 {
            let start = self.message_len() - V2_AUTH_LEN;
            &self.buffer.as_ref()[start..start + V2_AUTH_LEN]
        } else {
            &[]
        }
    }

    /// Whether the checksum verifies: v3 with the pseudo-header of `src` → `dst`, v2 over
    /// the message alone (`src` and `dst` are then unused). False when `src` and `dst` are
    /// not of the view's family.
    pub fn verify_checksum(&self, src: IpAddr, dst: IpAddr) -> bool {
        match vrrp_checksum_sum(self.version(), src, dst, self.buffer.as_ref()) {
            Some(s) => checksum::fold(s) == 0xffff,
            None => false,
        }
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> VrrpPacket<T> {
    /// Sets version and type.
    pub fn set_version_type(&mut self, version: u8, kind: u8) {
        self.buffer.as_mut()[field::VER_TYPE] = (version << 4) | (kind & 0x0f);
    }

    /// Sets the VRID.
    pub fn set_vrid(&mut self, vrid: u8) {
        self.buffer.as_mut()[field::VRID] = vrid;
    }

    /// Sets the priority.
    pub fn set_priority(&mut self, priority: u8) {
        self.buffer.as_mut()[field::PRIORITY] = priority;
    }

    /// Sets the address count.
    pub fn set_count(&mut self, count: u8) {
        self.buffer.as_mut()[field::COUNT] = count;
    }

    /// Sets the interval: v3's 12-bit centiseconds (reserved bits zero; larger values are
    /// clamped to [`V3_MAX_INTERVAL_CS`]) or, for v2 (set the version first), whole seconds
    /// rounded down with authentication type 0.
    pub fn set_interval_cs(&mut self, cs: u16) {
        let v2 = self.version() == 2;
        let b = self.buffer.as_mut();
        if v2 {
            b[field::V2_AUTH_TYPE] = 0;
            b[field::V2_INTERVAL] = u8::try_from(cs / 100).unwrap_or(u8::MAX);
        } else {
            b[field::V3_INTERVAL].copy_from_slice(&cs.min(V3_MAX_INTERVAL_CS).to_be_bytes());
        }
    }

    /// Sets the checksum field.
    pub fn set_checksum(&mut self, csum: u16) {
        self.buffer.as_mut()[field::CHECKSUM].copy_from_slice(&csum.to_be_bytes());
    }

    /// Computes and writes the checksum (see [`VrrpPacket::verify_checksum`] for what it
    /// covers); the whole buffer is the message. No effect when `src`/`dst` are not of the
    /// view's family.
    pub fn fill_checksum(&mut self, src: IpAddr, dst: IpAddr) {
        self.set_checksum(0);
        if let Some(s) = vrrp_checksum_sum(self.version(), src, dst, self.buffer.as_ref()) {
            self.set_checksum(checksum::finish(s));
        }
    }
}

/// The ones' complement sum the checksum covers: v3 adds the pseudo-header. `None` when
/// the addresses' family differs from each other, or the message is too long for the
/// pseudo-header's length field.
fn vrrp_checksum_sum(version: u8, src: IpAddr, dst: IpAddr, msg: &[u8]) -> Option<u32> {
    let body = checksum::sum(msg);
    if version == 2 {
        return Some(body);
    }
    let len = u16::try_from(msg.len()).ok()?;
    let pseudo = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => checksum::pseudo_header(s, d, IPPROTO_VRRP, len),
        // RFC 8200 §8.1: source, destination, 32-bit length, three zero bytes, next header.
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            checksum::sum(&s.octets()) + checksum::sum(&d.octets()) + u32::from(len) + u32::from(IPPROTO_VRRP)
        }
        _ => return None,
    };
    Some(pseudo + body)
}

/// A VRRP advertisement, parsed: what the state machine reads and what [`VrrpRepr::emit`]
/// writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VrrpRepr {
    /// 2 or 3.
    pub version: u8,
    /// Virtual router identifier.
    pub vrid: u8,
    /// Priority.
    pub priority: u8,
    /// Advert interval in centiseconds (v2 carries whole seconds).
    pub interval_cs: u16,
    /// The virtual addresses, all of one family.
    pub addresses: Vec<IpAddr>,
}

impl VrrpRepr {
    /// Parses a checked view (its checksum is the caller's to verify).
    pub fn parse<T: AsRef<[u8]>>(p: &VrrpPacket<T>) -> VrrpRepr {
        VrrpRepr {
            version: p.version(),
            vrid: p.vrid(),
            priority: p.priority(),
            interval_cs: p.interval_cs(),
            addresses: p.addresses().collect(),
        }
    }

    /// The address family (IPv4 when there are no addresses).
    pub fn family(&self) -> Family {
        self.addresses.first().map_or(Family::V4, Family::of)
    }

    /// Length of the emitted message; at most 255 addresses are emitted.
    pub fn buffer_len(&self) -> usize {
        let n = self.addresses.len().min(255);
        let auth = if self.version == 2 { V2_AUTH_LEN } else { 0 };
        VrrpPacket::<&[u8]>::HEADER_LEN + n * self.family().addr_len() + auth
    }

    /// Writes the message into `buf` (exactly [`VrrpRepr::buffer_len`] bytes) with its
    /// checksum for `src` → `dst`. False, writing nothing, if `buf` has the wrong length or
    /// an address is not of the first one's family.
    pub fn emit(&self, buf: &mut [u8], src: IpAddr, dst: IpAddr) -> bool {
        let family = self.family();
        if buf.len() != self.buffer_len() || self.addresses.iter().any(|a| Family::of(a) != family) {
            return false;
        }
        buf.fill(0);
        let mut p = VrrpPacket::new_unchecked(&mut *buf, family);
        p.set_version_type(self.version, VRRP_TYPE_ADVERT);
        p.set_vrid(self.vrid);
        p.set_priority(self.priority);
        let n = self.addresses.len().min(255);
        p.set_count(n as u8); // at most 255 by the line above
        p.set_interval_cs(self.interval_cs);
        let mut at = VrrpPacket::<&[u8]>::HEADER_LEN;
        for a in self.addresses.iter().take(n) {
            match a {
                IpAddr::V4(v4) => buf[at..at + 4].copy_from_slice(&v4.octets()),
                IpAddr::V6(v6) => buf[at..at + 16].copy_from_slice(&v6.octets()),
            }
            at += family.addr_len();
        }
        VrrpPacket::new_unchecked(&mut *buf, family).fill_checksum(src, dst);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(a: [u8; 4]) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(a))
    }

    const GROUP: IpAddr = IpAddr::V4(Ipv4Addr::new(224, 0, 0, 18));

    /// A keepalived-style VRRPv3 advert from 10.10.0.1: VRID 51, priority 200, 100 ms
    /// (10 cs), addresses 10.10.0.100 and 10.20.0.100. Checksum worked out by hand,
    /// independently of this module (16-bit words, ones' complement, checksum field 0):
    ///   pseudo-header: 0a0a + 0001 + e000 + 0012 + 0070 (proto 112) + 0010 (len 16) = ea9d
    ///   message: 3133 + c802 = f935; + 000a = f93f; + 0a0a = 1_0349 → 034a (end-around
    ///     carry); + 0064 = 03ae; + 0a14 = 0dc2; + 0064 = 0e26
    ///   total: ea9d + 0e26 = f8c3; checksum = !f8c3 = 0x073c
    /// (cross-checked with python3: fold the sum of the same words, complement: 0x73c.)
    #[rustfmt::skip]
    const V3_ADVERT: [u8; 16] = [
        0x31, 51, 200, 2, 0x00, 0x0a, 0x07, 0x3c,
        10, 10, 0, 100,
        10, 20, 0, 100,
    ];

    /// A VRRPv2 advert from 10.10.0.1: VRID 51, priority 100, 1 s, auth type 0, address
    /// 10.10.0.100, eight zero bytes of authentication data. Checksum over the message only:
    ///   2133 + 6401 + 0001 + 0a0a + 0064 + 0 (auth) = 2133+6401 = 8534; +0001 = 8535;
    ///   +0a0a = 8f3f; +0064 = 8fa3; checksum = !8fa3 = 0x705c
    #[rustfmt::skip]
    const V2_ADVERT: [u8; 20] = [
        0x21, 51, 100, 1, 0x00, 0x01, 0x70, 0x5c,
        10, 10, 0, 100,
        0, 0, 0, 0, 0, 0, 0, 0,
    ];

    #[test]
    fn v3_fields_and_checksum() {
        let p = VrrpPacket::new_checked(&V3_ADVERT[..], Family::V4).unwrap();
        assert_eq!((p.version(), p.kind(), p.vrid(), p.priority(), p.count()), (3, 1, 51, 200, 2));
        assert_eq!(p.interval_cs(), 10);
        assert_eq!(p.auth_type(), 0);
        assert_eq!(p.checksum(), 0x073c);
        assert_eq!(p.message_len(), 16);
        assert_eq!(p.addresses().collect::<Vec<_>>(), [v4([10, 10, 0, 100]), v4([10, 20, 0, 100])]);
        assert!(p.auth_data().is_empty());
        assert!(p.verify_checksum(v4([10, 10, 0, 1]), GROUP));
        // The pseudo-header counts: another source fails.
        assert!(!p.verify_checksum(v4([10, 10, 0, 2]), GROUP));
    }

    #[test]
    fn v2_fields_and_checksum() {
        let p = VrrpPacket::new_checked(&V2_ADVERT[..], Family::V4).unwrap();
        assert_eq!((p.version(), p.kind(), p.vrid(), p.priority(), p.count()), (2, 1, 51, 100, 1));
        assert_eq!((p.auth_type(), p.interval_cs()), (0, 100));
        assert_eq!(p.checksum(), 0x705c);
        assert_eq!(p.addresses().collect::<Vec<_>>(), [v4([10, 10, 0, 100])]);
        assert_eq!(p.auth_data(), &[0; 8]);
        // No pseudo-header in v2: any source verifies.
        assert!(p.verify_checksum(v4([10, 10, 0, 1]), GROUP));
        assert!(p.verify_checksum(v4([192, 0, 2, 1]), GROUP));
    }

    #[test]
    fn emit_reproduces_the_known_bytes() {
        let src = v4([10, 10, 0, 1]);
        let r = VrrpRepr::parse(&VrrpPacket::new_checked(&V3_ADVERT[..], Family::V4).unwrap());
        let mut buf = vec![0; r.buffer_len()];
        assert!(r.emit(&mut buf, src, GROUP));
        assert_eq!(buf, V3_ADVERT);
        let r = VrrpRepr::parse(&VrrpPacket::new_checked(&V2_ADVERT[..], Family::V4).unwrap());
        let mut buf = vec![0; r.buffer_len()];
        assert!(r.emit(&mut buf, src, GROUP));
        assert_eq!(buf, V2_ADVERT);
        // Wrong length, mixed families: nothing written.
        assert!(!r.emit(&mut [0; 4], src, GROUP));
        let mixed = VrrpRepr { addresses: vec![v4([1, 2, 3, 4]), "::1".parse().unwrap()], ..r };
        assert!(!mixed.emit(&mut vec![0; mixed.buffer_len()], src, GROUP));
    }

    #[test]
    fn v3_ipv6_round_trip() {
        let a: IpAddr = "fd00:10::100".parse().unwrap();
        let src: IpAddr = "fe80::1".parse().unwrap();
        let dst: IpAddr = "ff02::12".parse().unwrap();
        let r = VrrpRepr { version: 3, vrid: 7, priority: 100, interval_cs: 100, addresses: vec![a] };
        let mut buf = vec![0; r.buffer_len()];
        assert_eq!(buf.len(), 24);
        assert!(r.emit(&mut buf, src, dst));
        let p = VrrpPacket::new_checked(&buf[..], Family::V6).unwrap();
        assert!(p.verify_checksum(src, dst));
        assert!(!p.verify_checksum(v4([10, 0, 0, 1]), GROUP), "mixed families never verify");
        assert_eq!(VrrpRepr::parse(&p), r);
        assert_eq!(VrrpPacket::new_checked(&V2_ADVERT[..], Family::V6).unwrap_err(), VrrpError::V2OverIpv6);
    }

    #[test]
    fn malformed_input_says_why() {
        assert_eq!(VrrpPacket::new_checked(&V3_ADVERT[..7], Family::V4).unwrap_err(), VrrpError::Truncated);
        assert_eq!(VrrpPacket::new_checked(&V3_ADVERT[..15], Family::V4).unwrap_err(), VrrpError::TruncatedAddresses);
        // v2 without its authentication data.
        assert_eq!(VrrpPacket::new_checked(&V2_ADVERT[..12], Family::V4).unwrap_err(), VrrpError::TruncatedAddresses);
        let mut b = V3_ADVERT;
        b[0] = 0x41;
        assert_eq!(VrrpPacket::new_checked(&b[..], Family::V4).unwrap_err(), VrrpError::BadVersion);
        b[0] = 0x32;
        assert_eq!(VrrpPacket::new_checked(&b[..], Family::V4).unwrap_err(), VrrpError::BadType);
        let mut b = V3_ADVERT;
        b[9] ^= 1;
        let p = VrrpPacket::new_checked(&b[..], Family::V4).unwrap();
        assert!(!p.verify_checksum(v4([10, 10, 0, 1]), GROUP));
        // The reserved bits do not leak into the interval.
        let mut b = V3_ADVERT;
        b[4] = 0xf0;
        assert_eq!(VrrpPacket::new_checked(&b[..], Family::V4).unwrap().interval_cs(), 10);
    }

    #[test]
    fn intervals_clamp_to_their_fields() {
        let mut buf = [0u8; 8];
        let mut p = VrrpPacket::new_unchecked(&mut buf[..], Family::V4);
        p.set_version_type(3, 1);
        p.set_interval_cs(5000);
        assert_eq!(p.interval_cs(), V3_MAX_INTERVAL_CS);
        p.set_version_type(2, 1);
        p.set_interval_cs(250);
        assert_eq!(p.interval_cs(), 200, "v2 carries whole seconds");
    }
}
