//! The engine's side of connection sync ([`crate::sync`]): records out when a
//! connection is created or changes state, the periodic refresh, the bulk dump, and the
//! installation of the peer's records.
//!
//! IPv6 connections (the engine's `ConnTable6`) are synced as IPv4 ones are: a record when
//! one is created or changes state, the refresh and the dump walk both tables (IPv4's
//! slots, then IPv6's while it holds any, as one slot space), and an IPv6 record is
//! installed into the IPv6 table. Every mode the IPv6 data path forwards is synced: DR,
//! NAT66, IPv6-in-IPv6 tunnel and IPv6 Full-NAT, SYN-proxied NAT66 and Full-NAT66 ones
//! with their offsets as IPv4's (SYN proxy state on another mode's or a UDP record is
//! `Invalid`, one mixing the families `Family`). An IPv6 Full-NAT
//! record carries the IPv6 local address and port the flow holds; the peer reserves that
//! port in its IPv6 local-port allocator (`LocalPortAllocator6::reserve`, as IPv4's) so
//! that it never hands it out to a flow of its own, and releases it when the entry goes.
//! As IPv4's, the record of the client segment that carries the TOA for the last time
//! goes without `TOA_PENDING`.
//!
//! NAT64 connections (`nat64_engine`) are synced too: their record has the IPv6 client
//! and VIP and the IPv4 local address and server ([`ConnRecord::from_conn`] gives the
//! IPv4-mapped ones their own family), and the peer installs it into its IPv6 table in
//! the IPv4-mapped form, the IPv4 local port reserved in its IPv4 allocator (the one
//! NAT64 allocates from); a SYN-proxied NAT64 connection's record carries its
//! offsets as any proxied one's. That is the only mix of families a record may have: a
//! Full-NAT record with an IPv6 client and an IPv4 server *and* local address, of an
//! IPv6 service with that IPv4 server.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::LbEngine;
use crate::conn::{
    Conn, Conn6, ConnFlags, ConnId, ConnOf, ConnTable, ConnTable6, ConnTableOf, Direction, Family, FlowKey, FlowKey6,
    TableFull,
};
use crate::service::ServiceTable;
use crate::stats::WorkerCounters;
use crate::sync::{
    ConnRecord, SyncLink, SyncOptions, SyncRecord, DUMP_SLOTS_PER_POLL, INSTALL_PER_POLL, RECORD_FLAGS,
    REFRESH_SLOTS_MAX,
};
use crate::types::{ConnState, ForwardMode, L4Proto};

/// What an engine with sync keeps: its link and the cursors of its walks.
#[derive(Debug)]
pub(super) struct SyncState {
    link: SyncLink,
    /// Refresh period in ns (0: no refresh).
    refresh_ns: u64,
    /// Next slab slot of the refresh walk.
    refresh_cursor: usize,
    /// Time of the last refresh step (`None` before the first).
    refresh_last: Option<u64>,
    /// Slots owed to the refresh walk, times `refresh_ns` (the fraction carries over).
    refresh_owed: u128,
    /// The dump generation being walked (0: none).
    dump_gen: u64,
    /// Next slab slot of the dump walk.
    dump_cursor: usize,
}

/// Why a record from the peer was not installed; each is a worker counter
/// (`sync_refused_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SyncRefused {
    /// Addresses of both families in one record other than NAT64's (IPv4 server and
    /// local address of an IPv6 Full-NAT flow); an IPv6 tunnel flow to an IPv4 server
    /// included: the IPv6 data path tunnels IPv6 in IPv6 only.
    #[error("address family not forwarded in this mode")]
    Family,
    /// A state that does not fit the protocol (a TCP state for UDP, or the reverse), or
    /// SYN proxy state on a flow the proxy does not serve (UDP, DR, tunnel).
    #[error("state does not fit the protocol or forwarding mode")]
    Invalid,
    /// No service with the record's protocol, VIP and port here.
    #[error("no such service")]
    NoService,
    /// The service has no real server with the record's address and port.
    #[error("no such real server in the service")]
    NoServer,
    /// Full-NAT: the local address and port cannot be taken on this worker (not its
    /// port, unknown address, or in use).
    #[error("Full-NAT local port not available on this worker")]
    Port,
    /// The connection table is full.
    #[error("connection table full")]
    TableFull,
    /// Another connection holds the record's inbound or reply tuple.
    #[error("tuple held by another connection")]
    Clash,
}

/// What [`LbEngine::install`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Installed {
    /// A new entry was created.
    Created,
    /// An entry with the same inbound key was updated (state, flags, expiry).
    Updated,
}

fn v4(a: SocketAddr) -> Result<(Ipv4Addr, u16), SyncRefused> {
    match a.ip() {
        IpAddr::V4(ip) => Ok((ip, a.port())),
        IpAddr::V6(_) => Err(SyncRefused::Family),
    }
}

fn v6(a: SocketAddr) -> Result<(Ipv6Addr, u16), SyncRefused> {
    match a.ip() {
        IpAddr::V6(ip) => Ok((ip, a.port())),
        IpAddr::V4(_) => Err(SyncRefused::Family),
    }
}

/// A live entry of one of the engine's two tables.
#[derive(Clone, Copy)]
enum Slot<'a> {
    V4(&'a Conn),
    V6(&'a Conn6),
}

impl Slot<'_> {
    /// The live entry at `i` of the joint slot space: IPv4's slots `0..capacity`, then
    /// IPv6's.
    fn at<'a>(conns: &'a ConnTable, conns6: &'a ConnTable6, i: usize) -> Option<Slot<'a>> {
        match i.checked_sub(conns.capacity()) {
            None => conns.entry_at(i).map(|(_, c)| Slot::V4(c)),
            Some(j) => conns6.entry_at(j).map(|(_, c)| Slot::V6(c)),
        }
    }

    fn flags(self) -> ConnFlags {
        match self {
            Slot::V4(c) => c.flags,
            Slot::V6(c) => c.flags,
        }
    }

    fn record(self, now: u64) -> ConnRecord {
        match self {
            Slot::V4(c) => ConnRecord::from_conn(c, now),
            Slot::V6(c) => ConnRecord::from_conn(c, now),
        }
    }
}

impl LbEngine {
    /// Gives the engine its sync link ([`crate::sync::sync_links`]); see
    /// [`crate::worker::Worker::with_sync`]. Without it nothing is sent or installed.
    pub fn set_sync(&mut self, link: SyncLink, options: SyncOptions) {
        let refresh_ns = u64::try_from(options.refresh.as_nanos()).unwrap_or(u64::MAX);
        self.sync = Some(SyncState {
            link,
            refresh_ns,
            refresh_cursor: 0,
            refresh_last: None,
            refresh_owed: 0,
            dump_gen: 0,
            dump_cursor: 0,
        });
    }

    /// Whether the engine has a sync link.
    pub fn has_sync(&self) -> bool {
        self.sync.is_some()
    }

    /// Sends the record of connection `id` (created, or its state changed). Cold: called
    /// from the packet path only on those events; nothing without a link. `toa_done`: the
    /// packet being forwarded is the last to carry a Full-NAT TOA (its flag is cleared
    /// right after), so the record goes without `TOA_PENDING` and the peer does not add
    /// the option again after a takeover.
    #[cold]
    #[inline(never)]
    pub(super) fn sync_conn(&self, id: ConnId, now: u64, counters: &WorkerCounters, toa_done: bool) {
        let (Some(s), Some(c)) = (&self.sync, self.conns.get(id)) else { return };
        let mut rec = ConnRecord::from_conn(c, now);
        if toa_done {
            rec.flags &= !ConnFlags::TOA_PENDING.bits();
        }
        count(s.link.push(SyncRecord::Conn(rec)), counters);
    }

    /// Sends the record of IPv6 connection `id` (created, or its state changed); the
    /// IPv6 counterpart of [`Self::sync_conn`], `toa_done` as there (IPv6 Full-NAT's and
    /// NAT64's TOA). Cold, as it is.
    #[cold]
    #[inline(never)]
    pub(super) fn sync_conn6(&self, id: ConnId, now: u64, counters: &WorkerCounters, toa_done: bool) {
        let (Some(s), Some(c)) = (&self.sync, self.conns6.get(id)) else { return };
        let mut rec = ConnRecord::from_conn(c, now);
        if toa_done {
            rec.flags &= !ConnFlags::TOA_PENDING.bits();
        }
        count(s.link.push(SyncRecord::Conn(rec)), counters);
    }

    /// The sync work of one poll, bounded: installs up to [`INSTALL_PER_POLL`] of the
    /// peer's records, steps the refresh walk, and steps a requested dump. Nothing
    /// without a link.
    pub fn poll_sync(&mut self, now: u64, counters: &WorkerCounters) {
        if self.sync.is_none() {
            return;
        }
        for _ in 0..INSTALL_PER_POLL {
            let Some(rec) = self.sync.as_ref().and_then(|s| s.link.pop_install()) else { break };
            match self.install(&rec, now) {
                Ok(Installed::Created) => counters.sync_installed.inc(),
                Ok(Installed::Updated) => counters.sync_updated.inc(),
                Err(e) => refused(counters, e).inc(),
            }
        }
        let (conns, conns6, Some(s)) = (&self.conns, &self.conns6, self.sync.as_mut()) else { return };
        // Both tables' slots, IPv4's first ([`Slot::at`]); the IPv6 table's only while it
        // holds a connection, so that a node without IPv6 flows walks as it always did.
        let cap = conns.capacity() + if conns6.is_empty() { 0 } else { conns6.capacity() };
        // Refresh: the whole slab once per period, in steps proportional to the time
        // since the last one.
        if s.refresh_ns > 0 && cap > 0 {
            let last = *s.refresh_last.get_or_insert(now);
            s.refresh_last = Some(now);
            let period = u128::from(s.refresh_ns);
            s.refresh_owed = s.refresh_owed.saturating_add(u128::from(now.saturating_sub(last)) * cap as u128);
            let slots = usize::try_from(s.refresh_owed / period).unwrap_or(usize::MAX).min(REFRESH_SLOTS_MAX);
            s.refresh_owed = (s.refresh_owed - slots as u128 * period).min(cap as u128 * period);
            for _ in 0..slots {
                if let Some(c) = Slot::at(conns, conns6, s.refresh_cursor) {
                    if !c.flags().contains(ConnFlags::SYNCED) {
                        push(&s.link, c, now, counters);
                    }
                }
                s.refresh_cursor = if s.refresh_cursor + 1 >= cap { 0 } else { s.refresh_cursor + 1 };
            }
        }
        // Dump: a new generation (re)starts the walk; the ring is filled to half at most,
        // leaving room for live events.
        let requested = s.link.dump_requested();
        if requested > s.link.dump_done() && requested != s.dump_gen {
            s.dump_gen = requested;
            s.dump_cursor = 0;
        }
        if s.dump_gen == 0 {
            return;
        }
        let mut room = (s.link.out_capacity() / 2).saturating_sub(s.link.out_len());
        let mut examined = 0;
        while s.dump_cursor < cap && examined < DUMP_SLOTS_PER_POLL {
            if let Some(c) = Slot::at(conns, conns6, s.dump_cursor) {
                if room == 0 {
                    break;
                }
                room -= 1;
                push(&s.link, c, now, counters);
            }
            s.dump_cursor += 1;
            examined += 1;
        }
        if s.dump_cursor >= cap {
            s.link.set_dump_done(s.dump_gen);
            s.dump_gen = 0;
        }
    }

    /// Installs a connection record from the peer (see [`crate::sync`]): an entry with
    /// the same inbound key is updated (state, flags, expiry; the server's active and
    /// inactive counts move as on a state change), else a new entry is created as a
    /// scheduled connection would be (server and service counts, stable ids, reply key
    /// indexed for NAT and Full-NAT, Full-NAT local port reserved), expiring after the
    /// record's `expires_in_ms` from `now`, flagged [`ConnFlags::SYNCED`]. Never
    /// schedules, never sends a packet. An IPv6 record (its client's family says) goes to
    /// the IPv6 table.
    pub fn install(&mut self, rec: &ConnRecord, now: u64) -> Result<Installed, SyncRefused> {
        match rec.client {
            SocketAddr::V4(_) => self.install4(rec, now),
            SocketAddr::V6(_) => self.install6(rec, now),
        }
    }

    /// [`Self::install`] of an IPv4 record.
    fn install4(&mut self, rec: &ConnRecord, now: u64) -> Result<Installed, SyncRefused> {
        let (client, cport) = v4(rec.client)?;
        let (vip, vport) = v4(rec.vip)?;
        let (server_ip, sport) = v4(rec.server)?;
        let local = v4(rec.local)?;
        match (rec.proto, rec.state) {
            (L4Proto::Tcp, ConnState::Tcp(_)) | (L4Proto::Udp, ConnState::Udp) => {}
            _ => return Err(SyncRefused::Invalid),
        }
        // The SYN proxy serves TCP over NAT and Full-NAT only.
        if rec.synproxy.is_some()
            && (rec.proto != L4Proto::Tcp || !matches!(rec.forward, ForwardMode::Nat | ForwardMode::FullNat))
        {
            return Err(SyncRefused::Invalid);
        }
        let snap = std::sync::Arc::clone(&self.snap);
        let (svc_idx, svc) = snap.lookup_v4(rec.proto, vip, vport).ok_or(SyncRefused::NoService)?;
        let j = svc
            .servers
            .iter()
            .position(|s| s.addr == std::net::IpAddr::V4(server_ip) && s.port == sport)
            .ok_or(SyncRefused::NoServer)?;
        let server = &svc.servers[j];
        let (Some(service_id), Some(server_id)) = (snap.service_id(svc_idx), snap.server_id(svc_idx, j)) else {
            return Err(SyncRefused::NoServer);
        };
        let key = FlowKey { proto: rec.proto, src: client, sport: cport, dst: vip, dport: vport };
        let flags = ConnFlags::from_bits(rec.flags & RECORD_FLAGS.bits()) | ConnFlags::SYNCED | proxy_flags(rec);
        let left_ns = u64::from(rec.expires_in_ms) * 1_000_000;
        match self.conns.lookup(&key) {
            Some((id, Direction::Inbound)) => return update(&mut self.conns, id, rec, flags, now, &snap, self.worker),
            Some((_, Direction::Reply)) => return Err(SyncRefused::Clash),
            None => {}
        }
        let (local, lport) = if rec.forward == ForwardMode::FullNat {
            if !self.lports.reserve(local.0, local.1) {
                return Err(SyncRefused::Port);
            }
            local
        } else {
            (client, cport)
        };
        let mut conn =
            Conn::new(key, rec.forward, server_ip, sport).with_local(local, lport).with_service(service_id, server_id);
        conn.state = rec.state;
        conn.flags = flags;
        set_proxy_state(&mut conn, rec, false);
        match self.conns.insert(conn, now) {
            Ok(id) => {
                self.conns.set_expires_in(id, now, left_ns);
                let active = rec.state.is_active();
                server.stats.conn_opened(self.worker, active);
                svc.stats.conn_opened(self.worker, active);
                server.stats.update_overload(server.upper, server.lower);
                Ok(Installed::Created)
            }
            Err(e) => {
                if rec.forward == ForwardMode::FullNat {
                    self.lports.release(local, lport);
                }
                Err(match e {
                    TableFull::Full => SyncRefused::TableFull,
                    TableFull::InboundKeyExists | TableFull::ReplyKeyExists => SyncRefused::Clash,
                })
            }
        }
    }
}

impl LbEngine {
    /// [`Self::install`] of an IPv6 record: into the IPv6 table, in any mode the IPv6 data
    /// path forwards (DR, NAT66, tunnel, Full-NAT with its local port reserved here).
    fn install6(&mut self, rec: &ConnRecord, now: u64) -> Result<Installed, SyncRefused> {
        let (client, cport) = v6(rec.client)?;
        let (vip, vport) = v6(rec.vip)?;
        // NAT64: an IPv4 server side, Full-NAT only, kept IPv4-mapped in the IPv6 table.
        let nat64 = match (rec.server, rec.local) {
            (SocketAddr::V4(s), SocketAddr::V4(l)) if rec.forward == ForwardMode::FullNat => Some((*s.ip(), *l.ip())),
            _ => None,
        };
        let (server_ip, sport) = match nat64 {
            Some((s, _)) => (s.to_ipv6_mapped(), rec.server.port()),
            None => v6(rec.server)?,
        };
        let local = match nat64 {
            Some((_, l)) => (l.to_ipv6_mapped(), rec.local.port()),
            None => v6(rec.local)?,
        };
        // The service lists the server by its own family.
        let server_addr = nat64.map_or(IpAddr::V6(server_ip), |(s, _)| IpAddr::V4(s));
        match (rec.proto, rec.state) {
            (L4Proto::Tcp, ConnState::Tcp(_)) | (L4Proto::Udp, ConnState::Udp) => {}
            _ => return Err(SyncRefused::Invalid),
        }
        // The SYN proxy serves TCP over NAT66, Full-NAT66 and NAT64 (Full-NAT) only.
        if rec.synproxy.is_some()
            && (rec.proto != L4Proto::Tcp || !matches!(rec.forward, ForwardMode::Nat | ForwardMode::FullNat))
        {
            return Err(SyncRefused::Invalid);
        }
        let snap = std::sync::Arc::clone(&self.snap);
        let (svc_idx, svc) = snap.lookup_v6(rec.proto, vip, vport).ok_or(SyncRefused::NoService)?;
        let j =
            svc.servers.iter().position(|s| s.addr == server_addr && s.port == sport).ok_or(SyncRefused::NoServer)?;
        let server = &svc.servers[j];
        let (Some(service_id), Some(server_id)) = (snap.service_id(svc_idx), snap.server_id(svc_idx, j)) else {
            return Err(SyncRefused::NoServer);
        };
        let key = FlowKey6 { proto: rec.proto, src: client, sport: cport, dst: vip, dport: vport };
        // The TOA is a Full-NAT option: another mode's record never asks for one.
        let toa = if rec.forward == ForwardMode::FullNat { ConnFlags::TOA_PENDING.bits() } else { 0 };
        let wanted = RECORD_FLAGS.bits() & (!ConnFlags::TOA_PENDING.bits() | toa);
        let flags = ConnFlags::from_bits(rec.flags & wanted) | ConnFlags::SYNCED | proxy_flags(rec);
        match self.conns6.lookup(&key) {
            Some((id, Direction::Inbound)) => return update(&mut self.conns6, id, rec, flags, now, &snap, self.worker),
            Some((_, Direction::Reply)) => return Err(SyncRefused::Clash),
            None => {}
        }
        // Full-NAT: the peer's local address and port, taken here so that this node's
        // allocator never hands them out (`Port` when they are not this worker's to take).
        // NAT64: the IPv4 local port, from the IPv4 allocator.
        let reserved = match nat64 {
            Some((_, l)) => self.lports.reserve(l, local.1),
            None if rec.forward == ForwardMode::FullNat => self.lports6.reserve(local.0, local.1),
            None => true,
        };
        if !reserved {
            return Err(SyncRefused::Port);
        }
        let (local, lport) = if rec.forward == ForwardMode::FullNat { local } else { (client, cport) };
        let mut conn =
            Conn6::new(key, rec.forward, server_ip, sport).with_local(local, lport).with_service(service_id, server_id);
        conn.state = rec.state;
        conn.flags = flags;
        set_proxy_state(&mut conn, rec, false);
        let id = self.conns6.insert(conn, now).map_err(|e| {
            match nat64 {
                Some((_, l)) => {
                    self.lports.release(l, lport);
                }
                None if rec.forward == ForwardMode::FullNat => {
                    self.lports6.release(local, lport);
                }
                None => {}
            }
            match e {
                TableFull::Full => SyncRefused::TableFull,
                TableFull::InboundKeyExists | TableFull::ReplyKeyExists => SyncRefused::Clash,
            }
        })?;
        self.conns6.set_expires_in(id, now, u64::from(rec.expires_in_ms) * 1_000_000);
        let active = rec.state.is_active();
        server.stats.conn_opened(self.worker, active);
        svc.stats.conn_opened(self.worker, active);
        server.stats.update_overload(server.upper, server.lower);
        Ok(Installed::Created)
    }
}

/// Updates entry `id` of `table` (of either family) from `rec`: state, flags (`flags`,
/// the record's plus [`ConnFlags::SYNCED`]), SYN proxy state, expiry; the server's and
/// service's active and inactive counts move as on a state change.
fn update<F: Family>(
    table: &mut ConnTableOf<F>,
    id: ConnId,
    rec: &ConnRecord,
    flags: ConnFlags,
    now: u64,
    snap: &ServiceTable,
    worker: usize,
) -> Result<Installed, SyncRefused> {
    let Some(from) = table.get(id).map(|c| c.state) else { return Err(SyncRefused::Clash) };
    table.set_state(id, rec.state);
    let Some(c) = table.get_mut(id) else { return Err(SyncRefused::Clash) };
    let was_proxied = c.flags.contains(ConnFlags::SYNPROXY);
    c.flags = ConnFlags::from_bits((c.flags.bits() & !SYNCED_FLAGS.bits()) | flags.bits());
    set_proxy_state(c, rec, was_proxied);
    let (svc_id, srv_id) = (c.service_id, c.server_id);
    table.set_expires_in(id, now, u64::from(rec.expires_in_ms) * 1_000_000);
    if from.is_active() != rec.state.is_active() {
        let active = rec.state.is_active();
        if let Some((_, s)) = snap.by_server_id(srv_id) {
            s.stats.conn_moved(worker, active);
        }
        if let Some(s) = snap.by_service_id(svc_id) {
            s.stats.conn_moved(worker, active);
        }
    }
    Ok(Installed::Updated)
}

/// Pushes the record of `c` (a SYN-proxied one with its translation state), counting it
/// sent or lost.
fn push(link: &SyncLink, c: Slot<'_>, now: u64, counters: &WorkerCounters) {
    count(link.push(SyncRecord::Conn(c.record(now))), counters);
}

/// The flag bits a record sets or clears on the entry it installs: its own
/// ([`RECORD_FLAGS`]) and the SYN proxy's, which its `synproxy` field stands for.
const SYNCED_FLAGS: ConnFlags =
    ConnFlags::from_bits(RECORD_FLAGS.bits() | ConnFlags::SYNPROXY.bits() | ConnFlags::SYNPROXY_PENDING.bits());

/// The SYN proxy flags of the entry `rec` describes.
fn proxy_flags(rec: &ConnRecord) -> ConnFlags {
    match rec.synproxy {
        Some(p) if p.pending => ConnFlags::SYNPROXY | ConnFlags::SYNPROXY_PENDING,
        Some(_) => ConnFlags::SYNPROXY,
        None => ConnFlags::NONE,
    }
}

/// Gives `c` the SYN proxy's translation state of `rec`; an entry that `was_proxied` and
/// is no longer gets an empty next-hop cache where it kept its offsets (the engine fills
/// the cache on the next packet).
fn set_proxy_state<F: Family>(c: &mut ConnOf<F>, rec: &ConnRecord, was_proxied: bool) {
    match rec.synproxy {
        Some(p) => {
            c.set_synproxy_offsets(p.seq_offset, p.ts_offset);
            c.synproxy_ws = p.window;
        }
        None if was_proxied => {
            c.hop = Default::default();
            c.synproxy_ws = 0;
        }
        None => {}
    }
}

/// Counts a record queued (`sent`) or lost.
fn count(sent: bool, counters: &WorkerCounters) {
    if sent {
        counters.sync_tx.inc();
    } else {
        counters.sync_lost.inc();
    }
}

/// The counter of a refusal.
fn refused(counters: &WorkerCounters, e: SyncRefused) -> &crate::stats::Counter {
    match e {
        SyncRefused::Family => &counters.sync_refused_family,
        SyncRefused::Invalid => &counters.sync_refused_invalid,
        SyncRefused::NoService => &counters.sync_refused_no_service,
        SyncRefused::NoServer => &counters.sync_refused_no_server,
        SyncRefused::Port => &counters.sync_refused_port,
        SyncRefused::TableFull => &counters.sync_refused_table_full,
        SyncRefused::Clash => &counters.sync_refused_clash,
    }
}
