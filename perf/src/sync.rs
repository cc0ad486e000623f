//! Connection sync (issue 11): what it costs the master's worker, how many records a
//! backup keeps up with, and its memory — with the real code paths on the in-memory
//! driver (no DPDK, no lab).
//!
//! Contract (what each function measures):
//! * [`emission_cost`]: two NAT workers built by [`crate::l4`] the same way (one service,
//!   three servers, `rr`), one without sync and one whose engine emits sync records
//!   (default [`SyncOptions`](rvs_dataplane::sync::SyncOptions): 30 s refresh walk on) into
//!   rings of [`DEFAULT_SYNC_RING_CAPACITY`]. Both are timed on new connections exactly as
//!   `pipeline`'s `new_conn_ns` (every frame a SYN from a new client, the driver-only
//!   baseline subtracted), one run of each in turn so that the machine's drift hits both
//!   alike. The sync worker's outbound ring is drained **in the same thread, after every
//!   burst of 32** (the sync thread's `SyncEnd::pop`), so the difference is the emission
//!   (building the record, the ring push, the refresh walk) plus the consumer's pop: an
//!   upper bound of what the worker's core pays. Checked: every new connection pushed a
//!   record (`sync_tx` moved by at least the SYNs, `sync_lost` did not move) and the
//!   drain took every record pushed.
//! * [`rate_step`]: a master and a backup in one process, **two threads**. The master
//!   thread runs a NAT worker with sync (new SYNs in bursts of 32, paced to `offered`
//!   records/s or as fast as it can) and the master's sync shell: the same turn as rvsd's
//!   sync thread (`controlplane/src/ha/sync.rs`: read datagrams, move ring records into
//!   the [`SyncLink`] while its window has room, flush, run timers, send), over a UDP
//!   socket on 127.0.0.1 (real syscalls). The backup thread runs
//!   the backup's shell the same way (its first read waits up to 1 ms, as rvsd's does)
//!   and hands every record to a backup NAT worker through its sync rings
//!   ([`SyncEnd::push`] to [`owner_of`] the record), polling the worker, which installs
//!   them with `LbEngine::install` (`sync_installed` / `sync_updated`). So the master's
//!   worker and shell share one core here (in rvsd they have one each): the rates are a
//!   lower bound of a deployment's. The backup's worker is polled until its install
//!   ring is empty after every turn (rvsd's polls without pause on its own core). After
//!   the offered window the master's shell keeps turning until the backup acknowledged
//!   and installed everything (at most [`DRAIN_LIMIT`]). A step opens at most
//!   [`NEW_CONNS_MAX`](crate::l4::NEW_CONNS_MAX) connections; at high rates its window is
//!   shortened to stay within that. No bulk resync is asked (a running pair). Reported: records offered and installed per second, the
//!   link's lag (`lag_records`, `lag_ms`: sampled every 10 ms, the largest and the last
//!   of the window), the drain time, every loss counter, datagrams and bytes per record,
//!   and the backup thread's CPU time per record (`/proc/thread-self/schedstat`; it
//!   blocks on its socket when idle, so this is its work). Both sockets keep the system's
//!   receive buffer unless `rcvbuf` is given (rvsd does not set one).
//! * [`wire_and_memory`]: bytes of a v4 connection record and records per datagram as the
//!   real encoder builds them, and the rings' memory.

use std::mem::size_of;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rvs_dataplane::stats::WorkerCounters;
use rvs_dataplane::sync::{
    owner_of, sync_links, ConnRecord, PushError, SyncEnd, SyncRecord, DEFAULT_SYNC_RING_CAPACITY,
};
use rvs_dataplane::types::{ConnState, ForwardMode, L4Proto, TcpState};
use rvs_drivers::BURST_SIZE;
use rvs_sync::wire::{self, data_datagram_len, record_len};
use rvs_sync::{LinkConfig, LinkStatus, SyncLink};

use crate::harness::{median, min, BenchError, Mode, Options, START_NS, WARMUP_SHARE};
use crate::l4::{build_worker, L4Bench};

/// Established flows the workers are set up with (their records are sent too).
const SETUP_FLOWS: usize = 32;
/// Records taken from the rings per shell turn at most (rvsd's sync thread's).
const RECORDS_PER_TURN: usize = 4096;
/// Records taken between two checks of the link's window (rvsd's).
const POP_BATCH: usize = 64;
/// Datagrams read per turn at most (rvsd's).
const DATAGRAMS_PER_TURN: usize = 256;
/// The backup's first read of a turn waits this long at most (rvsd's `TURN`).
const TURN: Duration = Duration::from_millis(1);
/// Bursts of 32 SYNs the master's worker runs between two shell turns at most (1024
/// connections: an eighth of the ring, so the ring never fills while the shell keeps up).
const BURSTS_PER_TURN: u64 = 32;
/// How often the master samples its link's lag.
const LAG_SAMPLE: Duration = Duration::from_millis(10);
/// Longest wait after the window for the backup to acknowledge everything.
pub const DRAIN_LIMIT: Duration = Duration::from_secs(3);
/// Offered rates of `rvs-perf sync` (records/s) before the unpaced step.
pub const DEFAULT_RATES: [u64; 7] = [25_000, 50_000, 100_000, 200_000, 300_000, 400_000, 600_000];
/// The offered rate of the smoke run (`--quick`), at which no record may be lost.
pub const QUICK_RATE: u64 = 10_000;
/// The HMAC key of the benchmark's links.
const KEY: &[u8] = b"rvs-perf sync benchmark key";

fn setup_err(e: impl std::fmt::Display) -> BenchError {
    BenchError::Setup(e.to_string())
}

fn verify(what: String) -> BenchError {
    BenchError::Verify { mode: Mode::Nat, what }
}

/// The figures of [`emission_cost`]; times in ns per new connection, net of the
/// harness baseline.
#[derive(Debug, Clone, PartialEq)]
pub struct CostReport {
    /// Median without sync.
    pub off_ns: f64,
    /// Median with sync (emission and the drain).
    pub on_ns: f64,
    /// Median of the runs' differences (each sync run minus the run without sync
    /// just before it).
    pub sync_ns: f64,
    /// Fastest run's difference.
    pub sync_min_ns: f64,
    /// New connections per run.
    pub conns_per_run: u64,
    /// Timed runs of each side.
    pub runs: usize,
    /// Records the drain took over the timed runs (at least one per connection).
    pub records: u64,
}

impl CostReport {
    /// One JSON line.
    pub fn to_json(&self) -> String {
        format!(
            "{{\"bench\":\"sync_cost\",\"mode\":\"nat\",\"new_conn_ns_sync_off\":{:.1},\"new_conn_ns_sync_on\":{:.1},\
             \"sync_ns_per_conn\":{:.1},\"sync_min_ns_per_conn\":{:.1},\"conns_per_run\":{},\"runs\":{},\
             \"records\":{},\"drain\":\"same thread, after every burst of 32\"}}",
            self.off_ns, self.on_ns, self.sync_ns, self.sync_min_ns, self.conns_per_run, self.runs, self.records
        )
    }
}

/// The counters an emission run must move.
fn sync_counts(b: &L4Bench) -> (u64, u64, u64) {
    let c = b.worker.counters();
    (c.sync_tx.get(), c.sync_lost.get(), b.sync_drained)
}

/// A timed run (and its baseline) of the worker without sync: a symbol of its own, so
/// that callgrind's inclusive counts of this and [`sync_on_run`] differ by the sync's
/// instructions (`valgrind --tool=callgrind rvs-perf sync --bursts N --runs 1 --rates 1000`).
#[inline(never)]
fn sync_off_run(b: &mut L4Bench, bursts: u64) -> Result<(Duration, Duration), BenchError> {
    b.run_pair(true, bursts)
}

/// [`sync_off_run`] for the worker with sync.
#[inline(never)]
fn sync_on_run(b: &mut L4Bench, bursts: u64) -> Result<(Duration, Duration), BenchError> {
    b.run_pair(true, bursts)
}

/// Measures the cost of sync to the master's worker per new connection (module docs).
pub fn emission_cost(opts: &Options) -> Result<CostReport, BenchError> {
    let mut off = L4Bench::with_sync(Mode::Nat, ForwardMode::Nat, false, opts.flows, None)?;
    let (links, end) = sync_links(1, DEFAULT_SYNC_RING_CAPACITY);
    let mut on = L4Bench::with_sync(Mode::Nat, ForwardMode::Nat, false, opts.flows, links.into_iter().next())?;
    on.sync_drain = Some(end);
    for b in [&mut off, &mut on] {
        b.validate_syns()?;
        b.reload_ring::<true>();
    }
    let warm = opts.bursts.unwrap_or(64);
    let (w, h) = off.run_pair(true, warm)?;
    on.run_pair(true, warm)?;
    let bursts = match opts.bursts {
        Some(n) => n,
        None => {
            let per_burst = (w + h).as_secs_f64() / warm as f64;
            let per_run = opts.seconds * (1.0 - WARMUP_SHARE) / (2 * opts.runs) as f64;
            let cap = on.new_conn_room().min(off.new_conn_room()) / (opts.runs as u64 * BURST_SIZE as u64);
            ((per_run / per_burst) as u64).clamp(16, cap.max(16))
        }
    };
    if opts.runs as u64 * bursts * BURST_SIZE as u64 > on.new_conn_room().min(off.new_conn_room()) {
        return Err(BenchError::BadOptions(format!(
            "{} runs of {bursts} bursts open too many connections: use fewer --bursts or --runs",
            opts.runs
        )));
    }
    let packets = bursts * BURST_SIZE as u64;
    let (mut offs, mut ons) = (Vec::with_capacity(opts.runs), Vec::with_capacity(opts.runs));
    let mut records = 0;
    for _ in 0..opts.runs {
        let (w, h) = sync_off_run(&mut off, bursts)?;
        offs.push((w.as_nanos() as f64 - h.as_nanos() as f64) / packets as f64);
        let before = sync_counts(&on);
        let (w, h) = sync_on_run(&mut on, bursts)?;
        ons.push((w.as_nanos() as f64 - h.as_nanos() as f64) / packets as f64);
        let after = sync_counts(&on);
        let (tx, lost, drained) = (after.0 - before.0, after.1 - before.1, after.2 - before.2);
        if tx < packets || lost != 0 || drained != tx {
            return Err(verify(format!(
                "sync run: {packets} new connections, {tx} records pushed, {lost} lost, {drained} drained"
            )));
        }
        records += drained;
    }
    let mut diffs: Vec<f64> = ons.iter().zip(&offs).map(|(a, b)| a - b).collect();
    let (off_ns, on_ns) = (median(&mut offs), median(&mut ons));
    if off_ns <= 0.0 || on_ns <= 0.0 {
        return Err(BenchError::Noise {
            mode: Mode::Nat,
            gross: on_ns,
            harness: off_ns,
            worker_min: min(&ons),
            harness_min: min(&offs),
        });
    }
    Ok(CostReport {
        off_ns,
        on_ns,
        sync_ns: median(&mut diffs),
        sync_min_ns: min(&ons) - min(&offs),
        conns_per_run: packets,
        runs: opts.runs,
        records,
    })
}

/// The figures of one [`rate_step`].
#[derive(Debug, Clone, PartialEq)]
pub struct RateReport {
    /// Records/s offered (`None`: as fast as the master goes).
    pub offered: Option<u64>,
    /// Length of the window (s): shorter than asked when the connection table's room
    /// ran out.
    pub window_s: f64,
    /// Records the master's worker produced in the window (pushed, or lost to a full
    /// ring), per second.
    pub master_per_s: f64,
    /// Records the backup installed or updated in the window, per second.
    pub backup_per_s: f64,
    /// Records pushed by the master's worker over the whole step, the set-up flows'
    /// included (`sync_tx`).
    pub records: u64,
    /// Records the backup installed (`sync_installed`) and updated (`sync_updated`).
    pub installed: u64,
    /// Records the backup applied to an entry it held (`sync_updated`).
    pub updated: u64,
    /// Records the backup's worker refused (every `sync_refused_*`).
    pub refused: u64,
    /// Records lost: master ring full (`sync_lost`), master resend queue
    /// (`lost_sent`), skipped by the backup (`lost_received`).
    pub lost_ring: u64,
    /// Master link's `lost_sent`.
    pub lost_sent: u64,
    /// Backup link's `lost_received`.
    pub lost_received: u64,
    /// Lag of the master's link: largest and last sample of the window.
    pub lag_records_max: usize,
    /// Last sample of `lag_records` in the window.
    pub lag_records_end: usize,
    /// Largest sample of `lag_ms` (age of the oldest unacknowledged message).
    pub lag_ms_max: u64,
    /// Last sample of `lag_ms` in the window.
    pub lag_ms_end: u64,
    /// From the window's end until the backup acknowledged everything (ms); `None`
    /// when [`DRAIN_LIMIT`] passed first.
    pub drain_ms: Option<f64>,
    /// Data messages resent, NACKs the backup sent.
    pub msgs_resent: u64,
    /// NACKs the backup sent.
    pub nacks: u64,
    /// Datagrams and bytes the master sent, and those the backup sent (acks,
    /// heartbeats, NACKs), over the step.
    pub master_datagrams: u64,
    /// UDP payload bytes the master sent.
    pub master_bytes: u64,
    /// Datagrams the backup sent.
    pub backup_datagrams: u64,
    /// UDP payload bytes the backup sent.
    pub backup_bytes: u64,
    /// CPU time of the backup's thread over the step (ns; it blocks on its socket when
    /// idle), if known.
    pub backup_cpu_ns: Option<u64>,
    /// Wall time of the step, window and drain (s).
    pub step_s: f64,
    /// The sockets' receive buffer as the kernel reports it (`SO_RCVBUF`).
    pub rcvbuf_bytes: usize,
}

impl RateReport {
    /// No record lost or refused, every one installed or updated, the link drained.
    pub fn lossless(&self) -> bool {
        self.lost_ring + self.lost_sent + self.lost_received + self.refused == 0
            && self.installed + self.updated == self.records
            && self.drain_ms.is_some()
    }

    /// One JSON line.
    pub fn to_json(&self) -> String {
        let opt = |v: Option<String>| v.unwrap_or_else(|| "null".to_string());
        let per_rec = |n: u64| if self.records == 0 { 0.0 } else { n as f64 / self.records as f64 };
        format!(
            "{{\"bench\":\"sync_rate\",\"offered_per_s\":{},\"window_s\":{:.3},\"master_records_per_s\":{:.0},\
             \"backup_records_per_s\":{:.0},\"records\":{},\"installed\":{},\"updated\":{},\"refused\":{},\
             \"lost_ring\":{},\"lost_sent\":{},\"lost_received\":{},\"lossless\":{},\
             \"lag_records_max\":{},\"lag_records_end\":{},\"lag_ms_max\":{},\"lag_ms_end\":{},\"drain_ms\":{},\
             \"msgs_resent\":{},\"nacks\":{},\"master_datagrams\":{},\"master_bytes_per_record\":{:.1},\
             \"records_per_datagram\":{:.1},\"backup_datagrams\":{},\"backup_bytes_per_record\":{:.2},\
             \"backup_cpu_ns_per_record\":{},\"backup_cpu_share\":{},\"rcvbuf_bytes\":{},\"threads\":2,\"transport\":\"udp 127.0.0.1\"}}",
            opt(self.offered.map(|r| r.to_string())),
            self.window_s,
            self.master_per_s,
            self.backup_per_s,
            self.records,
            self.installed,
            self.updated,
            self.refused,
            self.lost_ring,
            self.lost_sent,
            self.lost_received,
            self.lossless(),
            self.lag_records_max,
            self.lag_records_end,
            self.lag_ms_max,
            self.lag_ms_end,
            opt(self.drain_ms.map(|d| format!("{d:.1}"))),
            self.msgs_resent,
            self.nacks,
            self.master_datagrams,
            per_rec(self.master_bytes),
            if self.master_datagrams == 0 { 0.0 } else { self.records as f64 / self.master_datagrams as f64 },
            self.backup_datagrams,
            per_rec(self.backup_bytes),
            opt(self.backup_cpu_ns.map(|c| format!("{:.0}", per_rec(c)))),
            opt(self.backup_cpu_ns.map(|c| format!("{:.2}", c as f64 / 1e9 / self.step_s))),
            self.rcvbuf_bytes,
        )
    }
}

/// One node's sync shell: rvsd's sync thread's turn without the HA board, persistence
/// and bulk resync.
struct Shell {
    socket: UdpSocket,
    peer: SocketAddr,
    link: SyncLink,
    end: SyncEnd,
    received: Vec<SyncRecord>,
    buf: Vec<u8>,
    datagrams: u64,
    bytes: u64,
}

impl Shell {
    fn new(socket: UdpSocket, peer: SocketAddr, end: SyncEnd, epoch: u64) -> Self {
        let link = SyncLink::new(LinkConfig::new(KEY.to_vec(), epoch, 1), Instant::now());
        Shell { socket, peer, link, end, received: Vec::new(), buf: vec![0; 65536], datagrams: 0, bytes: 0 }
    }

    /// Reads waiting datagrams into the link; the first read waits up to the socket's
    /// timeout when `wait`.
    fn receive(&mut self, now: Instant, wait: bool) {
        let _ = self.socket.set_nonblocking(!wait);
        for _ in 0..DATAGRAMS_PER_TURN {
            match self.socket.recv_from(&mut self.buf) {
                Ok((n, from)) if from == self.peer => {
                    let _ = self.link.handle_datagram(&self.buf[..n], now);
                }
                Ok(_) => {}
                Err(_) => break,
            }
            let _ = self.socket.set_nonblocking(true);
        }
    }

    /// Moves ring records into the link while its window has room.
    fn forward_records(&mut self) {
        let mut moved = 0;
        while moved < RECORDS_PER_TURN && self.link.can_queue() {
            let link = &mut self.link;
            let n = self.end.pop(POP_BATCH.min(RECORDS_PER_TURN - moved), |_, rec| link.queue(rec));
            moved += n;
            if n == 0 {
                break;
            }
        }
    }

    /// Timers and everything the link has to send.
    fn transmit(&mut self, now: Instant) {
        self.link.flush(now);
        self.link.tick(now);
        while let Some(d) = self.link.poll_transmit(now) {
            if self.socket.send_to(&d, self.peer).is_err() {
                break;
            }
            self.datagrams += 1;
            self.bytes += d.len() as u64;
        }
    }
}

/// What the backup thread hands back.
struct BackupEnd {
    status: LinkStatus,
    /// CPU time of the thread (ns), if the kernel tells it.
    cpu_ns: Option<u64>,
    datagrams: u64,
    bytes: u64,
}

/// The backup thread: its shell, and a worker that installs what arrives.
fn backup_thread(mut shell: Shell, mut worker: crate::harness::MemWorker, stop: Arc<AtomicBool>) -> BackupEnd {
    let clock = Instant::now();
    let cpu0 = thread_cpu_ns();
    let _ = shell.socket.set_read_timeout(Some(TURN));
    let counters = Arc::clone(worker.counters());
    let taken = || counters.sync_installed.get() + counters.sync_updated.get() + refused(&counters);
    let mut pushed = taken();
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        let wnow = START_NS + clock.elapsed().as_nanos() as u64;
        shell.receive(now, true);
        shell.received.clear();
        shell.link.drain_received(&mut shell.received);
        for rec in &shell.received {
            let SyncRecord::Conn(c) = rec else { continue };
            let w = owner_of(c, 1);
            while let Err(PushError::Full) = shell.end.push(w, *c) {
                worker.poll_once(wnow);
            }
            pushed += 1;
        }
        // The worker installs up to INSTALL_PER_POLL records per poll; in rvsd it polls
        // on its own core without pause, here it is polled until its ring is empty.
        while taken() < pushed {
            worker.poll_once(wnow);
        }
        // The backup's own engine sends nothing here (its entries are synced ones), but
        // its rings are drained as rvsd's would be.
        shell.forward_records();
        shell.transmit(now);
    }
    let cpu_ns = thread_cpu_ns().zip(cpu0).map(|(b, a)| b - a);
    BackupEnd { status: shell.link.status(Instant::now()), cpu_ns, datagrams: shell.datagrams, bytes: shell.bytes }
}

/// The calling thread's time on a CPU (ns): the first field of
/// `/proc/thread-self/schedstat`; `None` where there is no such file.
fn thread_cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat").ok()?.split_whitespace().next()?.parse().ok()
}

fn refused(c: &WorkerCounters) -> u64 {
    [
        &c.sync_refused_family,
        &c.sync_refused_invalid,
        &c.sync_refused_no_service,
        &c.sync_refused_no_server,
        &c.sync_refused_port,
        &c.sync_refused_table_full,
        &c.sync_refused_clash,
    ]
    .iter()
    .map(|n| n.get())
    .sum()
}

/// One step of the rate sweep: `offered` records/s (`None`: unpaced) for `seconds`
/// (module docs).
/// `rcvbuf`: both sockets' `SO_RCVBUF` (the kernel doubles it and caps it at
/// `net.core.rmem_max`); `None` keeps the system default, as rvsd does.
pub fn rate_step(offered: Option<u64>, seconds: f64, rcvbuf: Option<usize>) -> Result<RateReport, BenchError> {
    let (links, m_end) = sync_links(1, DEFAULT_SYNC_RING_CAPACITY);
    let mut master = L4Bench::with_sync(Mode::Nat, ForwardMode::Nat, false, SETUP_FLOWS, links.into_iter().next())?;
    master.reload_ring::<true>();
    let (links, b_end) = sync_links(1, DEFAULT_SYNC_RING_CAPACITY);
    let backup = build_worker(ForwardMode::Nat, SETUP_FLOWS, links.into_iter().next())?;
    let backup_counters = Arc::clone(backup.counters());

    let m_sock = UdpSocket::bind("127.0.0.1:0").map_err(setup_err)?;
    let b_sock = UdpSocket::bind("127.0.0.1:0").map_err(setup_err)?;
    let (m_addr, b_addr) = (m_sock.local_addr().map_err(setup_err)?, b_sock.local_addr().map_err(setup_err)?);
    let mut rcvbuf_bytes = 0;
    for s in [&m_sock, &b_sock] {
        let s = socket2::SockRef::from(s);
        if let Some(n) = rcvbuf {
            s.set_recv_buffer_size(n).map_err(setup_err)?;
        }
        rcvbuf_bytes = s.recv_buffer_size().map_err(setup_err)?;
    }
    let epoch = SystemTime::now().duration_since(UNIX_EPOCH).map_or(1, |d| d.as_micros() as u64);
    let mut m_shell = Shell::new(m_sock, b_addr, m_end, epoch);
    let b_shell = Shell::new(b_sock, m_addr, b_end, epoch + 1);

    let stop = Arc::new(AtomicBool::new(false));
    let step_start = Instant::now();
    let backup_stop = Arc::clone(&stop);
    let backup = thread::Builder::new()
        .name("sync-backup".into())
        .spawn(move || backup_thread(b_shell, backup, backup_stop))
        .map_err(setup_err)?;

    // The master: this thread.
    let mc = Arc::clone(master.worker.counters());
    let produced = || mc.sync_tx.get() + mc.sync_lost.get();
    let produced0 = produced();
    let backup_done = || backup_counters.sync_installed.get() + backup_counters.sync_updated.get();
    let done0 = backup_done();
    let window = Duration::from_secs_f64(seconds);
    let start = Instant::now();
    let mut next_sample = start;
    let (mut lag_records_max, mut lag_ms_max, mut lag_end) = (0usize, 0u64, (0usize, 0u64));
    let room_end = master.syns + master.new_conn_room();
    let mut elapsed;
    loop {
        let now = Instant::now();
        elapsed = now.duration_since(start);
        if elapsed >= window || master.syns + BURST_SIZE as u64 > room_end {
            break;
        }
        let due = offered.map_or(u64::MAX, |r| (r as f64 * elapsed.as_secs_f64()) as u64);
        let mut bursts = 0;
        while bursts < BURSTS_PER_TURN && produced() - produced0 < due && master.syns + BURST_SIZE as u64 <= room_end {
            master.step::<true, true>();
            bursts += 1;
        }
        m_shell.receive(now, false);
        m_shell.forward_records();
        m_shell.transmit(now);
        if now >= next_sample {
            next_sample = now + LAG_SAMPLE;
            let s = m_shell.link.status(now);
            lag_records_max = lag_records_max.max(s.lag_records);
            lag_ms_max = lag_ms_max.max(s.lag_ms);
            lag_end = (s.lag_records, s.lag_ms);
        }
    }
    let window_s = elapsed.as_secs_f64();
    let produced_window = produced() - produced0;
    let done_window = backup_done() - done0;
    // Drain: keep turning until every record pushed is in the link and acknowledged.
    // The master's worker is not polled any more: its records are all in the ring, and
    // its refresh walk would only add records.
    let drain_start = Instant::now();
    let drain_ms = loop {
        let now = Instant::now();
        m_shell.receive(now, false);
        m_shell.forward_records();
        m_shell.transmit(now);
        let s = m_shell.link.status(now);
        let records = mc.sync_tx.get();
        if s.lag_records == 0 && s.stats.records_sent >= records && backup_done() >= records {
            break Some(now.duration_since(drain_start).as_secs_f64() * 1e3);
        }
        if now.duration_since(drain_start) >= DRAIN_LIMIT {
            break None;
        }
        thread::yield_now();
    };
    stop.store(true, Ordering::Relaxed);
    let b = backup.join().map_err(|_| setup_err("the backup thread panicked"))?;
    let step_s = step_start.elapsed().as_secs_f64();
    let m = m_shell.link.status(Instant::now());
    Ok(RateReport {
        offered,
        window_s,
        master_per_s: produced_window as f64 / window_s,
        backup_per_s: done_window as f64 / window_s,
        records: mc.sync_tx.get(),
        installed: backup_counters.sync_installed.get(),
        updated: backup_counters.sync_updated.get(),
        refused: refused(&backup_counters),
        lost_ring: mc.sync_lost.get(),
        lost_sent: m.stats.lost_sent,
        lost_received: b.status.stats.lost_received,
        lag_records_max,
        lag_records_end: lag_end.0,
        lag_ms_max,
        lag_ms_end: lag_end.1,
        drain_ms,
        msgs_resent: m.stats.msgs_resent,
        nacks: b.status.stats.nacks_sent,
        master_datagrams: m_shell.datagrams,
        master_bytes: m_shell.bytes,
        backup_datagrams: b.datagrams,
        backup_bytes: b.bytes,
        backup_cpu_ns: b.cpu_ns,
        step_s,
        rcvbuf_bytes,
    })
}

/// Wire size and memory of sync.
#[derive(Debug, Clone, PartialEq)]
pub struct WireReport {
    /// Bytes of a v4 TCP connection record on the wire.
    pub v4_conn_record: usize,
    /// Such records in one DATA datagram of the default `max_datagram`.
    pub records_per_datagram: usize,
    /// That datagram's bytes (UDP payload).
    pub datagram_bytes: usize,
    /// The default `max_datagram`.
    pub max_datagram: usize,
    /// UDP payload bytes per record of a full datagram.
    pub bytes_per_record: f64,
    /// `size_of` a ring slot's record, outbound ([`SyncRecord`]) and inbound
    /// ([`ConnRecord`]).
    pub sync_record_size: usize,
    /// `size_of::<ConnRecord>()`.
    pub conn_record_size: usize,
    /// Bytes of one worker's two rings at the default capacity (records, plus the
    /// ring's per-slot stamp).
    pub ring_bytes_per_worker: usize,
    /// Default ring capacity.
    pub ring_capacity: usize,
}

impl WireReport {
    /// One JSON line.
    pub fn to_json(&self) -> String {
        format!(
            "{{\"bench\":\"sync_wire\",\"v4_conn_record_bytes\":{},\"records_per_datagram\":{},\"datagram_bytes\":{},\
             \"max_datagram\":{},\"udp_payload_bytes_per_record\":{:.1},\"sync_record_size\":{},\
             \"conn_record_size\":{},\"ring_capacity\":{},\"ring_bytes_per_worker\":{}}}",
            self.v4_conn_record,
            self.records_per_datagram,
            self.datagram_bytes,
            self.max_datagram,
            self.bytes_per_record,
            self.sync_record_size,
            self.conn_record_size,
            self.ring_capacity,
            self.ring_bytes_per_worker,
        )
    }
}

/// A v4 TCP connection record as the data path builds one.
fn v4_record() -> SyncRecord {
    SyncRecord::Conn(ConnRecord {
        proto: L4Proto::Tcp,
        forward: ForwardMode::Nat,
        client: "172.20.0.1:1024".parse().expect("a socket address"),
        vip: "10.10.0.100:80".parse().expect("a socket address"),
        local: "172.20.0.1:1024".parse().expect("a socket address"),
        server: "10.20.0.11:8080".parse().expect("a socket address"),
        state: ConnState::Tcp(TcpState::SynRecv),
        flags: 0,
        expires_in_ms: 30_000,
        synproxy: None,
    })
}

/// Measures the wire size with the real link (a datagram built and decoded) and the
/// rings' memory.
pub fn wire_and_memory() -> Result<WireReport, BenchError> {
    let rec = v4_record();
    let len = record_len(&rec);
    let max_datagram = LinkConfig::new(KEY.to_vec(), 1, 1).max_datagram;
    // Queue more than a datagram's worth; the link cuts the first DATA message.
    let now = Instant::now();
    let mut link = SyncLink::new(LinkConfig::new(KEY.to_vec(), 1, 1), now);
    for _ in 0..200 {
        link.queue(rec);
    }
    link.flush(now);
    let first = loop {
        let d = link.poll_transmit(now).ok_or_else(|| verify("the link sent no DATA message".into()))?;
        let msg = wire::decode(&d, KEY).map_err(|e| verify(format!("own datagram does not decode: {e}")))?;
        if let rvs_sync::Body::Data { records, .. } = msg.body {
            break (d.len(), records.len());
        }
    };
    let (datagram_bytes, records_per_datagram) = first;
    if datagram_bytes != data_datagram_len(records_per_datagram * len)
        || data_datagram_len((records_per_datagram + 1) * len) <= max_datagram
    {
        return Err(verify(format!(
            "{records_per_datagram} records of {len} B in {datagram_bytes} B: not a full datagram"
        )));
    }
    // crossbeam's ArrayQueue slot: the value and an AtomicUsize stamp, aligned.
    let slot = |value: usize| (value + size_of::<usize>()).next_multiple_of(size_of::<usize>());
    let ring_bytes_per_worker =
        DEFAULT_SYNC_RING_CAPACITY * (slot(size_of::<SyncRecord>()) + slot(size_of::<ConnRecord>()));
    Ok(WireReport {
        v4_conn_record: len,
        records_per_datagram,
        datagram_bytes,
        max_datagram,
        bytes_per_record: datagram_bytes as f64 / records_per_datagram as f64,
        sync_record_size: size_of::<SyncRecord>(),
        conn_record_size: size_of::<ConnRecord>(),
        ring_bytes_per_worker,
        ring_capacity: DEFAULT_SYNC_RING_CAPACITY,
    })
}
