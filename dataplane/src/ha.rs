//! What the workers need for high availability: VRRP (RFC 5798) itself runs on the control
//! plane; the workers obey its roles and carry its packets.
//!
//! Contract:
//! * **Roles.** The addresses of a VRRP instance (`[[ha.instance]] addresses`: VIPs,
//!   Full-NAT local addresses and floating addresses such as the NAT gateway on the back
//!   network) form a group, one group per instance. [`HaRoles`] holds, per group, whether
//!   this node is its master. Workers look each address's group up when they build their
//!   address book (never per packet) and read the group's flag per packet (one relaxed
//!   atomic load): a master answers ARP and ICMP for the group's addresses and forwards
//!   their traffic; a backup does none of that and counts what reaches it anyway
//!   (`ha_backup`, ARP requests included). Workers send no gratuitous ARP for a backup's
//!   addresses, at start or when a VIP is added live: on takeover the VRRP thread sends
//!   them itself (frames out, below). Every group starts as backup: the VRRP thread
//!   decides. Without `[ha]` a worker has no roles and answers for every address, as
//!   before. [`crate::worker::Worker::with_ha`] gives a worker its link and the roles.
//! * **Floating addresses.** An address of [`HaRoles`] that is not a port, Full-NAT local
//!   or VIP address of the worker and lies in a port's connected subnet (the NAT gateway
//!   on the back network) is answered for ARP and ICMP echo on that port while master
//!   ([`crate::l2l3::AddrKind::Floating`]); TCP/UDP to it is `l4_no_service`. An address of
//!   `HaRoles` on no port's subnet and not a VIP is ignored by the workers. A floating
//!   address that a later service table names as a VIP becomes that VIP. So the control
//!   plane passes every address of every instance in `HaRoles`, and nothing else.
//! * **IPv6 floating addresses.** An IPv6 address of [`HaRoles`] that is not a port's IPv6
//!   address or IPv6 Full-NAT local address and lies in a port's IPv6 prefix (a NAT66
//!   gateway on the back network) is answered on that port while master: neighbour
//!   solicitations (also through its solicited-node group) and ICMPv6 echo; TCP/UDP to it
//!   is `ip6_no_service`; while backup all of it is `ha_backup`. An IPv6 VIP of the
//!   service table wins over a floating address, as for IPv4.
//! * **Virtual link-local addresses.** An instance whose adverts are VRRP over IPv6 may
//!   have a virtual link-local address (RFC 5798 §5.2.9: the first address of its adverts,
//!   which keepalived's `vrrp_strict` requires). A link-local address is on every link, so
//!   [`HaRoles::with_link_local`] names its port: the instance's. On that port only it is
//!   answered as an IPv6 floating address (neighbour solicitations, its solicited-node
//!   group, ICMPv6 echo) while master, and is `ha_backup` while backup.
//! * **Not gated.** Packets not addressed to one of our addresses, e.g. NAT replies from
//!   real servers (addressed to the client, sent to the MAC the floating gateway resolved
//!   to), are forwarded by whichever node receives them, master or not; a backup that
//!   never answered ARP for the gateway normally receives none.
//! * **Adverts in.** A worker copies every IPv4 packet of protocol 112 to 224.0.0.18 (sent to
//!   Ethernet 01:00:5e:00:00:12) that a port receives into its own ring, tagged with that
//!   port ([`HaLink::punt`]): one producer per ring. The Ethernet header and padding are
//!   cut (the packet ends at its IPv4 total length). Before that the frame passes the
//!   worker's usual checks (Ethernet source, IPv4 header and checksum, no fragment, source
//!   neither martian nor ours: our own advert looped back is dropped); the peer's adverts
//!   come from its own address and pass. Counted `ha_rx` (and `rx_consumed`); a full ring
//!   is `ha_ring_full`, a packet longer than a ring buffer `ha_too_long`. Other multicast
//!   stays `eth_not_for_us`. Likewise an IPv6 packet whose next header is 112 (no
//!   extension header) to ff02::12 sent to Ethernet 33:33:00:00:00:12 (VRRP over IPv6, an
//!   instance whose addresses are all IPv6), after the Ethernet source check, the IPv6
//!   header's (`ip6_*`) and a source that is neither multicast, loopback, unspecified nor
//!   one of ours (`ip6_bad_source`: our own advert looped back): the IPv6 packet, cut at
//!   its payload length, is punted the same way. The control plane reads every worker's
//!   ring ([`HaEnd::recv`]), tells the families apart by the IP version, and judges the
//!   packet itself (version, VRID, TTL or hop limit, checksum).
//! * **Frames out.** The control plane queues complete Ethernet frames (adverts, gratuitous
//!   ARP), each tagged with the port to send it from ([`HaEnd::send_frame`]); worker 0 sends
//!   them unchanged ([`HaLink::take_frame`]), at most [`FRAMES_PER_POLL`] per poll, copied
//!   into a packet from its pool (`ha_tx`, also `local_originated`; a port that does not
//!   exist is `ha_bad_port`, a frame longer than a packet buffer `ha_too_long`, an empty
//!   pool `no_mbuf`). The Ethernet addresses are the control plane's, not rewritten.
//! * No allocation on the data path: the rings' buffers are allocated by [`ha_links`] and
//!   circulate (see [`crate::punt`]).
//!
//! Addresses are [`IpAddr`]: an instance's IPv6 addresses are IPv6 VIPs, IPv6 Full-NAT
//! local addresses and IPv6 floating addresses, gated like IPv4 ones (a backup neither answers neighbour discovery for
//! them nor forwards their traffic or the replies to a local address, `ha_backup`, and
//! announces them neither at start nor when added live; the control plane sends their
//! unsolicited neighbour advertisements on takeover).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::punt::{Ring, SendError};
use crate::types::PortId;
use crate::wire::MacAddr;

/// IP protocol number of VRRP.
pub const IPPROTO_VRRP: u8 = 112;

/// The IPv4 multicast group VRRP adverts are sent to.
pub const VRRP_GROUP_V4: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);

/// The Ethernet multicast address of [`VRRP_GROUP_V4`] (RFC 1112's mapping).
pub const VRRP_MAC_V4: MacAddr = MacAddr([0x01, 0x00, 0x5e, 0x00, 0x00, 0x12]);

/// The IPv6 multicast group VRRP adverts are sent to (RFC 5798 §5.1.2.2: ff02::12).
pub const VRRP_GROUP_V6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12);

/// The Ethernet multicast address of [`VRRP_GROUP_V6`] (RFC 2464 §7's mapping).
pub const VRRP_MAC_V6: MacAddr = MacAddr([0x33, 0x33, 0x00, 0x00, 0x00, 0x12]);

/// Frames of the control plane worker 0 sends per poll at most.
pub const FRAMES_PER_POLL: usize = 32;

/// Buffers per HA ring: adverts are a few per second per instance; gratuitous ARP bursts
/// are one frame per address per repeat.
pub const DEFAULT_HA_RING_CAPACITY: usize = 256;

/// Which VRRP instance an address belongs to: an index into [`HaRoles`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HaGroup(pub u16);

impl HaGroup {
    /// As an index.
    #[inline]
    pub fn index(self) -> usize {
        usize::from(self.0)
    }
}

/// Why [`HaRoles::new`] refused its input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HaRolesError {
    /// An address names a group that does not exist.
    #[error("address {addr} is in VRRP group {group}, but there are only {groups} groups")]
    NoSuchGroup {
        /// The address.
        addr: IpAddr,
        /// Its group.
        group: u16,
        /// How many groups exist.
        groups: usize,
    },
    /// An address is in two groups.
    #[error("address {0} belongs to two VRRP instances; an address moves with one instance only")]
    TwoGroups(IpAddr),
    /// A virtual link-local address that is not link-local (fe80::/10).
    #[error("address {0} is not link-local (fe80::/10), so it cannot be a virtual link-local address")]
    NotLinkLocal(Ipv6Addr),
}

/// Per VRRP instance, whether this node is master, and which addresses move with it.
/// Shared by the VRRP thread (writer) and every worker (readers). The address set is fixed
/// when rvsd starts; only the flags change.
#[derive(Debug)]
pub struct HaRoles {
    groups: HashMap<IpAddr, HaGroup>,
    /// Virtual link-local addresses and the port each is answered on.
    link_local: Vec<(Ipv6Addr, PortId)>,
    master: Box<[AtomicBool]>,
}

impl HaRoles {
    /// `groups` instances, every one backup, with `addrs` mapping each address to its group.
    pub fn new(groups: usize, addrs: impl IntoIterator<Item = (IpAddr, HaGroup)>) -> Result<Self, HaRolesError> {
        let mut map = HashMap::new();
        for (addr, group) in addrs {
            if group.index() >= groups {
                return Err(HaRolesError::NoSuchGroup { addr, group: group.0, groups });
            }
            if map.insert(addr, group).is_some_and(|g| g != group) {
                return Err(HaRolesError::TwoGroups(addr));
            }
        }
        let master = (0..groups).map(|_| AtomicBool::new(false)).collect();
        Ok(HaRoles { groups: map, link_local: Vec::new(), master })
    }

    /// Adds group `group`'s virtual link-local address `addr`, answered on `port` only (see
    /// the module docs). Refused if `addr` is not in fe80::/10, the group does not exist, or
    /// `addr` is already another group's.
    pub fn with_link_local(mut self, addr: Ipv6Addr, port: PortId, group: HaGroup) -> Result<Self, HaRolesError> {
        let ip = IpAddr::V6(addr);
        if addr.segments()[0] & 0xffc0 != 0xfe80 {
            return Err(HaRolesError::NotLinkLocal(addr));
        }
        if group.index() >= self.master.len() {
            return Err(HaRolesError::NoSuchGroup { addr: ip, group: group.0, groups: self.master.len() });
        }
        if self.groups.insert(ip, group).is_some_and(|g| g != group) {
            return Err(HaRolesError::TwoGroups(ip));
        }
        self.link_local.retain(|&(a, _)| a != addr);
        self.link_local.push((addr, port));
        Ok(self)
    }

    /// The port a virtual link-local address is answered on, if `addr` is one. For
    /// address-book construction, not per packet.
    pub fn link_local_port(&self, addr: Ipv6Addr) -> Option<PortId> {
        self.link_local.iter().find(|&&(a, _)| a == addr).map(|&(_, p)| p)
    }

    /// The group `addr` moves with, if any. For address-book construction, not per packet.
    pub fn group_of(&self, addr: IpAddr) -> Option<HaGroup> {
        self.groups.get(&addr).copied()
    }

    /// Whether this node is master for `group` (false for a group that does not exist).
    #[inline]
    pub fn is_master(&self, group: HaGroup) -> bool {
        self.master.get(group.index()).is_some_and(|m| m.load(Ordering::Relaxed))
    }

    /// Makes this node master (or backup) for `group`; no effect on a group that does not
    /// exist.
    pub fn set_master(&self, group: HaGroup, master: bool) {
        if let Some(m) = self.master.get(group.index()) {
            m.store(master, Ordering::Relaxed);
        }
    }

    /// Number of groups.
    pub fn groups(&self) -> usize {
        self.master.len()
    }

    /// Every address with its group (any order).
    pub fn addresses(&self) -> impl Iterator<Item = (IpAddr, HaGroup)> + '_ {
        self.groups.iter().map(|(&a, &g)| (a, g))
    }
}

/// A worker's end of the HA rings.
#[derive(Debug)]
pub struct HaLink {
    rx: Arc<Ring>,
    tx: Option<Arc<Ring>>,
}

impl HaLink {
    /// Queues a received VRRP packet (the IP packet, Ethernet header stripped) for the
    /// control plane, tagged with the port it arrived on.
    #[inline]
    pub fn punt(&self, port: PortId, packet: &[u8]) -> Result<(), SendError> {
        self.rx.send_tagged(port.0, packet)
    }

    /// Hands the next frame the control plane wants sent, and its port, to `f`, if this
    /// worker sends them and one is waiting.
    #[inline]
    pub fn take_frame<R>(&self, f: impl FnOnce(PortId, &[u8]) -> R) -> Option<R> {
        self.tx.as_ref()?.recv_tagged(|port, frame| f(PortId(port), frame))
    }
}

/// The control plane's end: VRRP packets from every worker, and the outbound frames.
#[derive(Debug)]
pub struct HaEnd {
    rx: Vec<Arc<Ring>>,
    tx: Arc<Ring>,
    next: usize,
    tx_dropped: u64,
}

impl HaEnd {
    /// The next received VRRP packet and its port, copied out (round robin over the
    /// workers' rings).
    pub fn recv(&mut self) -> Option<(PortId, Vec<u8>)> {
        for _ in 0..self.rx.len() {
            let i = self.next % self.rx.len().max(1);
            self.next = self.next.wrapping_add(1);
            if let Some(p) = self.rx.get(i).and_then(|r| r.recv_tagged(|port, p| (PortId(port), p.to_vec()))) {
                return Some(p);
            }
        }
        None
    }

    /// Queues a complete Ethernet frame to go out of `port`; false (counted) if the ring
    /// is full or the frame too long.
    pub fn send_frame(&mut self, port: PortId, frame: &[u8]) -> bool {
        let ok = self.tx.send_tagged(port.0, frame).is_ok();
        if !ok {
            self.tx_dropped += 1;
        }
        ok
    }

    /// Frames [`HaEnd::send_frame`] could not queue.
    pub fn tx_dropped(&self) -> u64 {
        self.tx_dropped
    }
}

/// Builds the HA rings for `workers` workers, `capacity` buffers per ring: element `i` of
/// the links belongs to worker `i`; worker 0 sends the control plane's frames.
pub fn ha_links(workers: usize, capacity: usize) -> (Vec<HaLink>, HaEnd) {
    let tx = Ring::new(capacity);
    let rings: Vec<Arc<Ring>> = (0..workers.max(1)).map(|_| Ring::new(capacity)).collect();
    let links = rings
        .iter()
        .enumerate()
        .map(|(i, r)| HaLink { rx: Arc::clone(r), tx: (i == 0).then(|| Arc::clone(&tx)) })
        .collect();
    (links, HaEnd { rx: rings, tx, next: 0, tx_dropped: 0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(a: [u8; 4]) -> IpAddr {
        IpAddr::from(a)
    }

    #[test]
    fn roles_start_backup_and_follow_set_master() {
        let roles = HaRoles::new(2, [(v4([10, 10, 0, 100]), HaGroup(0)), (v4([10, 20, 0, 100]), HaGroup(1))]).unwrap();
        assert_eq!(roles.group_of(v4([10, 20, 0, 100])), Some(HaGroup(1)));
        assert_eq!(roles.group_of(v4([10, 20, 0, 1])), None);
        assert!(!roles.is_master(HaGroup(0)) && !roles.is_master(HaGroup(1)));
        roles.set_master(HaGroup(1), true);
        assert!(!roles.is_master(HaGroup(0)) && roles.is_master(HaGroup(1)));
        roles.set_master(HaGroup(7), true);
        assert!(!roles.is_master(HaGroup(7)));
        assert_eq!(roles.groups(), 2);
    }

    #[test]
    fn roles_refuse_unknown_groups_and_addresses_in_two_groups() {
        let a = v4([10, 10, 0, 100]);
        assert_eq!(
            HaRoles::new(1, [(a, HaGroup(1))]).unwrap_err(),
            HaRolesError::NoSuchGroup { addr: a, group: 1, groups: 1 }
        );
        assert_eq!(HaRoles::new(2, [(a, HaGroup(0)), (a, HaGroup(1))]).unwrap_err(), HaRolesError::TwoGroups(a));
        assert!(HaRoles::new(2, [(a, HaGroup(0)), (a, HaGroup(0))]).is_ok());
    }

    #[test]
    fn rings_carry_the_port_both_ways() {
        let (links, mut end) = ha_links(2, 2);
        links[1].punt(PortId(1), b"advert").unwrap();
        assert_eq!(links[1].punt(PortId(0), &[0; crate::punt::PUNT_BUF_LEN + 1]), Err(SendError::TooLong));
        assert_eq!(end.recv(), Some((PortId(1), b"advert".to_vec())));
        assert_eq!(end.recv(), None);
        assert!(end.send_frame(PortId(1), b"garp"));
        assert!(end.send_frame(PortId(0), b"adv"));
        assert!(!end.send_frame(PortId(0), b"full"));
        assert_eq!(end.tx_dropped(), 1);
        assert_eq!(links[1].take_frame(|p, f| (p, f.to_vec())), None);
        assert_eq!(links[0].take_frame(|p, f| (p, f.to_vec())), Some((PortId(1), b"garp".to_vec())));
        assert_eq!(links[0].take_frame(|p, f| (p, f.to_vec())), Some((PortId(0), b"adv".to_vec())));
        assert_eq!(links[0].take_frame(|p, f| (p, f.to_vec())), None);
    }
}
