//! The per-worker connection table: one [`Conn`] per flow, reachable from both of its
//! directions, with IPVS's TCP states and timeouts and a timer wheel for expiry.
//!
//! Contract:
//! * **One table per worker, no sharing.** A [`ConnTable`] is owned by one worker and
//!   passed around as `&mut`; nothing in it is atomic or locked. Which worker owns a
//!   packet is a pure function of the packet ([`owner`]); a worker that receives a packet
//!   it does not own hands it to the owner instead of looking here.
//! * **Bounded and preallocated.** [`ConnTable::with_capacity`] allocates every byte the
//!   table will ever use (the entries, the hash index, the wheel). After that, no method
//!   allocates, locks or makes a system call. When the table holds `capacity` entries,
//!   [`ConnTable::insert`] fails with [`TableFull::Full`] and touches nothing: new flows
//!   are dropped (the caller counts them), existing flows are untouched — except that
//!   the caller may first make room with [`ConnTable::evict_half_open`], which removes
//!   the oldest *half-open* DR/IPIP entry (SYN seen, handshake not completed) and never
//!   any other: a SYN flood on a DR service then cycles through its own entries instead
//!   of locking legitimate clients out. Half-open entries also get their own, short
//!   timeout ([`crate::types::Timeouts::half_open`]).
//! * **Both directions, one entry.** An entry is indexed under its inbound key (client →
//!   VIP) and, when replies come back through rvs (NAT, Full-NAT), under its reply key
//!   (server → client for NAT, server → local address for Full-NAT). A lookup of either
//!   key yields the same [`ConnId`] and says which [`Direction`] the packet travels.
//!   DR and IPIP replies go from the server straight to the client and never reach rvs,
//!   so their reply key is not indexed: it would cost index space and refuse legitimate
//!   flows whose (never seen) reply tuples coincide.
//! * **Expiry.** Each packet re-arms the entry's timeout for its (new) state
//!   ([`ConnTable::on_packet`]); [`ConnTable::expire`] removes entries whose timeout has
//!   passed. An entry never expires before its timeout and expires at most one wheel tick
//!   ([`TICK_NS`], about 67 ms) after it, provided `expire` is called at least once per tick.
//!   [`ConnTable::expire_at_most`] bounds the work of one call (a mass expiry is spread
//!   over several calls; entries are then late, never early).
//! * **States.** TCP follows IPVS's `tcp_states` table (`net/netfilter/ipvs/ip_vs_proto_tcp.c`)
//!   and its default timeouts; UDP has the single state `UDP` with IPVS's 300 s timeout.
//!   Active/inactive counting follows IPVS, see [`ConnState::is_active`].
//!
//! Layout (see `table.rs` for the reasons): a slab of [`Conn`] (64 bytes each, with the
//! timer links inside), one open-addressing index with 4 slots of 4 bytes per entry
//! (entry number and a hash tag; both keys at ≤ 50 % load), linear probing with
//! backward-shift deletion; a hashed timing wheel with lazy refresh, and a ring of 8-byte
//! half-open records, one per entry. [`ConnTable::bytes_per_conn`] gives the total: 88
//! bytes.

use std::fmt;
use std::hash::Hash;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::ops::{BitOr, BitOrAssign};

use crate::types::{ConnState, ForwardMode, L4Proto, PortId, ServerId, ServiceId};

pub mod owner;
mod state;
mod table;

pub use owner::{
    client_owner, client_owner6, fragment_owner, fragment_owner6, lport_owner, toeplitz_hash, LocalAddr,
    LocalPortAllocator, LocalPortAllocator6, LocalPortAllocatorOf, RssSpec,
};
pub use state::next_tcp_state;
pub use table::{ConnTable, ConnTable6, ConnTableOf, TableFull, TableMemory, MAX_CAPACITY, TICK_NS, WHEEL_SLOTS};

/// An address family of the connection table: its address type and how a flow's
/// addresses feed the table's hash. [`V4`] and [`V6`]; the table, its entries and keys
/// are generic over it ([`ConnTableOf`], [`ConnOf`], [`FlowKeyOf`]) and each family
/// gets its own code (monomorphised: the IPv4 instance is the code the table had before
/// it was generic, instruction for instruction).
pub trait Family: Copy + fmt::Debug + PartialEq + Eq + Hash + Send + Sync + 'static {
    /// The address type.
    type Addr: Copy + fmt::Debug + fmt::Display + PartialEq + Eq + Hash + Send + Sync + 'static;
    /// The unspecified address (free table entries hold it).
    const UNSPECIFIED: Self::Addr;
    /// A flow's two addresses as one 64-bit word, the address half of the table's hash
    /// input (the table mixes it with its random seed).
    fn addr_word(src: Self::Addr, dst: Self::Addr) -> u64;
    /// A 32-bit tag of an address (the half-open records' tag of the client).
    fn tag(a: Self::Addr) -> u32;
    /// What an entry keeps of the next hop towards the client (replies): nothing for
    /// IPv4 (its entry has no room: a reply looks its route up), a [`CachedHop`] for
    /// IPv6 (the 128-byte entry had 16 bytes of padding).
    type ReplyHop: Copy + Default + fmt::Debug + PartialEq + Eq + Send + Sync + 'static;
}

/// IPv4: the addresses are the hash word as they are (`src << 32 | dst`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct V4;

impl Family for V4 {
    type Addr = Ipv4Addr;
    type ReplyHop = ();
    const UNSPECIFIED: Ipv4Addr = Ipv4Addr::UNSPECIFIED;
    #[inline]
    fn addr_word(src: Ipv4Addr, dst: Ipv4Addr) -> u64 {
        (u64::from(u32::from(src)) << 32) | u64::from(u32::from(dst))
    }
    #[inline]
    fn tag(a: Ipv4Addr) -> u32 {
        u32::from(a)
    }
}

/// IPv6: the 256 bits of the two addresses folded into one word by two 64×64→128
/// multiplies (every bit of either address moves the word; the table's seeded hash does
/// the rest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct V6;

/// `a × b` as 128 bits, folded to 64.
#[inline]
fn fold128(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

/// An IPv6 address folded into 64 bits.
#[inline]
fn fold6(a: Ipv6Addr, k: u64) -> u64 {
    let v = u128::from(a);
    fold128((v >> 64) as u64 ^ k, v as u64 ^ 0x9e37_79b9_7f4a_7c15)
}

impl Family for V6 {
    type Addr = Ipv6Addr;
    type ReplyHop = CachedHop;
    const UNSPECIFIED: Ipv6Addr = Ipv6Addr::UNSPECIFIED;
    #[inline]
    fn addr_word(src: Ipv6Addr, dst: Ipv6Addr) -> u64 {
        fold6(src, 0xc2b2_ae3d_27d4_eb4f) ^ fold6(dst, 0x1656_67b1_9e37_79f9).rotate_left(32)
    }
    #[inline]
    fn tag(a: Ipv6Addr) -> u32 {
        let w = fold6(a, 0x27d4_eb2f_1656_67c5);
        (w ^ (w >> 32)) as u32
    }
}

/// The 5-tuple of a packet as it arrives: protocol, source and destination address and
/// port. [`ConnTableOf::lookup`] takes the packet's own tuple, in either direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowKeyOf<F: Family> {
    /// TCP or UDP.
    pub proto: L4Proto,
    /// Source address.
    pub src: F::Addr,
    /// Source port.
    pub sport: u16,
    /// Destination address.
    pub dst: F::Addr,
    /// Destination port.
    pub dport: u16,
}

/// An IPv4 flow's 5-tuple.
pub type FlowKey = FlowKeyOf<V4>;
/// An IPv6 flow's 5-tuple.
pub type FlowKey6 = FlowKeyOf<V6>;

impl<F: Family> fmt::Display for FlowKeyOf<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}:{} -> {}:{}", self.proto.name(), self.src, self.sport, self.dst, self.dport)
    }
}

/// Which way a packet travels along its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Client → VIP (IPVS's "input").
    Inbound,
    /// Server → client (NAT) or server → local address (Full-NAT) (IPVS's "output").
    Reply,
}

/// A handle on an entry of one [`ConnTable`]: an index into its slab.
///
/// Valid from [`ConnTable::insert`] until the entry is removed or expires; a stale handle
/// never makes the table panic or corrupt itself (see [`ConnTable::is_live`]), but it may
/// name a newer entry that reused the slot, so don't keep handles across bursts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(u32);

impl ConnId {
    /// The slab index, below the table's capacity.
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

/// Per-connection flag bits. The table sets [`ConnFlags::REPLY_SEEN`] and
/// [`ConnFlags::SYN_ACK_SEEN`]; the others belong to the forwarding code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ConnFlags(u16);

impl ConnFlags {
    /// No flag.
    pub const NONE: ConnFlags = ConnFlags(0);
    /// Full-NAT: the client address still has to be inserted as a TOA option (set by the
    /// forwarding code when the connection is created, cleared once sent).
    pub const TOA_PENDING: ConnFlags = ConnFlags(1 << 0);
    /// A SYN+ACK came back from the server (set by [`ConnTable::on_packet`]).
    pub const SYN_ACK_SEEN: ConnFlags = ConnFlags(1 << 1);
    /// A packet came back from the server (set by [`ConnTable::on_packet`]). Until then a
    /// DR or IPIP connection runs IPVS's INPUT-ONLY state table (IPVS's
    /// `IP_VS_CONN_F_NOOUTPUT`).
    pub const REPLY_SEEN: ConnFlags = ConnFlags(1 << 2);
    /// Installed from the peer's sync records ([`crate::sync`]) and not touched by a
    /// packet here since (cleared by [`ConnTable::on_packet`]): the periodic refresh does
    /// not send such an entry back to the peer it came from.
    pub const SYNCED: ConnFlags = ConnFlags(1 << 3);
    /// The connection was opened by the SYN proxy (`crate::synproxy`): its server's
    /// sequence numbers and timestamps are translated with [`Conn::synproxy_offsets`],
    /// and `hop` holds those offsets instead of a cached next hop.
    pub const SYNPROXY: ConnFlags = ConnFlags(1 << 4);
    /// SYN proxy: the SYN went to the server, its SYN-ACK has not come back yet (the
    /// offsets are then the cookie's ISN and timestamp). The engine gives such an entry
    /// the short half-open timeout.
    pub const SYNPROXY_PENDING: ConnFlags = ConnFlags(1 << 5);

    /// The raw bits.
    pub const fn bits(self) -> u16 {
        self.0
    }
    /// From raw bits.
    pub const fn from_bits(bits: u16) -> Self {
        ConnFlags(bits)
    }
    /// Whether every flag of `other` is set.
    pub const fn contains(self, other: ConnFlags) -> bool {
        self.0 & other.0 == other.0
    }
    /// Sets the flags of `other`.
    pub fn insert(&mut self, other: ConnFlags) {
        self.0 |= other.0;
    }
    /// Clears the flags of `other`.
    pub fn remove(&mut self, other: ConnFlags) {
        self.0 &= !other.0;
    }
}

impl BitOr for ConnFlags {
    type Output = ConnFlags;
    fn bitor(self, rhs: ConnFlags) -> ConnFlags {
        ConnFlags(self.0 | rhs.0)
    }
}

impl BitOrAssign for ConnFlags {
    fn bitor_assign(&mut self, rhs: ConnFlags) {
        self.0 |= rhs.0;
    }
}

/// The next hop a connection's inbound packets were last sent to: egress port and the
/// neighbour's MAC, valid while the worker's neighbour table is at `generation`
/// (`NeighbourTable::generation`, which changes on any neighbour change and is never 0).
/// Servers do not move between routes (the route table is fixed for a worker's life), so
/// the generation alone says whether the copy is still right. It saves the route and
/// neighbour lookups of every established packet towards the server. IPv4 replies (NAT,
/// Full-NAT) still look theirs up (a second copy would take the entry past its 64
/// bytes); an IPv6 entry has room for a second one towards the client
/// ([`Family::ReplyHop`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CachedHop {
    /// The neighbour's MAC (the Ethernet destination).
    pub mac: [u8; 6],
    /// Egress port.
    pub port: PortId,
    /// Neighbour-table generation the copy was taken at; 0 (the default): no copy.
    pub generation: u32,
}

/// One connection. The public fields are what forwarding needs; the key fields (`proto`,
/// `client`, `cport`, `vip`, `vport`, `local`, `lport`, `server`, `sport`) and `forward`
/// must not change while the entry is in a table, because the index is built from them.
///
/// Built with [`Conn::new`] (plus [`Conn::with_local`] for Full-NAT and
/// [`Conn::with_service`]); the private fields are the table's timer links.
///
/// Aligned to a 64-byte cache line (its size): a table entry then always sits in one
/// line, so a lookup costs at most one miss on the entry, and one prefetch covers it
/// (unaligned, a slab from the allocator puts every entry across two lines).
///
/// The IPv6 entry ([`Conn6`]) is two lines (128 bytes): its four addresses alone fill one.
#[derive(Debug, Clone, Copy)]
#[repr(align(64))]
pub struct ConnOf<F: Family> {
    /// Client address (source of inbound packets).
    pub client: F::Addr,
    /// Virtual service address.
    pub vip: F::Addr,
    /// Full-NAT source address towards the server; the client address in other modes.
    pub local: F::Addr,
    /// Real server address.
    pub server: F::Addr,
    /// Client port.
    pub cport: u16,
    /// Virtual service port.
    pub vport: u16,
    /// Full-NAT source port towards the server; the client port in other modes.
    pub lport: u16,
    /// Real server port.
    pub sport: u16,
    /// Stable id of the virtual service (assigned by the control plane, never reused;
    /// `ServiceTable::by_service_id` finds it in any later snapshot, or says it is gone).
    pub service_id: ServiceId,
    /// Stable id of the real server (`ServiceTable::by_server_id`), so the connection's
    /// counters follow the server across snapshots.
    pub server_id: ServerId,
    /// TCP or UDP.
    pub proto: L4Proto,
    /// How packets reach the server.
    pub forward: ForwardMode,
    /// Protocol state.
    pub state: ConnState,
    /// Flag bits.
    pub flags: ConnFlags,
    /// Next hop towards the server, filled and checked by the L4 engine (not part of the
    /// key; starts empty). A SYN-proxied connection ([`ConnFlags::SYNPROXY`]) keeps its
    /// sequence and timestamp offsets here instead (see [`Conn::synproxy_offsets`]) and
    /// never caches a hop: its `generation` stays 0, which matches no neighbour table.
    pub hop: CachedHop,
    /// Next hop towards the client, for replies (`F::ReplyHop`: IPv6 only, filled and
    /// checked by the IPv6 engine under the same rules as `hop`; starts empty).
    pub reply_hop: F::ReplyHop,
    /// SYN proxy: how windows are rescaled (`crate::synproxy::WindowRewrite` bits); 0
    /// for other connections. Lives in what was padding: the entry stays 64 bytes.
    pub synproxy_ws: u8,
    /// Whether the slab slot holds a table entry (false for free slots and for a `Conn`
    /// not yet inserted).
    live: bool,
    /// Expiry, in wheel ticks (wrapping). The wheel slot the entry is linked into is at
    /// or before this tick (lazy refresh, see `table.rs`).
    expire: u32,
    /// Next entry in the wheel slot list, or in the free list.
    next: u32,
    /// Previous entry in the wheel slot list, or `HEAD | slot` for a list head.
    prev: u32,
}

/// An IPv4 connection (64 bytes).
pub type Conn = ConnOf<V4>;
/// An IPv6 connection (128 bytes).
pub type Conn6 = ConnOf<V6>;

// One cache line for IPv4, two for IPv6: the reply hop lives in IPv6's padding.
const _: () = assert!(std::mem::size_of::<Conn>() == 64 && std::mem::size_of::<Conn6>() == 128);

impl Conn6 {
    /// A NAT64 connection's IPv4 local address and IPv4 server; `None` for any other
    /// connection. NAT64 connections are exactly the Full-NAT ones whose server and local
    /// address are IPv4-mapped (`lb::nat64_engine`; the control plane refuses
    /// IPv4-mapped IPv6 servers and local addresses, so nothing else looks like one).
    #[inline]
    pub fn nat64_ends(&self) -> Option<(Ipv4Addr, Ipv4Addr)> {
        if self.forward != ForwardMode::FullNat {
            return None;
        }
        Some((self.local.to_ipv4_mapped()?, self.server.to_ipv4_mapped()?))
    }
}

impl<F: Family> ConnOf<F> {
    /// A connection for the inbound packet `inbound` (client → VIP) sent to
    /// `server:sport` with `forward`; the local address is the client (set it with
    /// [`Conn::with_local`] for Full-NAT), the state is the protocol's initial state
    /// (TCP `NONE`, as IPVS's new connections, or `UDP`), flags and service ids zero.
    pub fn new(inbound: FlowKeyOf<F>, forward: ForwardMode, server: F::Addr, sport: u16) -> Self {
        ConnOf {
            client: inbound.src,
            vip: inbound.dst,
            local: inbound.src,
            server,
            cport: inbound.sport,
            vport: inbound.dport,
            lport: inbound.sport,
            sport,
            service_id: 0,
            server_id: 0,
            proto: inbound.proto,
            forward,
            state: ConnState::initial(inbound.proto),
            flags: ConnFlags::NONE,
            hop: CachedHop::default(),
            reply_hop: F::ReplyHop::default(),
            synproxy_ws: 0,
            live: false,
            expire: 0,
            next: 0,
            prev: 0,
        }
    }

    /// Sets the Full-NAT local address and port.
    pub fn with_local(mut self, local: F::Addr, lport: u16) -> Self {
        self.local = local;
        self.lport = lport;
        self
    }

    /// Sets the stable ids of the connection's service and real server.
    pub fn with_service(mut self, service_id: ServiceId, server_id: ServerId) -> Self {
        self.service_id = service_id;
        self.server_id = server_id;
        self
    }

    /// SYN proxy: the sequence offset (server ISN minus cookie ISN) and the timestamp
    /// offset (server's first TSval minus the cookie's), or while
    /// [`ConnFlags::SYNPROXY_PENDING`] the cookie ISN and cookie TSval themselves.
    /// Stored in the 8 bytes of `hop.mac` and `hop.port` (the cache is unused for these
    /// connections), so the entry does not grow. Meaningless without
    /// [`ConnFlags::SYNPROXY`].
    pub fn synproxy_offsets(&self) -> (u32, u32) {
        let m = self.hop.mac;
        let seq = u32::from_ne_bytes([m[0], m[1], m[2], m[3]]);
        let p = self.hop.port.0.to_ne_bytes();
        (seq, u32::from_ne_bytes([m[4], m[5], p[0], p[1]]))
    }

    /// Sets what [`Conn::synproxy_offsets`] returns (and leaves `hop.generation` at 0).
    pub fn set_synproxy_offsets(&mut self, seq: u32, ts: u32) {
        let (s, t) = (seq.to_ne_bytes(), ts.to_ne_bytes());
        self.hop = CachedHop {
            mac: [s[0], s[1], s[2], s[3], t[0], t[1]],
            port: PortId(u16::from_ne_bytes([t[2], t[3]])),
            generation: 0,
        };
    }

    /// Nanoseconds from `now_ns` until the entry's timeout (0 when due), to the wheel's
    /// precision ([`TICK_NS`]). Meaningful for an entry of a table (listings).
    pub fn expires_in_ns(&self, now_ns: u64) -> u64 {
        let now_tick = (now_ns / TICK_NS) as u32;
        let left = self.expire.wrapping_sub(now_tick) as i32;
        u64::try_from(left).unwrap_or(0).saturating_mul(TICK_NS)
    }

    /// The key of inbound packets: client:cport → vip:vport.
    pub fn inbound_key(&self) -> FlowKeyOf<F> {
        FlowKeyOf { proto: self.proto, src: self.client, sport: self.cport, dst: self.vip, dport: self.vport }
    }

    /// The key of reply packets: server:sport → local:lport.
    pub fn reply_key(&self) -> FlowKeyOf<F> {
        FlowKeyOf { proto: self.proto, src: self.server, sport: self.sport, dst: self.local, dport: self.lport }
    }

    /// The key of packets travelling in `dir`.
    pub fn key(&self, dir: Direction) -> FlowKeyOf<F> {
        match dir {
            Direction::Inbound => self.inbound_key(),
            Direction::Reply => self.reply_key(),
        }
    }

    /// Whether replies come back through rvs (NAT and Full-NAT), so that the table
    /// indexes the reply key. DR and IPIP replies go straight to the client.
    pub const fn has_reply_path(&self) -> bool {
        matches!(self.forward, ForwardMode::Nat | ForwardMode::FullNat)
    }
}

/// What a packet did to its connection's state. Feed [`StateChange::active_move`] to the
/// server's counters (`ServerStats::conn_moved`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateChange {
    /// The state before the packet.
    pub from: ConnState,
    /// The state after the packet.
    pub to: ConnState,
}

impl StateChange {
    /// Whether the state changed.
    pub fn changed(&self) -> bool {
        self.from != self.to
    }
    /// `Some(true)` when the connection became active, `Some(false)` when it became
    /// inactive, `None` when its activity did not change.
    pub fn active_move(&self) -> Option<bool> {
        let (was, is) = (self.from.is_active(), self.to.is_active());
        (was != is).then_some(is)
    }
}
