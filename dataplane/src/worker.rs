//! The worker: one poll-mode loop per worker lcore, owning its queues and its state.
//!
//! Contract:
//! * A [`Worker`] owns everything it touches on the fast path — one RX/TX queue pair per
//!   port (indexed by [`PortId`]), its packet pool, neighbour table, route table, address
//!   book, TX buffers and counters — and receives it as `&mut self`: no lock, no shared
//!   mutable state. The counters are shared read-only with the control plane
//!   ([`Worker::counters`]); neighbour updates reach peers through single-producer
//!   queues ([`NeighSync`]).
//! * Everything is allocated in [`Worker::new`]; a poll allocates nothing, takes no lock
//!   and makes no syscall (packets come from the pool, bursts live on the stack). Only
//!   [`Worker::run`] may sleep, and only when a poll got nothing (see [`crate::idle`]).
//! * The loop has l3fwd's shape: for each port, receive a burst of up to 32, classify and
//!   handle each packet, buffer its output per egress port (flushing a buffer when it
//!   fills); then apply peers' neighbour updates, run the neighbour timers (every
//!   [`TIMER_INTERVAL_NS`]), and flush every TX buffer. Packets the NIC refuses are dropped
//!   and counted `tx_full`, as l3fwd frees them.
//! * Every received packet ends in exactly one verdict ([`Verdict`]): sent, absorbed,
//!   parked on an unresolved neighbour, held in the fragment table until its datagram's
//!   first fragment comes, or dropped with one [`DropReason`] — see
//!   [`crate::stats`] for the counting invariant. No network input can make it panic.
//! * Classification, in order (the first failing check is the drop reason):
//!   Ethernet header present (`eth_truncated`); destination MAC is the port's, or broadcast
//!   for ARP only, or (with an HA link) VRRP's 01:00:5e:00:00:12 — see "VRRP" below — other
//!   multicast and others' unicast are `eth_not_for_us`; source MAC unicast
//!   and not ours (`eth_bad_source`); ethertype ARP → [`arp`], IPv4 → below, IPv6 → "IPv6"
//!   below, anything else (VLAN-tagged, ...) `eth_unknown_type`. IPv4: header valid (`ip_truncated`,
//!   `ip_bad_version`, `ip_bad_ihl`, `ip_bad_length`), header checksum correct unless the
//!   NIC verified it (`ip_bad_checksum`); a fragment leaves here for the fragment path
//!   (below); sane source (`ip_bad_source`). Then, to one of our addresses: ICMP echo →
//!   [`icmp`]; ICMP errors, TCP and UDP → the L4 engine ([`crate::lb`]); other protocols `ip_unknown_protocol`.
//!   Not to us: TCP/UDP and ICMP errors → the L4 engine (NAT replies), anything else
//!   `ip_not_for_us`. To one of our addresses whose VRRP group is backup here:
//!   `ha_backup`, whatever the protocol (see "VRRP" below). Without an L4 engine,
//!   TCP/UDP to us is `l4_no_service`. Before
//!   all that, with a probe link ([`Worker::with_probe`]), a packet to a port's own
//!   address that answers a health probe ([`crate::punt::ProbeMatch`]) is copied to the
//!   prober's punt ring (`probe_rx`, `rx_consumed`); likewise an IPv6 packet to a port's
//!   own IPv6 address ([`crate::punt::ProbeMatch::matches6`]). The prober's packets of
//!   either family leave from a port's own address (`probe_bad_packet` otherwise).
//! * IPv6 ([`nd`]): a port with `ipv6_addresses` answers for them and for its link-local
//!   address. IPv6 frames to the port's MAC, and frames to all-nodes' MAC 33:33:00:00:00:01
//!   or the solicited-node MAC 33:33:ff:… of one of the port's IPv6 addresses (other
//!   multicast stays `eth_not_for_us`), go to one out-of-line function
//!   (`ipv6_rx`; its docs give the checks and their drop reasons, `ip6_*`, `icmp6_*`,
//!   `nd_*`): neighbour solicitations for our addresses are answered, neighbours learned
//!   from NS and NA into a second neighbour table (the same code as ARP's, keyed by
//!   IPv6 address, synced to the peers the same way), NS/NA claiming our own addresses
//!   counted `nd_spoofed_own` and never learned, echo requests answered and sent
//!   through [`Verdict::Route6`] (to the destination when on-link, else to the gateway
//!   of the longest matching static IPv6 route), soliciting the neighbour when
//!   unresolved. TCP/UDP to an IPv6 VIP or an IPv6 Full-NAT local address, and NAT66
//!   replies, go out of line to the IPv6 L4 path (`l4_rx6`, `LbEngine::handle_view6`);
//!   anything else to us is `ip6_no_service`. Unsolicited NAs (ports, local addresses and
//!   IPv6 VIPs) go out with the gratuitous
//!   ARPs. The IPv4 path pays one more ethertype compare, after IPv4's.
//! * Health probes out: worker 0 takes up to [`crate::punt::TX_PER_POLL`] of the
//!   prober's IP packets per poll, routes each like its own traffic (route, neighbour
//!   resolution with the pending queue) and sends it (`probe_tx`, `local_originated`).
//! * VRRP ([`Worker::with_ha`], [`crate::ha`]). Each address of the book carries the
//!   group of the VRRP instance it moves with ([`OwnedAddr::group`], looked up from
//!   [`HaRoles`] whenever the book is built: at `with_ha` and when the VIPs follow a new
//!   service table), and the instances' addresses that are neither port, local nor VIP
//!   addresses are in the book as [`AddrKind::Floating`] on the port whose connected subnet
//!   holds them. Per packet the worker reads the group's master flag (one relaxed load)
//!   for grouped addresses only: while backup it answers no ARP request for the address
//!   (`ha_backup`, the sender is merged but not added), answers no ICMP and forwards no
//!   TCP/UDP to it (VIP traffic, Full-NAT replies to a local address: `ha_backup`), and
//!   sends no gratuitous ARP for it (at start, [`Worker::send_gratuitous_arp`], or for a
//!   VIP added live): the control plane announces the addresses it takes over through
//!   its own frames. Traffic not addressed to one of our addresses is not gated: NAT
//!   replies from real servers (to the client, through the floating gateway's MAC, i.e.
//!   the port's) are forwarded by whichever node receives them, as its connections allow.
//!   A frame to 01:00:5e:00:00:12 passes the same Ethernet source and IPv4 header checks
//!   as any (so our own advert looped back is `eth_bad_source` or `ip_bad_source`); an IPv4
//!   packet of protocol 112 to 224.0.0.18 is then copied, Ethernet header and padding cut,
//!   to this worker's HA ring tagged with the port ([`HaLink::punt`]; `ha_rx`,
//!   `rx_consumed`; `ha_ring_full`, `ha_too_long`), anything else is `eth_not_for_us`; a
//!   frame to 33:33:00:00:00:12 likewise, out of line, as VRRP over IPv6: an IPv6 packet
//!   of next header 112 to ff02::12 from a source not ours (`handle_vrrp6`). IPv6
//!   floating addresses (a NAT66 gateway on a port's IPv6 prefix) are answered for
//!   neighbour solicitations and echo on their port while master only (`ha_backup`). The
//!   VRRP contents are the control plane's to judge. Worker 0 sends up to
//!   [`FRAMES_PER_POLL`] of the control plane's frames per poll ([`HaLink::take_frame`])
//!   unchanged out of their port (`ha_tx`, `local_originated`; `ha_bad_port`,
//!   `ha_too_long`, `no_mbuf`). Without `with_ha` every address is answered, multicast is
//!   `eth_not_for_us`, and the cost per packet is one test of the address's group.
//! * Connection sync ([`Worker::with_sync`], [`crate::sync`]): with a link, the L4 engine
//!   queues a record of each connection created and of each state change (from those
//!   cold events only), and each poll, after the connection timers, installs up to
//!   [`INSTALL_PER_POLL`] of the peer's records, steps the refresh walk and any dump the
//!   control plane asked for (`sync_*` counters). Without a link a packet costs one test
//!   of it, on the L4 path.
//! * Kernel exception path ([`Worker::with_exception`], [`crate::exception`]): on a port
//!   that has one, IPv4 to the port's own address that the lite stack does not answer (all
//!   but ICMP echo requests and errors about tunnel flows, after the probe check) is
//!   [`Verdict::Kernel`], and so is an
//!   ARP reply to that address once learned from; IPv6 to the port's own IPv6 addresses
//!   likewise (all but neighbour discovery, echo requests and errors about tunnel flows,
//!   [`crate::exception::classify_own6`]), and a neighbour advertisement to one once
//!   learned from; such frames are buffered for the port's
//!   kernel interface within its rate limit (`exception_to_kernel`;
//!   `exception_rate_limited`, `exception_ring_full`) and sent once per poll. At most every
//!   [`KERNEL_POLL_INTERVAL_NS`] the worker reads one burst from each kernel interface and
//!   queues it out of the port (`exception_from_kernel`, also `rx_packets`;
//!   `exception_out_rate_limited`, `exception_bad_frame`). Without it a packet to a port
//!   address costs one test of an empty vector, other packets nothing.
//! * Packets whose flow another worker owns go there through a redirect ring
//!   ([`crate::mesh`]) and are handled by the owner as if received on the same port.
//! * IPv4 fragments ([`frag`], out of line): after the same source check, a fragment of
//!   TCP/UDP to a VIP, a local address or not ours (NAT replies), with an L4 engine, goes
//!   to the fragment path — its datagram's fragment owner, the fragment table, then the
//!   flow's owner with the ports, and the L4 engine; refusals are `frag_*`. Any other
//!   fragment (other protocols, to a port or floating address, no engine) is
//!   `ip_fragment`; a fragment to an address whose VRRP group is backup here is
//!   `ha_backup`. The fragment table's expired trains are swept from the timer path.
//!   IPv6 fragments of TCP/UDP to an IPv6 VIP or of NAT66 replies take the same path
//!   from `l4_rx6` (the `frag6` module; atomic fragments are whole packets); other IPv6
//!   fragments are `ip6_fragment`, or `ip6_no_service` to one of our addresses.
//! * Time is `now`, monotonic nanoseconds, read once per poll by the caller.
//! * Live changes: each poll first picks up a newly published service table
//!   ([`LbEngine::refresh`]); when the table names its VIPs (`TableSettings::vips`),
//!   the worker's address book follows them (a service on a new VIP is answered without a
//!   restart; worker 0 announces new VIPs with gratuitous ARP). Control requests
//!   ([`crate::control`]) are answered after the poll's TX flush.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arrayvec::ArrayVec;
use ipnet::{Ipv4Net, Ipv6Net};
use rvs_drivers::{Burst, PacketBuf, PacketPool, PortQueue, RxOffload};

mod frag;
mod frag6;

pub use frag::{FRAG_MAX_HELD, FRAG_SWEEP_SLOTS, FRAG_TIMEOUT_NS, FRAG_TRAINS};

use crate::control::{ConnListing, ControlLink, WorkerRequest, REQUESTS_PER_POLL};
use crate::exception::{
    arp_to_kernel, classify_own, classify_own6, ExceptionPort, OwnAddress, KERNEL_POLL_INTERVAL_NS,
};
use crate::ha::{
    HaGroup, HaLink, HaRoles, FRAMES_PER_POLL, IPPROTO_VRRP, VRRP_GROUP_V4, VRRP_GROUP_V6, VRRP_MAC_V4, VRRP_MAC_V6,
};
use crate::idle::{IdlePolicy, Idler};
use crate::l2l3::arp::{self, ARP_FRAME_LEN};
use crate::l2l3::icmp;
use crate::l2l3::nd::{self, DuplicateAddress6, Ipv6Book, ND_FRAME_LEN};
use crate::l2l3::neigh::{NeighConfig, NeighSync, Resolve, TimerEvent};
use crate::l2l3::route::{RouteError, RouteTable6, StaticRoute, StaticRoute6};
use crate::l2l3::{
    is_martian_source, AddrKind, AddressBook, DuplicateAddress, NeighUpdate, NeighbourTable, OwnedAddr, RouteTable,
    Verdict,
};
use crate::lb::{LbEngine, LbEnv, LbEnv6};
use crate::mesh::MeshLinks;
use crate::punt::{ProbeLink, SendError, TX_PER_POLL};
use crate::stats::{DropReason, WorkerCounters};
use crate::sync::{SyncLink, SyncOptions, INSTALL_PER_POLL};
use crate::types::{PortId, VipConfig};
use crate::view::{L4View, L3_OFFSET};
use crate::view6::L4View6;
use crate::wire::icmpv6::{
    multicast_mac, solicited_node, Icmpv6Packet, NdRepr, ALL_NODES, ICMPV6_ECHO_REQUEST, ICMPV6_NEIGHBOR_ADVERT,
    ICMPV6_NEIGHBOR_SOLICIT,
};
use crate::wire::{
    EthernetFrame, IcmpPacket, Ipv4Packet, Ipv6Packet, MacAddr, UpperLayer, ETHERTYPE_ARP, ETHERTYPE_IPV4,
    ETHERTYPE_IPV6, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP,
};
use crate::xmit::icmp_err::is_error_type;

/// How often the neighbour timers run (ARP retries have a 1 s period, so 100 ms is
/// precise enough and keeps the table walk off most polls).
pub const TIMER_INTERVAL_NS: u64 = 100_000_000;

/// Delay between the two gratuitous ARP announcements of [`Worker::send_gratuitous_arp`]
/// (RFC 5227's `ANNOUNCE_INTERVAL`).
pub const GARP_REPEAT_NS: u64 = 2_000_000_000;

/// Largest neighbour table a worker accepts.
pub const MAX_NEIGHBOURS: usize = 1 << 20;

/// Largest IPv6 neighbour table a worker keeps: the configured neighbour capacity, but
/// at most this (IPv6 neighbours are the few hosts that ping or are pinged by rvs until
/// IPv6 services exist).
pub const MAX_NEIGHBOURS6: usize = 1 << 16;

/// Most ports a worker drives.
pub const MAX_PORTS: usize = 32;

/// Neighbour updates applied per poll at most (the rest wait for the next poll).
const SYNC_BATCH: usize = 32;

/// Redirected packets taken from the inboxes per poll at most.
const REDIRECT_BATCH: usize = 32;

/// What the IPv4 checks decided: a verdict, or a hand-over to the L4 engine.
enum Ipv4Next {
    Done(Verdict),
    /// TCP/UDP for a VIP, a local address, or (NAT replies) a client: the parsed view
    /// and what the destination is to us (`None`: not ours). Only with an L4 engine.
    L4(L4View, Option<AddrKind>),
    /// An ICMP error that may be about a flow.
    IcmpError,
}

/// One packet moved between workers through the redirect mesh.
#[derive(Debug)]
pub struct Redirected<B> {
    /// The port it arrived on.
    pub port: PortId,
    /// The packet.
    pub buf: B,
    /// For an IPv4 fragment released by its datagram's fragment owner: its flow's ports
    /// (the fragment path, [`frag`]); the receiver hands it to the L4 engine with them.
    /// `None` for any other packet, which the receiver classifies again.
    pub ports: Option<crate::frag::L4Ports>,
}

/// One port as the worker sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortConfig {
    /// The port's name (`[[port]] name`), for errors and logs.
    pub name: String,
    /// The port's MAC address (from the NIC).
    pub mac: MacAddr,
    /// The port's own address with its prefix, e.g. `10.10.0.1/24`; gives the connected
    /// route.
    pub address: Ipv4Net,
    /// Full-NAT local addresses answered (ARP, ICMP echo) on this port.
    pub local_addresses: Vec<Ipv4Addr>,
    /// IPv6 Full-NAT local addresses answered (neighbour discovery, ICMPv6 echo) on this
    /// port; TCP and UDP to them are Full-NAT replies (`LbEngine::handle_view6`). Needs
    /// `ipv6_addresses` on the port.
    pub local_addresses6: Vec<Ipv6Addr>,
    /// The port's IPv6 addresses with their on-link prefixes, e.g. `2001:db8:1::1/64`.
    /// A port with any also gets its link-local address, derived from `mac`
    /// ([`nd::link_local`]); a port with none takes no part in IPv6.
    pub ipv6_addresses: Vec<Ipv6Net>,
}

/// A configured neighbour that never expires (`ip neigh add ... nud permanent`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StaticNeighbour {
    /// Its address; must be on a port's prefix.
    pub ip: Ipv4Addr,
    /// Its MAC.
    pub mac: MacAddr,
}

/// Everything one worker needs to know, checked by [`WorkerConfig::validate`] (and by
/// [`Worker::new`]). Port `i` of `ports` is [`PortId`]`(i)`, and the worker's queue `i`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerConfig {
    /// This worker's index, `0..count`.
    pub index: usize,
    /// Number of workers.
    pub count: usize,
    /// The ports, in [`PortId`] order.
    pub ports: Vec<PortConfig>,
    /// VIPs answered for.
    pub vips: Vec<VipConfig>,
    /// Static routes (the default gateway is `0.0.0.0/0`).
    pub routes: Vec<StaticRoute>,
    /// Static IPv6 routes (the default gateway is `::/0`); each gateway on a port's
    /// `ipv6_addresses` prefix.
    pub routes6: Vec<StaticRoute6>,
    /// Static neighbours.
    pub static_neighbours: Vec<StaticNeighbour>,
    /// What to do when idle.
    pub idle: IdlePolicy,
    /// Neighbour table size and timeouts.
    pub neigh: NeighConfig,
}

impl Default for WorkerConfig {
    /// Worker 0 of 1 with no port (not valid until ports are added).
    fn default() -> Self {
        WorkerConfig {
            index: 0,
            count: 1,
            ports: Vec::new(),
            vips: Vec::new(),
            routes: Vec::new(),
            routes6: Vec::new(),
            static_neighbours: Vec::new(),
            idle: IdlePolicy::default(),
            neigh: NeighConfig::default(),
        }
    }
}

/// Why a worker configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// `index` not below `count`.
    #[error("worker index {index} is out of range for {count} workers")]
    BadIndex {
        /// The index.
        index: usize,
        /// The count.
        count: usize,
    },
    /// No port at all.
    #[error("no port configured")]
    NoPorts,
    /// More than [`MAX_PORTS`].
    #[error("{0} ports configured, at most {MAX_PORTS} are supported")]
    TooManyPorts(usize),
    /// Two ports with one name.
    #[error("port name {0:?} is used twice")]
    DuplicatePortName(String),
    /// A port MAC that is multicast or all-zero.
    #[error("port {port:?}: MAC {mac} is not a unicast address")]
    BadMac {
        /// Port name.
        port: String,
        /// The MAC.
        mac: MacAddr,
    },
    /// An address that cannot be a host's: unspecified, loopback, multicast, broadcast, or
    /// the network/broadcast address of the port's prefix.
    #[error("port {port:?}: {what} {addr} cannot be a host address")]
    BadAddress {
        /// Port name (or "vip").
        port: String,
        /// Which field: "address", "local address", "VIP".
        what: &'static str,
        /// The address.
        addr: Ipv4Addr,
    },
    /// An address configured twice.
    #[error(transparent)]
    DuplicateAddress(#[from] DuplicateAddress),
    /// An IPv6 address that cannot be a port's: unspecified, loopback, multicast,
    /// link-local (that one is derived from the MAC), IPv4-mapped, or with a /0 prefix.
    #[error("port {port:?}: IPv6 address {addr} cannot be a port address")]
    BadAddress6 {
        /// Port name.
        port: String,
        /// The address with its prefix.
        addr: Ipv6Net,
    },
    /// An IPv6 local address that cannot be one (see [`ConfigError::BadAddress6`]), or on
    /// a port without IPv6 addresses (which takes no part in IPv6).
    #[error("port {port:?}: IPv6 local address {addr} must be a unicast global address on a port with ipv6_addresses")]
    BadLocal6 {
        /// The port's name.
        port: String,
        /// The address.
        addr: Ipv6Addr,
    },
    /// An IPv6 address configured twice.
    #[error(transparent)]
    DuplicateAddress6(#[from] DuplicateAddress6),
    /// A VIP bound to a port that does not exist.
    #[error("VIP {addr}: port index {port} does not exist ({ports} ports)")]
    VipPort {
        /// The VIP.
        addr: Ipv4Addr,
        /// The port index given.
        port: u16,
        /// Number of ports.
        ports: usize,
    },
    /// A bad route.
    #[error(transparent)]
    Route(#[from] RouteError),
    /// A bad IPv6 route.
    #[error(transparent)]
    Route6(#[from] RouteError<Ipv6Net>),
    /// A static neighbour on no port's prefix.
    #[error("static neighbour {0}: not on any port's prefix")]
    NeighbourNotConnected(Ipv4Addr),
    /// A static neighbour with a non-unicast MAC.
    #[error("static neighbour {ip}: MAC {mac} is not a unicast address")]
    NeighbourBadMac {
        /// The neighbour.
        ip: Ipv4Addr,
        /// Its MAC.
        mac: MacAddr,
    },
    /// The neighbour table cannot hold the static neighbours (plus room to learn).
    #[error(
        "neighbour capacity {capacity} must exceed the {statics} static neighbours and be at most {MAX_NEIGHBOURS}"
    )]
    NeighbourCapacity {
        /// Configured capacity.
        capacity: usize,
        /// Static neighbours.
        statics: usize,
    },
    /// [`Worker::new`] got a different number of queues than ports.
    #[error("{queues} queues given for {ports} ports")]
    QueueCount {
        /// Queues given.
        queues: usize,
        /// Ports configured.
        ports: usize,
    },
    /// [`Worker::new`] got neighbour-sync links for the wrong number of peers.
    #[error("neighbour sync has {got} peers, {expected} expected (workers - 1; see NeighSync::mesh)")]
    SyncPeers {
        /// Peers wired.
        got: usize,
        /// Peers expected.
        expected: usize,
    },
}

/// Whether `net` can be a port's configured IPv6 address (see [`ConfigError::BadAddress6`]).
fn is_port_address6(net: Ipv6Net) -> bool {
    let a = net.addr();
    !(a.is_unspecified()
        || a.is_loopback()
        || a.is_multicast()
        || nd::is_link_local(a)
        || a.to_ipv4_mapped().is_some()
        || net.prefix_len() == 0)
}

/// Where a prober's IPv4 `packet` goes: from one of the ports' addresses, by the routes.
fn probe_route4(packet: &[u8], routes: &RouteTable, port_addrs: &[Ipv4Addr]) -> Result<Verdict, DropReason> {
    let Ok(ip) = Ipv4Packet::new_checked(packet) else {
        return Err(DropReason::ProbeBadPacket);
    };
    if !port_addrs.contains(&ip.src_addr()) {
        return Err(DropReason::ProbeBadPacket);
    }
    let dst = ip.dst_addr();
    let Some(hop) = routes.lookup(dst) else { return Err(DropReason::NoRoute) };
    Ok(Verdict::Route { port: hop.port, next_hop: hop.neighbour(dst) })
}

/// Where a prober's IPv6 `packet` goes: from one of the ports' own IPv6 addresses (not a
/// Full-NAT local address), by the IPv6 routes; to a link-local destination out of the
/// source address's port.
fn probe_route6(packet: &[u8], routes: &RouteTable6, addrs6: &Ipv6Book) -> Result<Verdict, DropReason> {
    let Ok(ip) = Ipv6Packet::new_checked(packet) else {
        return Err(DropReason::ProbeBadPacket);
    };
    let Some(src) = addrs6.iter().find(|o| o.net.addr() == ip.src_addr() && !o.local) else {
        return Err(DropReason::ProbeBadPacket);
    };
    match nd::route_verdict(routes, ip.dst_addr(), src.port) {
        Verdict::Drop(reason) => Err(reason),
        v => Ok(v),
    }
}

fn is_host_address(a: Ipv4Addr) -> bool {
    !(a.is_unspecified() || a.is_loopback() || a.is_multicast() || a.is_broadcast() || a.octets()[0] == 0)
}

impl WorkerConfig {
    /// Checks the configuration without building a worker (for the control plane's
    /// dry runs).
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.build().map(|_| ())
    }

    /// Validates and builds the address book, route table, IPv6 address book and IPv6
    /// route table.
    fn build(&self) -> Result<(AddressBook, RouteTable, Ipv6Book, RouteTable6), ConfigError> {
        if self.index >= self.count {
            return Err(ConfigError::BadIndex { index: self.index, count: self.count });
        }
        if self.ports.is_empty() {
            return Err(ConfigError::NoPorts);
        }
        if self.ports.len() > MAX_PORTS {
            return Err(ConfigError::TooManyPorts(self.ports.len()));
        }
        let mut book = AddressBook::new();
        let mut book6 = Ipv6Book::new();
        for (i, p) in self.ports.iter().enumerate() {
            let id = PortId(i as u16); // i < MAX_PORTS
            if self.ports[..i].iter().any(|q| q.name == p.name) {
                return Err(ConfigError::DuplicatePortName(p.name.clone()));
            }
            if p.mac.is_multicast() || p.mac.is_zero() {
                return Err(ConfigError::BadMac { port: p.name.clone(), mac: p.mac });
            }
            let a = p.address.addr();
            let edge = p.address.prefix_len() <= 30 && (a == p.address.network() || a == p.address.broadcast());
            if !is_host_address(a) || edge {
                return Err(ConfigError::BadAddress { port: p.name.clone(), what: "address", addr: a });
            }
            book.insert(a, OwnedAddr::new(AddrKind::Port, Some(id)))?;
            for &l in &p.local_addresses {
                if !is_host_address(l) {
                    return Err(ConfigError::BadAddress { port: p.name.clone(), what: "local address", addr: l });
                }
                book.insert(l, OwnedAddr::new(AddrKind::Local, Some(id)))?;
            }
            for &net in &p.ipv6_addresses {
                if !is_port_address6(net) {
                    return Err(ConfigError::BadAddress6 { port: p.name.clone(), addr: net });
                }
                book6.insert(net, id, false)?;
            }
            for &l in &p.local_addresses6 {
                if p.ipv6_addresses.is_empty() || !is_port_address6(Ipv6Net::from(l)) {
                    return Err(ConfigError::BadLocal6 { port: p.name.clone(), addr: l });
                }
                book6.insert_local(l, id)?;
            }
            if !p.ipv6_addresses.is_empty() {
                // fe80::/64 is the link-local prefix (RFC 4291 §2.5.6); 64 is in range.
                let ll = Ipv6Net::new(nd::link_local(p.mac), 64).unwrap_or_default();
                book6.insert(ll, id, true)?;
            }
        }
        for v in &self.vips {
            if !is_host_address(v.address) {
                return Err(ConfigError::BadAddress { port: "vip".into(), what: "VIP", addr: v.address });
            }
            if let Some(p) = v.port.filter(|p| p.index() >= self.ports.len()) {
                return Err(ConfigError::VipPort { addr: v.address, port: p.0, ports: self.ports.len() });
            }
            book.insert(v.address, OwnedAddr::new(AddrKind::Vip, v.port))?;
        }
        let connected: ArrayVec<(PortId, Ipv4Net), MAX_PORTS> =
            self.ports.iter().enumerate().map(|(i, p)| (PortId(i as u16), p.address)).collect();
        let routes = RouteTable::new(&connected, &self.routes)?;
        // One connected route per prefix: a port may hold several addresses of one prefix.
        let mut connected6: Vec<(PortId, Ipv6Net)> = Vec::new();
        for (i, p) in self.ports.iter().enumerate() {
            let port = PortId(i as u16);
            for &net in &p.ipv6_addresses {
                if !connected6.iter().any(|&(q, n)| q == port && n.trunc() == net.trunc()) {
                    connected6.push((port, net));
                }
            }
        }
        let routes6 = RouteTable6::new(&connected6, &self.routes6)?;
        for n in &self.static_neighbours {
            if n.mac.is_multicast() || n.mac.is_zero() {
                return Err(ConfigError::NeighbourBadMac { ip: n.ip, mac: n.mac });
            }
            if routes.lookup(n.ip).is_none_or(|h| h.via.is_some()) {
                return Err(ConfigError::NeighbourNotConnected(n.ip));
            }
        }
        if self.neigh.capacity <= self.static_neighbours.len() || self.neigh.capacity > MAX_NEIGHBOURS {
            return Err(ConfigError::NeighbourCapacity {
                capacity: self.neigh.capacity,
                statics: self.static_neighbours.len(),
            });
        }
        Ok((book, routes, book6, routes6))
    }
}

/// One port's queue and TX buffer.
struct PortState<Q: PortQueue> {
    mac: MacAddr,
    addr: Ipv4Addr,
    queue: Q,
    tx: Burst<Q::Buf>,
}

/// The transmit side: ports, pool and counters, kept apart from the lookup tables so the
/// neighbour timers can send while the table is borrowed.
struct TxSide<Q: PortQueue, P> {
    ports: Vec<PortState<Q>>,
    pool: P,
    counters: Arc<WorkerCounters>,
}

impl<Q: PortQueue, P: PacketPool<Buf = Q::Buf>> TxSide<Q, P> {
    /// Buffers `buf` for `port`, flushing the buffer first when full.
    #[inline]
    fn enqueue(&mut self, port: PortId, buf: Q::Buf) {
        let Some(ps) = self.ports.get_mut(port.index()) else {
            self.counters.drop_packet(DropReason::NoRoute);
            return;
        };
        if ps.tx.is_full() {
            Self::flush_port(ps, &self.counters);
        }
        ps.tx.push(buf);
    }

    /// Sets the Ethernet addresses of an IPv4 frame for `port` and buffers it.
    #[inline]
    fn enqueue_to(&mut self, port: PortId, dst: MacAddr, mut buf: Q::Buf) {
        if let Some(ps) = self.ports.get(port.index()) {
            if let Ok(mut eth) = EthernetFrame::new_checked(buf.data_mut()) {
                eth.set_src(ps.mac);
                eth.set_dst(dst);
            }
        }
        self.enqueue(port, buf);
    }

    fn flush_port(ps: &mut PortState<Q>, counters: &WorkerCounters) {
        if ps.tx.is_empty() {
            return;
        }
        let bytes: usize = ps.tx.iter().map(PacketBuf::len).sum();
        let sent = ps.queue.tx_burst(&mut ps.tx);
        let left: usize = ps.tx.iter().map(PacketBuf::len).sum();
        counters.tx_packets.add(sent as u64);
        counters.tx_bytes.add((bytes - left) as u64);
        if !ps.tx.is_empty() {
            counters.drop_packets(DropReason::TxFull, ps.tx.len() as u64);
            ps.tx.clear();
        }
    }

    fn flush_all(&mut self) {
        for ps in &mut self.ports {
            Self::flush_port(ps, &self.counters);
        }
    }

    /// Builds and buffers an ARP frame on `port`; `write` fills it. Counts `no_mbuf` when
    /// the pool is empty. Returns whether a frame was buffered.
    fn originate_arp(&mut self, port: PortId, write: impl FnOnce(&mut [u8], MacAddr, Ipv4Addr) -> bool) -> bool {
        self.counters.local_originated.inc();
        let Some((mac, addr)) = self.ports.get(port.index()).map(|p| (p.mac, p.addr)) else {
            self.counters.drop_packet(DropReason::NoRoute);
            return false;
        };
        let Some(mut b) = self.pool.alloc() else {
            self.counters.drop_packet(DropReason::NoMbuf);
            return false;
        };
        // A buffer without room for 60 bytes is as useless as no buffer.
        if !b.set_len(ARP_FRAME_LEN) || !write(b.data_mut(), mac, addr) {
            self.counters.drop_packet(DropReason::NoMbuf);
            return false;
        }
        self.enqueue(port, b);
        true
    }

    /// Builds and buffers a frame of `len` bytes on `port`; `write` fills it from the
    /// port's MAC. Counts `local_originated`, and `no_mbuf` when the pool is empty.
    /// Returns whether a frame was buffered.
    fn originate_frame(&mut self, port: PortId, len: usize, write: impl FnOnce(&mut [u8], MacAddr) -> bool) -> bool {
        self.counters.local_originated.inc();
        let Some(mac) = self.ports.get(port.index()).map(|p| p.mac) else {
            self.counters.drop_packet(DropReason::NoRoute);
            return false;
        };
        let Some(mut b) = self.pool.alloc() else {
            self.counters.drop_packet(DropReason::NoMbuf);
            return false;
        };
        if !b.set_len(len) || !write(b.data_mut(), mac) {
            self.counters.drop_packet(DropReason::NoMbuf);
            return false;
        }
        self.enqueue(port, b);
        true
    }

    /// Sends a neighbour solicitation for `target` on `port` from `src` (the port's
    /// address on `target`'s link; `None`, which a port with IPv6 addresses never gives,
    /// counts `no_route`).
    fn send_ns(&mut self, port: PortId, src: Option<Ipv6Addr>, target: Ipv6Addr) {
        let Some(src) = src else {
            self.counters.local_originated.inc();
            self.counters.drop_packet(DropReason::NoRoute);
            return;
        };
        if self.originate_frame(port, ND_FRAME_LEN, |f, mac| nd::write_ns_frame(f, mac, src, target)) {
            self.counters.nd_solicitations_sent.inc();
        }
    }

    /// Broadcasts "who has `target`?" on `port`, from the port's address.
    fn send_arp_request(&mut self, port: PortId, target: Ipv4Addr) {
        if self.originate_arp(port, |f, mac, addr| arp::write_request(f, mac, addr, target)) {
            self.counters.arp_requests_sent.inc();
        }
    }
}

/// The MAC of the last next hop a [`Verdict::Route`] was resolved to, valid while the
/// neighbour table is at `generation` (which moves whenever an entry is created,
/// removed or changes its MAC, and is never 0: the zeroed memo matches nothing). Most
/// routed packets (NAT and Full-NAT replies, all through the clients' gateway) go to one
/// next hop, so the neighbour hash lookup is skipped for all but the first of them.
/// The IPv6 memo ([`Verdict::Route6`], the IPv6 neighbour table's generation) is the
/// same type over `Ipv6Addr`.
#[derive(Debug, Clone, Copy)]
struct LastHop<A = Ipv4Addr> {
    ip: A,
    port: PortId,
    generation: u32,
    mac: MacAddr,
}

impl LastHop {
    /// Matches no packet (generation 0).
    const NONE: LastHop = LastHop { ip: Ipv4Addr::UNSPECIFIED, port: PortId(0), generation: 0, mac: MacAddr([0; 6]) };
}

impl LastHop<Ipv6Addr> {
    /// Matches no packet (generation 0).
    const NONE6: LastHop<Ipv6Addr> =
        LastHop { ip: Ipv6Addr::UNSPECIFIED, port: PortId(0), generation: 0, mac: MacAddr([0; 6]) };

    /// Whether the memo holds `next_hop` on `port` at neighbour-table generation
    /// `generation`. The address is compared as one `u128`.
    #[inline(always)]
    fn matches(&self, next_hop: Ipv6Addr, port: PortId, generation: u32) -> bool {
        self.generation == generation && self.ip.to_bits() == next_hop.to_bits() && self.port == port
    }
}

/// One worker: its queues, tables and loop. See the module docs.
pub struct Worker<Q: PortQueue, P: PacketPool<Buf = Q::Buf>> {
    index: usize,
    tx: TxSide<Q, P>,
    addrs: AddressBook,
    routes: RouteTable,
    neigh: NeighbourTable<Q::Buf>,
    /// The last IPv4 next hop [`Verdict::Route`] resolved, while `neigh` is at its
    /// generation ([`LastHop`]).
    last_hop: LastHop,
    /// Our IPv6 addresses ([`nd`]).
    addrs6: Ipv6Book,
    /// The IPv6 routes: connected (the ports' `ipv6_addresses` prefixes) and static.
    routes6: RouteTable6,
    /// The IPv6 neighbours (neighbour discovery), same code as `neigh`.
    neigh6: NeighbourTable<Q::Buf, Ipv6Addr>,
    /// The last IPv6 next hop [`Verdict::Route6`] resolved, while `neigh6` is at its
    /// generation ([`LastHop`]): NAT66 and Full-NAT66 replies, all through the clients'
    /// gateway, skip the neighbour lookup.
    last_hop6: LastHop<Ipv6Addr>,
    sync: NeighSync,
    idler: Idler,
    next_timers: u64,
    garp_repeat_at: Option<u64>,
    lb: Option<LbEngine>,
    redirect: MeshLinks<Redirected<Q::Buf>>,
    port_addrs: Vec<Ipv4Addr>,
    /// Port and local addresses: the address book without VIPs.
    base_addrs: AddressBook,
    /// The VIPs in the address book now.
    vips: Vec<VipConfig>,
    control: Option<ControlLink>,
    probe: Option<ProbeLink>,
    /// The VRRP rings ([`Worker::with_ha`]).
    ha: Option<HaLink>,
    /// The VRRP roles; `None` without `[ha]` (every address answered).
    roles: Option<Arc<HaRoles>>,
    /// Floating addresses of the VRRP instances and the port each is answered on.
    floating: Vec<(Ipv4Addr, PortId)>,
    /// The IPv6 addresses of the VRRP roles (IPv6 VIPs, Full-NAT local and floating
    /// addresses) with their group, looked up when an IPv6 packet or neighbour message is
    /// for one of them (a handful: a scan).
    ha6: Vec<(Ipv6Addr, HaGroup)>,
    /// The IPv6 floating addresses of the VRRP roles (neither a port's IPv6 address nor a
    /// Full-NAT local one, inside a port's IPv6 prefix) and the port each is answered on.
    floating6: Vec<(Ipv6Addr, PortId)>,
    /// The IPv6 VIPs worker 0 last announced, so that one added live is announced.
    vips6_announced: Vec<Ipv6Addr>,
    /// The connection sync link while the worker has no L4 engine to hand it to
    /// ([`Worker::with_sync`]).
    conn_sync: Option<(SyncLink, SyncOptions)>,
    /// Per port (by [`PortId`]), its exception path if on ([`Worker::with_exception`]);
    /// empty without any.
    exception: Vec<Option<ExceptionPort<Q>>>,
    /// When the kernel interfaces are read next (ns).
    next_kernel_poll: u64,
    /// IPv4 fragment trains and the fragments held for them ([`frag`]).
    frags: crate::frag::FragTable<(PortId, Q::Buf)>,
    /// The last outer identification given to an IPIP packet cut into fragments.
    tunnel_ident: u16,
}

impl<Q: PortQueue, P: PacketPool<Buf = Q::Buf>> std::fmt::Debug for Worker<Q, P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("index", &self.index)
            .field("ports", &self.tx.ports.len())
            .field("addresses", &self.addrs.len())
            .field("routes", &self.routes.len())
            .field("neighbours", &self.neigh.len())
            .field("idle", &self.idler.policy())
            .finish_non_exhaustive()
    }
}

impl<Q: PortQueue, P: PacketPool<Buf = Q::Buf>> Worker<Q, P> {
    /// Builds a worker from a validated `config`, its queues (`queues[i]` is this worker's
    /// queue pair on port `i`), its pool and its ends of the neighbour-sync mesh
    /// ([`NeighSync::mesh`]`(count, ..)[index]`, or [`NeighSync::none`] for one worker).
    /// All memory the worker will use is allocated here.
    pub fn new(config: &WorkerConfig, queues: Vec<Q>, pool: P, sync: NeighSync) -> Result<Self, ConfigError> {
        let (addrs, routes, addrs6, routes6) = config.build()?;
        if queues.len() != config.ports.len() {
            return Err(ConfigError::QueueCount { queues: queues.len(), ports: config.ports.len() });
        }
        if sync.peers() != config.count - 1 {
            return Err(ConfigError::SyncPeers { got: sync.peers(), expected: config.count - 1 });
        }
        let mut neigh = NeighbourTable::new(config.neigh);
        for n in &config.static_neighbours {
            let port = routes.lookup(n.ip).map(|h| h.port).ok_or(ConfigError::NeighbourNotConnected(n.ip))?;
            neigh.add_static(n.ip, n.mac, port).map_err(|_| ConfigError::NeighbourCapacity {
                capacity: config.neigh.capacity,
                statics: config.static_neighbours.len(),
            })?;
        }
        let port_addrs = config.ports.iter().map(|p| p.address.addr()).collect();
        let mut base_addrs = AddressBook::new();
        for (ip, owned) in addrs.iter().filter(|(_, o)| o.kind != AddrKind::Vip) {
            base_addrs.insert(ip, owned)?;
        }
        let ports = config
            .ports
            .iter()
            .zip(queues)
            .map(|(p, queue)| PortState { mac: p.mac, addr: p.address.addr(), queue, tx: Burst::new() })
            .collect();
        Ok(Worker {
            index: config.index,
            tx: TxSide { ports, pool, counters: Arc::new(WorkerCounters::new()) },
            addrs,
            routes,
            neigh,
            last_hop: LastHop::NONE,
            last_hop6: LastHop::NONE6,
            addrs6,
            routes6,
            neigh6: NeighbourTable::new(NeighConfig {
                capacity: config.neigh.capacity.min(MAX_NEIGHBOURS6),
                ..config.neigh
            }),
            sync,
            idler: Idler::new(config.idle),
            next_timers: 0,
            garp_repeat_at: None,
            lb: None,
            redirect: MeshLinks::none(),
            port_addrs,
            base_addrs,
            vips: config.vips.clone(),
            control: None,
            probe: None,
            ha: None,
            roles: None,
            floating: Vec::new(),
            ha6: Vec::new(),
            floating6: Vec::new(),
            vips6_announced: Vec::new(),
            conn_sync: None,
            exception: Vec::new(),
            next_kernel_poll: 0,
            frags: frag::empty_table(),
            // Each worker starts its own stretch of the 16-bit space (see `frag`).
            tunnel_ident: ((config.index as u64 * 65536) / config.count.max(1) as u64) as u16,
        })
    }

    /// Gives the worker its L4 load-balancing engine and its ends of the redirect mesh
    /// ([`MeshLinks::mesh`]`(count, ..)[index]`; [`MeshLinks::none`] for one
    /// worker). Without an engine, TCP/UDP to our addresses is dropped as `l4_no_service`.
    pub fn with_lb(mut self, mut lb: LbEngine, redirect: MeshLinks<Redirected<Q::Buf>>) -> Self {
        if let Some((link, options)) = self.conn_sync.take() {
            lb.set_sync(link, options);
        }
        lb.set_ipv6_addresses(self.addrs6.clone());
        lb.set_nat64_routes(crate::lb::Nat64Routes { v4: self.routes.clone(), v6: self.routes6.clone() });
        self.lb = Some(lb);
        self.redirect = redirect;
        self.frags = frag::table();
        self
    }

    /// Gives the worker its end of the connection sync rings ([`crate::sync::sync_links`]);
    /// call once, in any order with the other `with_` builders. From then on (see
    /// [`crate::sync`]) the worker queues a record of each connection it creates and of
    /// each state change (`sync_tx`; a full ring is `sync_lost`, never a wait), re-sends
    /// every connection once per `options.refresh`, dumps its whole table when the
    /// control plane asks, and installs the peer's records (`sync_installed`,
    /// `sync_updated`, `sync_refused_*`), whatever its VRRP role. Without it none of this
    /// happens: a TCP/UDP packet costs one test that there is no link, a poll one more. A
    /// worker without an L4 engine refuses every record (`sync_refused_no_service`) and
    /// finishes every dump at once.
    pub fn with_sync(mut self, link: SyncLink, options: SyncOptions) -> Self {
        match self.lb.as_mut() {
            Some(lb) => lb.set_sync(link, options),
            None => self.conn_sync = Some((link, options)),
        }
        self
    }

    /// Gives the worker the receiving end of its control request queue
    /// ([`crate::control::control_link`]).
    pub fn with_control(mut self, link: ControlLink) -> Self {
        self.control = Some(link);
        self
    }

    /// Gives the worker its end of the health prober's punt rings
    /// ([`crate::punt::probe_links`]).
    pub fn with_probe(mut self, link: ProbeLink) -> Self {
        self.probe = Some(link);
        self
    }

    /// Gives the worker its end of the VRRP rings ([`crate::ha::ha_links`]) and the roles
    /// the control plane's VRRP thread sets. Call once, after [`Worker::new`], in any order
    /// with the other `with_` builders, and before [`Worker::send_gratuitous_arp`]. From
    /// then on:
    /// * every address of the book (port and local addresses, VIPs, also VIPs a service
    ///   table adds later) takes its group from [`HaRoles::group_of`]; while this node is
    ///   backup for that group the worker answers neither ARP nor ICMP echo for it, sends
    ///   no gratuitous ARP for it and forwards none of its traffic: each such packet is
    ///   dropped as `ha_backup`. Addresses in no group are answered as without roles;
    /// * every IPv4 address of `roles` that is none of those and lies in a port's connected
    ///   subnet (the NAT gateway on the back network, say) is a *floating* address
    ///   ([`AddrKind::Floating`]) on that port: answered for ARP and ICMP echo while master
    ///   only. An address of `roles` on no port's subnet and not a VIP is ignored (there is
    ///   no port to answer it on);
    /// * likewise every IPv6 address of `roles` that is neither a port's IPv6 address nor an
    ///   IPv6 Full-NAT local address and lies in a port's IPv6 prefix (a NAT66 gateway):
    ///   neighbour solicitations for it on that port and ICMPv6 echo to it are answered
    ///   while master only (an IPv6 VIP of the service table is a VIP, not floating);
    ///   likewise a virtual link-local address of `roles`, on the port
    ///   [`HaRoles::link_local_port`] names;
    /// * VRRP adverts (protocol 112 to 224.0.0.18, Ethernet 01:00:5e:00:00:12, or next
    ///   header 112 to ff02::12, Ethernet 33:33:00:00:00:12) are copied to the control
    ///   plane, tagged with their port (`ha_rx`);
    /// * worker 0 sends the control plane's frames ([`crate::ha::HaEnd::send_frame`])
    ///   unchanged (`ha_tx`).
    pub fn with_ha(mut self, link: HaLink, roles: Arc<HaRoles>) -> Self {
        let mut floating: Vec<(Ipv4Addr, PortId)> = roles
            .addresses()
            .filter_map(|(ip, _)| match ip {
                IpAddr::V4(ip) => Some(ip),
                IpAddr::V6(_) => None,
            })
            .filter(|&ip| is_host_address(ip) && !self.base_addrs.is_ours(ip))
            .filter_map(|ip| self.routes.lookup(ip).filter(|h| h.via.is_none()).map(|h| (ip, h.port)))
            .collect();
        floating.sort_unstable();
        self.floating = floating;
        self.ha6 = roles
            .addresses()
            .filter_map(|(ip, g)| match ip {
                IpAddr::V6(ip) => Some((ip, g)),
                IpAddr::V4(_) => None,
            })
            .collect();
        let book6 = &self.addrs6;
        // A virtual link-local address is floating on the port its roles name.
        let mut floating6: Vec<(Ipv6Addr, PortId)> = self
            .ha6
            .iter()
            .map(|&(ip, _)| ip)
            .filter(|&ip| !book6.is_ours(ip))
            .filter_map(|ip| match roles.link_local_port(ip) {
                Some(port) => Some((ip, port)).filter(|_| port.index() < self.tx.ports.len()),
                None if nd::is_link_local(ip) => None,
                None => book6.iter().find(|o| !o.link_local && !o.local && o.net.contains(&ip)).map(|o| (ip, o.port)),
            })
            .collect();
        floating6.sort_unstable();
        self.floating6 = floating6;
        self.ha = Some(link);
        self.roles = Some(roles);
        self.addrs = self.build_book(&self.vips);
        self
    }

    /// The address book for `vips`: port and local addresses, then the VIPs (skipping
    /// those that clash with a port or local address, or name a port that does not
    /// exist: the control plane's validation refuses such configurations), then the
    /// floating addresses that are none of these; each with its VRRP group.
    fn build_book(&self, vips: &[VipConfig]) -> AddressBook {
        let group = |ip: Ipv4Addr| -> Option<HaGroup> { self.roles.as_ref()?.group_of(IpAddr::V4(ip)) };
        let mut book = AddressBook::new();
        for (ip, owned) in self.base_addrs.iter() {
            let _ = book.insert(ip, OwnedAddr { group: group(ip), ..owned });
        }
        for v in vips {
            if is_host_address(v.address) && v.port.is_none_or(|p| p.index() < self.tx.ports.len()) {
                let _ = book
                    .insert(v.address, OwnedAddr { group: group(v.address), ..OwnedAddr::new(AddrKind::Vip, v.port) });
            }
        }
        for &(ip, port) in &self.floating {
            if !book.is_ours(ip) {
                let _ =
                    book.insert(ip, OwnedAddr { group: group(ip), ..OwnedAddr::new(AddrKind::Floating, Some(port)) });
            }
        }
        book
    }

    /// Gives the worker its side of the ports' kernel exception paths
    /// ([`crate::exception`]): `ports[i]` is port `i`'s, `None` for a port without one
    /// (missing elements count as `None`, extra ones are ignored). From then on IPv4 to
    /// such a port's own address that the lite stack does not answer, and ARP replies to
    /// it, go to the kernel interface (`exception_to_kernel`), and what the kernel
    /// interface sends leaves by the port (`exception_from_kernel`), both rate limited.
    pub fn with_exception(mut self, ports: Vec<Option<ExceptionPort<Q>>>) -> Self {
        let mut ports = ports;
        ports.truncate(self.tx.ports.len());
        if ports.iter().all(Option::is_none) {
            ports.clear();
        }
        self.exception = ports;
        self
    }

    /// The exception path of `port`, if it has one (tests inject and collect the kernel
    /// interface's frames through its queue).
    pub fn exception_mut(&mut self, port: PortId) -> Option<&mut ExceptionPort<Q>> {
        self.exception.get_mut(port.index())?.as_mut()
    }

    /// Whether `port` has an exception path.
    #[inline]
    fn has_exception(&self, port: PortId) -> bool {
        self.exception.get(port.index()).is_some_and(Option::is_some)
    }

    /// Hands a frame to `port`'s kernel interface, within its rate limit. Kept out of line
    /// (as the other exception-path functions) so that the forwarding path's code, and the
    /// compiler's inlining of it, stay as they were without the path.
    #[cold]
    #[inline(never)]
    fn send_to_kernel(&mut self, port: PortId, buf: Q::Buf, now: u64) {
        let Some(ep) = self.exception.get_mut(port.index()).and_then(Option::as_mut) else {
            self.tx.counters.drop_packet(DropReason::L4NoService);
            return;
        };
        if !ep.to_kernel.take(now) {
            ep.counters.rate_limited.inc();
            self.tx.counters.drop_packet(DropReason::ExceptionRateLimited);
            return;
        }
        if ep.tx.is_full() {
            Self::flush_kernel(ep, &self.tx.counters);
        }
        ep.counters.to_kernel.inc();
        self.tx.counters.exception_to_kernel.inc();
        ep.tx.push(buf);
    }

    /// The kernel interfaces' I/O of one poll, after every received and redirected frame
    /// was classified: sends what was buffered for them, then (at most every
    /// [`KERNEL_POLL_INTERVAL_NS`]) reads what they sent. One call from the poll loop, out
    /// of line, so that the loop's code stays as it is without the path. Returns the
    /// frames read.
    #[inline(never)]
    fn kernel_io(&mut self, now: u64) -> usize {
        for ep in self.exception.iter_mut().flatten() {
            Self::flush_kernel(ep, &self.tx.counters);
        }
        self.poll_kernel(now)
    }

    /// Sends the frames buffered for one kernel interface.
    fn flush_kernel(ep: &mut ExceptionPort<Q>, counters: &WorkerCounters) {
        if ep.tx.is_empty() {
            return;
        }
        let bytes: usize = ep.tx.iter().map(PacketBuf::len).sum();
        let sent = ep.queue.tx_burst(&mut ep.tx);
        let left: usize = ep.tx.iter().map(PacketBuf::len).sum();
        counters.tx_packets.add(sent as u64);
        counters.tx_bytes.add((bytes - left) as u64);
        if !ep.tx.is_empty() {
            ep.counters.ring_full.add(ep.tx.len() as u64);
            counters.drop_packets(DropReason::ExceptionRingFull, ep.tx.len() as u64);
            ep.tx.clear();
        }
    }

    /// Reads one burst from every kernel interface (at most every
    /// [`KERNEL_POLL_INTERVAL_NS`]) and queues what the kernel sent out of its port,
    /// within the rate limit. Returns the frames read.
    fn poll_kernel(&mut self, now: u64) -> usize {
        if now < self.next_kernel_poll {
            return 0;
        }
        self.next_kernel_poll = now.saturating_add(KERNEL_POLL_INTERVAL_NS);
        let mut received = 0;
        for p in 0..self.exception.len() {
            let Some(ep) = self.exception[p].as_mut() else { continue };
            let mut burst: Burst<Q::Buf> = Burst::new();
            let n = ep.queue.rx_burst(&mut burst);
            if n == 0 {
                continue;
            }
            received += n;
            self.tx.counters.rx_packets.add(n as u64);
            self.tx.counters.rx_bytes.add(burst.iter().map(|b| b.len() as u64).sum());
            for buf in burst {
                if !ep.from_kernel.take(now) {
                    ep.counters.out_rate_limited.inc();
                    self.tx.counters.drop_packet(DropReason::ExceptionOutRateLimited);
                    continue;
                }
                let from_port = EthernetFrame::new_checked(buf.data()).is_ok_and(|e| e.src() == ep.mac);
                if !from_port {
                    ep.counters.bad_frame.inc();
                    self.tx.counters.drop_packet(DropReason::ExceptionBadFrame);
                    continue;
                }
                ep.counters.from_kernel.inc();
                self.tx.counters.exception_from_kernel.inc();
                self.tx.enqueue(PortId(p as u16), buf);
            }
        }
        received
    }

    /// An ARP frame the lite stack consumed: the kernel resolves its own peers, so it gets
    /// the replies to the port's address too, once the lite stack learned from them
    /// ([`crate::exception`]).
    #[inline(never)]
    fn arp_verdict(&self, port: PortId, frame: &[u8]) -> Verdict {
        let addr = self.port_addrs.get(port.index()).copied();
        if self.has_exception(port) && addr.is_some_and(|a| arp_to_kernel(frame, a)) {
            Verdict::Kernel(port)
        } else {
            Verdict::Consumed
        }
    }

    /// A packet to the own address of `port`: [`Verdict::Kernel`] if the port has an
    /// exception path and the lite stack does not answer the packet
    /// ([`crate::exception::classify_own`]).
    #[inline(never)]
    fn own_to_kernel(&self, port: Option<PortId>, protocol: u8, payload: &[u8]) -> Option<Verdict> {
        let port = port.filter(|&p| self.has_exception(p))?;
        (classify_own(protocol, payload) == OwnAddress::Kernel).then_some(Verdict::Kernel(port))
    }

    /// An IPv6 packet (`packet`, from its IPv6 header; `upper` its walk) to an own address
    /// of port `own`: punted to the prober if it answers a health probe
    /// ([`crate::punt::ProbeMatch::matches6`]), [`Verdict::Kernel`] if `own` has an
    /// exception path and the lite stack does not answer it
    /// ([`crate::exception::classify_own6`]), else `None` (the lite stack's).
    #[inline(never)]
    fn own6_verdict(&mut self, own: PortId, upper: &UpperLayer, packet: &[u8]) -> Option<Verdict> {
        let payload = packet.get(Ipv6Packet::<&[u8]>::HEADER_LEN + upper.offset..).unwrap_or_default();
        if let Some(link) =
            self.probe.as_ref().filter(|l| upper.frag.is_none() && l.matcher().matches6(upper.protocol, payload))
        {
            return Some(match link.punt(packet) {
                Ok(()) => {
                    self.tx.counters.probe_rx.inc();
                    Verdict::Consumed
                }
                Err(SendError::Full) => Verdict::Drop(DropReason::ProbeRingFull),
                Err(SendError::TooLong) => Verdict::Drop(DropReason::ProbeTooLong),
            });
        }
        let to_kernel = self.has_exception(own)
            && classify_own6(upper.protocol, payload, upper.frag.is_some()) == OwnAddress::Kernel;
        to_kernel.then_some(Verdict::Kernel(own))
    }

    /// The VRRP roles given to [`Worker::with_ha`], if any.
    pub fn ha_roles(&self) -> Option<&Arc<HaRoles>> {
        self.roles.as_ref()
    }

    /// The L4 engine, if any.
    pub fn lb(&self) -> Option<&LbEngine> {
        self.lb.as_ref()
    }

    /// This worker's index.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The counters; clone the `Arc` to read them from another thread.
    pub fn counters(&self) -> &Arc<WorkerCounters> {
        &self.tx.counters
    }

    /// The neighbour table.
    pub fn neighbours(&self) -> &NeighbourTable<Q::Buf> {
        &self.neigh
    }

    /// The IPv6 neighbour table (neighbour discovery).
    pub fn neighbours6(&self) -> &NeighbourTable<Q::Buf, Ipv6Addr> {
        &self.neigh6
    }

    /// Our IPv6 addresses (configured and link-local).
    pub fn addresses6(&self) -> &Ipv6Book {
        &self.addrs6
    }

    /// The route table.
    pub fn routes(&self) -> &RouteTable {
        &self.routes
    }

    /// The addresses answered for.
    pub fn addresses(&self) -> &AddressBook {
        &self.addrs
    }

    /// The queue pair on `port`, if the port exists (tests inject and collect frames here).
    pub fn queue_mut(&mut self, port: PortId) -> Option<&mut Q> {
        self.tx.ports.get_mut(port.index()).map(|p| &mut p.queue)
    }

    /// Every queue pair, in [`PortId`] order.
    pub fn queues_mut(&mut self) -> impl Iterator<Item = &mut Q> {
        self.tx.ports.iter_mut().map(|p| &mut p.queue)
    }

    /// The packet pool.
    pub fn pool_mut(&mut self) -> &mut P {
        &mut self.tx.pool
    }

    /// Announces every address we answer for with gratuitous ARP — port and local
    /// addresses on their port, VIPs on their port or on every port — flushes, and
    /// schedules one repeat [`GARP_REPEAT_NS`] after `now` (RFC 5227 §2.3 announces twice,
    /// so one lost frame does not leave a switch or router with a stale entry; the repeat
    /// goes out from [`Worker::poll_once`]). Call at start-up, on one worker only (rvsd:
    /// worker 0). Addresses whose VRRP group is backup here are not announced, now or in
    /// the repeat ([`Worker::with_ha`]); on takeover the VRRP thread sends its own
    /// gratuitous ARP through [`crate::ha::HaEnd::send_frame`]. Returns the number of
    /// announcements sent now.
    pub fn send_gratuitous_arp(&mut self, now: u64) -> usize {
        let sent = self.announce();
        self.tx.flush_all();
        self.garp_repeat_at = Some(now.saturating_add(GARP_REPEAT_NS));
        sent
    }

    /// Buffers one gratuitous ARP per (address, port) it is answered on; none for an
    /// address whose VRRP group is backup here (the control plane announces it on
    /// takeover, through [`crate::ha::HaEnd::send_frame`]).
    fn announce(&mut self) -> usize {
        let mut sent = 0;
        let nports = self.tx.ports.len();
        let roles = self.roles.as_deref();
        for (ip, owned) in self.addrs.iter().filter(|(_, o)| o.active(roles)) {
            let (first, last) = match owned.port {
                Some(p) => (p.index(), p.index() + 1),
                None => (0, nports),
            };
            for i in first..last {
                if self.tx.originate_arp(PortId(i as u16), |f, mac, _| arp::write_gratuitous(f, mac, ip)) {
                    self.tx.counters.gratuitous_arps_sent.inc();
                    sent += 1;
                }
            }
        }
        self.announce6();
        sent
    }

    /// Buffers one unsolicited neighbour advertisement (RFC 4861 §7.2.6) per IPv6 address
    /// of ours, on its port: the IPv6 counterpart of gratuitous ARP, sent with it. Port
    /// addresses are in no VRRP group; an IPv6 VIP or Full-NAT local address whose group
    /// is backup here is not announced (the control plane announces it on takeover).
    fn announce6(&mut self) {
        for o in self.addrs6.iter() {
            let addr = o.net.addr();
            if backup6(self.roles.as_deref(), &self.ha6, addr) {
                continue;
            }
            if self.tx.originate_frame(o.port, ND_FRAME_LEN, |f, mac| nd::write_unsolicited_na_frame(f, mac, addr)) {
                self.tx.counters.nd_advertisements_sent.inc();
            }
        }
        // The IPv6 VIPs, each on the ports whose prefix holds it.
        let Some(lb) = &self.lb else { return };
        let snap = std::sync::Arc::clone(lb.services());
        self.vips6_announced = snap.vips6().to_vec();
        self.announce_vips6(snap.vips6());
    }

    /// Buffers an unsolicited NA for each of `vips` whose VRRP group (if any) is master
    /// here, on the ports whose prefix holds it.
    fn announce_vips6(&mut self, vips: &[Ipv6Addr]) {
        for &vip in vips {
            if self.vip6_backup(vip) {
                continue;
            }
            for p in 0..self.tx.ports.len() {
                let port = PortId(p as u16);
                if !self.addrs6.on_link(vip, port) || nd::is_link_local(vip) {
                    continue;
                }
                if self.tx.originate_frame(port, ND_FRAME_LEN, |f, mac| nd::write_unsolicited_na_frame(f, mac, vip)) {
                    self.tx.counters.nd_advertisements_sent.inc();
                }
            }
        }
    }

    /// One pass of the loop at time `now` (monotonic ns): receive and handle a burst on
    /// every port, apply peers' neighbour updates, run due neighbour timers, flush TX.
    /// Returns the number of packets received.
    pub fn poll_once(&mut self, now: u64) -> usize {
        self.tx.counters.polls.inc();
        if self.lb.as_mut().is_some_and(LbEngine::refresh) {
            self.follow_vips();
            self.follow_vips6();
        }
        let mut received = 0;
        for p in 0..self.tx.ports.len() {
            let port = PortId(p as u16);
            let mut burst: Burst<Q::Buf> = Burst::new();
            let n = self.tx.ports[p].queue.rx_burst(&mut burst);
            if n == 0 {
                continue;
            }
            received += n;
            self.tx.counters.rx_packets.add(burst.len() as u64);
            self.tx.counters.rx_bytes.add(burst.iter().map(|b| b.len() as u64).sum());
            if let Some(lb) = &self.lb {
                lb.prefetch_burst(&burst);
            }
            for mut buf in burst {
                let verdict = self.classify(port, &mut buf, now);
                self.dispatch(port, verdict, buf, now);
            }
        }
        self.handle_redirected(now);
        if !self.exception.is_empty() {
            received += self.kernel_io(now);
        }
        self.send_probes(now);
        self.send_ha_frames();
        self.apply_peer_updates(now);
        if now >= self.next_timers {
            self.run_timers(now);
            self.next_timers = now.saturating_add(TIMER_INTERVAL_NS);
        }
        if self.garp_repeat_at.is_some_and(|t| now >= t) {
            self.garp_repeat_at = None;
            self.announce();
        }
        if let Some(lb) = self.lb.as_mut() {
            lb.run_timers(now);
            lb.poll_sync(now, &self.tx.counters);
            lb.flush_stats();
            let conns6 = lb.conns6().len() as u64;
            self.tx.counters.conns.set(lb.conns().len() as u64 + conns6);
            self.tx.counters.conns6.set(conns6);
        } else if let Some((link, _)) = &self.conn_sync {
            for _ in 0..INSTALL_PER_POLL {
                if link.pop_install().is_none() {
                    break;
                }
                self.tx.counters.sync_refused_no_service.inc();
            }
            let requested = link.dump_requested();
            if requested > link.dump_done() {
                link.set_dump_done(requested);
            }
        }
        self.tx.flush_all();
        self.answer_control(now);
        received
    }

    /// Routes and sends the prober's packets waiting in the outbound punt ring: IPv4 ones
    /// from a port's IPv4 address, IPv6 ones from a port's IPv6 address (link-local
    /// included, then out of that address's port); anything else is `probe_bad_packet`.
    fn send_probes(&mut self, now: u64) {
        for _ in 0..TX_PER_POLL {
            let Some(link) = &self.probe else { return };
            let tx = &mut self.tx;
            let (routes, port_addrs, routes6, addrs6) = (&self.routes, &self.port_addrs, &self.routes6, &self.addrs6);
            let Some(verdict) = link.take_outbound(|packet| {
                tx.counters.local_originated.inc();
                let (ethertype, route) = match packet.first().map(|b| b >> 4) {
                    Some(6) => (ETHERTYPE_IPV6, probe_route6(packet, routes6, addrs6)?),
                    _ => (ETHERTYPE_IPV4, probe_route4(packet, routes, port_addrs)?),
                };
                let Some(mut b) = tx.pool.alloc() else { return Err(DropReason::NoMbuf) };
                let eth = EthernetFrame::<&[u8]>::HEADER_LEN;
                if !b.set_len(eth + packet.len()) {
                    return Err(DropReason::ProbeTooLong);
                }
                let frame = b.data_mut();
                frame[12..14].copy_from_slice(&ethertype.to_be_bytes());
                frame[eth..].copy_from_slice(packet);
                tx.counters.probe_tx.inc();
                Ok((b, route))
            }) else {
                return;
            };
            match verdict {
                Ok((b, route @ (Verdict::Route { port, .. } | Verdict::Route6 { port, .. }))) => {
                    self.dispatch(port, route, b, now)
                }
                Ok((b, other)) => self.dispatch(PortId(0), other, b, now),
                Err(reason) => self.tx.counters.drop_packet(reason),
            }
        }
    }

    /// Sends the control plane's VRRP frames waiting in the outbound ring (worker 0 only:
    /// the other workers' links have no outbound ring), unchanged, out of their port.
    fn send_ha_frames(&mut self) {
        let Some(link) = &self.ha else { return };
        let tx = &mut self.tx;
        for _ in 0..FRAMES_PER_POLL {
            let Some(verdict) = link.take_frame(|port, frame| {
                tx.counters.local_originated.inc();
                if port.index() >= tx.ports.len() {
                    return Err(DropReason::HaBadPort);
                }
                let Some(mut b) = tx.pool.alloc() else { return Err(DropReason::NoMbuf) };
                if !b.set_len(frame.len()) {
                    return Err(DropReason::HaTooLong);
                }
                b.data_mut().copy_from_slice(frame);
                Ok((port, b))
            }) else {
                return;
            };
            match verdict {
                Ok((port, b)) => {
                    tx.counters.ha_tx.inc();
                    tx.enqueue(port, b);
                }
                Err(reason) => tx.counters.drop_packet(reason),
            }
        }
    }

    /// Answers pending control requests (a few per poll).
    fn answer_control(&mut self, now: u64) {
        let Some(ctl) = &self.control else { return };
        for _ in 0..REQUESTS_PER_POLL {
            let Some(req) = ctl.pop() else { break };
            match req {
                WorkerRequest::ListConns { filter, max, reply } => {
                    let listing = match &self.lb {
                        Some(lb) => lb.list_conns(&filter, max, now),
                        None => ConnListing { worker: self.index, ..ConnListing::default() },
                    };
                    // A requester that timed out has gone; its answer is dropped.
                    let _ = reply.send(listing);
                }
            }
        }
    }

    /// Makes the address book answer for the VIPs of the service table just picked up,
    /// when the table names them ([`Worker::build_book`]); worker 0 announces the new ones
    /// whose VRRP group (if any) is master here.
    fn follow_vips(&mut self) {
        let Some(lb) = &self.lb else { return };
        let Some(vips) = lb.services().settings().vips.as_ref() else { return };
        if *vips == self.vips {
            return;
        }
        let vips = vips.clone();
        let added: Vec<VipConfig> = vips.iter().filter(|v| !self.vips.contains(v)).copied().collect();
        self.addrs = self.build_book(&vips);
        self.vips = vips;
        if self.index == 0 {
            let nports = self.tx.ports.len();
            let roles = self.roles.as_deref();
            let announced =
                |v: &&VipConfig| self.addrs.get(v.address).is_some_and(|o| o.kind == AddrKind::Vip && o.active(roles));
            for v in added.iter().filter(announced) {
                let (first, last) = match v.port {
                    Some(p) => (p.index(), p.index() + 1),
                    None => (0, nports),
                };
                for i in first..last {
                    if self.tx.originate_arp(PortId(i as u16), |f, mac, _| arp::write_gratuitous(f, mac, v.address)) {
                        self.tx.counters.gratuitous_arps_sent.inc();
                    }
                }
            }
        }
    }

    /// Worker 0 announces the IPv6 VIPs a service table just picked up added (unsolicited
    /// NA, as [`Self::follow_vips`] sends gratuitous ARP for IPv4 ones), those whose VRRP
    /// group (if any) is master here.
    fn follow_vips6(&mut self) {
        let Some(lb) = &self.lb else { return };
        if self.index != 0 || lb.services().vips6() == self.vips6_announced.as_slice() {
            return;
        }
        let snap = std::sync::Arc::clone(lb.services());
        let added: Vec<Ipv6Addr> = snap.vips6().iter().copied().filter(|v| !self.vips6_announced.contains(v)).collect();
        self.vips6_announced = snap.vips6().to_vec();
        self.announce_vips6(&added);
    }

    /// Whether `a` is an IPv6 address (VIP or Full-NAT local address) of a VRRP group
    /// that is backup here (traffic and neighbour discovery for it are `ha_backup`).
    /// False without roles.
    #[inline]
    fn vip6_backup(&self, a: Ipv6Addr) -> bool {
        backup6(self.roles.as_deref(), &self.ha6, a)
    }

    /// Handles packets other workers moved here because this worker owns their flow.
    fn handle_redirected(&mut self, now: u64) {
        let mut batch = ArrayVec::<Redirected<Q::Buf>, REDIRECT_BATCH>::new();
        self.redirect.recv(&mut batch);
        for Redirected { port, mut buf, ports } in batch {
            self.tx.counters.redirected_in.inc();
            if let Some(ports) = ports {
                if frag::is_ipv6(buf.data()) {
                    self.fragment6_with_ports(port, buf, ports, now);
                } else {
                    self.fragment_with_ports(port, buf, ports, now);
                }
                continue;
            }
            match self.classify(port, &mut buf, now) {
                Verdict::Redirect { .. } => self.tx.counters.drop_packet(DropReason::RedirectLoop),
                v => self.dispatch(port, v, buf, now),
            }
        }
    }

    /// Polls until `stop` is set, reading the time from `clock` (monotonic ns) once per
    /// poll and following the idle policy between polls.
    pub fn run(&mut self, stop: &AtomicBool, clock: impl Fn() -> u64) {
        while !stop.load(Ordering::Relaxed) {
            let t0 = clock();
            let n = self.poll_once(t0);
            if n > 0 {
                // One more clock read per non-empty poll (vDSO, no syscall).
                self.tx.counters.burst_latency.record(clock().saturating_sub(t0));
            }
            if let Some(d) = self.idler.on_poll(n) {
                self.tx.counters.idle_sleeps.inc();
                std::thread::sleep(d);
            }
        }
    }

    /// Decides what to do with one received frame; may rewrite it in place.
    fn classify(&mut self, port: PortId, buf: &mut Q::Buf, now: u64) -> Verdict {
        let offload = buf.rx_offload();
        let Some(port_mac) = self.tx.ports.get(port.index()).map(|p| p.mac) else {
            return Verdict::Drop(DropReason::EthNotForUs);
        };
        let frame = buf.data_mut();
        let Ok(eth) = EthernetFrame::new_checked(&*frame) else {
            return Verdict::Drop(DropReason::EthTruncated);
        };
        let dst = eth.dst();
        let broadcast = dst.is_broadcast();
        if dst != port_mac && !broadcast {
            if dst == VRRP_MAC_V4 && self.ha.is_some() {
                return self.handle_vrrp(port, port_mac, frame, offload);
            }
            if dst.0[..2] == [0x33, 0x33] {
                if dst == VRRP_MAC_V6 && self.ha.is_some() {
                    return self.handle_vrrp6(port, port_mac, frame);
                }
                if self.addrs6.accepts_multicast_mac(dst, port)
                    || self.vip6_group_mac(dst, port)
                    || self.floating6_group_mac(dst, port)
                {
                    return self.ipv6_rx(port, port_mac, buf, true, now);
                }
            }
            return Verdict::Drop(DropReason::EthNotForUs);
        }
        let src = eth.src();
        if src.is_multicast() || src == port_mac {
            return Verdict::Drop(DropReason::EthBadSource);
        }
        match eth.ethertype() {
            ETHERTYPE_ARP => {
                let v = self.handle_arp(port, port_mac, frame, now);
                if v == Verdict::Consumed && !self.exception.is_empty() {
                    return self.arp_verdict(port, buf.data());
                }
                v
            }
            ETHERTYPE_IPV4 if broadcast => Verdict::Drop(DropReason::EthNotForUs),
            ETHERTYPE_IPV4 => {
                let next = self.handle_ipv4(frame, offload);
                let Some(lb) = self.lb.as_mut() else {
                    return match next {
                        Ipv4Next::Done(v) => v,
                        // `handle_ipv4` hands over to the engine only when there is one.
                        Ipv4Next::L4(..) => Verdict::Drop(DropReason::L4NoService),
                        Ipv4Next::IcmpError => Verdict::Drop(DropReason::IcmpUnhandled),
                    };
                };
                let env = LbEnv {
                    routes: &self.routes,
                    addrs: &self.addrs,
                    port_addrs: &self.port_addrs,
                    counters: &self.tx.counters,
                    neigh: &self.neigh,
                    neigh_generation: self.neigh.generation(),
                };
                match next {
                    Ipv4Next::Done(v) => v,
                    Ipv4Next::L4(view, dst) => lb.handle_view(buf, &view, dst, &env, now),
                    Ipv4Next::IcmpError => lb.handle_icmp_error(buf, &env, now),
                }
            }
            ETHERTYPE_IPV6 if broadcast => Verdict::Drop(DropReason::EthNotForUs),
            ETHERTYPE_IPV6 => self.ipv6_rx(port, port_mac, buf, false, now),
            _ => Verdict::Drop(DropReason::EthUnknownType),
        }
    }

    /// An IPv6 frame: to the port's MAC (`multicast` false, Ethernet source already
    /// checked) or to an IPv6 multicast MAC the port listens to, all-nodes or a
    /// solicited-node group of its addresses (`multicast` true). Kept out of line
    /// so the IPv4 path's code stays as it was.
    ///
    /// Checks, in order (the first failing one is the drop reason): for a multicast frame,
    /// the Ethernet source as for any frame (`eth_bad_source`) and the ethertype
    /// (`eth_not_for_us`); the IPv6 header (`ip6_truncated`, `ip6_bad_version`,
    /// `ip6_bad_length`); the destination: one of our addresses on a unicast frame, or at
    /// a multicast MAC the group that MAC stands for, all-nodes or the solicited-node group
    /// of one of our addresses on this port (`ip6_not_for_us`; a port without IPv6
    /// addresses has none); the bounded extension-header walk (`ip6_ext_*` and the other
    /// `ip6_*` refusals of [`crate::wire::Ipv6Error`]); the source not multicast or
    /// loopback (`ip6_bad_source`). Then ICMPv6 NS and NA (and anything to a group) go to
    /// neighbour discovery ([`nd::nd_input`]; the RFC 4861 §7.1 checks are `nd_*`,
    /// `icmp6_*`), the rest needs a source that is specified and not ours
    /// (`ip6_bad_source`): an echo request is answered ([`nd::answer_echo`],
    /// `icmp6_echo_replies`), an ICMPv6 error (to a VIP, an IPv6 local address or a port
    /// address, with IPv6 services) goes to [`LbEngine::handle_icmp6_error`], which
    /// translates one about a flow, other ICMPv6 is `icmp6_unhandled`, anything else
    /// (TCP, UDP, fragments) `ip6_no_service` — to a group `ip6_not_for_us` — but TCP and
    /// UDP to a VIP or to an IPv6 Full-NAT local address, which go to the IPv6 L4 path,
    /// and, to a port's own address, health probe replies (punted) and, on a port with an
    /// exception path, what the lite stack does not answer (the kernel's), both before the
    /// ICMPv6 steps ([`Worker::own6_verdict`]).
    #[inline(never)]
    fn ipv6_rx(&mut self, port: PortId, port_mac: MacAddr, buf: &mut Q::Buf, multicast: bool, now: u64) -> Verdict {
        use Verdict::Drop;
        let Ok(eth) = EthernetFrame::new_checked(buf.data()) else {
            return Drop(DropReason::EthTruncated);
        };
        let (eth_src, eth_dst) = (eth.src(), eth.dst());
        if multicast {
            if eth_src.is_multicast() || eth_src == port_mac {
                return Drop(DropReason::EthBadSource);
            }
            if eth.ethertype() != ETHERTYPE_IPV6 {
                return Drop(DropReason::EthNotForUs);
            }
        }
        let ip = match Ipv6Packet::new_checked(eth.payload()) {
            Ok(ip) => ip,
            Err(e) => return Drop(e.into()),
        };
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        // `own`: the port whose own address (not a Full-NAT local one) `dst` is.
        let (for_us, to_local, own) = if multicast {
            let group = multicast_mac(dst) == eth_dst
                && (dst == ALL_NODES
                    || self.addrs6.is_solicited_group(dst, port)
                    || self.vip6_solicited(dst, port)
                    || self.floating6.iter().any(|&(f, p)| p == port && solicited_node(f) == dst));
            (group, false, None)
        } else {
            let o = self.addrs6.get(dst, port);
            (o.is_some(), o.is_some_and(|o| o.local), o.filter(|o| !o.local).map(|o| o.port))
        };
        // An IPv6 VIP: neighbour discovery and echo for it go the way of our own
        // addresses', TCP and UDP to the IPv6 L4 path.
        let to_vip = !for_us && !multicast && self.lb.as_ref().is_some_and(|lb| lb.is_vip6(dst));
        // A floating address of a VRRP instance (a NAT66 gateway, or a virtual link-local
        // address, ours on its own port only): neighbour discovery and echo only.
        let to_floating = !for_us
            && !to_vip
            && !multicast
            && self.floating6.iter().any(|&(f, p)| f == dst && (p == port || !nd::is_link_local(f)));
        // A VIP, Full-NAT local or floating address whose VRRP instance is backup here:
        // nothing is answered or forwarded.
        if (to_vip || to_local || to_floating) && self.vip6_backup(dst) {
            return Drop(DropReason::HaBackup);
        }
        if !for_us && !to_vip && !to_floating {
            // A NAT66 reply, if anything: the IPv6 L4 path, when there are IPv6 services.
            if !multicast && self.lb.as_ref().is_some_and(LbEngine::has_ipv6_services) {
                return self.l4_rx6(port, buf, None, now);
            }
            return Drop(DropReason::Ip6NotForUs);
        }
        let upper = match ip.upper_layer() {
            Ok(u) => u,
            Err(e) => return Drop(e.into()),
        };
        // TCP and UDP to a VIP, or to an IPv6 Full-NAT local address (a reply).
        if (to_vip || to_local) && upper.protocol != IPPROTO_ICMPV6 {
            return self.l4_rx6(port, buf, Some(&upper), now);
        }
        if nd::is_bad_source(src) {
            return Drop(DropReason::Ip6BadSource);
        }
        // A port's own address: a health probe's reply, or the kernel's traffic.
        if let Some(own) = own {
            let packet = eth.payload();
            let end = (Ipv6Packet::<&[u8]>::HEADER_LEN + usize::from(ip.payload_len())).min(packet.len());
            if let Some(v) = self.own6_verdict(own, &upper, &packet[..end]) {
                return v;
            }
        }
        if upper.protocol != IPPROTO_ICMPV6 || upper.frag.is_some() {
            return Drop(if multicast { DropReason::Ip6NotForUs } else { DropReason::Ip6NoService });
        }
        // The walk keeps the offset within the payload.
        let icmp = match Icmpv6Packet::new_checked(ip.payload().get(upper.offset..).unwrap_or_default()) {
            Ok(icmp) => icmp,
            Err(e) => return Drop(e.into()),
        };
        let msg_type = icmp.msg_type();
        if multicast || msg_type == ICMPV6_NEIGHBOR_SOLICIT || msg_type == ICMPV6_NEIGHBOR_ADVERT {
            let nd = match NdRepr::parse(&ip, &icmp) {
                Ok(nd) => nd,
                Err(e) => return Drop(e.into()),
            };
            let v = self.nd_rx(port, port_mac, eth_src, &nd, buf, now);
            // An advertisement to a port's own address answers a solicitation its kernel
            // interface may have sent: the kernel gets it too, once learned from.
            return match own {
                Some(own) if matches!(v, Verdict::Consumed) && msg_type == ICMPV6_NEIGHBOR_ADVERT => {
                    if self.has_exception(own) {
                        Verdict::Kernel(own)
                    } else {
                        v
                    }
                }
                _ => v,
            };
        }
        if src.is_unspecified() || self.addrs6.is_ours(src) {
            return Drop(DropReason::Ip6BadSource);
        }
        if msg_type != ICMPV6_ECHO_REQUEST {
            // An error about a packet of an IPv6 flow (the engine translates it).
            if let Some(lb) = self.lb.as_mut().filter(|lb| icmp.is_error() && lb.has_ipv6_services()) {
                return lb.handle_icmp6_error(buf, port, &self.routes6, &self.tx.counters, now);
            }
            return Drop(DropReason::Icmp6Unhandled);
        }
        match nd::answer_echo(buf.data_mut(), &upper) {
            Ok(to) => {
                let v = nd::route_verdict(&self.routes6, to, port);
                if matches!(v, Verdict::Route6 { .. }) {
                    self.tx.counters.icmp6_echo_replies.inc();
                }
                v
            }
            Err(reason) => Drop(reason),
        }
    }

    /// A neighbour solicitation or advertisement that passed the RFC 4861 §7.1 checks:
    /// learns what [`nd::nd_input`] says, and answers a solicitation for one of our
    /// addresses with the advertisement built in `buf`.
    fn nd_rx(
        &mut self,
        port: PortId,
        port_mac: MacAddr,
        eth_src: MacAddr,
        nd: &NdRepr,
        buf: &mut Q::Buf,
        now: u64,
    ) -> Verdict {
        // A solicitation or advertisement of a VIP whose VRRP instance is backup here (the
        // master answers and announces it).
        if self.vip6_backup(nd.target) {
            return Verdict::Drop(DropReason::HaBackup);
        }
        let vips: &[Ipv6Addr] = self.lb.as_ref().map_or(&[], |lb| lb.services().vips6());
        let out = nd::nd_input_with(nd, port, &self.addrs6, vips, &self.floating6);
        if let Some(l) = out.learn {
            self.learn6(l.ip, l.mac, port, now, l.create, true);
        }
        match out.action {
            Err(reason) => Verdict::Drop(reason),
            Ok(None) => Verdict::Consumed,
            Ok(Some(ns)) => {
                if !buf.set_len(ND_FRAME_LEN) {
                    return Verdict::Drop(DropReason::Icmp6NotSent);
                }
                match nd::write_na(buf.data_mut(), &ns, port_mac, eth_src) {
                    Ok(_) => {
                        self.tx.counters.nd_advertisements_sent.inc();
                        Verdict::Tx(port)
                    }
                    Err(reason) => Verdict::Drop(reason),
                }
            }
        }
    }

    /// Records an IPv6 neighbour, sends the packets that waited for it and, when it came
    /// from the wire, tells the peers (the same sync as ARP's).
    fn learn6(&mut self, ip: Ipv6Addr, mac: MacAddr, port: PortId, now: u64, create: bool, publish: bool) {
        let Some(learned) = self.neigh6.learn(ip, mac, port, now, create) else { return };
        for b in learned.pending {
            self.tx.enqueue_to(learned.port, mac, b);
        }
        if publish {
            let lost = self.sync.broadcast(NeighUpdate { ip: IpAddr::V6(ip), mac, port });
            self.tx.counters.neigh_updates_lost.add(lost);
        }
    }

    /// An IPv6 frame to a VIP or not to us, on a worker with IPv6 services: the
    /// extension-header walk, the source check and the TCP/UDP view, then the engine's
    /// IPv6 path (`LbEngine::handle_view6`; ICMPv6, an error about a NAT66 flow if
    /// anything, `LbEngine::handle_icmp6_error`); a fragment (not atomic) of TCP/UDP is
    /// [`Verdict::Fragment`] (the `frag6` module), of anything else `ip6_fragment`.
    /// `walked`: the extension-header walk's result when the caller has it already (a
    /// packet to a VIP or a local address), so that it is not walked twice. Out of line:
    /// IPv4 never comes here.
    #[inline(never)]
    fn l4_rx6(&mut self, port: PortId, buf: &mut Q::Buf, walked: Option<&UpperLayer>, now: u64) -> Verdict {
        let view = {
            let frame = buf.data();
            let Some(ip) = frame.get(L3_OFFSET..).and_then(|b| Ipv6Packet::new_checked(b).ok()) else {
                return Verdict::Drop(DropReason::Ip6Truncated);
            };
            let walked_here;
            let upper = match walked {
                Some(u) => u,
                None => match ip.upper_layer() {
                    Ok(u) => {
                        walked_here = u;
                        &walked_here
                    }
                    Err(e) => return Verdict::Drop(e.into()),
                },
            };
            if nd::is_bad_source(ip.src_addr()) || self.addrs6.is_ours(ip.src_addr()) {
                return Verdict::Drop(DropReason::Ip6BadSource);
            }
            if let Some(f) = upper.frag.filter(|f| !f.is_atomic()) {
                // The fragment path (`frag6`); an atomic fragment is the packet.
                return match crate::view6::fragment_protocol(&ip, &f) {
                    Some(IPPROTO_TCP | IPPROTO_UDP) => Verdict::Fragment,
                    // Destination options first in the fragmentable part: the first
                    // fragment shows what follows them, a later one goes with its train.
                    Some(crate::wire::ipv6::IPPROTO_DSTOPTS)
                        if !f.is_first() || matches!(upper.protocol, IPPROTO_TCP | IPPROTO_UDP) =>
                    {
                        Verdict::Fragment
                    }
                    _ => Verdict::Drop(DropReason::Ip6Fragment),
                };
            }
            match L4View6::from_ipv6(&ip, upper) {
                Ok(v) => v,
                // ICMPv6 to a NAT66 client: an error about its flow, if anything (on the
                // refusal's branch, so TCP and UDP pay nothing for it).
                Err(_) if upper.protocol == IPPROTO_ICMPV6 => {
                    let Some(lb) = self.lb.as_mut() else { return Verdict::Drop(DropReason::Ip6NotForUs) };
                    return lb.handle_icmp6_error(buf, port, &self.routes6, &self.tx.counters, now);
                }
                Err(reason) => return Verdict::Drop(reason),
            }
        };
        let Some(lb) = self.lb.as_mut() else { return Verdict::Drop(DropReason::Ip6NotForUs) };
        let env = LbEnv6 {
            routes: &self.routes6,
            counters: &self.tx.counters,
            neigh: &self.neigh6,
            neigh_generation: self.neigh6.generation(),
        };
        lb.handle_view6(buf, &view, port, &env, now)
    }

    /// Whether `mac` is the solicited-node multicast MAC of an IPv6 VIP on `port`'s link.
    fn vip6_group_mac(&self, mac: MacAddr, port: PortId) -> bool {
        let Some(lb) = &self.lb else { return false };
        lb.services().vips6().iter().any(|&v| self.addrs6.on_link(v, port) && multicast_mac(solicited_node(v)) == mac)
    }

    /// Whether `mac` is the solicited-node multicast MAC of an IPv6 floating address
    /// answered on `port`.
    fn floating6_group_mac(&self, mac: MacAddr, port: PortId) -> bool {
        self.floating6.iter().any(|&(f, p)| p == port && multicast_mac(solicited_node(f)) == mac)
    }

    /// Whether `group` is the solicited-node group of an IPv6 VIP on `port`'s link.
    fn vip6_solicited(&self, group: Ipv6Addr, port: PortId) -> bool {
        let Some(lb) = &self.lb else { return false };
        lb.services().vips6().iter().any(|&v| self.addrs6.on_link(v, port) && solicited_node(v) == group)
    }

    /// Sends an IPv6 packet out of `port` to the neighbour `next_hop` (the gateway, or the
    /// destination when on-link), resolving its MAC through the IPv6 neighbour table and
    /// soliciting it when unknown; the last resolved hop is remembered ([`LastHop`],
    /// checked in `dispatch`) as IPv4's [`Verdict::Route`] does.
    #[inline(never)]
    fn route6(&mut self, port: PortId, next_hop: Ipv6Addr, buf: Q::Buf, now: u64) {
        match self.neigh6.resolve(next_hop, port, buf, now) {
            Resolve::Ready(mac, buf) => {
                self.last_hop6 = LastHop { ip: next_hop, port, generation: self.neigh6.generation(), mac };
                self.tx.enqueue_to(port, mac, buf)
            }
            Resolve::Queued => {}
            Resolve::QueuedSendRequest => self.tx.send_ns(port, self.addrs6.source_for(port, next_hop), next_hop),
            Resolve::Dropped(_, reason) => self.tx.counters.drop_packet(reason),
        }
    }

    fn handle_arp(&mut self, port: PortId, port_mac: MacAddr, frame: &mut [u8], now: u64) -> Verdict {
        let out = arp::handle_with_roles(frame, port, port_mac, &self.addrs, &self.routes, self.roles.as_deref());
        if let Some(l) = out.learn {
            self.learn(l.ip, l.mac, port, now, l.create, true);
        }
        if let Verdict::Tx(_) = out.verdict {
            self.tx.counters.arp_replies_sent.inc();
        }
        out.verdict
    }

    /// Records a neighbour, sends the packets that waited for it and, when it came from
    /// the wire, tells the peers.
    fn learn(&mut self, ip: Ipv4Addr, mac: MacAddr, port: PortId, now: u64, create: bool, publish: bool) {
        let Some(learned) = self.neigh.learn(ip, mac, port, now, create) else { return };
        for b in learned.pending {
            self.tx.enqueue_to(learned.port, mac, b);
        }
        if publish {
            let lost = self.sync.broadcast(NeighUpdate { ip: IpAddr::V4(ip), mac, port });
            self.tx.counters.neigh_updates_lost.add(lost);
        }
    }

    /// A frame to the VRRP multicast MAC on a worker with an HA link: the Ethernet source
    /// and IPv4 header checks of any frame (a looped-back advert of ours fails them), then
    /// an IPv4 packet of protocol 112 to 224.0.0.18 is copied to the control plane's ring,
    /// Ethernet header and padding cut; anything else is multicast not for us. The VRRP
    /// contents are the control plane's to judge. Out of line: a few adverts a second, never
    /// the traffic's path.
    #[inline(never)]
    fn handle_vrrp(&self, port: PortId, port_mac: MacAddr, frame: &[u8], offload: RxOffload) -> Verdict {
        let (link, payload) = match self.vrrp_frame(port_mac, frame, ETHERTYPE_IPV4) {
            Ok(x) => x,
            Err(v) => return v,
        };
        let ip = match Ipv4Packet::new_checked(payload) {
            Ok(ip) => ip,
            Err(e) => return Verdict::Drop(e.into()),
        };
        if !offload.ip_csum_ok.unwrap_or_else(|| ip.verify_checksum()) {
            return Verdict::Drop(DropReason::IpBadChecksum);
        }
        if ip.is_fragment() {
            return Verdict::Drop(DropReason::IpFragment);
        }
        let src = ip.src_addr();
        if is_martian_source(src) || self.addrs.is_ours(src) {
            return Verdict::Drop(DropReason::IpBadSource);
        }
        if ip.protocol() != IPPROTO_VRRP || ip.dst_addr() != VRRP_GROUP_V4 {
            return Verdict::Drop(DropReason::EthNotForUs);
        }
        // `new_checked` bounds the total length by the buffer.
        let packet = payload.get(..usize::from(ip.total_len())).unwrap_or_default();
        self.punt_vrrp(link, port, packet)
    }

    /// A frame to VRRP's IPv6 multicast MAC on a worker with an HA link (VRRP over IPv6,
    /// RFC 5798 §5.1.2): the Ethernet source check of any frame, the IPv6 header's
    /// (`ip6_*`), a source neither multicast, loopback, unspecified nor ours
    /// (`ip6_bad_source`: our own advert looped back), then an IPv6 packet whose next header
    /// is 112 (no extension header) to ff02::12 is copied to the control plane's ring, cut
    /// at its payload length; anything else is multicast not for us. Out of line: IPv4
    /// never comes here.
    #[inline(never)]
    fn handle_vrrp6(&self, port: PortId, port_mac: MacAddr, frame: &[u8]) -> Verdict {
        let (link, payload) = match self.vrrp_frame(port_mac, frame, ETHERTYPE_IPV6) {
            Ok(x) => x,
            Err(v) => return v,
        };
        let ip = match Ipv6Packet::new_checked(payload) {
            Ok(ip) => ip,
            Err(e) => return Verdict::Drop(e.into()),
        };
        let src = ip.src_addr();
        if nd::is_bad_source(src) || src.is_unspecified() || self.addrs6.is_ours(src) {
            return Verdict::Drop(DropReason::Ip6BadSource);
        }
        if ip.next_header() != IPPROTO_VRRP || ip.dst_addr() != VRRP_GROUP_V6 {
            return Verdict::Drop(DropReason::EthNotForUs);
        }
        // `new_checked` bounds the payload length by the buffer.
        let end = Ipv6Packet::<&[u8]>::HEADER_LEN + usize::from(ip.payload_len());
        let packet = payload.get(..end).unwrap_or_default();
        self.punt_vrrp(link, port, packet)
    }

    /// The checks both families' VRRP frames share, in order: an HA link (else the
    /// multicast is not for us, `eth_not_for_us`), an Ethernet header (`eth_truncated`), a
    /// source MAC neither multicast nor the port's own (`eth_bad_source`: our own advert
    /// looped back), the family's `ethertype` (else `eth_not_for_us`). Gives the link and
    /// the IP packet after the Ethernet header.
    #[inline(always)]
    fn vrrp_frame<'a>(
        &'a self,
        port_mac: MacAddr,
        frame: &'a [u8],
        ethertype: u16,
    ) -> Result<(&'a HaLink, &'a [u8]), Verdict> {
        let Some(link) = &self.ha else { return Err(Verdict::Drop(DropReason::EthNotForUs)) };
        let Ok(eth) = EthernetFrame::new_checked(frame) else {
            return Err(Verdict::Drop(DropReason::EthTruncated));
        };
        let src = eth.src();
        if src.is_multicast() || src == port_mac {
            return Err(Verdict::Drop(DropReason::EthBadSource));
        }
        if eth.ethertype() != ethertype {
            return Err(Verdict::Drop(DropReason::EthNotForUs));
        }
        Ok((link, frame.get(EthernetFrame::<&[u8]>::HEADER_LEN..).unwrap_or_default()))
    }

    /// Copies a VRRP packet (either family) to the control plane's ring (`ha_rx`).
    fn punt_vrrp(&self, link: &HaLink, port: PortId, packet: &[u8]) -> Verdict {
        match link.punt(port, packet) {
            Ok(()) => {
                self.tx.counters.ha_rx.inc();
                Verdict::Consumed
            }
            Err(SendError::Full) => Verdict::Drop(DropReason::HaRingFull),
            Err(SendError::TooLong) => Verdict::Drop(DropReason::HaTooLong),
        }
    }

    /// The IPv4 checks of the module docs, then: ICMP echo to us answered here; TCP/UDP to
    /// us, and TCP/UDP or ICMP errors not to us (NAT replies and errors about them), go to
    /// the L4 engine.
    fn handle_ipv4(&mut self, frame: &mut [u8], offload: RxOffload) -> Ipv4Next {
        use Ipv4Next::Done;
        let Some(body) = frame.get(EthernetFrame::<&[u8]>::HEADER_LEN..) else {
            return Done(Verdict::Drop(DropReason::EthTruncated));
        };
        let ip = match Ipv4Packet::new_checked(body) {
            Ok(ip) => ip,
            Err(e) => return Done(Verdict::Drop(e.into())),
        };
        let csum_ok = match offload.ip_csum_ok {
            Some(ok) => ok,
            None => ip.verify_checksum(),
        };
        if !csum_ok {
            return Done(Verdict::Drop(DropReason::IpBadChecksum));
        }
        if ip.is_fragment() {
            return Done(self.fragment_verdict(&ip));
        }
        let src = ip.src_addr();
        if is_martian_source(src) || self.addrs.is_ours(src) {
            return Done(Verdict::Drop(DropReason::IpBadSource));
        }
        let icmp_type = (ip.protocol() == IPPROTO_ICMP)
            .then(|| IcmpPacket::new_checked(ip.payload()).ok().map(|i| i.msg_type()))
            .flatten();
        let icmp_error = icmp_type.is_some_and(is_error_type);
        let has_lb = self.lb.is_some();
        // The view is built here, from the header just checked, so that nothing after
        // parses the packet again (the L4 header's own checks are the view's).
        let l4 = |dst: Option<AddrKind>| match L4View::from_ipv4(&ip) {
            Ok(view) => Ipv4Next::L4(view, dst),
            Err(reason) => Done(Verdict::Drop(reason)),
        };
        let Some(dst) = self.addrs.get(ip.dst_addr()) else {
            return match ip.protocol() {
                IPPROTO_TCP | IPPROTO_UDP if has_lb => l4(None),
                IPPROTO_ICMP if icmp_error && has_lb => Ipv4Next::IcmpError,
                _ => Done(Verdict::Drop(DropReason::IpNotForUs)),
            };
        };
        if let Some(g) = dst.group {
            if !self.roles.as_ref().is_some_and(|r| r.is_master(g)) {
                return Done(Verdict::Drop(DropReason::HaBackup));
            }
        }
        if dst.kind == AddrKind::Port {
            if let Some(link) = self.probe.as_ref().filter(|l| l.matcher().matches(ip.protocol(), ip.payload())) {
                let end = EthernetFrame::<&[u8]>::HEADER_LEN + usize::from(ip.total_len());
                let packet = frame.get(EthernetFrame::<&[u8]>::HEADER_LEN..end).unwrap_or_default();
                return Done(match link.punt(packet) {
                    Ok(()) => {
                        self.tx.counters.probe_rx.inc();
                        Verdict::Consumed
                    }
                    Err(SendError::Full) => Verdict::Drop(DropReason::ProbeRingFull),
                    Err(SendError::TooLong) => Verdict::Drop(DropReason::ProbeTooLong),
                });
            }
            if !self.exception.is_empty() {
                if let Some(v) = self.own_to_kernel(dst.port, ip.protocol(), ip.payload()) {
                    return Done(v);
                }
            }
        }
        match ip.protocol() {
            IPPROTO_ICMP if icmp_error => Ipv4Next::IcmpError,
            IPPROTO_ICMP => Done(match icmp::answer_echo(frame) {
                Ok(to) => match self.routes.lookup(to) {
                    Some(hop) => {
                        self.tx.counters.icmp_echo_replies.inc();
                        Verdict::Route { port: hop.port, next_hop: hop.neighbour(to) }
                    }
                    None => Verdict::Drop(DropReason::NoRoute),
                },
                Err(reason) => Verdict::Drop(reason),
            }),
            IPPROTO_TCP | IPPROTO_UDP if has_lb => l4(Some(dst.kind)),
            IPPROTO_TCP | IPPROTO_UDP => Done(Verdict::Drop(DropReason::L4NoService)),
            _ => Done(Verdict::Drop(DropReason::IpUnknownProtocol)),
        }
    }

    /// The verdict for an IPv4 fragment whose header passed the checks (module docs):
    /// [`Verdict::Fragment`] for the fragment path, or a drop.
    #[cold]
    #[inline(never)]
    fn fragment_verdict(&self, ip: &Ipv4Packet<&[u8]>) -> Verdict {
        let src = ip.src_addr();
        if is_martian_source(src) || self.addrs.is_ours(src) {
            return Verdict::Drop(DropReason::IpBadSource);
        }
        if self.lb.is_none() || !matches!(ip.protocol(), IPPROTO_TCP | IPPROTO_UDP) {
            return Verdict::Drop(DropReason::IpFragment);
        }
        match self.addrs.get(ip.dst_addr()) {
            None => Verdict::Fragment,
            Some(dst) if dst.group.is_some_and(|g| !self.roles.as_ref().is_some_and(|r| r.is_master(g))) => {
                Verdict::Drop(DropReason::HaBackup)
            }
            Some(dst) if matches!(dst.kind, AddrKind::Vip | AddrKind::Local) => Verdict::Fragment,
            Some(_) => Verdict::Drop(DropReason::IpFragment),
        }
    }

    /// Carries out a verdict: the buffer is sent, parked, or freed here.
    fn dispatch(&mut self, port_in: PortId, verdict: Verdict, buf: Q::Buf, now: u64) {
        match verdict {
            Verdict::Redirect { worker } => {
                match self.redirect.send(worker, Redirected { port: port_in, buf, ports: None }) {
                    Ok(()) => self.tx.counters.redirected_out.inc(),
                    Err(_) => self.tx.counters.drop_packet(DropReason::RedirectFull),
                }
            }
            Verdict::Tx(port) => self.tx.enqueue(port, buf),
            Verdict::Forward { port, mac } => self.tx.enqueue_to(port, mac, buf),
            Verdict::Drop(reason) => self.tx.counters.drop_packet(reason),
            Verdict::Consumed => self.tx.counters.rx_consumed.inc(),
            Verdict::Kernel(port) => self.send_to_kernel(port, buf, now),
            Verdict::Fragment => self.take_fragment(port_in, buf, now),
            Verdict::Route6Cut { port, next_hop } => self.send_cut6(port_in, port, next_hop, buf, now),
            Verdict::Route6 { port, next_hop } => {
                let last = self.last_hop6;
                if last.matches(next_hop, port, self.neigh6.generation()) {
                    return self.tx.enqueue_to(port, last.mac, buf);
                }
                self.route6(port, next_hop, buf, now)
            }
            Verdict::Route { port, next_hop } => {
                // Both MACs are written when the frame is buffered for TX (`enqueue_to`),
                // now or when the neighbour resolves; a parked frame is never read.
                let last = self.last_hop;
                if last.generation == self.neigh.generation() && last.ip == next_hop && last.port == port {
                    return self.tx.enqueue_to(port, last.mac, buf);
                }
                match self.neigh.resolve(next_hop, port, buf, now) {
                    Resolve::Ready(mac, buf) => {
                        self.last_hop = LastHop { ip: next_hop, port, generation: self.neigh.generation(), mac };
                        self.tx.enqueue_to(port, mac, buf)
                    }
                    Resolve::Queued => {}
                    Resolve::QueuedSendRequest => self.tx.send_arp_request(port, next_hop),
                    Resolve::Dropped(_, reason) => self.tx.counters.drop_packet(reason),
                }
            }
        }
    }

    fn apply_peer_updates(&mut self, now: u64) {
        let mut batch = ArrayVec::<NeighUpdate, SYNC_BATCH>::new();
        self.sync.recv(&mut batch);
        for u in batch {
            self.tx.counters.neigh_updates_received.inc();
            match u.ip {
                IpAddr::V4(ip) => self.learn(ip, u.mac, u.port, now, true, false),
                IpAddr::V6(ip) => self.learn6(ip, u.mac, u.port, now, true, false),
            }
        }
    }

    fn run_timers(&mut self, now: u64) {
        self.expire_fragments(now);
        let tx = &mut self.tx;
        self.neigh.expire(now, |event| match event {
            TimerEvent::Resend { ip, port } => tx.send_arp_request(port, ip),
            TimerEvent::Unresolved { pending, .. } => {
                tx.counters.drop_packets(DropReason::NeighUnresolved, pending.len() as u64);
            }
        });
        if self.addrs6.is_empty() {
            return;
        }
        let book6 = &self.addrs6;
        self.neigh6.expire(now, |event| match event {
            TimerEvent::Resend { ip, port } => tx.send_ns(port, book6.source_for(port, ip), ip),
            TimerEvent::Unresolved { pending, .. } => {
                tx.counters.drop_packets(DropReason::NeighUnresolved, pending.len() as u64);
            }
        });
    }
}

/// Whether IPv6 address `a` belongs to a VRRP group (`ha6`: the instances' IPv6
/// addresses and their groups) that `roles` says is backup here. False without roles.
#[inline]
fn backup6(roles: Option<&HaRoles>, ha6: &[(Ipv6Addr, HaGroup)], a: Ipv6Addr) -> bool {
    let Some(roles) = roles else { return false };
    ha6.iter().any(|&(ip, g)| ip == a && !roles.is_master(g))
}
