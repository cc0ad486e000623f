//! The sync thread: connection sync with the peer (`[ha] sync_listen`, `sync_peer`,
//! `key_file`), the thin I/O shell around the protocol's sans-IO [`SyncLink`]
//! (`rvs_sync`, whose README has the wire format).
//!
//! One std thread owns a UDP socket bound to `sync_listen`, the link, and the control
//! plane's end of the workers' sync rings ([`SyncEnd`]). Each turn it:
//!
//! 1. reads every datagram waiting on the socket; one not from `sync_peer` is counted
//!    (`stranger`) and dropped unread; the others go to the link, which authenticates
//!    them (HMAC-SHA256), refuses replays and counts what it refuses;
//! 2. installs what the link delivered: a connection record goes to the worker that owns
//!    its flow (the data path's own ownership function; a full ring is counted and the
//!    next refresh repairs it), a persistence record straight into the service's shared
//!    persistence table. Nothing is installed while the peer runs another number of
//!    workers: Full-NAT's local ports are split between workers, so a flow could not be
//!    held by the same worker on both nodes; the status says why;
//! 3. when the peer asks for a bulk resync, asks every worker to dump its table and
//!    queues every persistence entry; once every worker has finished and its ring is
//!    drained, tells the link the bulk stream has ended;
//! 4. moves the workers' records (created, changed, refreshed, dumped) into the link while
//!    its send window has room: the window, opened by the peer's acknowledgements, paces a
//!    bulk stream, and records wait in the workers' rings meanwhile (a full ring counts a
//!    lost record on the worker; the next refresh repairs it);
//! 5. runs the link's timers and sends what it has to send (batches, retransmissions,
//!    acknowledgements, NACKs, heartbeats);
//! 6. publishes [`SyncStatus`] on the HA board (`sync`), with the preemption hold the
//!    VRRP thread reads there.
//!
//! At start the node asks the peer for a bulk resync. Until it is in sync (the peer's
//! bulk stream ended and no gap is outstanding) it holds VRRP preemption back, at most
//! `failback_sync_limit` (then it logs that it preempts without a complete resync).
//!
//! The workers are never blocked by any of this: they only push into and pop from
//! bounded rings. Neither can the peer: everything it sends is bounded by the link.

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use rvs_dataplane::sched::persist::persist_now_s;
use rvs_dataplane::service::{PersistRefused, SharedServices};
use rvs_dataplane::sync::{owner_of, PushError, SyncEnd, SyncRecord};
use rvs_sync::{LinkConfig, LinkStatus, SyncLink};

use super::run::HaBoard;
use super::view::SyncStatus;
use crate::config::SyncConfig;

/// Longest sleep between turns (the socket is read with this timeout).
pub const TURN: Duration = Duration::from_millis(1);
/// Records taken from the workers' rings per turn at most.
const RECORDS_PER_TURN: usize = 4096;
/// Records taken from the rings between two checks of the link's window (the window may
/// be overrun by this many records at most, which the resend queue absorbs).
const POP_BATCH: usize = 64;
/// Datagrams read per turn at most.
const DATAGRAMS_PER_TURN: usize = 256;
/// How often the status is published.
const PUBLISH_EVERY: Duration = Duration::from_millis(100);

/// The sync thread's state.
pub struct Shell {
    config: SyncConfig,
    socket: UdpSocket,
    link: SyncLink,
    end: SyncEnd,
    services: SharedServices,
    workers: usize,
    /// The workers' timebase (their clock is nanoseconds since it); persistence tables
    /// count in its seconds.
    clock_epoch: Instant,
    started: Instant,
    epoch: u64,
    /// The dump generation being streamed to the peer, if any.
    bulk: Option<u64>,
    bulks_sent: u64,
    /// The workers' rings were empty at the last look.
    drained: bool,
    /// Persistence records waiting for room in the link (bulk and refresh).
    persist_backlog: Vec<SyncRecord>,
    next_persist_refresh: Instant,
    received: Vec<SyncRecord>,
    strangers: u64,
    installed_persist: u64,
    refused: BTreeMap<&'static str, u64>,
    held_logged: bool,
    last_publish: Option<Instant>,
}

/// Reads the key file (its permissions were checked with the config): its whole content,
/// surrounding whitespace trimmed, is the key.
fn read_key(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    let text = std::fs::read(path).with_context(|| format!("cannot read the sync key file {}", path.display()))?;
    let key = text.trim_ascii().to_vec();
    anyhow::ensure!(!key.is_empty(), "the sync key file {} is empty", path.display());
    Ok(key)
}

impl Shell {
    /// Binds `config.listen` and sets up the link; `workers` is this node's worker count.
    pub fn new(
        config: SyncConfig,
        end: SyncEnd,
        services: SharedServices,
        workers: usize,
        clock_epoch: Instant,
    ) -> anyhow::Result<Shell> {
        let key = read_key(&config.key_file)?;
        let socket = UdpSocket::bind(config.listen).with_context(|| {
            format!("[ha] sync_listen {}: cannot bind (is the address on a local interface?)", config.listen)
        })?;
        socket.set_read_timeout(Some(TURN)).context("sync socket: set a read timeout")?;
        let epoch = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64);
        let now = Instant::now();
        let link_config = LinkConfig::new(key, epoch, u16::try_from(workers).unwrap_or(u16::MAX));
        let mut link = SyncLink::new(link_config, now);
        link.request_bulk();
        let next_persist_refresh = now + config.refresh;
        Ok(Shell {
            config,
            socket,
            link,
            end,
            services,
            workers,
            clock_epoch,
            started: now,
            epoch,
            bulk: None,
            bulks_sent: 0,
            drained: false,
            persist_backlog: Vec::new(),
            next_persist_refresh,
            received: Vec::new(),
            strangers: 0,
            installed_persist: 0,
            refused: BTreeMap::new(),
            held_logged: false,
            last_publish: None,
        })
    }

    /// One turn (see the module docs).
    pub fn turn(&mut self, board: &HaBoard) {
        let now = Instant::now();
        self.receive(now);
        let status = self.link.status(now);
        self.install(&status);
        if self.link.take_bulk_request() {
            self.bulk = Some(self.end.request_dump());
            self.persist_backlog.extend(self.persist_records());
            tracing::info!(peer = %self.config.peer, "sync: the peer asked for a bulk resync; streaming the table");
        }
        if now >= self.next_persist_refresh {
            self.next_persist_refresh = now + self.config.refresh;
            self.persist_backlog.extend(self.persist_records());
        }
        // Whether the dump had finished is read before the rings are drained: a worker marks
        // its dump finished after pushing its last record, so a drain that follows the read
        // has taken every dumped record, and BULK_END goes after all of them.
        let dumped = self.bulk.is_some_and(|g| self.end.dump_finished(g));
        self.forward_records();
        if dumped && self.drained && self.persist_backlog.is_empty() {
            let generation = self.bulk.take();
            self.link.bulk_end();
            self.bulks_sent += 1;
            tracing::info!(peer = %self.config.peer, ?generation, "sync: bulk resync streamed");
        }
        self.link.flush(now);
        self.link.tick(now);
        while let Some(datagram) = self.link.poll_transmit(now) {
            if let Err(e) = self.socket.send_to(&datagram, self.config.peer) {
                tracing::debug!(peer = %self.config.peer, error = %e, "sync: send failed");
                break;
            }
        }
        if self.last_publish.is_none_or(|t| now.duration_since(t) >= PUBLISH_EVERY) {
            self.last_publish = Some(now);
            let status = self.status(now);
            board.lock().unwrap_or_else(|p| p.into_inner()).sync = Some(status);
        }
    }

    /// Reads waiting datagrams (the first one waits up to [`TURN`]).
    fn receive(&mut self, now: Instant) {
        let mut buf = [0u8; 65536];
        for _ in 0..DATAGRAMS_PER_TURN {
            match self.socket.recv_from(&mut buf) {
                Ok((n, from)) => {
                    if from != self.config.peer {
                        self.strangers += 1;
                        continue;
                    }
                    // Refusals are counted by the link.
                    let _ = self.link.handle_datagram(&buf[..n], now);
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
                Err(e) => {
                    tracing::debug!(error = %e, "sync: receive failed");
                    break;
                }
            }
            // Only the first read waits.
            let _ = self.socket.set_nonblocking(true);
        }
        let _ = self.socket.set_nonblocking(false);
    }

    /// Why records from the peer cannot be installed, if they cannot.
    fn refusal(&self, status: &LinkStatus) -> Option<String> {
        let peer = status.peer_workers?;
        (usize::from(peer) != self.workers).then(|| {
            format!(
                "the peer runs {peer} workers and this node {}: a flow's owner (and its Full-NAT local ports) \
                 would differ; run both nodes with the same [dataplane] workers",
                self.workers
            )
        })
    }

    /// Installs what the link delivered.
    fn install(&mut self, status: &LinkStatus) {
        self.received.clear();
        self.link.drain_received(&mut self.received);
        if self.received.is_empty() {
            return;
        }
        if self.refusal(status).is_some() {
            *self.refused.entry("workers").or_default() += self.received.len() as u64;
            return;
        }
        let table = self.services.load();
        for rec in &self.received {
            match rec {
                SyncRecord::Conn(c) => match self.end.push(owner_of(c, self.workers), *c) {
                    Ok(()) => {}
                    Err(PushError::Full) => *self.refused.entry("ring_full").or_default() += 1,
                    Err(PushError::NoWorker) => *self.refused.entry("no_worker").or_default() += 1,
                },
                SyncRecord::Persist(p) => match table.install_persist(p, self.persist_now()) {
                    Ok(()) => self.installed_persist += 1,
                    Err(why) => *self.refused.entry(persist_refusal(why)).or_default() += 1,
                },
            }
        }
    }

    /// The persistence tables' clock: the workers' (seconds since their epoch).
    fn persist_now(&self) -> u32 {
        persist_now_s(u64::try_from(self.clock_epoch.elapsed().as_nanos()).unwrap_or(u64::MAX))
    }

    /// Every live persistence entry of every persistent service.
    fn persist_records(&self) -> Vec<SyncRecord> {
        let table = self.services.load();
        let now_s = self.persist_now();
        table.services().iter().flat_map(|s| s.persist_records(now_s)).map(SyncRecord::Persist).collect()
    }

    /// Moves records into the link while its window has room: persistence backlog first,
    /// then the workers' rings. Sets `drained` when the rings were found empty.
    fn forward_records(&mut self) {
        let mut moved = 0;
        while moved < RECORDS_PER_TURN && self.link.can_queue() {
            let Some(rec) = self.persist_backlog.pop() else { break };
            self.link.queue(rec);
            moved += 1;
        }
        self.drained = false;
        while moved < RECORDS_PER_TURN && self.link.can_queue() {
            let link = &mut self.link;
            let n = self.end.pop(POP_BATCH.min(RECORDS_PER_TURN - moved), |_, rec| link.queue(rec));
            moved += n;
            if n == 0 {
                self.drained = true;
                break;
            }
        }
    }

    /// The preemption hold: while not in sync, for at most `failback_sync_limit`.
    fn hold(&mut self, status: &LinkStatus, now: Instant) -> Option<String> {
        if status.in_sync {
            return None;
        }
        if now.duration_since(self.started) >= self.config.failback_limit {
            if !self.held_logged {
                self.held_logged = true;
                tracing::warn!(
                    limit = %humantime::format_duration(self.config.failback_limit),
                    "sync: no complete bulk resync from the peer within failback_sync_limit; VRRP may preempt \
                     without it (connections the peer holds may be lost)"
                );
            }
            return None;
        }
        Some(format!("waiting for the bulk resync from {} (connection sync)", self.config.peer))
    }

    fn status(&mut self, now: Instant) -> SyncStatus {
        let s = self.link.status(now);
        let hold_preempt = self.hold(&s, now);
        let st = &s.stats;
        let mut records: BTreeMap<String, u64> = [
            ("sent", st.records_sent),
            ("received", st.records_received),
            ("resent", st.records_resent),
            ("lost_sent", st.lost_sent),
            ("lost_received", st.lost_received),
            ("persist_installed", self.installed_persist),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        for (why, n) in &self.refused {
            records.insert(format!("refused_{why}"), *n);
        }
        let rejected: BTreeMap<String, u64> = [
            ("bad_hmac", st.bad_hmac),
            ("replay", st.replay),
            ("malformed", st.malformed),
            ("old_epoch", st.old_epoch),
            ("stranger", self.strangers),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        SyncStatus {
            listen: self.config.listen.to_string(),
            peer: self.config.peer.to_string(),
            connected: s.connected,
            in_sync: s.in_sync,
            epoch: self.epoch,
            peer_epoch: s.peer_epoch,
            workers: self.workers as u16,
            peer_workers: s.peer_workers,
            refused: self.refusal(&s),
            hold_preempt,
            bulk_received: s.bulk_receiving.or(s.last_bulk_streamed.map(u64::from)).unwrap_or(0),
            bulk_sending: self.bulk.is_some(),
            bulks_sent: self.bulks_sent,
            lag_records: s.lag_records as u64,
            lag_ms: s.lag_ms,
            records,
            rejected,
        }
    }
}

/// A persistence refusal's counter name.
fn persist_refusal(why: PersistRefused) -> &'static str {
    match why {
        PersistRefused::Family => "persist_family",
        PersistRefused::NoService => "persist_no_service",
        PersistRefused::NotPersistent => "persist_not_persistent",
        PersistRefused::NoServer => "persist_no_server",
        PersistRefused::NotStored => "persist_not_stored",
    }
}

/// Starts the sync thread; it runs until `stop`.
pub fn spawn(mut shell: Shell, board: HaBoard, stop: Arc<AtomicBool>) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new().name("rvs-sync".into()).spawn(move || {
        tracing::info!(listen = %shell.config.listen, peer = %shell.config.peer, "sync: started; asking the peer for a bulk resync");
        while !stop.load(Ordering::Relaxed) {
            shell.turn(&board);
        }
    })
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, SocketAddr};
    use std::sync::Mutex;

    use rvs_dataplane::service::{share, ServiceTable};
    use rvs_dataplane::sync::{sync_links, ConnRecord, SyncLink as WorkerLink};
    use rvs_dataplane::types::{ConnState, ForwardMode, L4Proto, TcpState};

    use super::*;
    use crate::ha::view::HaStatus;

    const KEY: &str = "a test key for the sync thread";

    fn record(cport: u16) -> ConnRecord {
        let a = |x: u8| Ipv4Addr::new(10, 10, 0, x).into();
        ConnRecord {
            proto: L4Proto::Tcp,
            forward: ForwardMode::Nat,
            client: SocketAddr::new(a(2), cport),
            vip: SocketAddr::new(a(100), 80),
            local: SocketAddr::new(a(2), cport),
            server: SocketAddr::new(Ipv4Addr::new(10, 20, 0, 11).into(), 80),
            state: ConnState::Tcp(TcpState::Established),
            flags: 0,
            expires_in_ms: 900_000,
            synproxy: None,
        }
    }

    /// A shell on loopback with `workers` workers, and a peer link with `peer_workers`
    /// on its own socket.
    fn pair(workers: usize, peer_workers: u16) -> (Shell, Vec<WorkerLink>, SyncLink, UdpSocket, HaBoard) {
        let key_file =
            std::env::temp_dir().join(format!("rvs-sync-test-{}-{workers}-{peer_workers}", std::process::id()));
        std::fs::write(&key_file, KEY).unwrap();
        let peer_socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        peer_socket.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        let config = SyncConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            peer: peer_socket.local_addr().unwrap(),
            key_file: key_file.clone(),
            refresh: Duration::from_secs(30),
            failback_limit: Duration::from_secs(30),
        };
        let (links, end) = sync_links(workers, 64);
        let shell = Shell::new(config, end, share(ServiceTable::empty()), workers, Instant::now()).unwrap();
        std::fs::remove_file(key_file).unwrap();
        let peer = SyncLink::new(LinkConfig::new(KEY.as_bytes().to_vec(), 1, peer_workers), Instant::now());
        (shell, links, peer, peer_socket, Arc::new(Mutex::new(HaStatus::default())))
    }

    /// Runs the shell and the peer for a few turns, exchanging datagrams over loopback;
    /// the workers (`links`) have empty tables: they finish every dump at once.
    fn exchange(shell: &mut Shell, links: &[WorkerLink], peer: &mut SyncLink, socket: &UdpSocket, board: &HaBoard) {
        let to = shell.socket.local_addr().unwrap();
        for _ in 0..20 {
            for l in links {
                l.set_dump_done(l.dump_requested());
            }
            let now = Instant::now();
            peer.flush(now);
            peer.tick(now);
            while let Some(d) = peer.poll_transmit(now) {
                socket.send_to(&d, to).unwrap();
            }
            shell.turn(board);
            let mut buf = [0u8; 2048];
            while let Ok((n, _)) = socket.recv_from(&mut buf) {
                let _ = peer.handle_datagram(&buf[..n], Instant::now());
            }
        }
        shell.last_publish = None;
        shell.turn(board);
    }

    /// A record from a peer with as many workers lands in the owning worker's ring; the
    /// peer's bulk request is answered with an empty table, so the peer is in sync.
    #[test]
    fn records_reach_the_owning_worker() {
        let (mut shell, links, mut peer, socket, board) = pair(2, 2);
        peer.request_bulk();
        for cport in 40000..40010 {
            peer.queue(SyncRecord::Conn(record(cport)));
        }
        exchange(&mut shell, &links, &mut peer, &socket, &board);
        let mut got = 0;
        for (w, link) in links.iter().enumerate() {
            while let Some(rec) = link.pop_install() {
                assert_eq!(owner_of(&rec, 2), w, "{rec:?} in worker {w}'s ring");
                got += 1;
            }
        }
        assert_eq!(got, 10, "every record installed once");
        assert!(peer.status(Instant::now()).in_sync, "the peer got our (empty) bulk");
        let status = board.lock().unwrap().sync.clone().expect("published");
        assert!(status.connected && status.refused.is_none(), "{status:?}");
        assert_eq!(status.records.get("received"), Some(&10), "{status:?}");
    }

    /// A peer with another worker count: nothing is installed, the refusal is counted and
    /// the status says why.
    #[test]
    fn a_peer_with_another_worker_count_is_refused() {
        let (mut shell, links, mut peer, socket, board) = pair(2, 1);
        for cport in 40000..40004 {
            peer.queue(SyncRecord::Conn(record(cport)));
        }
        exchange(&mut shell, &links, &mut peer, &socket, &board);
        assert!(links.iter().all(|l| l.pop_install().is_none()), "nothing installed");
        let status = board.lock().unwrap().sync.clone().expect("published");
        assert!(status.refused.as_deref().is_some_and(|r| r.contains("1 workers and this node 2")), "{status:?}");
        assert_eq!(status.records.get("refused_workers"), Some(&4), "{status:?}");
    }

    /// A datagram from anyone but the peer is dropped unread and counted.
    #[test]
    fn strangers_are_counted_and_ignored() {
        let (mut shell, links, _peer, _socket, board) = pair(1, 1);
        let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut forger = SyncLink::new(LinkConfig::new(KEY.as_bytes().to_vec(), 5, 1), Instant::now());
        forger.queue(SyncRecord::Conn(record(40000)));
        forger.flush(Instant::now());
        let d = forger.poll_transmit(Instant::now()).expect("a datagram");
        let to = shell.socket.local_addr().unwrap();
        stranger.send_to(&d, to).unwrap();
        stranger.send_to(b"junk", to).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        shell.turn(&board);
        assert!(links[0].pop_install().is_none(), "a well-signed record from a stranger is not installed");
        shell.last_publish = None;
        shell.turn(&board);
        let status = board.lock().unwrap().sync.clone().unwrap();
        assert_eq!(status.rejected.get("stranger"), Some(&2), "{status:?}");
    }
}
