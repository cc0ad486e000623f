//! Which worker owns a packet, and the Full-NAT local ports that make replies come back
//! to it.
//!
//! Contract: the owner of a packet is a pure function of the packet, the same on every
//! worker, so a worker can tell at once whether to process a packet or pass it to its
//! owner, without any shared state:
//!
//! * inbound packets (client → VIP) and NAT replies (server → client) belong to
//!   [`client_owner`] of the client address and port — a NAT reply's destination *is*
//!   the client, so both directions of a NAT connection land on the same worker;
//! * Full-NAT replies (server → local address) belong to [`lport_owner`] of their
//!   destination port: each worker allocates local ports only from its own residue class
//!   `port % workers == worker` ([`LocalPortAllocator`]).
//!
//! **Why local ports, and why RSS-aware ones.** DPVS's `sa_pool.c` explains the problem:
//! a Full-NAT reply carries nothing of the client, so the only way its receiving core can
//! find the connection is if the reply's tuple tells which core created it. DPVS splits
//! the port space between lcores and installs NIC flow-director rules (port mask →
//! queue) so that the NIC delivers each reply to its creator. Without such rules (many
//! NICs and every virtual device lack them), RSS spreads replies by a Toeplitz hash of
//! the tuple and most replies land on the wrong worker, costing a ring hop each.
//! rvs goes one step further: with the port's RSS key and redirection table
//! ([`RssSpec`]), the allocator only picks ports whose reply tuple
//! (server:sport → local:lport) the NIC itself will hash to this worker's queue, so
//! replies arrive at their owner with no flow rule at all. Correctness never depends on
//! it: a port that misses is still owned (`lport % workers`), and a misdirected reply is
//! redirected like any other packet. The search is bounded ([`MAX_RSS_CANDIDATES`]);
//! when it fails the allocator takes any owned port and counts an RSS miss. rvsd reads
//! the key and table from the driver at start (`Port::rss_conf` in rvs-drivers) when the
//! local addresses' port hashes; without them (one queue, memif, af_packet) the
//! allocator takes owned ports in FIFO order as before.
//!
//! **Why not the NIC's queue for client-side packets too.** A NAT reply
//! (server → client) carries neither the VIP nor its port, so the NIC's hash of the
//! client → VIP tuple cannot be recomputed from it, and whether a connection is NAT is
//! known only after the service lookup (per server). A NIC-chosen owner for client → VIP
//! packets would send NAT replies to a worker without their connection, so client-side
//! packets keep [`client_owner`] and cross the ring with probability `(N-1)/N`.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

/// Lowest local port handed out (ports below are left to well-known services).
pub const MIN_LOCAL_PORT: u16 = 1024;
/// Owned ports examined per allocation when looking for one whose reply hashes to this
/// worker's queue. With `q` queues a random port matches with probability `1/q`, so
/// misses are below 0.1 % up to 9 queues (`(1 - 1/q)^64`).
pub const MAX_RSS_CANDIDATES: usize = 64;

/// The worker among `workers` that owns inbound packets from `client:cport` and NAT
/// replies to it. A fixed mix (murmur3's 64-bit finaliser) of address and port, scaled
/// to `workers` by multiply-shift. `workers` 0 or 1 gives 0.
pub fn client_owner(client: Ipv4Addr, cport: u16, workers: usize) -> usize {
    if workers <= 1 {
        return 0;
    }
    mix_to_worker((u64::from(u32::from(client)) << 16) | u64::from(cport), workers)
}

/// [`client_owner`] for an IPv6 client: the address folded to 32 bits (the fixed fold
/// of [`super::Family::tag`], every bit counts), then the same mix with the port. Every
/// worker computes the same owner for a flow, so IPv6 ownership is, like IPv4's, a pure
/// function of the packet. `workers` 0 or 1 gives 0.
#[inline]
pub fn client_owner6(client: std::net::Ipv6Addr, cport: u16, workers: usize) -> usize {
    if workers <= 1 {
        return 0;
    }
    let key = <super::V6 as super::Family>::tag(client);
    mix_to_worker((u64::from(key) << 16) | u64::from(cport), workers)
}

/// The worker among `workers` that gathers the fragments of one IPv4 datagram, identified
/// by its source, destination, identification and protocol (RFC 791): the one whose
/// fragment table learns the ports from the first fragment and passes every fragment on
/// to the flow's owner (a later fragment has no ports, so the flow's owner cannot be
/// computed from it). The same mix as [`client_owner`], of all four fields. `workers` 0
/// or 1 gives 0.
pub fn fragment_owner(src: Ipv4Addr, dst: Ipv4Addr, ident: u16, protocol: u8, workers: usize) -> usize {
    if workers <= 1 {
        return 0;
    }
    let addrs = (u64::from(u32::from(src)) << 32) | u64::from(u32::from(dst));
    let rest = (u64::from(ident) << 8 | u64::from(protocol)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    mix_to_worker(addrs ^ rest, workers)
}

/// [`fragment_owner`] for an IPv6 datagram, identified by its source, destination, the
/// fragment header's 32-bit identification and its next header (RFC 8200 §4.5): the
/// addresses folded into one word as the IPv6 connection table folds them
/// ([`super::Family::addr_word`]), then the same mix.
/// `workers` 0 or 1 gives 0.
pub fn fragment_owner6(
    src: std::net::Ipv6Addr,
    dst: std::net::Ipv6Addr,
    ident: u32,
    protocol: u8,
    workers: usize,
) -> usize {
    if workers <= 1 {
        return 0;
    }
    let addrs = <super::V6 as super::Family>::addr_word(src, dst);
    let rest = (u64::from(ident) << 8 | u64::from(protocol)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    mix_to_worker(addrs ^ rest, workers)
}

/// `h` mixed by murmur3's 64-bit finaliser and scaled to `0..workers` by multiply-shift:
/// the owner functions' common last step.
#[inline(always)]
fn mix_to_worker(mut h: u64, workers: usize) -> usize {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    (((h >> 32) * workers as u64) >> 32) as usize
}

/// The worker among `workers` that owns Full-NAT replies to local port `lport`:
/// `lport % workers` (0 when `workers` is 0).
pub fn lport_owner(lport: u16, workers: usize) -> usize {
    if workers == 0 {
        0
    } else {
        usize::from(lport) % workers
    }
}

/// The Microsoft/NIC Toeplitz hash of `input` under the 40-byte RSS `key`: for every set
/// bit `i` of the input (most significant first), XOR in the 32 key bits starting at bit
/// `i`. A 40-byte key covers 36 input bytes (an IPv6 4-tuple); bytes past 36 are ignored.
pub fn toeplitz_hash(key: &[u8; 40], input: &[u8]) -> u32 {
    let mut result = 0u32;
    let mut window = u32::from_be_bytes([key[0], key[1], key[2], key[3]]);
    for (byte, &next) in input.iter().zip(key[4..].iter()) {
        for b in 0..8 {
            if byte & (0x80 >> b) != 0 {
                result ^= window;
            }
            window = (window << 1) | u32::from((next >> (7 - b)) & 1);
        }
    }
    result
}

/// Bytes of the IPv4 TCP/UDP hash input: source and destination address, source and
/// destination port.
const V4_TUPLE_BYTES: usize = 12;
/// Bytes of the IPv6 TCP/UDP hash input (Microsoft RSS, `NDIS_HASH_TCP_IPV6`; DPDK's
/// `RTE_ETH_RSS_NONFRAG_IPV6_TCP`/`_UDP`): source address (16), destination address
/// (16), source port, destination port. The longest input a 40-byte key covers.
const V6_TUPLE_BYTES: usize = 36;

/// [`toeplitz_hash`] precomputed for one key, byte by byte: entry `[i][b]` is the hash of
/// an input that is zero but for byte `i` = `b`. The hash is linear (XOR) in the input, so
/// a 12-byte IPv4 tuple costs 12 table reads and XORs instead of 96 bit steps, a 36-byte
/// IPv6 tuple 36. 36 KiB (one row per byte of the longer IPv6 input; IPv4 reads the first
/// 12), built once per port and shared by every worker.
#[derive(Clone, PartialEq, Eq)]
struct ToeplitzTable([[u32; 256]; V6_TUPLE_BYTES]);

impl ToeplitzTable {
    fn new(key: &[u8; 40]) -> Box<Self> {
        let mut t = Box::new(ToeplitzTable([[0; 256]; V6_TUPLE_BYTES]));
        for (i, row) in t.0.iter_mut().enumerate() {
            // The 32-bit key window at each of the byte's 8 bits.
            let mut windows = [0u32; 8];
            for (b, w) in windows.iter_mut().enumerate() {
                let mut input = [0u8; V6_TUPLE_BYTES];
                input[i] = 0x80 >> b;
                *w = toeplitz_hash(key, &input);
            }
            for (v, slot) in row.iter_mut().enumerate() {
                *slot = (0..8).filter(|b| v & (0x80 >> b) != 0).fold(0, |h, b| h ^ windows[b]);
            }
        }
        t
    }

    /// The hash of an `N`-byte input (`N` at most [`V6_TUPLE_BYTES`]; the rows past the
    /// input are not read).
    #[inline]
    fn hash<const N: usize>(&self, input: &[u8; N]) -> u32 {
        let mut h = 0;
        for (row, &b) in self.0.iter().zip(input) {
            h ^= row[usize::from(b)];
        }
        h
    }
}

/// The RSS setup of the port replies arrive on (its key and redirection table, as the
/// driver reports them), and which queue this worker polls. Immutable once built; the
/// precomputed hash table is shared by clones.
#[derive(Clone)]
pub struct RssSpec {
    key: [u8; 40],
    reta: Arc<[u16]>,
    table: Arc<ToeplitzTable>,
    queue_of_worker: usize,
}

impl std::fmt::Debug for RssSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RssSpec")
            .field("key", &self.key)
            .field("reta_len", &self.reta.len())
            .field("queue_of_worker", &self.queue_of_worker)
            .finish()
    }
}

impl PartialEq for RssSpec {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key && self.reta == other.reta && self.queue_of_worker == other.queue_of_worker
    }
}
impl Eq for RssSpec {}

impl RssSpec {
    /// The spec of a port with Toeplitz `key` and redirection table `reta` (entry
    /// `hash % len` is the RX queue of a packet; NICs index it with the hash's low bits,
    /// the same for the power-of-two sizes they use), for the worker polling RX queue
    /// `queue_of_worker`. Precomputes the key's hash table (36 KiB).
    pub fn new(key: [u8; 40], reta: &[u16], queue_of_worker: usize) -> Self {
        RssSpec { key, reta: reta.into(), table: Arc::from(ToeplitzTable::new(&key)), queue_of_worker }
    }

    /// The same port's spec for the worker polling `queue`; shares the tables.
    pub fn for_queue(&self, queue: usize) -> Self {
        RssSpec { queue_of_worker: queue, ..self.clone() }
    }

    /// The port's Toeplitz key.
    pub fn key(&self) -> &[u8; 40] {
        &self.key
    }

    /// The port's redirection table.
    pub fn reta(&self) -> &[u16] {
        &self.reta
    }

    /// The RX queue this worker polls.
    pub fn queue_of_worker(&self) -> usize {
        self.queue_of_worker
    }

    /// The NIC's Toeplitz hash of an IPv4 TCP/UDP packet `src:sport → dst:dport` (input:
    /// source address, destination address, source port, destination port, network
    /// order), from the precomputed table.
    #[inline]
    pub fn hash(&self, src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16) -> u32 {
        let mut input = [0u8; V4_TUPLE_BYTES];
        input[0..4].copy_from_slice(&src.octets());
        input[4..8].copy_from_slice(&dst.octets());
        input[8..10].copy_from_slice(&sport.to_be_bytes());
        input[10..12].copy_from_slice(&dport.to_be_bytes());
        self.table.hash(&input)
    }

    /// The RX queue of an IPv4 TCP/UDP packet `src:sport → dst:dport`, or `None` with an
    /// empty table.
    #[inline]
    pub fn queue(&self, src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16) -> Option<u16> {
        self.queue_of_hash(self.hash(src, sport, dst, dport))
    }

    /// The NIC's Toeplitz hash of an IPv6 TCP/UDP packet `src:sport → dst:dport` (input:
    /// source address, destination address, source port, destination port, network
    /// order: RSS's IPv6 4-tuple, which NICs use for packets without extension headers),
    /// from the precomputed table.
    #[inline]
    pub fn hash6(&self, src: Ipv6Addr, sport: u16, dst: Ipv6Addr, dport: u16) -> u32 {
        let mut input = [0u8; V6_TUPLE_BYTES];
        input[0..16].copy_from_slice(&src.octets());
        input[16..32].copy_from_slice(&dst.octets());
        input[32..34].copy_from_slice(&sport.to_be_bytes());
        input[34..36].copy_from_slice(&dport.to_be_bytes());
        self.table.hash(&input)
    }

    /// The RX queue of an IPv6 TCP/UDP packet `src:sport → dst:dport` ([`Self::hash6`]),
    /// or `None` with an empty table.
    #[inline]
    pub fn queue6(&self, src: Ipv6Addr, sport: u16, dst: Ipv6Addr, dport: u16) -> Option<u16> {
        self.queue_of_hash(self.hash6(src, sport, dst, dport))
    }

    /// The redirection table's entry for hash `h` (`h % len`), `None` when it is empty.
    #[inline]
    fn queue_of_hash(&self, h: u32) -> Option<u16> {
        let n = self.reta.len();
        if n == 0 {
            return None;
        }
        self.reta.get(h as usize % n).copied()
    }
}

/// An address family's address as the local-port allocator keeps it: `Key` is the
/// address as an unsigned integer (`u32` for IPv4, `u128` for IPv6), whose order is the
/// address order. Looking a local address up compares keys: one integer comparison per
/// step where `Ipv6Addr`'s own `Ord` compares eight segments (perf/RESULTS.md measured
/// that search at 133 instructions on every Full-NAT66 reply).
pub trait LocalAddr: Copy + Ord {
    /// The address as an integer, in network order's significance.
    type Key: Copy + Ord + std::fmt::Debug;
    /// The key of this address.
    fn key(self) -> Self::Key;
}

impl LocalAddr for Ipv4Addr {
    type Key = u32;
    #[inline(always)]
    fn key(self) -> u32 {
        self.to_bits()
    }
}

impl LocalAddr for Ipv6Addr {
    type Key = u128;
    #[inline(always)]
    fn key(self) -> u128 {
        self.to_bits()
    }
}

/// The ports of one local address owned by this worker: a FIFO ring of free ports, a
/// bitmap of ports in use, and a bitmap of ports reserved while still in the ring.
///
/// A port reserved by [`LocalPortAllocator::reserve`] (a connection installed from the
/// peer) stays where it is in the ring, marked stale, and is skipped when its turn comes
/// (removing it from the middle of the ring would cost a walk of it): every owned port is
/// in the ring at most once, so the ring never overflows, and each reservation costs one
/// skipped entry in a later `pop`. The ring holds `free + stale_count` entries from
/// `head`; while no reservation is pending (`stale_count` 0), `pop` is what it was
/// without reservations plus one test.
#[derive(Debug, Clone)]
struct AddrPorts {
    ring: Vec<u16>,
    head: usize,
    /// Free ports (the ring's entries that are not stale).
    free: usize,
    /// Two bitmaps of [`BITMAP_WORDS`] words each, in one allocation: ports in use, then
    /// ports reserved while still in the ring ("stale").
    bits: Vec<u64>,
    /// Ports marked stale (entries of the ring that are not free).
    stale_count: u32,
}

/// Words of one port bitmap (65536 ports).
const BITMAP_WORDS: usize = 1024;

fn stale_bit(p: u16) -> usize {
    BITMAP_WORDS * 64 + usize::from(p)
}

fn bit(map: &[u64], i: usize) -> bool {
    map[i / 64] & (1 << (i % 64)) != 0
}

fn set_bit(map: &mut [u64], i: usize, on: bool) {
    let w = &mut map[i / 64];
    if on {
        *w |= 1 << (i % 64);
    } else {
        *w &= !(1 << (i % 64));
    }
}

impl AddrPorts {
    #[inline]
    fn pop(&mut self) -> Option<u16> {
        if self.stale_count > 0 {
            return self.pop_past_stale();
        }
        if self.free == 0 {
            return None;
        }
        let p = self.ring[self.head];
        self.head = (self.head + 1) % self.ring.len();
        self.free -= 1;
        Some(p)
    }
    /// [`AddrPorts::pop`] while reserved ports wait in the ring: their entries are
    /// dropped as they come up.
    #[cold]
    #[inline(never)]
    fn pop_past_stale(&mut self) -> Option<u16> {
        while self.free + self.stale_count as usize > 0 {
            let p = self.ring[self.head];
            self.head = (self.head + 1) % self.ring.len();
            if bit(&self.bits, stale_bit(p)) {
                set_bit(&mut self.bits, stale_bit(p), false);
                self.stale_count -= 1;
                continue;
            }
            self.free -= 1;
            return Some(p);
        }
        None
    }
    /// Puts a free port back at the tail. The ring has room for every owned port, and a
    /// port is in it at most once, so this never overwrites.
    fn push(&mut self, p: u16) {
        let n = self.ring.len();
        let queued = self.free + self.stale_count as usize;
        if queued < n {
            self.ring[(self.head + queued) % n] = p;
            self.free += 1;
        }
    }
    fn used(&self, p: u16) -> bool {
        bit(&self.bits, usize::from(p))
    }
    fn set_used(&mut self, p: u16, on: bool) {
        set_bit(&mut self.bits, usize::from(p), on);
    }
}

/// Every port number, at its own index (128 KiB of read-only data): the source of each
/// worker's ring of local ports in [`LocalPortAllocator::new`].
static ALL_PORTS: [u16; 65536] = {
    let mut t = [0u16; 65536];
    let mut i = 0;
    while i < t.len() {
        t[i] = i as u16;
        i += 1;
    }
    t
};

/// One worker's Full-NAT local ports of one address family (`A`: [`Ipv4Addr`] or
/// [`Ipv6Addr`]; [`LocalPortAllocator`] and [`LocalPortAllocator6`]): for each local
/// address, the ports `p` in
/// `[1024, 65535]` with `p % workers == worker`. Everything is allocated in
/// [`LocalPortAllocator::new`]; `alloc` and `release` are O(1) amortised
/// (`alloc` examines at most [`MAX_RSS_CANDIDATES`] ports).
///
/// Free ports are reused in FIFO order, so a port released now is the last one handed
/// out again, which keeps a server's TIME_WAIT for the old tuple from refusing the new
/// one. A port is in use by at most one connection per local address, whatever the
/// server (DPVS also shares nothing between destinations by default).
///
/// IPv6 local addresses get the same ownership rule (`lport % workers`) and the same RSS
/// preference, over the IPv6 4-tuple of the reply ([`RssSpec::hash6`]).
#[derive(Debug, Clone)]
pub struct LocalPortAllocatorOf<A: LocalAddr> {
    worker: usize,
    workers: usize,
    /// The local addresses' keys ([`LocalAddr::key`]), sorted and distinct: a lookup
    /// reads this one small array.
    keys: Vec<A::Key>,
    /// `addrs[i]` holds the ports of the address whose key is `keys[i]`.
    addrs: Vec<AddrPorts>,
    cursor: usize,
    rss_misses: u64,
}

/// The IPv4 local ports (Full-NAT, and NAT64's server side).
pub type LocalPortAllocator = LocalPortAllocatorOf<Ipv4Addr>;
/// The IPv6 local ports (IPv6 Full-NAT).
pub type LocalPortAllocator6 = LocalPortAllocatorOf<Ipv6Addr>;

impl<A: LocalAddr> LocalPortAllocatorOf<A> {
    /// The ports of `worker` (of `workers`) on each of `local_addrs` (duplicates ignored).
    /// `workers` 0 counts as 1 and `worker` is taken modulo `workers`.
    pub fn new(worker: usize, workers: usize, local_addrs: &[A]) -> Self {
        let workers = workers.max(1);
        let worker = worker % workers;
        // The ports p >= MIN_LOCAL_PORT with p % workers == worker, ascending: the first one,
        // then every `workers`-th; one worker's are a plain copy of a table built at
        // compile time. (Engines are built for every input of the whole-worker fuzz target,
        // where an instrumented 64 K-step loop here cost three quarters of each run.)
        let min = usize::from(MIN_LOCAL_PORT);
        let first = min + (worker + workers - min % workers) % workers;
        // Past the last port (more workers than ports): none.
        let from = ALL_PORTS.get(first..).unwrap_or_default();
        let owned: Vec<u16> =
            if workers == 1 { from.to_vec() } else { from.iter().step_by(workers).copied().collect() };
        // Keys order as addresses do, so sorting them sorts the addresses.
        let mut keys: Vec<A::Key> = local_addrs.iter().map(|&a| a.key()).collect();
        keys.sort_unstable();
        keys.dedup();
        let addrs = keys
            .iter()
            .map(|_| AddrPorts {
                ring: owned.clone(),
                head: 0,
                free: owned.len(),
                bits: vec![0; 2 * BITMAP_WORDS],
                stale_count: 0,
            })
            .collect();
        LocalPortAllocatorOf { worker, workers, keys, addrs, cursor: 0, rss_misses: 0 }
    }

    /// This allocator's worker.
    pub fn worker(&self) -> usize {
        self.worker
    }

    /// The number of workers ports are split between.
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Whether this worker owns `lport` (any address): `lport >= 1024` and
    /// `lport_owner(lport, workers) == worker`.
    pub fn owns_port(&self, lport: u16) -> bool {
        lport >= MIN_LOCAL_PORT && lport_owner(lport, self.workers) == self.worker
    }

    /// Free ports left on `local` (0 for an address it does not manage).
    pub fn available(&self, local: A) -> usize {
        self.slot(local).map_or(0, |i| self.addrs[i].free)
    }

    /// Allocations that found no port whose reply hashes to this worker's queue within
    /// [`MAX_RSS_CANDIDATES`] candidates and fell back to another owned port.
    pub fn rss_misses(&self) -> u64 {
        self.rss_misses
    }

    /// Whether `addr` is one of this allocator's local addresses.
    pub fn has_addr(&self, addr: A) -> bool {
        self.slot(addr).is_some()
    }

    #[inline]
    fn slot(&self, addr: A) -> Option<usize> {
        self.keys.binary_search(&addr.key()).ok()
    }

    /// A free `(local address, port)` from `local_addrs` (the service's local addresses;
    /// ones this allocator was not built with are skipped) in round-robin order, skipping
    /// exhausted addresses. With `here`, prefers a port for which `here(addr, port)` says
    /// the reply hashes to this worker's queue, examining at most
    /// [`MAX_RSS_CANDIDATES`] (a miss takes any owned port and counts in
    /// [`Self::rss_misses`]). `None` when every address is exhausted.
    #[inline]
    fn alloc_with(&mut self, local_addrs: &[A], here: Option<impl Fn(A, u16) -> bool>) -> Option<(A, u16)> {
        let k = local_addrs.len();
        for i in 0..k {
            let addr = local_addrs[(self.cursor + i) % k];
            let Some(a) = self.slot(addr) else { continue };
            if self.addrs[a].free == 0 {
                continue;
            }
            self.cursor = (self.cursor + i + 1) % k;
            let pool = &mut self.addrs[a];
            let port = match &here {
                None => pool.pop(),
                Some(here) => {
                    let mut chosen = None;
                    for _ in 0..MAX_RSS_CANDIDATES.min(pool.free) {
                        let Some(p) = pool.pop() else { break };
                        if here(addr, p) {
                            chosen = Some(p);
                            break;
                        }
                        pool.push(p);
                    }
                    if chosen.is_none() {
                        self.rss_misses += 1;
                        chosen = pool.pop();
                    }
                    chosen
                }
            };
            if let Some(p) = port {
                pool.set_used(p, true);
                return Some((addr, p));
            }
        }
        None
    }

    /// Returns `local:lport` to the pool when its connection goes. `false` (and nothing
    /// changes) when the port is not this worker's, the address unknown, or the port not
    /// allocated.
    ///
    /// Out of line: the engine calls it from the per-packet accounting's rare branch (a
    /// connection whose server is gone), and once the allocator was generic the inlined
    /// copy there cost the established NAT and Full-NAT paths 2.7 % more instructions
    /// (`perf/guard.sh`).
    #[inline(never)]
    pub fn release(&mut self, local: A, lport: u16) -> bool {
        if !self.owns_port(lport) {
            return false;
        }
        let Some(a) = self.slot(local) else { return false };
        let pool = &mut self.addrs[a];
        if !pool.used(lport) {
            return false;
        }
        pool.set_used(lport, false);
        if pool.stale_count > 0 && bit(&pool.bits, stale_bit(lport)) {
            // Reserved and released before its turn in the ring came: its entry there
            // is valid again.
            set_bit(&mut pool.bits, stale_bit(lport), false);
            pool.stale_count -= 1;
            pool.free += 1;
        } else {
            pool.push(lport);
        }
        true
    }

    /// Takes `local:lport` for a connection installed from the peer (the port it was
    /// given there): from then on [`LocalPortAllocator::alloc`] does not hand it out, and
    /// [`LocalPortAllocator::release`] gives it back as usual. `false` (and nothing
    /// changes) when the port is not this worker's (`lport % workers`, at least 1024),
    /// the address is not one of this allocator's, or the port is in use. O(1).
    pub fn reserve(&mut self, local: A, lport: u16) -> bool {
        if !self.owns_port(lport) {
            return false;
        }
        let Some(a) = self.slot(local) else { return false };
        let pool = &mut self.addrs[a];
        if pool.used(lport) {
            return false;
        }
        // A free owned port is in the ring exactly once: leave it there, stale.
        pool.set_used(lport, true);
        set_bit(&mut pool.bits, stale_bit(lport), true);
        pool.stale_count += 1;
        pool.free -= 1;
        true
    }
}

impl LocalPortAllocatorOf<Ipv4Addr> {
    /// A free `(local address, port)` for a connection to `server:sport`, taken from
    /// `local_addrs` (the service's local addresses; ones this allocator was not built
    /// with are skipped) in round-robin order, skipping exhausted addresses. With `rss`,
    /// prefers a port whose reply tuple `server:sport → local:port` the NIC hashes to
    /// `rss.queue_of_worker`. `None` when every address is exhausted.
    pub fn alloc(
        &mut self,
        local_addrs: &[Ipv4Addr],
        server: Ipv4Addr,
        sport: u16,
        rss: Option<&RssSpec>,
    ) -> Option<(Ipv4Addr, u16)> {
        let here = rss.filter(|r| !r.reta.is_empty()).map(|r| {
            move |addr: Ipv4Addr, p: u16| r.queue(server, sport, addr, p).map(usize::from) == Some(r.queue_of_worker())
        });
        self.alloc_with(local_addrs, here)
    }
}

impl LocalPortAllocatorOf<Ipv6Addr> {
    /// A free `(local address, port)` for a connection to `server:sport`, as the IPv4
    /// [`LocalPortAllocator::alloc`]: from `local_addrs` in round-robin order, and with
    /// `rss`, preferring a port whose reply tuple `server:sport → local:port` the NIC
    /// hashes ([`RssSpec::queue6`]) to `rss.queue_of_worker`. `None` when every address
    /// is exhausted.
    pub fn alloc(
        &mut self,
        local_addrs: &[Ipv6Addr],
        server: Ipv6Addr,
        sport: u16,
        rss: Option<&RssSpec>,
    ) -> Option<(Ipv6Addr, u16)> {
        let here = rss.filter(|r| !r.reta.is_empty()).map(|r| {
            move |addr: Ipv6Addr, p: u16| r.queue6(server, sport, addr, p).map(usize::from) == Some(r.queue_of_worker())
        });
        self.alloc_with(local_addrs, here)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Microsoft RSS verification key ("Verifying the RSS Hash Calculation").
    pub(crate) const MS_KEY: [u8; 40] = [
        0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0, 0xd0, 0xca,
        0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b,
        0xbe, 0xac, 0x01, 0xfa,
    ];

    #[test]
    fn toeplitz_matches_microsoft_ipv4_vectors() {
        /// (destination, dport, source, sport, IPv4-only hash, IPv4+TCP hash)
        type Vector = ([u8; 4], u16, [u8; 4], u16, u32, u32);
        let vectors: [Vector; 5] = [
            ([161, 142, 100, 80], 1766, [66, 9, 149, 187], 2794, 0x323e_8fc2, 0x51cc_c178),
            ([65, 69, 140, 83], 4739, [199, 92, 111, 2], 14230, 0xd718_262a, 0xc626_b0ea),
            ([12, 22, 207, 184], 38024, [24, 19, 198, 95], 12898, 0xd2d0_a5de, 0x5c2b_394a),
            ([209, 142, 163, 6], 2217, [38, 27, 205, 30], 48228, 0x8298_9176, 0xafc7_327f),
            ([202, 188, 127, 2], 1303, [153, 39, 163, 191], 44251, 0x5d18_09c5, 0x10e8_28a2),
        ];
        for (dst, dport, src, sport, h_ip, h_tcp) in vectors {
            let mut input = Vec::new();
            input.extend_from_slice(&src);
            input.extend_from_slice(&dst);
            assert_eq!(toeplitz_hash(&MS_KEY, &input), h_ip, "{dst:?}");
            input.extend_from_slice(&sport.to_be_bytes());
            input.extend_from_slice(&dport.to_be_bytes());
            assert_eq!(toeplitz_hash(&MS_KEY, &input), h_tcp, "{dst:?}");
            let reta: Vec<u16> = (0..128).map(|i| i % 4).collect();
            let spec = RssSpec::new(MS_KEY, &reta, 0);
            assert_eq!(spec.hash(Ipv4Addr::from(src), sport, Ipv4Addr::from(dst), dport), h_tcp);
            let q = spec.queue(Ipv4Addr::from(src), sport, Ipv4Addr::from(dst), dport);
            assert_eq!(q, Some(((h_tcp % 128) % 4) as u16));
        }
        // Inputs longer than the key covers are cut, not a panic.
        assert_eq!(toeplitz_hash(&MS_KEY, &[0xff; 100]), toeplitz_hash(&MS_KEY, &[0xff; 36]));
        assert_eq!(toeplitz_hash(&MS_KEY, &[]), 0);
    }

    #[test]
    fn each_worker_gets_exactly_its_local_ports_in_order() {
        let cases = [1, 2, 3, 4, 5, 7, 8, 9, 16, 64].into_iter().flat_map(|n| (0..n).map(move |w| (w, n)));
        // More workers than ports: the last ones own one port or none.
        let many = [(64_510, 64_512), (64_511, 64_512), (3999, 4000), (70_000, 100_000), (99_999, 100_000)];
        for (worker, workers) in cases.chain(many) {
            let a = LocalPortAllocator::new(worker, workers, &[Ipv4Addr::new(10, 20, 0, 200)]);
            let want: Vec<u16> = (MIN_LOCAL_PORT..=u16::MAX).filter(|&p| lport_owner(p, workers) == worker).collect();
            assert_eq!(a.addrs[0].ring, want, "worker {worker} of {workers}");
            assert_eq!(a.available(Ipv4Addr::new(10, 20, 0, 200)), want.len());
        }
    }

    #[test]
    fn owners_are_in_range_and_total() {
        for w in [0, 1, 2, 3, 8] {
            for p in [0u16, 1, 1024, 65535] {
                let o = client_owner(Ipv4Addr::new(10, 0, 0, 2), p, w);
                assert!(o < w.max(1));
                assert!(lport_owner(p, w) < w.max(1));
            }
        }
        // Clients spread over workers.
        let mut hits = [0usize; 4];
        for i in 0..4000u32 {
            hits[client_owner(Ipv4Addr::from(0x0a00_0000 + i), 40000 + (i % 7) as u16, 4)] += 1;
        }
        assert!(hits.iter().all(|&h| h > 800), "{hits:?}");
    }

    #[test]
    fn allocator_exhausts_and_releases() {
        let la = [Ipv4Addr::new(10, 20, 0, 200)];
        let mut a = LocalPortAllocator::new(1, 2, &la);
        let total = a.available(la[0]);
        assert_eq!(total, (1024..=65535).filter(|p| p % 2 == 1).count());
        let mut seen = std::collections::HashSet::new();
        while let Some((addr, p)) = a.alloc(&la, Ipv4Addr::new(10, 20, 0, 11), 80, None) {
            assert_eq!(addr, la[0]);
            assert!(p >= 1024 && p % 2 == 1);
            assert!(seen.insert(p), "port {p} twice");
        }
        assert_eq!(seen.len(), total);
        assert!(a.release(la[0], 1025));
        assert!(!a.release(la[0], 1025), "double release");
        assert!(!a.release(la[0], 1026), "not ours");
        assert!(!a.release(Ipv4Addr::new(1, 1, 1, 1), 1027), "unknown address");
        assert_eq!(a.alloc(&la, Ipv4Addr::new(10, 20, 0, 11), 80, None), Some((la[0], 1025)));
        assert_eq!(a.alloc(&[], Ipv4Addr::new(10, 20, 0, 11), 80, None), None);
    }

    #[test]
    fn ipv6_local_ports_follow_the_same_ownership() {
        let la: [Ipv6Addr; 2] = ["2001:db8:20::200".parse().unwrap(), "2001:db8:20::201".parse().unwrap()];
        let mut a = LocalPortAllocator6::new(2, 3, &la);
        assert!(a.has_addr(la[1]) && !a.has_addr("2001:db8:20::202".parse().unwrap()));
        // Round robin over the addresses, each port this worker's.
        let server: Ipv6Addr = "2001:db8:20::11".parse().unwrap();
        let got: Vec<(Ipv6Addr, u16)> = (0..4).map(|_| a.alloc(&la, server, 80, None).unwrap()).collect();
        assert_eq!(got, vec![(la[0], 1025), (la[1], 1025), (la[0], 1028), (la[1], 1028)]);
        assert!(got.iter().all(|&(_, p)| lport_owner(p, 3) == 2));
        assert!(a.release(la[0], 1025));
        assert!(!a.release(la[0], 1025), "double release");
        assert_eq!(a.available(la[0]), a.available(la[1]) + 1);
        assert_eq!(a.alloc(&[], server, 80, None), None);
    }

    #[test]
    fn toeplitz_matches_microsoft_ipv6_vectors() {
        // Microsoft, "Verifying the RSS Hash Calculation", the IPv6 table (same key):
        // (destination, dport, source, sport, IPv6-only hash, IPv6+TCP hash).
        let vectors: [(&str, u16, &str, u16, u32, u32); 3] = [
            ("3ffe:2501:200:3::1", 1766, "3ffe:2501:200:1fff::7", 2794, 0x2cc1_8cd5, 0x4020_7d3d),
            ("ff02::1", 4739, "3ffe:501:8::260:97ff:fe40:efab", 14230, 0x0f0c_461c, 0xdde5_1bbf),
            ("fe80::200:f8ff:fe21:67cf", 38024, "3ffe:1900:4545:3:200:f8ff:fe21:67cf", 44251, 0x4b61_e985, 0x02d1_feef),
        ];
        let reta: Vec<u16> = (0..128).map(|i| i % 4).collect();
        let spec = RssSpec::new(MS_KEY, &reta, 0);
        for (dst, dport, src, sport, h_ip, h_tcp) in vectors {
            let (dst, src): (Ipv6Addr, Ipv6Addr) = (dst.parse().unwrap(), src.parse().unwrap());
            let mut input = Vec::new();
            input.extend_from_slice(&src.octets());
            input.extend_from_slice(&dst.octets());
            assert_eq!(toeplitz_hash(&MS_KEY, &input), h_ip, "{dst}");
            input.extend_from_slice(&sport.to_be_bytes());
            input.extend_from_slice(&dport.to_be_bytes());
            assert_eq!(toeplitz_hash(&MS_KEY, &input), h_tcp, "{dst}");
            // The table-driven hash the allocator uses gives the same.
            assert_eq!(spec.hash6(src, sport, dst, dport), h_tcp, "{dst}");
            assert_eq!(spec.queue6(src, sport, dst, dport), Some(((h_tcp % 128) % 4) as u16));
        }
        // An empty redirection table has no queue.
        let none = RssSpec::new(MS_KEY, &[], 0);
        assert_eq!(none.queue6(Ipv6Addr::LOCALHOST, 1, Ipv6Addr::LOCALHOST, 2), None);
    }

    #[test]
    fn local_addresses_are_found_by_key_in_either_family() {
        // Unsorted, with a duplicate; the keys keep the addresses' order.
        let v6: [Ipv6Addr; 4] = ["2001:db8::3", "2001:db8::1", "fe80::1", "2001:db8::1"].map(|a| a.parse().unwrap());
        let a = LocalPortAllocator6::new(0, 1, &v6);
        assert_eq!((a.keys.len(), a.addrs.len()), (3, 3));
        assert!(a.keys.windows(2).all(|w| w[0] < w[1]));
        assert!(v6.iter().all(|&x| a.has_addr(x)));
        assert!(!a.has_addr("2001:db8::2".parse().unwrap()) && !a.has_addr(Ipv6Addr::UNSPECIFIED));
        let v4 = [Ipv4Addr::new(10, 0, 0, 9), Ipv4Addr::new(10, 0, 0, 1)];
        let a = LocalPortAllocator::new(0, 1, &v4);
        assert!(v4.iter().all(|&x| a.has_addr(x)) && !a.has_addr(Ipv4Addr::new(10, 0, 0, 2)));
    }

    #[test]
    fn ipv6_rss_preference_misses_nothing_with_the_microsoft_key() {
        // Four workers on four queues: a port off the queue comes with probability 3/4,
        // so 64 of them in a row ((3/4)^64 ≈ 1e-8) would be a bug, not bad luck.
        let reta: Vec<u16> = (0..128).map(|i| i % 4).collect();
        let locals: [Ipv6Addr; 2] = ["2001:db8:20::200".parse().unwrap(), "2001:db8:20::201".parse().unwrap()];
        let server: Ipv6Addr = "2001:db8:20::11".parse().unwrap();
        for worker in 0..4 {
            let spec = RssSpec::new(MS_KEY, &reta, 0).for_queue(worker);
            let mut a = LocalPortAllocator6::new(worker, 4, &locals);
            for _ in 0..2000 {
                let (local, port) = a.alloc(&locals, server, 443, Some(&spec)).unwrap();
                assert_eq!(spec.queue6(server, 443, local, port), Some(worker as u16));
                assert_eq!(lport_owner(port, 4), worker);
            }
            assert_eq!(a.rss_misses(), 0);
        }
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            /// With the NIC's spec, the IPv6 port the allocator picks for a connection to
            /// `server:sport` is one whose reply (server:sport → local:port) the NIC
            /// hashes to this worker's queue, and this worker owns it; a miss (no such
            /// port among the candidates) is counted, never silent.
            #[test]
            fn ipv6_reply_hash_lands_on_the_worker(
                key in proptest::array::uniform32(any::<u8>()).prop_flat_map(|head| {
                    proptest::array::uniform8(any::<u8>()).prop_map(move |tail| {
                        let mut k = [0u8; 40];
                        k[..32].copy_from_slice(&head);
                        k[32..].copy_from_slice(&tail);
                        k
                    })
                }),
                workers in 2usize..6,
                worker_seed in any::<usize>(),
                server in any::<u128>(),
                sport in any::<u16>(),
                locals in proptest::collection::vec(any::<u128>(), 1..4),
                allocs in 1usize..40,
            ) {
                let worker = worker_seed % workers;
                // Queue i is worker i, as rvsd sets them up (DPDK's default spread).
                let reta: Vec<u16> = (0..128).map(|i| (i % workers) as u16).collect();
                let spec = RssSpec::new(key, &reta, worker);
                let locals: Vec<Ipv6Addr> = locals.into_iter().map(Ipv6Addr::from_bits).collect();
                let server = Ipv6Addr::from_bits(server);
                let mut a = LocalPortAllocator6::new(worker, workers, &locals);
                for _ in 0..allocs {
                    let misses = a.rss_misses();
                    let (local, port) = a.alloc(&locals, server, sport, Some(&spec)).expect("ports left");
                    prop_assert!(locals.contains(&local));
                    prop_assert!(a.owns_port(port));
                    // Every allocation lands on the worker's queue or is a counted miss.
                    if a.rss_misses() == misses {
                        prop_assert_eq!(spec.queue6(server, sport, local, port), Some(worker as u16));
                    }
                }
            }
        }
    }

    #[test]
    fn reserved_ports_are_never_allocated_until_released() {
        let la = [Ipv4Addr::new(10, 20, 0, 200)];
        let server = Ipv4Addr::new(10, 20, 0, 11);
        let mut a = LocalPortAllocator::new(1, 2, &la);
        let total = a.available(la[0]);
        assert!(!a.reserve(la[0], 1026), "another worker's port");
        assert!(!a.reserve(la[0], 1023), "below the local range");
        assert!(!a.reserve(Ipv4Addr::new(1, 1, 1, 1), 1027), "unknown address");
        assert!(a.reserve(la[0], 1027));
        assert!(!a.reserve(la[0], 1027), "already in use");
        // A port handed out is in use too.
        let (_, first) = a.alloc(&la, server, 80, None).unwrap();
        assert_eq!(first, 1025);
        assert!(!a.reserve(la[0], 1025));
        assert_eq!(a.available(la[0]), total - 2);
        // Reserved mid-ring, released before its turn: valid again, once.
        assert!(a.reserve(la[0], 40001));
        assert!(a.release(la[0], 40001));
        assert_eq!(a.available(la[0]), total - 2);
        let mut seen = std::collections::HashSet::new();
        while let Some((_, p)) = a.alloc(&la, server, 80, None) {
            assert_ne!(p, 1027, "a reserved port was handed out");
            assert!(seen.insert(p), "port {p} twice");
        }
        assert_eq!(seen.len(), total - 2, "every other port still comes out, once");
        assert!(seen.contains(&40001));
        // Released, the reserved port comes back like any other.
        assert!(a.release(la[0], 1027));
        assert_eq!(a.alloc(&la, server, 80, None), Some((la[0], 1027)));
        assert_eq!(a.alloc(&la, server, 80, None), None);
    }
}
