//! Schedulers: which real server takes a new connection of a virtual service.
//!
//! Contract:
//!
//! * The control plane calls [`SchedShared::build`] whenever a service's snapshot
//!   changes (servers added, removed, re-weighted). That is the only place that allocates
//!   the big immutable lookup structures (Maglev table, consistent-hash ring, the sh/dh
//!   bucket tables) and the only place that can fail ([`SchedError`]).
//! * Each worker then gets its own [`Scheduler`] from [`new_scheduler`], sharing the
//!   [`SchedShared`] through an `Arc`. A scheduler's mutable state (round-robin cursor,
//!   wrr position, lblc table, RNG) is private to its worker, so [`Scheduler::pick`]
//!   takes `&mut self` and needs no lock. `pick` never allocates, locks, makes a syscall
//!   or panics; its cost is O(servers) at worst (a few schedulers walk the server list,
//!   as IPVS's do), O(1) for the table-driven ones.
//! * `pick` must be given the same server slice the scheduler was built from (same
//!   order, same length). A mismatched slice cannot make it panic — indices are checked
//!   — but the choice is then meaningless; rebuild on every snapshot change.
//! * A server with weight 0 (quiescent) or over its upper threshold
//!   ([`RealServer::available`] false) never takes a new connection; `pick` returns
//!   `None` when no server can.
//! * Least-connection style schedulers read [`ServerStats`](crate::server::ServerStats)
//!   counters summed over every worker with relaxed loads; they may be a few packets
//!   stale, as IPVS's per-CPU counters are.
//!
//! The algorithms follow IPVS (`net/netfilter/ipvs/ip_vs_*.c`) and DPVS
//! (`src/ipvs/ip_vs_*.c`) unless a module says otherwise; Maglev follows Eisenbud et al.,
//! "Maglev: A Fast and Reliable Software Network Load Balancer", NSDI'16, §3.4.
//!
//! Modules, one per algorithm family: [`rr`] (rr, wrr), [`lc`] (lc, wlc, sed, nq,
//! sessions), [`fo`] (fo, ovf), [`hash`] (sh, dh), [`lblc`] (lblc, lblcr), [`maglev`]
//! (mh), [`chash`] (conhash, user-hash), [`twos`] (twos), and [`persist`] (the
//! persistence table behind ipvsadm `-p`/`-M`).

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;

use crate::server::RealServer;
use crate::types::SchedulerKind;

pub mod chash;
pub mod fo;
pub mod hash;
pub mod lblc;
pub mod lc;
pub mod maglev;
pub mod persist;
pub mod rr;
pub mod twos;

pub use persist::{PersistMask, PersistTable};

/// The most real servers one service may have: table-driven schedulers store server
/// indices as `u16`.
pub const MAX_SERVERS: usize = u16::MAX as usize;

/// What a scheduler may look at when it picks a server for a new connection.
///
/// Addresses are given as 32-bit keys ([`addr_key`]): an IPv4 address is its own key
/// (the IPv4 path passes `u32::from(addr)`, nothing more per packet), an IPv6 address is
/// hashed into one ([`addr_key6`]). The hash schedulers (sh, dh, mh, conhash,
/// user-hash) hash the key, lblc/lblcr index their table by it; two IPv6 addresses with
/// one key are treated as one address (for lblc, one destination), which only the
/// distribution can notice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SchedInput {
    /// The client's address key (the packet's source).
    pub client: u32,
    /// The client's port.
    pub client_port: u16,
    /// The virtual service's address key (the packet's destination).
    pub vip: u32,
    /// The virtual service's port.
    pub vport: u16,
    /// The worker's clock, in nanoseconds (any monotonic origin).
    pub now_ns: u64,
}

/// Per-service tunables of the schedulers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchedParams {
    /// Size of the Maglev lookup table (mh); must be prime and at least the number of
    /// servers with a weight. Default 65537, as DPVS and the Maglev paper use.
    pub mh_table_size: u32,
    /// mh also hashes the client port (IPVS's `mh-port` flag), spreading one client's
    /// connections over servers. Default false: one client sticks to one server.
    pub mh_port: bool,
    /// lblc/lblcr entries unused for this long are forgotten, and an lblcr server set
    /// unchanged for this long drops its most loaded member. Default 24 h, like IPVS's
    /// `lblc_expiration` / `lblcr_expiration` sysctls.
    pub lblc_expire_ns: u64,
}

impl Default for SchedParams {
    fn default() -> Self {
        SchedParams {
            mh_table_size: maglev::DEFAULT_TABLE_SIZE,
            mh_port: false,
            lblc_expire_ns: 24 * 3600 * 1_000_000_000,
        }
    }
}

/// Why a scheduler could not be built. Messages are meant for the operator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchedError {
    /// The Maglev table size is not prime.
    #[error("mh table size {size} is not prime: use a prime such as 65537")]
    MhTableNotPrime {
        /// The size given.
        size: u32,
    },
    /// The Maglev table is smaller than the number of servers it must hold.
    #[error("mh table size {size} is smaller than the {servers} servers with a weight: use a prime well above the server count, such as 65537")]
    MhTableTooSmall {
        /// The size given.
        size: u32,
        /// Servers with a weight above 0.
        servers: usize,
    },
    /// The Maglev table would be too large.
    #[error("mh table size {size} is larger than the maximum {max}: use a prime such as 65537")]
    MhTableTooLarge {
        /// The size given.
        size: u32,
        /// The largest size accepted.
        max: u32,
    },
    /// The service has more servers than a scheduler can index.
    #[error("{count} real servers in one service: at most {max} are supported")]
    TooManyServers {
        /// Servers given.
        count: usize,
        /// The limit, [`MAX_SERVERS`].
        max: usize,
    },
}

/// The immutable lookup structure of one scheduler kind.
enum Table {
    /// The scheduler needs no shared table.
    None,
    /// sh and dh: 256 weighted buckets.
    Buckets(hash::Buckets),
    /// mh: the Maglev lookup table.
    Maglev(maglev::MaglevTable),
    /// conhash and user-hash: the consistent-hash ring.
    Ring(chash::Ring),
}

/// Immutable per-service lookup structures built by the control plane (Maglev table,
/// consistent-hash ring, sh/dh bucket tables) and shared by every worker through `Arc`.
pub struct SchedShared {
    kind: SchedulerKind,
    servers: usize,
    params: SchedParams,
    table: Table,
}

impl fmt::Debug for SchedShared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The tables are large; show their shape only.
        let table = match &self.table {
            Table::None => "none".to_string(),
            Table::Buckets(b) => format!("{} buckets", b.len()),
            Table::Maglev(m) => format!("maglev table of {}", m.len()),
            Table::Ring(r) => format!("ring of {} points", r.len()),
        };
        f.debug_struct("SchedShared")
            .field("kind", &self.kind)
            .field("servers", &self.servers)
            .field("params", &self.params)
            .field("table", &table)
            .finish()
    }
}

impl SchedShared {
    /// Builds the shared tables of a `kind` scheduler over `servers` (off the fast path;
    /// this allocates). Servers with weight 0 get no place in hash tables; a server that
    /// is merely overloaded keeps its place and is skipped at pick time, so it gets its
    /// flows back when it recovers.
    pub fn build(kind: SchedulerKind, servers: &[RealServer], params: &SchedParams) -> Result<Self, SchedError> {
        if servers.len() > MAX_SERVERS {
            return Err(SchedError::TooManyServers { count: servers.len(), max: MAX_SERVERS });
        }
        let table = match kind {
            SchedulerKind::Sh | SchedulerKind::Dh => Table::Buckets(hash::Buckets::build(servers)),
            SchedulerKind::Mh => Table::Maglev(maglev::MaglevTable::build(servers, params.mh_table_size)?),
            SchedulerKind::Conhash | SchedulerKind::UserHash => Table::Ring(chash::Ring::build(servers)),
            _ => Table::None,
        };
        Ok(SchedShared { kind, servers: servers.len(), params: *params, table })
    }

    /// The scheduler kind these tables are for.
    pub fn kind(&self) -> SchedulerKind {
        self.kind
    }

    /// How many servers the tables were built over.
    pub fn servers(&self) -> usize {
        self.servers
    }

    /// The parameters the tables were built with.
    pub fn params(&self) -> &SchedParams {
        &self.params
    }
}

/// One worker's scheduler for one service; per-worker mutable state (rr cursor, wrr
/// state, lblc table, RNG).
pub trait Scheduler: Send {
    /// Which algorithm this is.
    fn kind(&self) -> SchedulerKind;
    /// The index in `servers` of the server for a new connection, or `None` when no
    /// server may take one. `servers` must be the slice the scheduler was built from.
    fn pick(&mut self, servers: &[RealServer], input: &SchedInput) -> Option<usize>;
}

/// Builds worker `worker`'s (of `workers`) scheduler of a service (off the fast path;
/// this allocates).
///
/// `kind` should be `shared.kind()`. If it is not — a control-plane bug — the shared
/// tables decide: a hash scheduler cannot work without its table, so the scheduler is
/// built for `shared.kind()` and an error is logged.
pub fn new_scheduler(
    kind: SchedulerKind,
    shared: Arc<SchedShared>,
    servers: &[RealServer],
    worker: usize,
    workers: usize,
) -> Box<dyn Scheduler> {
    let kind = if kind == shared.kind {
        kind
    } else {
        tracing::error!(asked = %kind, built = %shared.kind, "scheduler kind differs from its shared tables; using the tables' kind");
        shared.kind
    };
    match kind {
        SchedulerKind::Rr => Box::new(rr::RoundRobin::new(servers, worker, workers)),
        SchedulerKind::Wrr => Box::new(rr::WeightedRoundRobin::new(servers, worker, workers)),
        SchedulerKind::Lc => Box::new(lc::LeastConn::new(lc::Mode::Lc)),
        SchedulerKind::Wlc => Box::new(lc::LeastConn::new(lc::Mode::Wlc)),
        SchedulerKind::Sed => Box::new(lc::LeastConn::new(lc::Mode::Sed)),
        SchedulerKind::Nq => Box::new(lc::LeastConn::new(lc::Mode::Nq)),
        SchedulerKind::Sessions => Box::new(lc::LeastConn::new(lc::Mode::Sessions)),
        SchedulerKind::Fo => Box::new(fo::Failover::new(fo::Mode::Fo)),
        SchedulerKind::Ovf => Box::new(fo::Failover::new(fo::Mode::Ovf)),
        SchedulerKind::Sh => Box::new(hash::BucketHash::new(shared, hash::Key::Source)),
        SchedulerKind::Dh => Box::new(hash::BucketHash::new(shared, hash::Key::Destination)),
        SchedulerKind::Lblc => Box::new(lblc::Lblc::new(shared.params.lblc_expire_ns)),
        SchedulerKind::Lblcr => Box::new(lblc::Lblcr::new(shared.params.lblc_expire_ns)),
        SchedulerKind::Mh => Box::new(maglev::Maglev::new(shared)),
        SchedulerKind::Twos => Box::new(twos::Twos::new(worker)),
        SchedulerKind::Conhash => Box::new(chash::ConsistentHash::new(shared, chash::Key::AddrPort)),
        SchedulerKind::UserHash => Box::new(chash::ConsistentHash::new(shared, chash::Key::Addr)),
    }
}

// ---- helpers shared by the algorithm modules ----

/// Whether `servers[i]` exists and may take a new connection.
#[inline]
fn usable(servers: &[RealServer], i: usize) -> bool {
    servers.get(i).is_some_and(RealServer::available)
}

/// IPVS's connection overhead, `ip_vs_dest_conn_overhead`: an active connection costs
/// 256 times an inactive one (a TIME_WAIT or half-open entry costs little).
#[inline]
fn conn_overhead(s: &RealServer) -> u64 {
    s.stats.active_conns().saturating_mul(256).saturating_add(s.stats.inactive_conns())
}

/// Whether load `a` per weight `wa` is strictly greater than `b` per `wb`, by
/// cross-multiplication (no division, no rounding), as IPVS compares.
#[inline]
fn per_weight_gt(a: u64, wa: u32, b: u64, wb: u32) -> bool {
    u128::from(a) * u128::from(wb) > u128::from(b) * u128::from(wa)
}

/// IPVS's weighted least-connection choice (`ip_vs_wlc_schedule`, also the fallback of
/// lblc and lblcr): the available server with the least overhead per weight, the first
/// one on ties.
fn wlc_pick(servers: &[RealServer]) -> Option<usize> {
    let mut best: Option<(usize, u64, u32)> = None;
    for (i, s) in servers.iter().enumerate() {
        if !s.available() {
            continue;
        }
        let oh = conn_overhead(s);
        match best {
            Some((_, boh, bw)) if !per_weight_gt(boh, bw, oh, s.weight) => {}
            _ => best = Some((i, oh, s.weight)),
        }
    }
    best.map(|(i, _, _)| i)
}

/// A 64-bit finaliser (MurmurHash3's fmix64): every input bit affects every output
/// bit, so consecutive client addresses spread evenly. Deterministic across workers and
/// runs, which sh/dh/mh/conhash need so that every worker maps a client alike.
#[inline]
pub(crate) fn mix64(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^= x >> 33;
    x
}

/// Hash of `x` under a domain-separating `seed` (different tables use different seeds so
/// that their hashes are independent).
#[inline]
fn hash_with(seed: u64, x: u64) -> u64 {
    mix64(x ^ mix64(seed))
}

/// Maps a 64-bit hash onto `0..n` without a division (Lemire's multiply-shift).
#[inline]
fn reduce(h: u64, n: usize) -> usize {
    ((u128::from(h) * n as u128) >> 64) as usize
}

/// `addr:port` as one integer, the identity of a server in hash tables (the IPv4
/// address itself, an IPv6 one by [`addr_key6`]).
#[inline]
fn server_key(s: &RealServer) -> u64 {
    (u64::from(addr_key(s.addr)) << 16) | u64::from(s.port)
}

/// The 32-bit scheduling key of an address ([`SchedInput`]): an IPv4 address as its
/// integer, an IPv6 one by [`addr_key6`].
#[inline]
pub fn addr_key(ip: IpAddr) -> u32 {
    match ip {
        IpAddr::V4(v) => u32::from(v),
        IpAddr::V6(v) => addr_key6(v),
    }
}

/// An IPv6 address hashed into a 32-bit scheduling key: both halves through one
/// 64×64→128 multiply with fixed constants (every node and every worker derives the same
/// key, as the consistent schedulers need), folded. Every bit of the address moves the
/// key.
#[inline]
pub fn addr_key6(ip: Ipv6Addr) -> u32 {
    let v = u128::from(ip);
    let (hi, lo) = ((v >> 64) as u64, v as u64);
    let p = u128::from(hi ^ 0x9e37_79b9_7f4a_7c15) * u128::from(lo ^ 0xc2b2_ae3d_27d4_eb4f);
    let h = (p as u64) ^ ((p >> 64) as u64);
    (h ^ (h >> 32)) as u32
}

/// Greatest common divisor.
fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
pub(crate) mod testutil {
    //! Server lists for the unit tests.
    use super::*;
    use crate::server::ServerStats;
    use crate::types::ForwardMode;

    /// Servers 10.20.0.(11+i):80 with the given weights and fresh counters.
    pub fn servers(weights: &[u32]) -> Vec<RealServer> {
        weights
            .iter()
            .enumerate()
            .map(|(i, &w)| RealServer {
                addr: std::net::Ipv4Addr::new(10, 20, (i / 200) as u8, 11 + (i % 200) as u8).into(),
                port: 80,
                weight: w,
                forward: ForwardMode::Nat,
                upper: 0,
                lower: 0,
                stats: Arc::new(ServerStats::new(2)),
            })
            .collect()
    }

    /// An input from client 10.(n>>16).(n>>8).n.
    pub fn input(n: u32) -> SchedInput {
        SchedInput {
            client: 0x0a00_0000 | (n & 0x00ff_ffff),
            client_port: 1024 + (n % 50_000) as u16,
            vip: u32::from(std::net::Ipv4Addr::new(10, 10, 0, 100)),
            vport: 80,
            now_ns: 0,
        }
    }

    /// Marks a server overloaded (upper threshold 1 reached by one connection).
    pub fn overload(s: &RealServer) {
        s.stats.conn_opened(0, true);
        assert!(s.stats.update_overload(1, 0));
    }

    /// A scheduler of `kind` for worker 0 of 1.
    pub fn sched(kind: SchedulerKind, servers: &[RealServer]) -> Box<dyn Scheduler> {
        let shared = Arc::new(SchedShared::build(kind, servers, &SchedParams::default()).unwrap());
        new_scheduler(kind, shared, servers, 0, 1)
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::*;
    use super::*;

    #[test]
    fn every_kind_builds_and_respects_availability() {
        for &kind in SchedulerKind::ALL {
            let servers = servers(&[0, 2, 1]);
            let mut s = sched(kind, &servers);
            assert_eq!(s.kind(), kind);
            for n in 0..200 {
                let p = s.pick(&servers, &input(n));
                assert!(matches!(p, Some(1) | Some(2)), "{kind}: {p:?}");
            }
            overload(&servers[1]);
            overload(&servers[2]);
            assert_eq!(s.pick(&servers, &input(7)), None, "{kind}: all unavailable");
            assert_eq!(s.pick(&[], &input(7)), None, "{kind}: no servers");
        }
    }

    #[test]
    fn mismatched_kind_uses_the_tables_kind() {
        let servers = servers(&[1, 1]);
        let shared = Arc::new(SchedShared::build(SchedulerKind::Mh, &servers, &SchedParams::default()).unwrap());
        let s = new_scheduler(SchedulerKind::Rr, shared, &servers, 0, 1);
        assert_eq!(s.kind(), SchedulerKind::Mh);
    }

    #[test]
    fn errors_speak_to_the_operator() {
        let servers = servers(&[1, 1]);
        let p = SchedParams { mh_table_size: 1000, ..SchedParams::default() };
        let e = SchedShared::build(SchedulerKind::Mh, &servers, &p).unwrap_err();
        assert_eq!(e.to_string(), "mh table size 1000 is not prime: use a prime such as 65537");
        let p = SchedParams { mh_table_size: 1, ..SchedParams::default() };
        assert!(SchedShared::build(SchedulerKind::Mh, &servers, &p).is_err());
        let p = SchedParams { mh_table_size: 2, ..SchedParams::default() };
        assert!(SchedShared::build(SchedulerKind::Mh, &servers, &p).is_ok());
        let three = self::servers(&[1, 1, 1]);
        assert_eq!(
            SchedShared::build(SchedulerKind::Mh, &three, &p).unwrap_err(),
            SchedError::MhTableTooSmall { size: 2, servers: 3 }
        );
        // Other kinds ignore the mh size.
        assert!(SchedShared::build(SchedulerKind::Rr, &three, &p).is_ok());
    }

    #[test]
    fn helpers() {
        assert_eq!(gcd(12, 18), 6);
        assert_eq!(gcd(0, 5), 5);
        assert!(per_weight_gt(3, 1, 5, 2));
        assert!(!per_weight_gt(2, 1, 4, 2));
        for n in [1usize, 3, 256, 65537] {
            assert!(reduce(u64::MAX, n) < n);
            assert_eq!(reduce(0, n), 0);
        }
    }
}
