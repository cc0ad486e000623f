//! ICMPv6 messages (RFC 4443) and neighbour discovery's solicitations and advertisements
//! (RFC 4861 §4.3, §4.4, §7).
//!
//! [`Icmpv6Packet`] covers the whole message: build it over the IPv6 payload at the offset
//! [`walk_ext_headers`](super::ipv6::walk_ext_headers) found. Its checksum covers the IPv6
//! pseudo-header, so checking or filling it takes the addresses. The 4 bytes after
//! type/code/checksum mean, per type: identifier and sequence number (echo), the MTU
//! (packet too big), the pointer (parameter problem), unused (the other errors). Error
//! messages quote as much of the offending packet as fits in [`Icmpv6Packet::data`].
//!
//! Neighbour solicitations and advertisements are checked as RFC 4861 §7.1 asks by
//! [`NdRepr::parse`] (hop limit 255, code 0, length, target not multicast, options with a
//! non-zero length, the DAD and multicast rules), with a bounded option walk
//! ([`NdOptionIter`]). [`emit_ns`] and [`emit_na`] write whole IPv6 packets (the caller
//! adds the Ethernet header); [`emit_na_for_ns`] answers a parsed solicitation.

use std::net::Ipv6Addr;

use super::checksum;
use super::ethernet::MacAddr;
use super::ipv6::{Ipv6Packet, IPPROTO_ICMPV6};

/// Type: destination unreachable.
pub const ICMPV6_DEST_UNREACH: u8 = 1;
/// Type: packet too big (carries the next-hop MTU).
pub const ICMPV6_PACKET_TOO_BIG: u8 = 2;
/// Type: time exceeded (code 0: hop limit; 1: reassembly).
pub const ICMPV6_TIME_EXCEEDED: u8 = 3;
/// Type: parameter problem (carries a pointer into the offending packet).
pub const ICMPV6_PARAM_PROBLEM: u8 = 4;
/// Type: echo request.
pub const ICMPV6_ECHO_REQUEST: u8 = 128;
/// Type: echo reply.
pub const ICMPV6_ECHO_REPLY: u8 = 129;
/// Type: neighbour solicitation.
pub const ICMPV6_NEIGHBOR_SOLICIT: u8 = 135;
/// Type: neighbour advertisement.
pub const ICMPV6_NEIGHBOR_ADVERT: u8 = 136;
/// Code of [`ICMPV6_DEST_UNREACH`]: port unreachable.
pub const ICMPV6_PORT_UNREACH: u8 = 4;
/// ND option: source link-layer address.
pub const ND_OPT_SOURCE_LL: u8 = 1;
/// ND option: target link-layer address.
pub const ND_OPT_TARGET_LL: u8 = 2;
/// Most options [`NdOptionIter`] reads before it refuses the message. Every option is at
/// least 8 bytes, so a message could otherwise carry ~180 of them in a 1500-byte frame;
/// an NS or NA needs one.
pub const MAX_ND_OPTIONS: usize = 8;
/// The hop limit every neighbour discovery message is sent and must be received with
/// (RFC 4861 §7.1: proof it was not forwarded by a router).
pub const ND_HOP_LIMIT: u8 = 255;

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
    pub const DATA: RangeFrom<usize> = 8..;
    /// NA flags byte (R, S, O in its high bits; within REST).
    pub const ND_FLAGS: usize = 4;
    /// NS/NA target address.
    pub const ND_TARGET: Range<usize> = 8..24;
    /// NS/NA options start here.
    pub const ND_OPTIONS: usize = 24;
}

const NA_FLAG_ROUTER: u8 = 0x80;
const NA_FLAG_SOLICITED: u8 = 0x40;
const NA_FLAG_OVERRIDE: u8 = 0x20;

/// Why an ICMPv6 message or a neighbour discovery message was refused. Each variant is a
/// distinct drop reason; its doc comment is its message and
/// [`Icmpv6Error::drop_reason_name`] its counter name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Icmpv6Error {
    /// The message is shorter than its 8-byte header.
    #[error("ICMPv6 message shorter than its 8-byte header")]
    Truncated,
    /// The checksum over the message and the pseudo-header does not verify.
    #[error("ICMPv6 checksum wrong")]
    BadChecksum,
    /// A neighbour discovery message not received with hop limit 255 (it was forwarded).
    #[error("neighbour discovery message with hop limit other than 255")]
    NdBadHopLimit,
    /// A neighbour solicitation or advertisement with a code other than 0.
    #[error("neighbour discovery message with a code other than 0")]
    NdBadCode,
    /// A solicitation or advertisement shorter than 24 bytes (no room for the target).
    #[error("neighbour solicitation or advertisement shorter than 24 bytes")]
    NdTruncated,
    /// A multicast target address.
    #[error("neighbour discovery target address is multicast")]
    NdTargetMulticast,
    /// An option with length zero (RFC 4861 §4.6: the message must be discarded).
    #[error("neighbour discovery option with length zero")]
    NdZeroLengthOption,
    /// An option that runs past the message, or a link-layer address option not 8 bytes
    /// long (the Ethernet format).
    #[error("neighbour discovery option truncated or of a bad length")]
    NdBadOption,
    /// More than [`MAX_ND_OPTIONS`] options.
    #[error("more neighbour discovery options than rvs reads")]
    NdTooManyOptions,
    /// A duplicate address detection solicitation (source ::) that is not to a
    /// solicited-node address or that carries a source link-layer address.
    #[error("DAD solicitation not to a solicited-node address or with a source link-layer address")]
    NdBadDad,
    /// An advertisement to a multicast address with the solicited flag set.
    #[error("multicast neighbour advertisement with the solicited flag")]
    NdSolicitedMulticast,
    /// A solicitation or advertisement from a multicast source (RFC 4291 §2.7: no packet
    /// comes from one; an answer to it would go to a group).
    #[error("neighbour discovery message from a multicast source")]
    NdBadSource,
    /// The message is neither a solicitation nor an advertisement.
    #[error("ICMPv6 message is not a neighbour solicitation or advertisement")]
    NdNotNeighbor,
    /// The output buffer is too short for the message to build.
    #[error("buffer too short for the ICMPv6 message")]
    NoRoom,
}

impl Icmpv6Error {
    /// The stable snake_case counter name of this refusal, in the style of
    /// [`DropReason::name`](crate::stats::DropReason::name): the worker's drop reasons
    /// of the same name (`From<Icmpv6Error> for DropReason`) count them.
    pub const fn drop_reason_name(self) -> &'static str {
        match self {
            Icmpv6Error::Truncated => "icmp6_malformed",
            Icmpv6Error::BadChecksum => "icmp6_bad_checksum",
            Icmpv6Error::NdBadHopLimit => "nd_bad_hop_limit",
            Icmpv6Error::NdBadCode => "nd_bad_code",
            Icmpv6Error::NdTruncated => "nd_truncated",
            Icmpv6Error::NdTargetMulticast => "nd_target_multicast",
            Icmpv6Error::NdZeroLengthOption => "nd_zero_length_option",
            Icmpv6Error::NdBadOption => "nd_bad_option",
            Icmpv6Error::NdTooManyOptions => "nd_too_many_options",
            Icmpv6Error::NdBadDad => "nd_bad_dad",
            Icmpv6Error::NdSolicitedMulticast => "nd_solicited_multicast",
            Icmpv6Error::NdBadSource => "nd_bad_source",
            Icmpv6Error::NdNotNeighbor => "nd_not_neighbor",
            Icmpv6Error::NoRoom => "icmp6_not_sent",
        }
    }

    /// Every refusal, for listing the counters.
    pub const ALL: &'static [Icmpv6Error] = &[
        Icmpv6Error::Truncated,
        Icmpv6Error::BadChecksum,
        Icmpv6Error::NdBadHopLimit,
        Icmpv6Error::NdBadCode,
        Icmpv6Error::NdTruncated,
        Icmpv6Error::NdTargetMulticast,
        Icmpv6Error::NdZeroLengthOption,
        Icmpv6Error::NdBadOption,
        Icmpv6Error::NdTooManyOptions,
        Icmpv6Error::NdBadDad,
        Icmpv6Error::NdSolicitedMulticast,
        Icmpv6Error::NdBadSource,
        Icmpv6Error::NdNotNeighbor,
        Icmpv6Error::NoRoom,
    ];
}

/// A view of an ICMPv6 message.
///
/// After [`Icmpv6Packet::new_checked`] succeeds, no getter panics; the neighbour
/// discovery getters ([`Icmpv6Packet::nd_target`], [`Icmpv6Packet::nd_options`]) give
/// `None` / empty on a message too short for them.
#[derive(Debug, Clone)]
pub struct Icmpv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Icmpv6Packet<T> {
    /// Length of the fixed header (type, code, checksum, rest of header).
    pub const HEADER_LEN: usize = field::DATA.start;
    /// Length of a neighbour solicitation or advertisement without options.
    pub const ND_LEN: usize = field::ND_OPTIONS;

    /// Wraps `buffer` without any check; getters panic if it is shorter than the header.
    pub const fn new_unchecked(buffer: T) -> Self {
        Icmpv6Packet { buffer }
    }

    /// Wraps `buffer` after checking it holds the 8-byte header
    /// ([`Icmpv6Error::Truncated`]). The checksum is not checked. No getter of the result
    /// panics.
    pub fn new_checked(buffer: T) -> Result<Self, Icmpv6Error> {
        if buffer.as_ref().len() < Self::HEADER_LEN {
            return Err(Icmpv6Error::Truncated);
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

    /// Message type ([`ICMPV6_ECHO_REQUEST`], ...).
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

    /// The 4 bytes after the checksum, as one big-endian word: the MTU of packet too big,
    /// the pointer of parameter problem.
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

    /// The MTU of a packet too big message.
    pub fn mtu(&self) -> u32 {
        self.rest_of_header()
    }

    /// The pointer of a parameter problem message: the offset in the quoted packet of the
    /// field at fault.
    pub fn pointer(&self) -> u32 {
        self.rest_of_header()
    }

    /// Whether this is an error message (type below 128, RFC 4443 §2.1).
    pub fn is_error(&self) -> bool {
        self.msg_type() < 128
    }

    /// Everything after the 8-byte header: echo data, or the quoted packet of an error
    /// (parse it with [`Ipv6Packet`]; it may be cut short).
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[field::DATA]
    }

    /// The target address of a neighbour solicitation or advertisement; `None` if the
    /// message is shorter than 24 bytes.
    pub fn nd_target(&self) -> Option<Ipv6Addr> {
        let b = self.buffer.as_ref().get(field::ND_TARGET)?;
        let mut a = [0u8; 16];
        a.copy_from_slice(b);
        Some(Ipv6Addr::from(a))
    }

    /// The R/S/O flags of a neighbour advertisement.
    pub fn na_flags(&self) -> NaFlags {
        let f = self.buffer.as_ref()[field::ND_FLAGS];
        NaFlags {
            router: f & NA_FLAG_ROUTER != 0,
            solicited: f & NA_FLAG_SOLICITED != 0,
            override_: f & NA_FLAG_OVERRIDE != 0,
        }
    }

    /// The options of a neighbour solicitation or advertisement (empty if the message is
    /// shorter than 24 bytes).
    pub fn nd_options(&self) -> NdOptionIter<'_> {
        NdOptionIter::new(self.buffer.as_ref().get(field::ND_OPTIONS..).unwrap_or(&[]))
    }

    /// Whether the checksum over the message and the IPv6 pseudo-header of `src` → `dst`
    /// is correct.
    pub fn verify_checksum(&self, src: Ipv6Addr, dst: Ipv6Addr) -> bool {
        checksum::fold(self.sum(src, dst)) == 0xffff
    }

    fn sum(&self, src: Ipv6Addr, dst: Ipv6Addr) -> u32 {
        let b = self.buffer.as_ref();
        // A message longer than 4 GiB cannot exist; saturate rather than wrap.
        let len = u32::try_from(b.len()).unwrap_or(u32::MAX);
        checksum::pseudo_header_v6(src, dst, IPPROTO_ICMPV6, len) + checksum::sum(b)
    }

    #[inline(always)]
    fn read_u16(&self, at: usize) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[at], b[at + 1]])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv6Packet<T> {
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

    /// Sets the 4 bytes after the checksum (the MTU, the pointer, or zero).
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

    /// Sets the MTU of a packet too big message.
    pub fn set_mtu(&mut self, mtu: u32) {
        self.set_rest_of_header(mtu);
    }

    /// Sets the pointer of a parameter problem message.
    pub fn set_pointer(&mut self, pointer: u32) {
        self.set_rest_of_header(pointer);
    }

    /// Sets the flags of a neighbour advertisement (and zeroes the reserved bits).
    pub fn set_na_flags(&mut self, flags: NaFlags) {
        let f = (if flags.router { NA_FLAG_ROUTER } else { 0 })
            | (if flags.solicited { NA_FLAG_SOLICITED } else { 0 })
            | (if flags.override_ { NA_FLAG_OVERRIDE } else { 0 });
        self.set_rest_of_header(u32::from(f) << 24);
    }

    /// Sets the target address of a neighbour solicitation or advertisement (the message
    /// must be at least 24 bytes).
    pub fn set_nd_target(&mut self, addr: Ipv6Addr) {
        self.buffer.as_mut()[field::ND_TARGET].copy_from_slice(&addr.octets());
    }

    /// Everything after the header, writable.
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::DATA]
    }

    /// Computes the checksum over the message and the pseudo-header and writes it.
    pub fn fill_checksum(&mut self, src: Ipv6Addr, dst: Ipv6Addr) {
        self.set_checksum(0);
        let c = checksum::finish(self.sum(src, dst));
        self.set_checksum(c);
    }

    /// Sets the message type and updates the checksum incrementally (an echo request
    /// turned into a reply in place; the addresses swap, which leaves the pseudo-header
    /// sum unchanged).
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

/// The flags of a neighbour advertisement (RFC 4861 §4.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct NaFlags {
    /// R: the sender is a router.
    pub router: bool,
    /// S: sent in answer to a solicitation.
    pub solicited: bool,
    /// O: override an existing cache entry's link-layer address.
    pub override_: bool,
}

/// One neighbour discovery option (RFC 4861 §4.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NdOption<'a> {
    /// Source link-layer address (type 1), Ethernet format.
    SourceLinkLayer(MacAddr),
    /// Target link-layer address (type 2), Ethernet format.
    TargetLinkLayer(MacAddr),
    /// Any other option: its type and its bytes after type and length.
    Other(u8, &'a [u8]),
}

/// A bounded walk of neighbour discovery options: yields each option, or one error and
/// then nothing. Refuses a zero length ([`Icmpv6Error::NdZeroLengthOption`]), an option
/// past the end or a link-layer address option not 8 bytes long
/// ([`Icmpv6Error::NdBadOption`]), and more than [`MAX_ND_OPTIONS`] options
/// ([`Icmpv6Error::NdTooManyOptions`]). Never panics.
#[derive(Debug, Clone)]
pub struct NdOptionIter<'a> {
    rest: &'a [u8],
    count: usize,
    failed: bool,
}

impl<'a> NdOptionIter<'a> {
    /// A walk of the options in `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        NdOptionIter { rest: bytes, count: 0, failed: false }
    }

    fn fail(&mut self, e: Icmpv6Error) -> Option<Result<NdOption<'a>, Icmpv6Error>> {
        self.failed = true;
        Some(Err(e))
    }
}

impl<'a> Iterator for NdOptionIter<'a> {
    type Item = Result<NdOption<'a>, Icmpv6Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.rest.is_empty() {
            return None;
        }
        if self.count == MAX_ND_OPTIONS {
            return self.fail(Icmpv6Error::NdTooManyOptions);
        }
        if self.rest.len() < 2 {
            return self.fail(Icmpv6Error::NdBadOption);
        }
        let (kind, units) = (self.rest[0], usize::from(self.rest[1]));
        if units == 0 {
            return self.fail(Icmpv6Error::NdZeroLengthOption);
        }
        let Some(opt) = self.rest.get(..units * 8) else {
            return self.fail(Icmpv6Error::NdBadOption);
        };
        self.rest = &self.rest[units * 8..];
        self.count += 1;
        let mac = || {
            let mut m = [0u8; 6];
            m.copy_from_slice(&opt[2..8]);
            MacAddr(m)
        };
        Some(Ok(match kind {
            ND_OPT_SOURCE_LL | ND_OPT_TARGET_LL if units != 1 => return self.fail(Icmpv6Error::NdBadOption),
            ND_OPT_SOURCE_LL => NdOption::SourceLinkLayer(mac()),
            ND_OPT_TARGET_LL => NdOption::TargetLinkLayer(mac()),
            other => NdOption::Other(other, &opt[2..]),
        }))
    }
}

/// Which neighbour discovery message an [`NdRepr`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NdKind {
    /// Neighbour solicitation.
    Solicit,
    /// Neighbour advertisement with its flags.
    Advert(NaFlags),
}

/// A neighbour solicitation or advertisement that passed RFC 4861 §7.1's checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NdRepr {
    /// Solicitation or advertisement.
    pub kind: NdKind,
    /// The IPv6 source (`::` for a duplicate address detection solicitation).
    pub src: Ipv6Addr,
    /// The IPv6 destination.
    pub dst: Ipv6Addr,
    /// The address solicited or advertised.
    pub target: Ipv6Addr,
    /// The source link-layer address option, if present.
    pub source_ll: Option<MacAddr>,
    /// The target link-layer address option, if present.
    pub target_ll: Option<MacAddr>,
}

impl NdRepr {
    /// Checks the ICMPv6 message `icmp` carried in `ip` (its upper layer, found by the
    /// extension-header walk) as RFC 4861 §7.1.1 and §7.1.2 ask, and reads it. In order:
    /// type ([`Icmpv6Error::NdNotNeighbor`]), hop limit 255, checksum, source not
    /// multicast, code 0, length ≥ 24,
    /// target not multicast, options (bounded walk), then the solicitation's DAD rule (a
    /// source `::` needs a solicited-node destination and no source link-layer option) or
    /// the advertisement's (to a multicast destination, S clear). The checksum is
    /// verified here, since these messages are addressed to rvs.
    pub fn parse<T: AsRef<[u8]>, U: AsRef<[u8]>>(
        ip: &Ipv6Packet<T>,
        icmp: &Icmpv6Packet<U>,
    ) -> Result<NdRepr, Icmpv6Error> {
        let kind = match icmp.msg_type() {
            ICMPV6_NEIGHBOR_SOLICIT => NdKind::Solicit,
            ICMPV6_NEIGHBOR_ADVERT => NdKind::Advert(icmp.na_flags()),
            _ => return Err(Icmpv6Error::NdNotNeighbor),
        };
        if ip.hop_limit() != ND_HOP_LIMIT {
            return Err(Icmpv6Error::NdBadHopLimit);
        }
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        if !icmp.verify_checksum(src, dst) {
            return Err(Icmpv6Error::BadChecksum);
        }
        if src.is_multicast() {
            return Err(Icmpv6Error::NdBadSource);
        }
        if icmp.code() != 0 {
            return Err(Icmpv6Error::NdBadCode);
        }
        let target = icmp.nd_target().ok_or(Icmpv6Error::NdTruncated)?;
        if target.is_multicast() {
            return Err(Icmpv6Error::NdTargetMulticast);
        }
        let (mut source_ll, mut target_ll) = (None, None);
        for opt in icmp.nd_options() {
            match opt? {
                NdOption::SourceLinkLayer(m) => source_ll = Some(m),
                NdOption::TargetLinkLayer(m) => target_ll = Some(m),
                NdOption::Other(..) => {}
            }
        }
        match kind {
            NdKind::Solicit if src.is_unspecified() && (dst != solicited_node(target) || source_ll.is_some()) => {
                return Err(Icmpv6Error::NdBadDad)
            }
            NdKind::Advert(f) if dst.is_multicast() && f.solicited => return Err(Icmpv6Error::NdSolicitedMulticast),
            _ => {}
        }
        Ok(NdRepr { kind, src, dst, target, source_ll, target_ll })
    }
}

/// The solicited-node multicast address of `addr` (RFC 4291 §2.7.1): ff02::1:ff00:0/104
/// with the low 24 bits of `addr`.
pub fn solicited_node(addr: Ipv6Addr) -> Ipv6Addr {
    let o = addr.octets();
    Ipv6Addr::from([0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff, o[13], o[14], o[15]])
}

/// The Ethernet address of IPv6 multicast address `addr` (RFC 2464 §7): 33:33 and its
/// low 32 bits.
pub fn multicast_mac(addr: Ipv6Addr) -> MacAddr {
    let o = addr.octets();
    MacAddr([0x33, 0x33, o[12], o[13], o[14], o[15]])
}

/// The all-nodes multicast address ff02::1, where an advertisement answering a DAD
/// solicitation (and an unsolicited one) goes.
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// Length of the IPv6 packets [`emit_ns`] (with a source link-layer option) and
/// [`emit_na`] write: 40 + 24 + 8 bytes.
pub const ND_PACKET_LEN: usize = Ipv6Packet::<&[u8]>::HEADER_LEN + Icmpv6Packet::<&[u8]>::ND_LEN + 8;

/// Writes the IPv6 header of an ND packet and the ICMPv6 message with one link-layer
/// option, then fills the checksum. Returns the packet's length.
fn emit_nd(
    buf: &mut [u8],
    src: Ipv6Addr,
    dst: Ipv6Addr,
    msg_type: u8,
    target: Ipv6Addr,
    flags: NaFlags,
    option: Option<(u8, MacAddr)>,
) -> Result<usize, Icmpv6Error> {
    let icmp_len = Icmpv6Packet::<&[u8]>::ND_LEN + if option.is_some() { 8 } else { 0 };
    let len = Ipv6Packet::<&[u8]>::HEADER_LEN + icmp_len;
    let buf = buf.get_mut(..len).ok_or(Icmpv6Error::NoRoom)?;
    buf.fill(0);
    let mut ip = Ipv6Packet::new_unchecked(&mut *buf);
    ip.set_version(6);
    ip.set_payload_len(icmp_len as u16); // at most 32
    ip.set_next_header(IPPROTO_ICMPV6);
    ip.set_hop_limit(ND_HOP_LIMIT);
    ip.set_src_addr(src);
    ip.set_dst_addr(dst);
    let mut icmp = Icmpv6Packet::new_unchecked(ip.payload_mut());
    icmp.set_msg_type(msg_type);
    icmp.set_na_flags(flags);
    icmp.set_nd_target(target);
    if let Some((kind, mac)) = option {
        let o = &mut icmp.data_mut()[field::ND_OPTIONS - field::DATA.start..];
        o[0] = kind;
        o[1] = 1;
        o[2..8].copy_from_slice(&mac.octets());
    }
    icmp.fill_checksum(src, dst);
    Ok(len)
}

/// Writes into `buf` an IPv6 neighbour solicitation for `target` from `src` to
/// `target`'s solicited-node address, hop limit 255, with a source link-layer option
/// `source_ll` — or, for duplicate address detection (`src` is `::`), without one, as
/// RFC 4861 §7.2.2 requires. Returns the packet's length ([`ND_PACKET_LEN`], 8 less
/// without the option); the Ethernet destination is
/// [`multicast_mac`]`(solicited_node(target))`. [`Icmpv6Error::NoRoom`] if `buf` is short.
pub fn emit_ns(buf: &mut [u8], src: Ipv6Addr, target: Ipv6Addr, source_ll: MacAddr) -> Result<usize, Icmpv6Error> {
    let opt = (!src.is_unspecified()).then_some((ND_OPT_SOURCE_LL, source_ll));
    emit_nd(buf, src, solicited_node(target), ICMPV6_NEIGHBOR_SOLICIT, target, NaFlags::default(), opt)
}

/// Writes into `buf` an IPv6 neighbour advertisement of `target` at `target_ll`, from
/// `src` to `dst`, hop limit 255, with `flags` and a target link-layer option. Returns
/// [`ND_PACKET_LEN`]; [`Icmpv6Error::NoRoom`] if `buf` is short.
pub fn emit_na(
    buf: &mut [u8],
    src: Ipv6Addr,
    dst: Ipv6Addr,
    target: Ipv6Addr,
    flags: NaFlags,
    target_ll: MacAddr,
) -> Result<usize, Icmpv6Error> {
    emit_nd(buf, src, dst, ICMPV6_NEIGHBOR_ADVERT, target, flags, Some((ND_OPT_TARGET_LL, target_ll)))
}

/// Writes into `buf` the advertisement answering solicitation `ns` for one of our
/// addresses (`ns.target`) at `our_mac` (RFC 4861 §7.2.4): from the target to the
/// solicitation's source with S set, or to all-nodes with S clear when the source is
/// `::` (DAD); O set, R clear. Returns the length and the destination (whose link-layer
/// address is `ns.source_ll` or, for all-nodes, [`multicast_mac`]).
/// [`Icmpv6Error::NdNotNeighbor`] if `ns` is an advertisement.
pub fn emit_na_for_ns(buf: &mut [u8], ns: &NdRepr, our_mac: MacAddr) -> Result<(usize, Ipv6Addr), Icmpv6Error> {
    if ns.kind != NdKind::Solicit {
        return Err(Icmpv6Error::NdNotNeighbor);
    }
    let dad = ns.src.is_unspecified();
    let dst = if dad { ALL_NODES } else { ns.src };
    let flags = NaFlags { router: false, solicited: !dad, override_: true };
    Ok((emit_na(buf, ns.target, dst, ns.target, flags, our_mac)?, dst))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ipv6::tests::{a, ECHO6};
    use proptest::prelude::*;

    const MAC1: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x01]);
    const MAC2: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x02]);

    /// Neighbour solicitation 2001:db8::10 → ff02::1:ff00:1 for 2001:db8::1, source
    /// link-layer 02:00:00:00:00:02. Checksum 0x1c19 computed independently with python3.
    #[rustfmt::skip]
    const NS: [u8; 72] = [
        0x60, 0, 0, 0, 0x00, 0x20, 0x3a, 0xff,
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
        0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff, 0, 0, 0x01,
        0x87, 0x00, 0x1c, 0x19, 0, 0, 0, 0,
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,
        0x01, 0x01, 0x02, 0, 0, 0, 0, 0x02,
    ];

    /// Its answer: 2001:db8::1 → 2001:db8::10, S and O set, target link-layer
    /// 02:00:00:00:00:01. Checksum 0x8a65 computed independently with python3.
    #[rustfmt::skip]
    const NA: [u8; 72] = [
        0x60, 0, 0, 0, 0x00, 0x20, 0x3a, 0xff,
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
        0x88, 0x00, 0x8a, 0x65, 0x60, 0, 0, 0,
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,
        0x02, 0x01, 0x02, 0, 0, 0, 0, 0x01,
    ];

    fn nd(bytes: &[u8]) -> Result<NdRepr, Icmpv6Error> {
        let ip = Ipv6Packet::new_checked(bytes).unwrap();
        let icmp = Icmpv6Packet::new_checked(ip.payload())?;
        NdRepr::parse(&ip, &icmp)
    }

    /// Rewrites the ICMPv6 checksum of a whole IPv6 packet after a test changed it.
    fn refill(bytes: &mut [u8]) {
        let mut ip = Ipv6Packet::new_checked(&mut *bytes).unwrap();
        let (s, d) = (ip.src_addr(), ip.dst_addr());
        Icmpv6Packet::new_unchecked(ip.payload_mut()).fill_checksum(s, d);
    }

    #[test]
    fn echo() {
        let ip = Ipv6Packet::new_checked(&ECHO6[..]).unwrap();
        let p = Icmpv6Packet::new_checked(ip.payload()).unwrap();
        assert_eq!((p.msg_type(), p.code(), p.checksum()), (ICMPV6_ECHO_REQUEST, 0, 0xc5ac));
        assert_eq!((p.ident(), p.seq_no(), p.data().len()), (0x1234, 1, 8));
        assert!(!p.is_error());
        assert!(p.verify_checksum(ip.src_addr(), ip.dst_addr()));
        assert!(!p.verify_checksum(ip.dst_addr(), a(2)));
        // Reply in place: type changed incrementally, addresses swapped.
        let mut b = [0u8; 16];
        b.copy_from_slice(ip.payload());
        let mut r = Icmpv6Packet::new_checked(&mut b[..]).unwrap();
        r.set_msg_type_incremental(ICMPV6_ECHO_REPLY);
        assert!(r.verify_checksum(ip.dst_addr(), ip.src_addr()));
        let c = r.checksum();
        r.fill_checksum(ip.dst_addr(), ip.src_addr());
        assert_eq!(c, r.checksum());
        // Built from scratch.
        let mut b = [0u8; 16];
        let mut p = Icmpv6Packet::new_unchecked(&mut b[..]);
        p.set_msg_type(ICMPV6_ECHO_REQUEST);
        p.set_ident(0x1234);
        p.set_seq_no(1);
        p.data_mut().copy_from_slice(&ECHO6[48..]);
        p.fill_checksum(a(0x10), a(1));
        assert_eq!(&b[..], &ECHO6[40..]);
    }

    #[test]
    fn errors_quote_the_packet() {
        for (t, code, word) in [
            (ICMPV6_PACKET_TOO_BIG, 0, 1280u32),
            (ICMPV6_TIME_EXCEEDED, 0, 0),
            (ICMPV6_DEST_UNREACH, ICMPV6_PORT_UNREACH, 0),
            (ICMPV6_PARAM_PROBLEM, 1, 6),
        ] {
            let mut b = vec![0u8; 8 + ECHO6.len()];
            let mut p = Icmpv6Packet::new_unchecked(&mut b[..]);
            p.set_msg_type(t);
            p.set_code(code);
            if t == ICMPV6_PARAM_PROBLEM {
                p.set_pointer(word);
            } else {
                p.set_mtu(word);
            }
            p.data_mut().copy_from_slice(&ECHO6);
            p.fill_checksum(a(0x99), a(0x10));
            let p = Icmpv6Packet::new_checked(&b[..]).unwrap();
            assert!(p.is_error() && p.verify_checksum(a(0x99), a(0x10)));
            assert_eq!((p.msg_type(), p.code(), p.mtu(), p.pointer()), (t, code, word, word));
            let q = Ipv6Packet::new_checked(p.data()).unwrap();
            assert_eq!((q.src_addr(), q.dst_addr()), (a(0x10), a(1)));
            // A quote cut short still parses as far as it goes.
            assert_eq!(Ipv6Packet::new_checked(&p.data()[..44]).unwrap_err(), crate::wire::Ipv6Error::BadPayloadLength);
        }
        assert_eq!(
            &{
                let mut b = [0u8; 8];
                Icmpv6Packet::new_unchecked(&mut b[..]).set_mtu(1280);
                b
            }[4..],
            &[0, 0, 0x05, 0x00]
        );
    }

    #[test]
    fn truncated() {
        for n in 0..8 {
            assert_eq!(Icmpv6Packet::new_checked(&ECHO6[40..40 + n]).unwrap_err(), Icmpv6Error::Truncated);
        }
        let p = Icmpv6Packet::new_checked(&NS[40..60]).unwrap();
        assert_eq!(p.nd_target(), None);
        assert_eq!(p.nd_options().count(), 0);
    }

    #[test]
    fn golden_ns_and_na() {
        let mut b = [0u8; 80];
        assert_eq!(emit_ns(&mut b, a(0x10), a(1), MAC2), Ok(72));
        assert_eq!(&b[..72], &NS[..]);
        let ns = nd(&NS).unwrap();
        assert_eq!(
            ns,
            NdRepr {
                kind: NdKind::Solicit,
                src: a(0x10),
                dst: "ff02::1:ff00:1".parse().unwrap(),
                target: a(1),
                source_ll: Some(MAC2),
                target_ll: None
            }
        );
        let mut b = [0u8; 72];
        assert_eq!(emit_na_for_ns(&mut b, &ns, MAC1), Ok((72, a(0x10))));
        assert_eq!(b, NA);
        let na = nd(&NA).unwrap();
        let flags = NaFlags { router: false, solicited: true, override_: true };
        assert_eq!((na.kind, na.target, na.target_ll, na.source_ll), (NdKind::Advert(flags), a(1), Some(MAC1), None));
        assert_eq!(emit_na_for_ns(&mut b, &na, MAC1), Err(Icmpv6Error::NdNotNeighbor));
        assert_eq!(emit_ns(&mut b[..71], a(0x10), a(1), MAC2), Err(Icmpv6Error::NoRoom));
        assert_eq!(multicast_mac(ns.dst), MacAddr([0x33, 0x33, 0xff, 0, 0, 1]));
    }

    #[test]
    fn dad() {
        // A DAD solicitation has no source link-layer option; its answer goes to all-nodes.
        let mut b = [0u8; 72];
        assert_eq!(emit_ns(&mut b, Ipv6Addr::UNSPECIFIED, a(1), MAC2), Ok(64));
        let ns = nd(&b[..64]).unwrap();
        assert_eq!((ns.src, ns.source_ll), (Ipv6Addr::UNSPECIFIED, None));
        let (n, dst) = emit_na_for_ns(&mut b, &ns, MAC1).unwrap();
        assert_eq!((n, dst), (72, ALL_NODES));
        assert_eq!(nd(&b).unwrap().kind, NdKind::Advert(NaFlags { router: false, solicited: false, override_: true }));
        // DAD with a source link-layer option, or to a unicast address: refused.
        let mut bad = NS;
        bad[8..24].fill(0);
        refill(&mut bad);
        assert_eq!(nd(&bad).unwrap_err(), Icmpv6Error::NdBadDad);
    }

    #[test]
    fn nd_refusals() {
        let case = |f: &dyn Fn(&mut [u8; 72]), fix: bool| {
            let mut b = NS;
            f(&mut b);
            if fix {
                refill(&mut b);
            }
            nd(&b).unwrap_err()
        };
        assert_eq!(case(&|b| b[7] = 254, false), Icmpv6Error::NdBadHopLimit);
        assert_eq!(case(&|b| b[71] ^= 1, false), Icmpv6Error::BadChecksum);
        assert_eq!(case(&|b| b[41] = 1, true), Icmpv6Error::NdBadCode);
        assert_eq!(case(&|b| b[48] = 0xff, true), Icmpv6Error::NdTargetMulticast);
        assert_eq!(case(&|b| b[65] = 0, true), Icmpv6Error::NdZeroLengthOption);
        assert_eq!(case(&|b| b[65] = 2, true), Icmpv6Error::NdBadOption);
        assert_eq!(case(&|b| b[40] = ICMPV6_ECHO_REQUEST, true), Icmpv6Error::NdNotNeighbor);
        // A multicast advertisement with S set.
        let mut b = NA;
        b[24..40].copy_from_slice(&ALL_NODES.octets());
        refill(&mut b);
        assert_eq!(nd(&b).unwrap_err(), Icmpv6Error::NdSolicitedMulticast);
        // Shorter than 24 bytes.
        let mut b = NS;
        b[4..6].copy_from_slice(&20u16.to_be_bytes());
        refill(&mut b);
        assert_eq!(nd(&b[..60]).unwrap_err(), Icmpv6Error::NdTruncated);
    }

    /// Found by the `parse_ipv6` fuzz target: a solicitation from a multicast source
    /// (ff00::) passed, and its answer went to that group with S set.
    #[test]
    fn multicast_source_is_refused() {
        #[rustfmt::skip]
        let b = [
            0x60, 0, 0, 0, 0x00, 0x18, 0x3a, 0xff,
            0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff, 0, 0, 0x01,
            0x87, 0x00, 0x4c, 0xed, 0, 0, 0, 0,
            0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,
        ];
        assert_eq!(nd(&b).unwrap_err(), Icmpv6Error::NdBadSource);
    }

    #[test]
    fn option_walk() {
        fn walk(b: &[u8]) -> Vec<Result<NdOption<'_>, Icmpv6Error>> {
            NdOptionIter::new(b).collect()
        }
        // An unknown option, then a source link-layer address.
        let opts = [3, 1, 9, 9, 9, 9, 9, 9, 1, 1, 2, 0, 0, 0, 0, 7];
        assert_eq!(
            walk(&opts),
            vec![Ok(NdOption::Other(3, &[9; 6][..])), Ok(NdOption::SourceLinkLayer(MacAddr([2, 0, 0, 0, 0, 7])))]
        );
        // Zero length: one error, then nothing (the walk does not spin).
        assert_eq!(walk(&[1, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0]), vec![Err(Icmpv6Error::NdZeroLengthOption)]);
        // Running past the end, a lone type byte.
        assert_eq!(walk(&[5, 2, 0, 0, 0, 0, 0, 0]), vec![Err(Icmpv6Error::NdBadOption)]);
        assert_eq!(walk(&[5]), vec![Err(Icmpv6Error::NdBadOption)]);
        // The bound: MAX_ND_OPTIONS are read, one more is refused.
        let many = [7u8, 1, 0, 0, 0, 0, 0, 0].repeat(MAX_ND_OPTIONS + 1);
        let r = walk(&many);
        assert_eq!(r.len(), MAX_ND_OPTIONS + 1);
        assert_eq!(r[MAX_ND_OPTIONS], Err(Icmpv6Error::NdTooManyOptions));
        assert!(walk(&many[..8 * MAX_ND_OPTIONS]).iter().all(Result::is_ok));
    }

    #[test]
    fn helpers_and_names() {
        assert_eq!(
            solicited_node("2001:db8::aa:bbcc:ddee".parse().unwrap()),
            "ff02::1:ffcc:ddee".parse::<Ipv6Addr>().unwrap()
        );
        let mut seen = std::collections::HashSet::new();
        for e in Icmpv6Error::ALL {
            let n = e.drop_reason_name();
            assert!(seen.insert(n), "duplicate {n}");
            // The worker counts each refusal under the drop reason of the same name.
            assert_eq!(crate::stats::DropReason::from(*e).name(), n);
            assert!(!e.to_string().is_empty());
        }
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..120)) {
            if let Ok(p) = Icmpv6Packet::new_checked(&bytes[..]) {
                let _ = (p.msg_type(), p.code(), p.checksum(), p.rest_of_header(), p.ident(), p.seq_no());
                let _ = (p.mtu(), p.pointer(), p.is_error(), p.data(), p.nd_target(), p.na_flags());
                let _ = p.verify_checksum(a(1), a(2));
                prop_assert!(p.nd_options().count() <= MAX_ND_OPTIONS + 1);
            }
            // As a whole IPv6 packet carrying ND, with the right hop limit.
            let mut ip = ECHO6[..40].to_vec();
            ip[7] = 255;
            ip[4..6].copy_from_slice(&(bytes.len() as u16).to_be_bytes());
            ip.extend(&bytes);
            let ip = Ipv6Packet::new_checked(&ip[..]).unwrap();
            if let Ok(icmp) = Icmpv6Packet::new_checked(ip.payload()) {
                let _ = NdRepr::parse(&ip, &icmp);
            }
        }
    }
}
