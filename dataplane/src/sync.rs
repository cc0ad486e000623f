//! Connection sync to a standby (`[ha] sync_listen` / `sync_peer`): the records that say
//! what a connection or a persistence entry is, so that the peer can hold the same state
//! and forward the flow without rescheduling when it takes over.
//!
//! A record names its service and real server by their keys (protocol, VIP and port;
//! server address and port), not by the ids a node assigns itself: the two nodes of a
//! pair assign ids independently, their configs name the same services. Addresses are
//! [`SocketAddr`] / [`IpAddr`]: a record is IPv4 or IPv6 throughout (an IPv6 flow's four
//! addresses are IPv6 and it lives in the worker's IPv6 table, `crate::conn::ConnTable6`),
//! but for NAT64 (an IPv6 client and VIP, an IPv4 server and Full-NAT local address,
//! `crate::lb::LbEngine::install`); a record that mixes the families otherwise is refused
//! at install (`sync_refused_family`).
//!
//! Contract of the data-path side (the control plane carries records between nodes):
//! * **Rings.** [`sync_links`] gives each worker a [`SyncLink`]: an outbound ring of
//!   [`SyncRecord`]s (the worker is its only producer), an inbound ring of [`ConnRecord`]s
//!   to install (the worker is its only consumer), and a dump handshake. The control
//!   plane holds the [`SyncEnd`]. Records are `Copy`; nothing allocates after
//!   `sync_links`. A full outbound ring never blocks a worker: the record is counted
//!   `sync_lost` (the peer learns the flow from its next change, refresh or a dump).
//! * **Emission** ([`crate::worker::Worker::with_sync`]). A worker queues the record of a
//!   connection when it creates it and whenever a packet changes its state, from the
//!   cold path of those events (established packets that change nothing push nothing),
//!   and walks its table a few slots per poll so that every live connection is sent again
//!   once per [`SyncOptions::refresh`], except entries installed from the peer and not
//!   touched by a packet here since ([`ConnFlags::SYNCED`]): echoing them back would only
//!   loop. Counted `sync_tx` / `sync_lost`.
//! * **Dump.** [`SyncEnd::request_dump`] asks every worker for its whole table (a peer that
//!   (re)connects). Each worker walks its slab with a cursor, at most
//!   [`DUMP_SLOTS_PER_POLL`] slots per poll, pushing every live entry (synced ones
//!   included) while its outbound ring is at most half full (the rest stays for live
//!   events), resuming on the next poll; when the walk ends it publishes the generation
//!   done ([`SyncEnd::dump_finished`]). A static table is dumped exactly once; entries
//!   created during the walk are sent by their own creation records.
//! * **Install.** Each poll a worker installs up to [`INSTALL_PER_POLL`] records of its
//!   inbound ring ([`crate::lb::LbEngine::install`]): same inbound key → updated
//!   (`sync_updated`), else created as a scheduled connection would be (`sync_installed`)
//!   with the time it had left on the peer, flagged `SYNCED`; never scheduled, no packet
//!   sent, whatever the node's VRRP role. Refusals are counted by reason:
//!   `sync_refused_family`, `_invalid`, `_no_service`, `_no_server`, `_port` (Full-NAT
//!   local port not this worker's, unknown address or in use), `_table_full`, `_clash`.
//!   The control plane sends each record to [`owner_of`] it, the worker the flow's
//!   packets go to.
//! * **Persistence** entries live in tables shared by all workers; the control plane reads
//!   and installs them directly (`Service::persist_records`,
//!   `ServiceTable::install_persist`) on the workers' clock
//!   ([`crate::sched::persist::persist_now_s`]).

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_queue::ArrayQueue;

use crate::conn::{client_owner, client_owner6, ConnFlags, ConnOf, Family};
use crate::types::{ConnState, ForwardMode, L4Proto};

/// One connection as the peer needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnRecord {
    /// TCP or UDP.
    pub proto: L4Proto,
    /// How packets reach the server.
    pub forward: ForwardMode,
    /// Client address and port (source of inbound packets).
    pub client: SocketAddr,
    /// VIP and port: with `proto`, the service's key.
    pub vip: SocketAddr,
    /// Full-NAT local address and port towards the server; the client's in other modes.
    pub local: SocketAddr,
    /// Real server address and port.
    pub server: SocketAddr,
    /// Protocol state.
    pub state: ConnState,
    /// The connection's flag bits (`crate::conn::ConnFlags`) that describe the flow:
    /// TOA still to be sent, SYN+ACK seen, reply seen.
    pub flags: u16,
    /// Milliseconds left before the connection expires if no packet comes.
    pub expires_in_ms: u32,
    /// For a connection opened by the SYN proxy, its translation state; `None` for the
    /// others.
    pub synproxy: Option<SynProxyRecord>,
}

/// A SYN-proxied connection's translation state ([`crate::synproxy`]): what a peer needs
/// to go on translating the flow's sequence numbers, timestamps and windows after a
/// takeover. The values are the connection's own ([`crate::conn::Conn::synproxy_offsets`],
/// [`crate::conn::Conn::synproxy_ws`]), whose meaning depends on `pending`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SynProxyRecord {
    /// The SYN went to the server and its SYN-ACK has not come back
    /// ([`ConnFlags::SYNPROXY_PENDING`]): the offsets are then the cookie's ISN and
    /// timestamp, and `window` the client's shift plus one.
    pub pending: bool,
    /// Server sequence − cookie sequence (or the cookie's ISN while pending).
    pub seq_offset: u32,
    /// Server timestamp − cookie timestamp (or the cookie's timestamp while pending).
    pub ts_offset: u32,
    /// The window rewrite's packed bits (`crate::synproxy::packet::WindowRewrite`).
    pub window: u8,
}

/// One persistence entry (ipvsadm `-p`): a client network keeps going to a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PersistRecord {
    /// The service's protocol.
    pub proto: L4Proto,
    /// The service's VIP and port.
    pub vip: SocketAddr,
    /// The client address under the service's netmask.
    pub client: IpAddr,
    /// The real server the client persists to.
    pub server: SocketAddr,
    /// Seconds left before the entry expires if the client makes no new connection.
    pub expires_in_s: u32,
}

/// What travels between the nodes of a pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SyncRecord {
    /// A connection was created, changed state, or is refreshed.
    Conn(ConnRecord),
    /// A persistence entry exists (created or refreshed).
    Persist(PersistRecord),
}

// ---- The rings between the workers and the control plane ----

/// How often, by default, a worker re-sends every connection it holds
/// ([`SyncOptions::refresh`]).
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(30);

/// Records a worker takes from its inbound ring and installs per poll at most.
pub const INSTALL_PER_POLL: usize = 64;

/// Slab slots a dump examines per poll at most (live or not), so that a dump of a large
/// table is spread over many polls.
pub const DUMP_SLOTS_PER_POLL: usize = 1024;

/// Slab slots one refresh step examines at most, whatever the time since the last step
/// (a worker that stalled catches up over several steps, not in one).
pub const REFRESH_SLOTS_MAX: usize = 4096;

/// Default capacity of each ring of [`sync_links`].
pub const DEFAULT_SYNC_RING_CAPACITY: usize = 8192;

/// What a worker's sync does ([`crate::worker::Worker::with_sync`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncOptions {
    /// Every live connection not installed from the peer (and untouched since) is sent
    /// again once per `refresh`, so that a peer that lost records catches up and its
    /// entries do not expire while the flow lives here. Zero disables the refresh.
    pub refresh: Duration,
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions { refresh: DEFAULT_REFRESH }
    }
}

/// The bulk-dump handshake of one worker: the control plane bumps `requested`; the
/// worker walks its table and, when every entry has been pushed, stores the generation it
/// dumped into `done`.
#[derive(Debug, Default)]
struct DumpFlags {
    requested: AtomicU64,
    done: AtomicU64,
}

/// A worker's end of the sync rings: records out (the worker is the single producer),
/// connections to install in (the worker is the single consumer), and the dump
/// handshake. Built by [`sync_links`].
#[derive(Debug)]
pub struct SyncLink {
    out: Arc<ArrayQueue<SyncRecord>>,
    inbound: Arc<ArrayQueue<ConnRecord>>,
    dump: Arc<DumpFlags>,
}

impl SyncLink {
    /// Queues a record for the control plane; `false` when the ring is full (the caller
    /// counts it lost). Never blocks, never allocates.
    #[inline]
    pub fn push(&self, rec: SyncRecord) -> bool {
        self.out.push(rec).is_ok()
    }

    /// Records waiting in the outbound ring.
    pub fn out_len(&self) -> usize {
        self.out.len()
    }

    /// Capacity of the outbound ring.
    pub fn out_capacity(&self) -> usize {
        self.out.capacity()
    }

    /// The next connection the control plane wants installed, if any.
    #[inline]
    pub fn pop_install(&self) -> Option<ConnRecord> {
        self.inbound.pop()
    }

    /// The dump generation the control plane asks for now (0: none ever asked).
    #[inline]
    pub fn dump_requested(&self) -> u64 {
        self.dump.requested.load(Ordering::Acquire)
    }

    /// The dump generation this worker finished last.
    pub fn dump_done(&self) -> u64 {
        self.dump.done.load(Ordering::Acquire)
    }

    /// Says that every entry of dump `generation` is in the outbound ring (release: the
    /// control plane that sees it also sees the records).
    pub fn set_dump_done(&self, generation: u64) {
        self.dump.done.store(generation, Ordering::Release);
    }
}

/// Why [`SyncEnd::push`] did not queue a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    /// The worker's inbound ring is full.
    #[error("the worker's sync ring is full")]
    Full,
    /// No worker with that index.
    #[error("no such worker")]
    NoWorker,
}

/// The control plane's end of every worker's sync rings.
#[derive(Debug)]
pub struct SyncEnd {
    links: Vec<SyncLink>,
    next: usize,
}

impl SyncEnd {
    /// Number of workers.
    pub fn workers(&self) -> usize {
        self.links.len()
    }

    /// Takes up to `max` records from the workers' outbound rings, round robin (one
    /// record per worker per turn, so that a busy worker does not starve the others),
    /// handing each to `f` with the index of the worker that sent it. Returns how many.
    pub fn pop(&mut self, max: usize, mut f: impl FnMut(usize, SyncRecord)) -> usize {
        let n = self.links.len();
        let (mut taken, mut idle) = (0, 0);
        while taken < max && idle < n {
            let i = self.next % n.max(1);
            self.next = self.next.wrapping_add(1);
            match self.links.get(i).and_then(|l| l.out.pop()) {
                Some(rec) => {
                    f(i, rec);
                    taken += 1;
                    idle = 0;
                }
                None => idle += 1,
            }
        }
        taken
    }

    /// Queues `rec` for worker `worker` to install. Fails when that worker's ring is
    /// full or the worker does not exist. Use [`owner_of`] to find the worker.
    pub fn push(&self, worker: usize, rec: ConnRecord) -> Result<(), PushError> {
        let link = self.links.get(worker).ok_or(PushError::NoWorker)?;
        link.inbound.push(rec).map_err(|_| PushError::Full)
    }

    /// Asks every worker for a full dump of its table and returns the generation to wait
    /// for with [`SyncEnd::dump_finished`]. A dump asked while another runs restarts it.
    pub fn request_dump(&self) -> u64 {
        let generation = self.links.iter().map(|l| l.dump_requested()).max().unwrap_or(0) + 1;
        for l in &self.links {
            l.dump.requested.store(generation, Ordering::Release);
        }
        generation
    }

    /// Whether every worker has pushed all of dump `generation` (or a later one) into its
    /// outbound ring. Records still in the rings must be popped to be seen.
    pub fn dump_finished(&self, generation: u64) -> bool {
        self.links.iter().all(|l| l.dump_done() >= generation)
    }
}

/// Builds the sync rings for `workers` workers (at least one), `capacity` records per
/// ring: element `i` of the links belongs to worker `i`. Everything is allocated here.
pub fn sync_links(workers: usize, capacity: usize) -> (Vec<SyncLink>, SyncEnd) {
    let make = || SyncLink {
        out: Arc::new(ArrayQueue::new(capacity.max(1))),
        inbound: Arc::new(ArrayQueue::new(capacity.max(1))),
        dump: Arc::new(DumpFlags::default()),
    };
    let ends: Vec<SyncLink> = (0..workers.max(1)).map(|_| make()).collect();
    let links = ends
        .iter()
        .map(|e| SyncLink { out: Arc::clone(&e.out), inbound: Arc::clone(&e.inbound), dump: Arc::clone(&e.dump) })
        .collect();
    (links, SyncEnd { links: ends, next: 0 })
}

/// The worker (of `workers`) that must hold the connection of `rec`: the owner of its
/// inbound packets ([`client_owner`] for IPv4, [`client_owner6`] for IPv6), the same
/// function the data path uses when the flow's first packet arrives. Full-NAT replies
/// reach the same worker because the local port it holds is one of its own residue class
/// (a record whose port is not is refused at install, `sync_refused_port`). A record
/// that mixes the families goes to its client's owner, which refuses it.
pub fn owner_of(rec: &ConnRecord, workers: usize) -> usize {
    match rec.client.ip() {
        IpAddr::V4(ip) => client_owner(ip, rec.client.port(), workers),
        IpAddr::V6(ip) => client_owner6(ip, rec.client.port(), workers),
    }
}

/// The flag bits a record carries: the ones that describe the flow.
pub const RECORD_FLAGS: ConnFlags =
    ConnFlags::from_bits(ConnFlags::TOA_PENDING.bits() | ConnFlags::SYN_ACK_SEEN.bits() | ConnFlags::REPLY_SEEN.bits());

impl ConnRecord {
    /// The record of connection `c` of a table (IPv4's or IPv6's) at time `now_ns`
    /// (monotonic ns).
    pub fn from_conn<F: Family>(c: &ConnOf<F>, now_ns: u64) -> ConnRecord
    where
        F::Addr: Into<IpAddr>,
    {
        let left_ms = c.expires_in_ns(now_ns) / 1_000_000;
        let rec = ConnRecord {
            proto: c.proto,
            forward: c.forward,
            client: SocketAddr::new(c.client.into(), c.cport),
            vip: SocketAddr::new(c.vip.into(), c.vport),
            local: SocketAddr::new(c.local.into(), c.lport),
            server: SocketAddr::new(c.server.into(), c.sport),
            state: c.state,
            flags: c.flags.bits() & RECORD_FLAGS.bits(),
            expires_in_ms: u32::try_from(left_ms).unwrap_or(u32::MAX),
            synproxy: c.flags.contains(ConnFlags::SYNPROXY).then(|| {
                let (seq_offset, ts_offset) = c.synproxy_offsets();
                SynProxyRecord {
                    pending: c.flags.contains(ConnFlags::SYNPROXY_PENDING),
                    seq_offset,
                    ts_offset,
                    window: c.synproxy_ws,
                }
            }),
        };
        rec.nat64_unmapped()
    }

    /// The record with a NAT64 connection's server side in its own family: a Full-NAT
    /// record whose server and local address are both IPv4-mapped (`Conn6::nat64_ends`)
    /// gets them as IPv4; any other record is returned as it is.
    fn nat64_unmapped(mut self) -> ConnRecord {
        if self.forward != ForwardMode::FullNat {
            return self;
        }
        let unmap = |a: SocketAddr| match a.ip() {
            IpAddr::V6(ip) => ip.to_ipv4_mapped().map(|v4| SocketAddr::new(IpAddr::V4(v4), a.port())),
            IpAddr::V4(_) => None,
        };
        if let (Some(server), Some(local)) = (unmap(self.server), unmap(self.local)) {
            self.server = server;
            self.local = local;
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::TcpState;
    use std::net::Ipv4Addr;

    fn rec(client: [u8; 4], cport: u16) -> ConnRecord {
        let v4 = |a: [u8; 4], p: u16| SocketAddr::new(IpAddr::V4(Ipv4Addr::from(a)), p);
        ConnRecord {
            proto: L4Proto::Tcp,
            forward: ForwardMode::Nat,
            client: v4(client, cport),
            vip: v4([10, 10, 0, 100], 80),
            local: v4(client, cport),
            server: v4([10, 20, 0, 11], 80),
            state: ConnState::Tcp(TcpState::Established),
            flags: 0,
            expires_in_ms: 1000,
            synproxy: None,
        }
    }

    #[test]
    fn a_full_ring_refuses_at_once_and_the_end_reads_every_worker() {
        let (links, mut end) = sync_links(2, 2);
        assert_eq!(end.workers(), 2);
        let r = rec([10, 10, 0, 2], 1);
        assert!(links[0].push(SyncRecord::Conn(r)));
        assert!(links[0].push(SyncRecord::Conn(rec([10, 10, 0, 2], 2))));
        assert!(!links[0].push(SyncRecord::Conn(rec([10, 10, 0, 2], 3))), "full: refused, not waited on");
        assert_eq!(links[0].out_len(), 2);
        assert!(links[1].push(SyncRecord::Conn(rec([10, 10, 0, 3], 1))));
        let mut got = Vec::new();
        assert_eq!(end.pop(2, |w, r| got.push((w, r))), 2, "bounded by max");
        assert_eq!(end.pop(10, |w, r| got.push((w, r))), 1);
        assert_eq!(end.pop(10, |_, _| {}), 0);
        let mut workers: Vec<usize> = got.iter().map(|g| g.0).collect();
        workers.sort_unstable();
        assert_eq!(workers, vec![0, 0, 1]);
        assert!(got.contains(&(0, SyncRecord::Conn(r))));

        // Installs: to the worker asked for, refused when its ring is full.
        assert_eq!(end.push(1, r), Ok(()));
        assert_eq!(end.push(1, r), Ok(()));
        assert_eq!(end.push(1, r), Err(PushError::Full));
        assert_eq!(end.push(2, r), Err(PushError::NoWorker));
        assert_eq!(links[0].pop_install(), None);
        assert_eq!(links[1].pop_install(), Some(r));
    }

    #[test]
    fn a_dump_is_finished_when_every_worker_says_so() {
        let (links, end) = sync_links(2, 4);
        assert_eq!(links[0].dump_requested(), 0);
        let g = end.request_dump();
        assert_eq!(g, 1);
        assert_eq!((links[0].dump_requested(), links[1].dump_requested()), (1, 1));
        assert!(!end.dump_finished(g));
        links[0].set_dump_done(g);
        assert!(!end.dump_finished(g));
        links[1].set_dump_done(g);
        assert!(end.dump_finished(g));
        let g2 = end.request_dump();
        assert_eq!(g2, 2);
        assert!(!end.dump_finished(g2) && end.dump_finished(g));
    }

    #[test]
    fn owner_is_the_inbound_owner_of_either_family() {
        let r = rec([10, 10, 0, 9], 40000);
        let mut v6 = r;
        v6.client = "[2001:db8::1]:40000".parse().unwrap();
        let ip6: std::net::Ipv6Addr = "2001:db8::1".parse().unwrap();
        let mut seen = std::collections::BTreeSet::new();
        for workers in [1, 2, 4, 7] {
            assert_eq!(owner_of(&r, workers), client_owner(Ipv4Addr::new(10, 10, 0, 9), 40000, workers));
            assert_eq!(owner_of(&v6, workers), client_owner6(ip6, 40000, workers));
        }
        // IPv6 clients spread over the workers as their packets do.
        for cport in 40000..40064 {
            v6.client.set_port(cport);
            let w = owner_of(&v6, 4);
            assert_eq!(w, client_owner6(ip6, cport, 4));
            seen.insert(w);
        }
        assert!(seen.len() > 1, "every IPv6 flow went to one worker: {seen:?}");
    }

    #[test]
    fn an_ipv6_connection_makes_an_ipv6_record() {
        use crate::conn::{Conn6, FlowKey6};
        let a = |s: &str| s.parse::<std::net::Ipv6Addr>().unwrap();
        let key = FlowKey6 {
            proto: L4Proto::Tcp,
            src: a("2001:db8:10::2"),
            sport: 40000,
            dst: a("2001:db8:10::100"),
            dport: 80,
        };
        let mut c = Conn6::new(key, ForwardMode::Nat, a("2001:db8:20::11"), 8080);
        c.state = ConnState::Tcp(TcpState::Established);
        c.flags = ConnFlags::REPLY_SEEN | ConnFlags::SYNCED;
        let r = ConnRecord::from_conn(&c, 0);
        assert_eq!(r.client, "[2001:db8:10::2]:40000".parse().unwrap());
        assert_eq!(r.vip, "[2001:db8:10::100]:80".parse().unwrap());
        assert_eq!(r.local, r.client, "the client's own address outside Full-NAT");
        assert_eq!(r.server, "[2001:db8:20::11]:8080".parse().unwrap());
        assert_eq!(r.flags, ConnFlags::REPLY_SEEN.bits(), "only the flow's flags travel");
        assert_eq!((r.proto, r.forward, r.state, r.synproxy), (L4Proto::Tcp, ForwardMode::Nat, c.state, None));
    }
}
