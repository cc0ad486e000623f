//! IPv6 for our own addresses: the addresses themselves, neighbour discovery (RFC 4861)
//! and ICMPv6 echo, as DPVS's `ndisc.c` and `icmp6.c` do for a load balancer.
//!
//! Contract:
//! * [`Ipv6Book`] holds every IPv6 address of ours, each on its port: the configured ones
//!   (with their on-link prefix) and each port's link-local address, derived from its
//!   MAC ([`link_local`], RFC 4291 §2.5.6 and appendix A, RFC 2464 §5). Built once; lookups
//!   scan a short vector and never allocate. A link-local address is ours only on its
//!   own port.
//! * [`nd_input`] judges one received neighbour solicitation or advertisement that passed
//!   the wire view's RFC 4861 §7.1 checks ([`NdRepr::parse`]) and says what to learn and
//!   what to do, as [`super::arp::handle`] does for ARP:
//!   - an NS for one of our addresses on the receiving port is answered with a solicited
//!     NA ([`write_na`], built in the received buffer); its sender is learned from its
//!     source link-layer option (created: the NS was for us); an NS for another target is
//!     `nd_not_for_us`, its sender only merged (RFC 826's rule, the same for both
//!     families). A DAD NS (source `::`) for one of our addresses is answered to
//!     all-nodes: we defend the address.
//!   - an NA is learned from its target link-layer option and absorbed. An unsolicited NA
//!     only updates an existing entry (RFC 4861 §7.2.5); a solicited one (S set, so unicast
//!     to us) also creates a missing entry: the worker that solicited may not be the one
//!     RSS hands the answer to, and the answer was addressed to us — ARP's merge rule,
//!     where a reply to us creates the entry, and the peers learn it through the sync.
//!   - spoofing: an NS *from* one of our addresses or an NA *for* one of them, sent by
//!     another station (our own frames looped back were already `eth_bad_source`), is
//!     `nd_spoofed_own`, neither learned nor answered: nobody can redirect our traffic or
//!     our peers' caches by claiming our addresses.
//!   - only senders on the port's link are learned: link-local, or inside one of the port's
//!     prefixes.
//! * [`answer_echo`] turns an ICMPv6 echo request to one of our addresses into its reply in
//!   place (addresses swapped, hop limit 64, type 129, checksum updated incrementally: the
//!   swap leaves the pseudo-header sum unchanged). Requests with extension headers are not
//!   answered (`icmp6_unhandled`), as IPv4 echo requests with options are not.
//! * Frames rvs originates ([`write_ns_frame`], [`write_unsolicited_na_frame`]) are
//!   [`ND_FRAME_LEN`] bytes, above the Ethernet minimum, so they need no padding.
//! * Nothing here panics on network input, allocates or reads a clock.

use std::net::Ipv6Addr;

use ipnet::Ipv6Net;

use super::route::RouteTable6;
use super::Verdict;
use crate::stats::DropReason;
use crate::types::PortId;
use crate::wire::icmpv6::{
    emit_na, emit_na_for_ns, emit_ns, multicast_mac, solicited_node, Icmpv6Error, Icmpv6Packet, NaFlags, NdKind,
    NdRepr, ALL_NODES, ICMPV6_ECHO_REPLY, ICMPV6_ECHO_REQUEST, ND_PACKET_LEN,
};
use crate::wire::{EthernetFrame, Ipv6Error, Ipv6Packet, MacAddr, UpperLayer, ETHERTYPE_IPV6};

/// Length of the neighbour discovery frames rvs builds: Ethernet, IPv6, NS/NA and one
/// link-layer option (14 + 72 bytes).
pub const ND_FRAME_LEN: usize = EthernetFrame::<&[u8]>::HEADER_LEN + ND_PACKET_LEN;

/// Hop limit of the echo replies rvs sends (Linux's default `hop_limit`).
pub const REPLY_HOP_LIMIT: u8 = 64;

/// The Ethernet address of the all-nodes group ff02::1 (RFC 2464 §7).
pub const ALL_NODES_MAC: MacAddr = MacAddr([0x33, 0x33, 0, 0, 0, 1]);

impl From<Ipv6Error> for DropReason {
    fn from(e: Ipv6Error) -> Self {
        match e {
            Ipv6Error::Truncated => DropReason::Ip6Truncated,
            Ipv6Error::BadVersion => DropReason::Ip6BadVersion,
            Ipv6Error::BadPayloadLength => DropReason::Ip6BadLength,
            Ipv6Error::ExtTruncated => DropReason::Ip6ExtTruncated,
            Ipv6Error::ExtTooMany => DropReason::Ip6ExtTooMany,
            Ipv6Error::ExtTooLong => DropReason::Ip6ExtTooLong,
            Ipv6Error::HopByHopNotFirst => DropReason::Ip6HopByHopNotFirst,
            Ipv6Error::RoutingSegmentsLeft => DropReason::Ip6RoutingSegmentsLeft,
            Ipv6Error::DuplicateFragment => DropReason::Ip6DuplicateFragment,
            Ipv6Error::Esp => DropReason::Ip6Esp,
            Ipv6Error::NoNextHeader => DropReason::Ip6NoNextHeader,
            Ipv6Error::UnknownExtension => DropReason::Ip6UnknownExtension,
        }
    }
}

impl From<Icmpv6Error> for DropReason {
    fn from(e: Icmpv6Error) -> Self {
        match e {
            Icmpv6Error::Truncated => DropReason::Icmp6Malformed,
            Icmpv6Error::BadChecksum => DropReason::Icmp6BadChecksum,
            Icmpv6Error::NdBadHopLimit => DropReason::NdBadHopLimit,
            Icmpv6Error::NdBadCode => DropReason::NdBadCode,
            Icmpv6Error::NdTruncated => DropReason::NdTruncated,
            Icmpv6Error::NdTargetMulticast => DropReason::NdTargetMulticast,
            Icmpv6Error::NdZeroLengthOption => DropReason::NdZeroLengthOption,
            Icmpv6Error::NdBadOption => DropReason::NdBadOption,
            Icmpv6Error::NdTooManyOptions => DropReason::NdTooManyOptions,
            Icmpv6Error::NdBadDad => DropReason::NdBadDad,
            Icmpv6Error::NdSolicitedMulticast => DropReason::NdSolicitedMulticast,
            Icmpv6Error::NdBadSource => DropReason::NdBadSource,
            Icmpv6Error::NdNotNeighbor => DropReason::NdNotNeighbor,
            Icmpv6Error::NoRoom => DropReason::Icmp6NotSent,
        }
    }
}

/// The link-local address of an interface with Ethernet address `mac`: fe80::/64 and the
/// modified EUI-64 interface identifier (RFC 4291 appendix A, RFC 2464 §4): the MAC split
/// by ff:fe, its universal/local bit inverted.
pub fn link_local(mac: MacAddr) -> Ipv6Addr {
    let m = mac.octets();
    Ipv6Addr::from([0xfe, 0x80, 0, 0, 0, 0, 0, 0, m[0] ^ 0x02, m[1], m[2], 0xff, 0xfe, m[3], m[4], m[5]])
}

/// Whether `a` is link-local unicast (fe80::/10).
#[inline]
pub fn is_link_local(a: Ipv6Addr) -> bool {
    a.segments()[0] & 0xffc0 == 0xfe80
}

/// One IPv6 address of ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OwnedAddr6 {
    /// The address and its on-link prefix (`/64` for a link-local address).
    pub net: Ipv6Net,
    /// The port it belongs to.
    pub port: PortId,
    /// Whether it is the port's link-local address (ours on that port only).
    pub link_local: bool,
    /// Whether it is a Full-NAT local address (`net` is then a /128: it gives no on-link
    /// prefix and is never a source for what rvs originates).
    pub local: bool,
}

/// An IPv6 address configured twice (or equal to a port's link-local address).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "IPv6 address {0} is configured more than once (port IPv6 addresses and link-local addresses must be distinct)"
)]
pub struct DuplicateAddress6(pub Ipv6Addr);

/// One owned address as integers, for the per-packet tests ([`Ipv6Book`]): the address,
/// and its prefix's network and mask, so that "is it ours" is one `u128` comparison and
/// "is it on this prefix" one AND and one comparison (`Ipv6Addr`'s own comparisons and
/// `Ipv6Net::contains` work segment by segment: perf/RESULTS.md measured 203
/// instructions per IPv6 tunnel packet for finding the outer source).
#[derive(Debug, Clone, Copy)]
struct AddrBits6 {
    addr: u128,
    network: u128,
    mask: u128,
}

impl AddrBits6 {
    fn of(net: &Ipv6Net) -> Self {
        AddrBits6 { addr: net.addr().to_bits(), network: net.network().to_bits(), mask: net.netmask().to_bits() }
    }

    /// Whether `a` (as bits) is inside this address's prefix.
    #[inline(always)]
    fn contains(&self, a: u128) -> bool {
        a & self.mask == self.network
    }
}

/// Our IPv6 addresses. See the module docs.
#[derive(Debug, Clone, Default)]
pub struct Ipv6Book {
    /// Each address with its integer form, built together by [`Ipv6Book::push`].
    addrs: Vec<(OwnedAddr6, AddrBits6)>,
}

impl Ipv6Book {
    /// An empty book.
    pub fn new() -> Self {
        Ipv6Book::default()
    }

    /// Adds `net.addr()` on `port`; each address may be added once (a link-local address
    /// once per port).
    pub fn insert(&mut self, net: Ipv6Net, port: PortId, link_local: bool) -> Result<(), DuplicateAddress6> {
        let a = net.addr();
        if self.iter().any(|o| o.net.addr() == a && (!o.link_local || !link_local || o.port == port)) {
            return Err(DuplicateAddress6(a));
        }
        self.push(OwnedAddr6 { net, port, link_local, local: false });
        Ok(())
    }

    /// Adds the IPv6 Full-NAT local address `a` on `port` (as a /128), once.
    pub fn insert_local(&mut self, a: Ipv6Addr, port: PortId) -> Result<(), DuplicateAddress6> {
        if self.iter().any(|o| o.net.addr() == a) {
            return Err(DuplicateAddress6(a));
        }
        self.push(OwnedAddr6 { net: Ipv6Net::from(a), port, link_local: false, local: true });
        Ok(())
    }

    /// Records `o` with its integer form (the one place either is added).
    fn push(&mut self, o: OwnedAddr6) {
        self.addrs.push((o, AddrBits6::of(&o.net)));
    }

    /// Every address, in the order added.
    pub fn iter(&self) -> impl Iterator<Item = &OwnedAddr6> + '_ {
        self.addrs.iter().map(|(o, _)| o)
    }

    /// Number of addresses.
    pub fn len(&self) -> usize {
        self.addrs.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.addrs.is_empty()
    }

    /// Our address `a` as seen from `port`: a configured address wherever it came in (as
    /// IPv4 port addresses are), a link-local one only on its own port.
    #[inline]
    pub fn get(&self, a: Ipv6Addr, port: PortId) -> Option<&OwnedAddr6> {
        let a = a.to_bits();
        self.with_bits().find(|(o, b)| b.addr == a && (!o.link_local || o.port == port)).map(|(o, _)| o)
    }

    /// Our address `a` on `port` itself (neighbour discovery answers only there).
    #[inline]
    pub fn on_port(&self, a: Ipv6Addr, port: PortId) -> Option<&OwnedAddr6> {
        let a = a.to_bits();
        self.with_bits().find(|(o, b)| b.addr == a && o.port == port).map(|(o, _)| o)
    }

    /// Whether `a` is one of our addresses on any port.
    #[inline]
    pub fn is_ours(&self, a: Ipv6Addr) -> bool {
        let a = a.to_bits();
        self.addrs.iter().any(|(_, b)| b.addr == a)
    }

    /// Each address with its integer form.
    #[inline]
    fn with_bits(&self) -> impl Iterator<Item = (&OwnedAddr6, &AddrBits6)> + '_ {
        self.addrs.iter().map(|(o, b)| (o, b))
    }

    /// Whether `group` is the solicited-node multicast address of one of our addresses on
    /// `port`.
    #[inline]
    pub fn is_solicited_group(&self, group: Ipv6Addr, port: PortId) -> bool {
        self.iter().any(|o| o.port == port && solicited_node(o.net.addr()) == group)
    }

    /// Whether a frame to IPv6 multicast MAC `mac` on `port` is for us: all-nodes'
    /// (when the port has IPv6 addresses) or the solicited-node group's of one of the
    /// port's addresses (RFC 2464 §7 maps both).
    #[inline]
    pub fn accepts_multicast_mac(&self, mac: MacAddr, port: PortId) -> bool {
        self.iter()
            .any(|o| o.port == port && (mac == ALL_NODES_MAC || multicast_mac(solicited_node(o.net.addr())) == mac))
    }

    /// Whether `a` is on `port`'s link: link-local, or inside one of the port's prefixes.
    #[inline]
    pub fn on_link(&self, a: Ipv6Addr, port: PortId) -> bool {
        let bits = a.to_bits();
        is_link_local(a) || self.with_bits().any(|(o, b)| o.port == port && !o.link_local && b.contains(bits))
    }

    /// The source address for a packet rvs originates to on-link `dst` on `port` (a
    /// solicitation): the port's address whose prefix holds `dst`, or its link-local one
    /// (RFC 6724's rule 2, matching scope, made simple).
    #[inline]
    pub fn source_for(&self, port: PortId, dst: Ipv6Addr) -> Option<Ipv6Addr> {
        let bits = dst.to_bits();
        let on_port = || self.with_bits().filter(move |(o, _)| o.port == port);
        let global = (!is_link_local(dst))
            .then(|| on_port().find(|(o, b)| !o.link_local && !o.local && b.contains(bits)))
            .flatten();
        global.or_else(|| on_port().find(|(o, _)| o.link_local)).map(|(_, b)| Ipv6Addr::from_bits(b.addr))
    }
}

/// A neighbour the worker should record in its IPv6 neighbour table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NdLearn {
    /// Its IPv6 address.
    pub ip: Ipv6Addr,
    /// Its link-layer address.
    pub mac: MacAddr,
    /// True: create a missing entry; false: only update an existing one.
    pub create: bool,
}

/// What [`nd_input`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NdOutcome {
    /// `Ok(Some(ns))`: answer the solicitation `ns` ([`write_na`]); `Ok(None)`: absorbed
    /// (an advertisement); `Err`: drop and count.
    pub action: Result<Option<NdRepr>, DropReason>,
    /// The neighbour to merge or add, if any.
    pub learn: Option<NdLearn>,
}

/// Judges a neighbour solicitation or advertisement `nd` received on `port`. See the
/// module docs.
pub fn nd_input(nd: &NdRepr, port: PortId, book: &Ipv6Book) -> NdOutcome {
    nd_input_with_vips(nd, port, book, &[])
}

/// [`nd_input`] for a worker that also answers for IPv6 VIPs `vips`: a solicitation
/// for a VIP on the link of `port` (inside one of the port's prefixes) is answered like
/// one for a port address, and a solicitation from a VIP or an advertisement for one is
/// `nd_spoofed_own`, as for our own addresses.
pub fn nd_input_with_vips(nd: &NdRepr, port: PortId, book: &Ipv6Book, vips: &[Ipv6Addr]) -> NdOutcome {
    nd_input_with(nd, port, book, vips, &[])
}

/// [`nd_input_with_vips`] for a worker that also answers for the IPv6 floating addresses
/// of its VRRP instances, `floating`, each on its port (the caller has checked the
/// instance is master here): a solicitation for one on its port is answered, and a
/// solicitation from one or an advertisement for one is `nd_spoofed_own`.
pub fn nd_input_with(
    nd: &NdRepr,
    port: PortId,
    book: &Ipv6Book,
    vips: &[Ipv6Addr],
    floating: &[(Ipv6Addr, PortId)],
) -> NdOutcome {
    let drop = |r: DropReason, learn: Option<NdLearn>| NdOutcome { action: Err(r), learn };
    let is_floating = |a: Ipv6Addr| floating.iter().any(|&(f, _)| f == a);
    match nd.kind {
        NdKind::Solicit => {
            if book.is_ours(nd.src) || vips.contains(&nd.src) || is_floating(nd.src) {
                return drop(DropReason::NdSpoofedOwn, None);
            }
            let mine = book.on_port(nd.target, port).is_some()
                || (vips.contains(&nd.target) && book.on_link(nd.target, port) && !is_link_local(nd.target))
                || floating.contains(&(nd.target, port));
            let learn = match nd.source_ll {
                Some(mac) if !nd.src.is_unspecified() && mac.is_unicast() && book.on_link(nd.src, port) => {
                    Some(NdLearn { ip: nd.src, mac, create: mine })
                }
                _ => None,
            };
            if !mine {
                return drop(DropReason::NdNotForUs, learn);
            }
            NdOutcome { action: Ok(Some(*nd)), learn }
        }
        NdKind::Advert(flags) => {
            if book.is_ours(nd.target) || vips.contains(&nd.target) || is_floating(nd.target) {
                return drop(DropReason::NdSpoofedOwn, None);
            }
            let learn = match nd.target_ll {
                Some(mac) if mac.is_unicast() && book.on_link(nd.target, port) => {
                    Some(NdLearn { ip: nd.target, mac, create: flags.solicited })
                }
                _ => None,
            };
            NdOutcome { action: Ok(None), learn }
        }
    }
}

/// Writes into `frame` (which must hold [`ND_FRAME_LEN`] bytes) the Ethernet frame of the
/// advertisement answering `ns` at `our_mac` ([`emit_na_for_ns`]): to the solicitation's
/// source link-layer address, or its Ethernet source when it carried none, or to
/// all-nodes for a DAD solicitation. Returns the frame's length.
pub fn write_na(frame: &mut [u8], ns: &NdRepr, our_mac: MacAddr, requester: MacAddr) -> Result<usize, DropReason> {
    let hl = EthernetFrame::<&[u8]>::HEADER_LEN;
    let body = frame.get_mut(hl..).ok_or(DropReason::Icmp6NotSent)?;
    let (len, dst) = emit_na_for_ns(body, ns, our_mac)?;
    let eth_dst = if dst.is_multicast() { multicast_mac(dst) } else { ns.source_ll.unwrap_or(requester) };
    write_eth(frame, eth_dst, our_mac);
    Ok(hl + len)
}

fn write_eth(frame: &mut [u8], dst: MacAddr, src: MacAddr) {
    let mut eth = EthernetFrame::new_unchecked(frame);
    eth.set_dst(dst);
    eth.set_src(src);
    eth.set_ethertype(ETHERTYPE_IPV6);
}

/// Writes a neighbour solicitation for `target` from `src` at `our_mac`, to the target's
/// solicited-node group, into `frame` (at least [`ND_FRAME_LEN`] bytes). False, writing
/// nothing useful, if it is shorter.
pub fn write_ns_frame(frame: &mut [u8], our_mac: MacAddr, src: Ipv6Addr, target: Ipv6Addr) -> bool {
    let Some(body) = frame.get_mut(EthernetFrame::<&[u8]>::HEADER_LEN..) else { return false };
    if emit_ns(body, src, target, our_mac).is_err() {
        return false;
    }
    write_eth(frame, multicast_mac(solicited_node(target)), our_mac);
    true
}

/// Writes an unsolicited neighbour advertisement of `addr` at `our_mac` to all-nodes
/// (RFC 4861 §7.2.6: O set, S clear) into `frame` (at least [`ND_FRAME_LEN`] bytes), the
/// IPv6 counterpart of a gratuitous ARP. False if `frame` is shorter.
pub fn write_unsolicited_na_frame(frame: &mut [u8], our_mac: MacAddr, addr: Ipv6Addr) -> bool {
    let Some(body) = frame.get_mut(EthernetFrame::<&[u8]>::HEADER_LEN..) else { return false };
    let flags = NaFlags { router: false, solicited: false, override_: true };
    if emit_na(body, addr, ALL_NODES, addr, flags, our_mac).is_err() {
        return false;
    }
    write_eth(frame, ALL_NODES_MAC, our_mac);
    true
}

/// Turns the ICMPv6 echo request in `frame` (Ethernet + IPv6, header already checked and
/// addressed to us; `upper` is its extension-header walk) into its reply in place and
/// returns the reply's destination (the request's source), to be routed. See the module
/// docs.
pub fn answer_echo(frame: &mut [u8], upper: &UpperLayer) -> Result<Ipv6Addr, DropReason> {
    if upper.offset != 0 || upper.frag.is_some() {
        return Err(DropReason::Icmp6Unhandled);
    }
    let body = frame.get_mut(EthernetFrame::<&[u8]>::HEADER_LEN..).ok_or(DropReason::EthTruncated)?;
    let mut ip = Ipv6Packet::new_checked(body)?;
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    {
        let icmp = Icmpv6Packet::new_checked(ip.payload())?;
        if icmp.msg_type() != ICMPV6_ECHO_REQUEST || icmp.code() != 0 {
            return Err(DropReason::Icmp6Unhandled);
        }
        if !icmp.verify_checksum(src, dst) {
            return Err(DropReason::Icmp6BadChecksum);
        }
    }
    ip.set_src_addr(dst);
    ip.set_dst_addr(src);
    ip.set_hop_limit(REPLY_HOP_LIMIT);
    Icmpv6Packet::new_unchecked(ip.payload_mut()).set_msg_type_incremental(ICMPV6_ECHO_REPLY);
    Ok(src)
}

/// Whether an IPv6 source may be answered or learned from: not multicast (RFC 4291 §2.7),
/// not loopback. The unspecified source is judged by the caller (only a DAD solicitation
/// may carry it).
#[inline]
pub fn is_bad_source(a: Ipv6Addr) -> bool {
    a.is_multicast() || a.is_loopback()
}

/// The [`Verdict`] for an answer to `dst`, whose question came in on `in_port`:
/// [`Verdict::Route6`] out of `in_port` for a link-local destination (RFC 4291 §2.5.6:
/// never routed), else where the longest matching route says (a connected prefix or a
/// static route's gateway), or `no_route`.
#[inline]
pub fn route_verdict(routes: &RouteTable6, dst: Ipv6Addr, in_port: PortId) -> Verdict {
    match next_hop(routes, dst, in_port) {
        Some((port, next_hop)) => Verdict::Route6 { port, next_hop },
        None => Verdict::Drop(DropReason::NoRoute),
    }
}

/// The egress port and neighbour for a packet to `dst` that came in on `in_port` (see
/// [`route_verdict`]), or `None` when no route covers `dst`.
#[inline]
pub fn next_hop(routes: &RouteTable6, dst: Ipv6Addr, in_port: PortId) -> Option<(PortId, Ipv6Addr)> {
    if is_link_local(dst) {
        return Some((in_port, dst));
    }
    routes.lookup(dst).map(|hop| (hop.port, hop.neighbour(dst)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::icmpv6::ICMPV6_NEIGHBOR_ADVERT;

    const OUR: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x01]);
    const PEER: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x09]);

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn book() -> Ipv6Book {
        let mut b = Ipv6Book::new();
        b.insert("2001:db8:1::1/64".parse().unwrap(), PortId(0), false).unwrap();
        b.insert(Ipv6Net::new(link_local(OUR), 64).unwrap(), PortId(0), true).unwrap();
        b.insert("2001:db8:2::1/64".parse().unwrap(), PortId(1), false).unwrap();
        b.insert(Ipv6Net::new(link_local(OUR), 64).unwrap(), PortId(1), true).unwrap();
        b
    }

    #[test]
    fn link_local_is_modified_eui64() {
        // RFC 4291 appendix A's example shape: 34-56-78-9A-BC-DE → 3656:78ff:fe9a:bcde.
        let mac = MacAddr([0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde]);
        assert_eq!(link_local(mac), a("fe80::3656:78ff:fe9a:bcde"));
        assert_eq!(link_local(OUR), a("fe80::ff:fe00:1"));
        assert!(is_link_local(link_local(OUR)) && is_link_local(a("febf::1")) && !is_link_local(a("fec0::1")));
    }

    #[test]
    fn local_addresses_are_ours_but_give_no_prefix_or_source() {
        let mut b = book();
        let local = a("2001:db8:2::200");
        b.insert_local(local, PortId(1)).unwrap();
        assert_eq!(b.insert_local(local, PortId(0)), Err(DuplicateAddress6(local)));
        assert_eq!(b.insert_local(a("2001:db8:2::1"), PortId(1)), Err(DuplicateAddress6(a("2001:db8:2::1"))));
        let o = b.get(local, PortId(1)).unwrap();
        assert!(o.local && !o.link_local && o.net.prefix_len() == 128);
        assert!(!b.get(a("2001:db8:2::1"), PortId(1)).unwrap().local);
        assert!(b.is_ours(local) && b.on_port(local, PortId(1)).is_some());
        assert!(b.is_solicited_group(solicited_node(local), PortId(1)));
        // Solicitations rvs sends on the link keep the port's own address as source.
        assert_eq!(b.source_for(PortId(1), a("2001:db8:2::11")), Some(a("2001:db8:2::1")));
        // A local address outside the port's prefix puts nothing new on its link.
        b.insert_local(a("2001:db8:9::200"), PortId(1)).unwrap();
        assert!(!b.on_link(a("2001:db8:9::11"), PortId(1)));
    }

    #[test]
    fn book_lookups() {
        let mut b = book();
        let ll = link_local(OUR);
        assert_eq!(
            b.insert("2001:db8:1::1/64".parse().unwrap(), PortId(1), false),
            Err(DuplicateAddress6(a("2001:db8:1::1")))
        );
        assert_eq!(b.clone().insert(Ipv6Net::new(ll, 64).unwrap(), PortId(0), true), Err(DuplicateAddress6(ll)));
        assert!(b.get(a("2001:db8:1::1"), PortId(1)).is_some(), "a configured address is ours from any port");
        assert!(b.on_port(a("2001:db8:1::1"), PortId(1)).is_none());
        assert_eq!(b.get(ll, PortId(1)).map(|o| o.port), Some(PortId(1)));
        assert!(b.is_solicited_group(a("ff02::1:ff00:1"), PortId(0)));
        assert!(b.accepts_multicast_mac(MacAddr([0x33, 0x33, 0xff, 0, 0, 1]), PortId(0)));
        assert!(b.accepts_multicast_mac(ALL_NODES_MAC, PortId(1)));
        assert!(!b.accepts_multicast_mac(MacAddr([0x33, 0x33, 0, 0, 0, 0x16]), PortId(0)), "MLD");
        assert!(!Ipv6Book::new().accepts_multicast_mac(ALL_NODES_MAC, PortId(0)));
        assert!(!b.is_solicited_group(a("ff02::1:ff00:2"), PortId(0)));
        assert!(b.on_link(a("2001:db8:1::99"), PortId(0)) && !b.on_link(a("2001:db8:2::99"), PortId(0)));
        assert!(b.on_link(a("fe80::99"), PortId(0)));
        let routes = RouteTable6::new(
            &[(PortId(0), "2001:db8:1::1/64".parse().unwrap()), (PortId(1), "2001:db8:2::1/64".parse().unwrap())],
            &[],
        )
        .unwrap();
        let to = |dst: &str| route_verdict(&routes, a(dst), PortId(0));
        assert_eq!(to("2001:db8:2::99"), Verdict::Route6 { port: PortId(1), next_hop: a("2001:db8:2::99") });
        assert_eq!(to("fe80::99"), Verdict::Route6 { port: PortId(0), next_hop: a("fe80::99") });
        assert_eq!(to("2001:db8:9::99"), Verdict::Drop(DropReason::NoRoute));
        assert_eq!(b.source_for(PortId(1), a("2001:db8:2::99")), Some(a("2001:db8:2::1")));
        assert_eq!(b.source_for(PortId(1), a("fe80::99")), Some(ll));
    }

    fn ns(src: &str, target: &str, source_ll: Option<MacAddr>) -> NdRepr {
        let (src, target) = (a(src), a(target));
        NdRepr { kind: NdKind::Solicit, src, dst: solicited_node(target), target, source_ll, target_ll: None }
    }

    #[test]
    fn solicitation_rules() {
        let b = book();
        let out = nd_input(&ns("2001:db8:1::9", "2001:db8:1::1", Some(PEER)), PortId(0), &b);
        assert!(matches!(out.action, Ok(Some(_))));
        assert_eq!(out.learn, Some(NdLearn { ip: a("2001:db8:1::9"), mac: PEER, create: true }));
        let out = nd_input(&ns("2001:db8:1::9", "2001:db8:1::5", Some(PEER)), PortId(0), &b);
        assert_eq!(out.action, Err(DropReason::NdNotForUs));
        assert_eq!(out.learn, Some(NdLearn { ip: a("2001:db8:1::9"), mac: PEER, create: false }), "merged only");
        let out = nd_input(&ns("2001:db8:1::9", "2001:db8:2::1", Some(PEER)), PortId(0), &b);
        assert_eq!(out.action, Err(DropReason::NdNotForUs), "ours, but on the other port");
        let out = nd_input(&ns("2001:db8:7::9", "2001:db8:1::1", Some(PEER)), PortId(0), &b);
        assert!(matches!(out.action, Ok(Some(_))));
        assert_eq!(out.learn, None, "off-link sender");
        let out = nd_input(&ns("2001:db8:1::1", "2001:db8:1::5", Some(PEER)), PortId(0), &b);
        assert_eq!((out.action, out.learn), (Err(DropReason::NdSpoofedOwn), None), "from our own address");
        let out = nd_input(&ns("::", "2001:db8:1::1", None), PortId(0), &b);
        assert!(matches!(out.action, Ok(Some(_))), "DAD for our address is defended");
        assert_eq!(out.learn, None);
    }

    #[test]
    fn advertisement_rules_and_spoofing() {
        let b = book();
        let na = |target: &str, ll: Option<MacAddr>| NdRepr {
            kind: NdKind::Advert(NaFlags { router: false, solicited: false, override_: true }),
            src: a(target),
            dst: ALL_NODES,
            target: a(target),
            source_ll: None,
            target_ll: ll,
        };
        let out = nd_input(&na("2001:db8:1::9", Some(PEER)), PortId(0), &b);
        assert_eq!(out.action, Ok(None));
        assert_eq!(out.learn, Some(NdLearn { ip: a("2001:db8:1::9"), mac: PEER, create: false }), "unsolicited");
        let solicited = NdRepr {
            kind: NdKind::Advert(NaFlags { router: false, solicited: true, override_: true }),
            dst: a("2001:db8:1::1"),
            ..na("2001:db8:1::9", Some(PEER))
        };
        let out = nd_input(&solicited, PortId(0), &b);
        assert_eq!(out.learn, Some(NdLearn { ip: a("2001:db8:1::9"), mac: PEER, create: true }), "solicited");
        let out = nd_input(&na("2001:db8:2::9", Some(PEER)), PortId(0), &b);
        assert_eq!((out.action, out.learn), (Ok(None), None), "off-link target");
        let out = nd_input(&na("2001:db8:1::1", Some(PEER)), PortId(0), &b);
        assert_eq!((out.action, out.learn), (Err(DropReason::NdSpoofedOwn), None));
        let out = nd_input(&na(&link_local(OUR).to_string(), Some(PEER)), PortId(1), &b);
        assert_eq!((out.action, out.learn), (Err(DropReason::NdSpoofedOwn), None));
        assert_eq!(nd_input(&na("2001:db8:1::9", None), PortId(0), &b).learn, None);
    }

    /// The solicitation of `wire::icmpv6`'s tests in an Ethernet frame: 2001:db8::10 (at
    /// 02:00:00:00:00:02) asks for 2001:db8::1.
    #[rustfmt::skip]
    const NS_FRAME: [u8; 86] = [
        0x33, 0x33, 0xff, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02, 0x86, 0xdd,
        0x60, 0, 0, 0, 0x00, 0x20, 0x3a, 0xff,
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
        0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff, 0, 0, 0x01,
        0x87, 0x00, 0x1c, 0x19, 0, 0, 0, 0,
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,
        0x01, 0x01, 0x02, 0, 0, 0, 0, 0x02,
    ];

    /// The answer, byte for byte: 2001:db8::1 → 2001:db8::10 at 02:00:00:00:00:02 from
    /// 02:00:00:00:00:01, S and O set, target link-layer option. The ICMPv6 checksum
    /// 0x8a65 was computed independently with python3 (see `wire::icmpv6`'s NA).
    #[rustfmt::skip]
    const NA_FRAME: [u8; 86] = [
        0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01, 0x86, 0xdd,
        0x60, 0, 0, 0, 0x00, 0x20, 0x3a, 0xff,
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
        0x88, 0x00, 0x8a, 0x65, 0x60, 0, 0, 0,
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,
        0x02, 0x01, 0x02, 0, 0, 0, 0, 0x01,
    ];

    #[test]
    fn na_answer_golden() {
        let ip = Ipv6Packet::new_checked(&NS_FRAME[14..]).unwrap();
        let icmp = Icmpv6Packet::new_checked(ip.payload()).unwrap();
        let ns = NdRepr::parse(&ip, &icmp).unwrap();
        let mut f = NS_FRAME;
        assert_eq!(write_na(&mut f, &ns, OUR, PEER), Ok(ND_FRAME_LEN));
        assert_eq!(f, NA_FRAME);
        assert_eq!(f[14 + 40], ICMPV6_NEIGHBOR_ADVERT);
        assert_eq!(write_na(&mut f[..80], &ns, OUR, PEER), Err(DropReason::Icmp6NotSent));
    }

    #[test]
    fn built_frames_parse_back() {
        let mut f = [0u8; ND_FRAME_LEN];
        assert!(write_ns_frame(&mut f, OUR, a("2001:db8:1::1"), a("2001:db8:1::9")));
        assert_eq!(&f[..6], &[0x33, 0x33, 0xff, 0, 0, 0x09]);
        let ip = Ipv6Packet::new_checked(&f[14..]).unwrap();
        let nd = NdRepr::parse(&ip, &Icmpv6Packet::new_checked(ip.payload()).unwrap()).unwrap();
        assert_eq!(
            (nd.kind, nd.src, nd.target, nd.source_ll),
            (NdKind::Solicit, a("2001:db8:1::1"), a("2001:db8:1::9"), Some(OUR))
        );
        assert!(write_unsolicited_na_frame(&mut f, OUR, a("2001:db8:1::1")));
        assert_eq!(&f[..6], &ALL_NODES_MAC.octets());
        let ip = Ipv6Packet::new_checked(&f[14..]).unwrap();
        let nd = NdRepr::parse(&ip, &Icmpv6Packet::new_checked(ip.payload()).unwrap()).unwrap();
        assert_eq!(nd.kind, NdKind::Advert(NaFlags { router: false, solicited: false, override_: true }));
        assert_eq!((nd.dst, nd.target, nd.target_ll), (ALL_NODES, a("2001:db8:1::1"), Some(OUR)));
        assert!(!write_ns_frame(&mut f[..85], OUR, a("2001:db8:1::1"), a("2001:db8:1::9")));
        assert!(!write_unsolicited_na_frame(&mut f[..85], OUR, a("2001:db8:1::1")));
    }

    /// `wire::ipv6`'s echo request (2001:db8::10 → 2001:db8::1, ident 0x1234, seq 1, 8
    /// data bytes) in an Ethernet frame.
    fn echo_frame() -> Vec<u8> {
        let mut f = vec![0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02, 0x86, 0xdd];
        f.extend_from_slice(&crate::wire::ipv6::tests::ECHO6);
        f
    }

    /// The reply, byte for byte: addresses swapped, hop limit 64, type 129; traffic class
    /// and flow label kept; checksum 0xc4ac, computed independently with python3 (RFC 1071
    /// sum over the RFC 8200 pseudo-header), not with this code.
    #[rustfmt::skip]
    const ECHO_REPLY6: [u8; 56] = [
        0x61, 0x23, 0x45, 0x67, 0x00, 0x10, 0x3a, 0x40,
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
        0x81, 0x00, 0xc4, 0xac, 0x12, 0x34, 0x00, 0x01,
        0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17,
    ];

    #[test]
    fn echo_reply_golden_and_refusals() {
        let mut f = echo_frame();
        let upper = Ipv6Packet::new_checked(&f[14..]).unwrap().upper_layer().unwrap();
        assert_eq!(answer_echo(&mut f, &upper), Ok(a("2001:db8::10")));
        assert_eq!(&f[14..], &ECHO_REPLY6);
        let ip = Ipv6Packet::new_checked(&f[14..]).unwrap();
        assert!(Icmpv6Packet::new_checked(ip.payload()).unwrap().verify_checksum(ip.src_addr(), ip.dst_addr()));
        // Corrupt data: bad checksum.
        let mut f = echo_frame();
        f[14 + 50] ^= 1;
        assert_eq!(answer_echo(&mut f, &upper), Err(DropReason::Icmp6BadChecksum));
        // An echo reply is not answered.
        let mut f = echo_frame();
        f[14 + 40] = ICMPV6_ECHO_REPLY;
        assert_eq!(answer_echo(&mut f, &upper), Err(DropReason::Icmp6Unhandled));
        // Behind an extension header: not answered.
        let mut f = echo_frame();
        let with_ext = UpperLayer { offset: 8, ..upper };
        assert_eq!(answer_echo(&mut f, &with_ext), Err(DropReason::Icmp6Unhandled));
    }

    #[test]
    fn every_wire_refusal_has_its_counter_name() {
        for &e in Ipv6Error::ALL {
            assert_eq!(DropReason::from(e).name(), e.drop_reason_name());
        }
        for &e in Icmpv6Error::ALL {
            assert_eq!(DropReason::from(e).name(), e.drop_reason_name());
        }
    }

    mod book_props {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// The book's integer forms answer as the prefixes themselves (`ipnet`) do:
            /// ownership, on-link and the source chosen for a destination.
            #[test]
            fn integer_forms_agree_with_the_prefixes(
                nets in proptest::collection::vec((any::<u128>(), 0u8..=128, 0u16..2), 1..5),
                locals in proptest::collection::vec((any::<u128>(), 0u16..2), 0..3),
                probes in proptest::collection::vec(any::<u128>(), 1..8),
            ) {
                let mut b = Ipv6Book::new();
                let mut kept: Vec<(Ipv6Net, PortId, bool)> = Vec::new();
                for (addr, len, port) in nets {
                    let net = Ipv6Net::new(Ipv6Addr::from_bits(addr), len).unwrap();
                    if b.insert(net, PortId(port), false).is_ok() {
                        kept.push((net, PortId(port), false));
                    }
                }
                for (addr, port) in locals {
                    let l = Ipv6Addr::from_bits(addr);
                    if b.insert_local(l, PortId(port)).is_ok() {
                        kept.push((Ipv6Net::from(l), PortId(port), true));
                    }
                }
                // Probes: random addresses, and every address and its prefix's neighbours.
                let mut all: Vec<Ipv6Addr> = probes.into_iter().map(Ipv6Addr::from_bits).collect();
                for (net, _, _) in &kept {
                    all.push(net.addr());
                    all.push(Ipv6Addr::from_bits(net.network().to_bits() | 1));
                }
                for x in all {
                    prop_assert_eq!(b.is_ours(x), kept.iter().any(|(n, _, _)| n.addr() == x));
                    for port in [PortId(0), PortId(1)] {
                        let on = is_link_local(x) || kept.iter().any(|(n, p, _)| *p == port && n.contains(&x));
                        prop_assert_eq!(b.on_link(x, port), on);
                        let src = (!is_link_local(x))
                            .then(|| kept.iter().find(|(n, p, l)| *p == port && !l && n.contains(&x)))
                            .flatten()
                            .map(|(n, _, _)| n.addr());
                        prop_assert_eq!(b.source_for(port, x), src);
                        prop_assert_eq!(b.on_port(x, port).map(|o| o.net), kept.iter().find(|(n, p, _)| n.addr() == x && *p == port).map(|(n, _, _)| *n));
                    }
                }
            }
        }
    }
}
