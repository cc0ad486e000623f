//! The link driven by a virtual clock over a simulated link: loss, reordering and
//! duplication from a seeded generator, so every run is reproducible.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use rvs_dataplane::sync::{ConnRecord, PersistRecord, SyncRecord};
use rvs_dataplane::types::{ConnState, ForwardMode, L4Proto, TcpState};

use super::*;
use crate::wire::{self, Body, Header, Message};

const KEY: &[u8] = b"pair-key";

/// Record number `i`: its index is in `expires_in_ms` (or `expires_in_s`), so order and
/// duplicates can be checked; both families and both record kinds appear.
fn rec(i: u32) -> SyncRecord {
    let ip = |n: u32| {
        if i.is_multiple_of(3) {
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, (n >> 16) as u16, n as u16))
        } else {
            IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | n))
        }
    };
    if i.is_multiple_of(7) {
        SyncRecord::Persist(PersistRecord {
            proto: L4Proto::Udp,
            vip: SocketAddr::new(ip(1), 53),
            client: ip(i),
            server: SocketAddr::new(ip(2), 53),
            expires_in_s: i,
        })
    } else {
        SyncRecord::Conn(ConnRecord {
            proto: L4Proto::Tcp,
            forward: ForwardMode::Nat,
            client: SocketAddr::new(ip(i), 40000),
            vip: SocketAddr::new(ip(1), 80),
            local: SocketAddr::new(ip(i), 40000),
            server: SocketAddr::new(ip(2), 8080),
            state: ConnState::Tcp(TcpState::Established),
            flags: 0,
            expires_in_ms: i,
            synproxy: None,
        })
    }
}

fn index(r: &SyncRecord) -> u32 {
    match r {
        SyncRecord::Conn(c) => c.expires_in_ms,
        SyncRecord::Persist(p) => p.expires_in_s,
    }
}

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn per_mille(&mut self, p: u32) -> bool {
        self.next() % 1000 < u64::from(p)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Link faults, per mille of datagrams.
#[derive(Clone, Copy, Debug, Default)]
struct Faults {
    loss: u32,
    dup: u32,
    reorder: u32,
}

/// Two links and the wire between them, with a virtual clock in ms.
struct Sim {
    t0: Instant,
    ms: u64,
    nodes: [SyncLink; 2],
    rng: Rng,
    faults: Faults,
    /// (arrival ms, destination node, datagram).
    flight: Vec<(u64, usize, Vec<u8>)>,
    /// Records delivered at each node.
    got: [Vec<SyncRecord>; 2],
    /// Records each node still has to queue (its "rings").
    source: [VecDeque<SyncRecord>; 2],
}

fn config(epoch: u64) -> LinkConfig {
    LinkConfig::new(KEY.to_vec(), epoch, 4)
}

impl Sim {
    fn new(cfgs: [LinkConfig; 2], seed: u64, faults: Faults) -> Sim {
        let t0 = Instant::now();
        let [a, b] = cfgs;
        Sim {
            t0,
            ms: 0,
            nodes: [SyncLink::new(a, t0), SyncLink::new(b, t0)],
            rng: Rng(seed | 1),
            faults,
            flight: Vec::new(),
            got: [Vec::new(), Vec::new()],
            source: [VecDeque::new(), VecDeque::new()],
        }
    }

    fn now(&self) -> Instant {
        self.t0 + Duration::from_millis(self.ms)
    }

    fn send(&mut self, to: usize, d: Vec<u8>) {
        // Batches fill a datagram up to max_datagram, never beyond.
        assert!(d.len() <= self.nodes[1 - to].cfg.max_datagram, "{} bytes", d.len());
        let f = self.faults;
        if self.rng.per_mille(f.loss) {
            return;
        }
        let delay = 1 + if self.rng.per_mille(f.reorder) { self.rng.below(30) } else { 0 };
        if self.rng.per_mille(f.dup) {
            let later = delay + self.rng.below(10);
            self.flight.push((self.ms + later, to, d.clone()));
        }
        self.flight.push((self.ms + delay, to, d));
    }

    /// One ms: each node queues what its window allows, flushes, transmits; then what
    /// arrives is handed over.
    fn step(&mut self) {
        let now = self.now();
        for i in 0..2 {
            while self.nodes[i].can_queue() {
                let Some(r) = self.source[i].pop_front() else { break };
                self.nodes[i].queue(r);
            }
            self.nodes[i].flush(now);
            self.nodes[i].tick(now);
            while let Some(d) = self.nodes[i].poll_transmit(now) {
                self.send(1 - i, d);
            }
        }
        self.ms += 1;
        let now = self.now();
        let ms = self.ms;
        let mut due = Vec::new();
        self.flight.retain_mut(|(at, to, d)| {
            if *at <= ms {
                due.push((*to, std::mem::take(d)));
                false
            } else {
                true
            }
        });
        for (to, d) in due {
            let _ = self.nodes[to].handle_datagram(&d, now);
        }
        for i in 0..2 {
            self.nodes[i].drain_received(&mut self.got[i]);
        }
    }

    fn run(&mut self, ms: u64) {
        for _ in 0..ms {
            self.step();
        }
    }

    fn status(&self, i: usize) -> LinkStatus {
        self.nodes[i].status(self.now())
    }
}

/// Runs `n` records each way through the faults, then lets the link settle (faults on,
/// then off), and checks every record was delivered once and in order or counted lost
/// at both ends. Returns the records lost in each direction and the final statuses.
fn exchange(cfgs: [LinkConfig; 2], seed: u64, faults: Faults, n: u32) -> ([u64; 2], [LinkStatus; 2]) {
    let mut sim = Sim::new(cfgs, seed, faults);
    // First contact before any record: the receivers then count losses from index 0.
    for _ in 0..5000 {
        sim.step();
        if sim.status(0).connected && sim.status(1).connected {
            break;
        }
    }
    sim.source[0] = (0..n).map(rec).collect();
    sim.source[1] = (0..n).map(|i| rec(i + 1_000_000)).collect();
    for _ in 0..60_000 {
        sim.step();
        if sim.source.iter().all(|s| s.is_empty()) {
            break;
        }
    }
    assert!(sim.source.iter().all(|s| s.is_empty()), "records still in the rings");
    sim.run(3000);
    sim.faults = Faults::default();
    sim.run(2000);
    let mut lost = [0; 2];
    for (to, base) in [(1, 0), (0, 1_000_000)] {
        let from = 1 - to;
        let got: Vec<u32> = sim.got[to].iter().map(index).collect();
        assert!(got.windows(2).all(|w| w[0] < w[1]), "delivered out of order or twice");
        assert!(got.iter().all(|&i| (base..base + n).contains(&i)));
        let (tx, rx) = (sim.status(from), sim.status(to));
        assert_eq!(tx.lag_records, 0, "still unacknowledged");
        assert_eq!(got.len() as u64 + rx.stats.lost_received, u64::from(n), "{rx:?}");
        // The sender counts what it dropped unacknowledged: what the receiver missed, and
        // possibly some it got but had not yet acknowledged.
        assert!(rx.stats.lost_received <= tx.stats.lost_sent, "{tx:?} {rx:?}");
        assert_eq!(rx.stats.lost_received == 0, tx.stats.lost_sent == 0, "{tx:?} {rx:?}");
        lost[from] = rx.stats.lost_received;
    }
    (lost, [sim.status(0), sim.status(1)])
}

fn small_queue(epoch: u64) -> LinkConfig {
    LinkConfig { resend_capacity: 4, window: 64, ..config(epoch) }
}

#[test]
fn lossy_link_with_big_queue_loses_nothing() {
    let f = Faults { loss: 200, dup: 50, reorder: 200 };
    let (lost, st) = exchange([config(1), config(2)], 42, f, 3000);
    assert_eq!(lost, [0, 0]);
    for s in st {
        // The faults were there and were repaired.
        assert!(s.stats.nacks_sent > 0 && s.stats.nacks_received > 0 && s.stats.msgs_resent > 0, "{s:?}");
        assert!(s.stats.replay > 0, "duplicates are refused by the replay window: {s:?}");
        assert_eq!(s.stats.records_received, 3000);
    }
}

#[test]
fn lossy_link_with_small_queue_counts_losses_on_both_ends() {
    let f = Faults { loss: 200, dup: 50, reorder: 200 };
    let (lost, _) = exchange([small_queue(1), small_queue(2)], 7, f, 3000);
    assert!(lost[0] > 0 && lost[1] > 0, "{lost:?}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn every_record_once_in_order_big_queue(seed: u64, loss in 0u32..300, dup in 0u32..200, reorder in 0u32..400) {
        let (lost, _) = exchange([config(1), config(2)], seed, Faults { loss, dup, reorder }, 1500);
        prop_assert_eq!(lost, [0, 0]);
    }

    #[test]
    fn every_record_once_in_order_or_lost_small_queue(
        seed: u64, loss in 0u32..300, dup in 0u32..200, reorder in 0u32..400,
    ) {
        exchange([small_queue(1), small_queue(2)], seed, Faults { loss, dup, reorder }, 1500);
    }
}

/// Everything `a` has to send, in order.
fn transmit_all(a: &mut SyncLink, now: Instant) -> Vec<Vec<u8>> {
    std::iter::from_fn(|| a.poll_transmit(now)).collect()
}

fn data_datagram(a: &mut SyncLink, r: SyncRecord, now: Instant) -> Vec<u8> {
    a.queue(r);
    a.flush(now);
    transmit_all(a, now).into_iter().next().unwrap()
}

#[test]
fn forged_datagram_changes_nothing() {
    let t = Instant::now();
    let mut a = SyncLink::new(LinkConfig { key: b"wrong".to_vec(), ..config(1) }, t);
    let mut b = SyncLink::new(config(2), t);
    let d = data_datagram(&mut a, rec(1), t);
    let before = b.status(t);
    assert_eq!(b.handle_datagram(&d, t), Err(Reject::BadHmac));
    let after = b.status(t);
    assert_eq!(after.stats.bad_hmac, 1);
    assert_eq!(LinkStatus { stats: LinkStats { bad_hmac: 0, ..after.stats }, ..after }, before);
    assert!(!after.connected && after.peer_epoch.is_none());
    let mut out = Vec::new();
    b.drain_received(&mut out);
    assert!(out.is_empty());
}

/// An IPv6 connection record (NAT66).
fn rec6() -> SyncRecord {
    SyncRecord::Conn(ConnRecord {
        proto: L4Proto::Tcp,
        forward: ForwardMode::Nat,
        client: "[2001:db8:10::2]:40000".parse().unwrap(),
        vip: "[2001:db8:10::100]:80".parse().unwrap(),
        local: "[2001:db8:10::2]:40000".parse().unwrap(),
        server: "[2001:db8:20::11]:8080".parse().unwrap(),
        state: ConnState::Tcp(TcpState::Established),
        flags: 6,
        expires_in_ms: 60_000,
        synproxy: None,
    })
}

#[test]
fn an_ipv6_record_arrives_whole_and_one_cut_short_is_counted_malformed() {
    let t = Instant::now();
    let mut a = SyncLink::new(config(1), t);
    let mut b = SyncLink::new(config(2), t);
    let d = data_datagram(&mut a, rec6(), t);
    // The same datagram with its last record cut by 5 bytes (inside the server address),
    // its payload length and HMAC made to match: authenticated, malformed, counted.
    let body = &d[..d.len() - wire::MAC_LEN];
    let mut cut = body[..body.len() - 5].to_vec();
    let len = u16::try_from(cut.len() - wire::HEADER_LEN).unwrap();
    cut[46..48].copy_from_slice(&len.to_be_bytes());
    let cut = wire::seal(cut, KEY);
    assert!(matches!(b.handle_datagram(&cut, t), Err(Reject::Malformed(_))));
    assert_eq!(b.status(t).stats.malformed, 1);
    let mut out = Vec::new();
    b.drain_received(&mut out);
    assert!(out.is_empty(), "nothing of a malformed datagram is delivered");
    // The whole one is delivered as sent.
    assert_eq!(b.handle_datagram(&d, t), Ok(()));
    b.drain_received(&mut out);
    assert_eq!(out, vec![rec6()]);
    assert_eq!(b.status(t).stats.malformed, 1);
}

#[test]
fn replayed_datagram_is_refused_and_changes_nothing() {
    let t = Instant::now();
    let mut a = SyncLink::new(config(1), t);
    let mut b = SyncLink::new(config(2), t);
    let d = data_datagram(&mut a, rec(1), t);
    b.handle_datagram(&d, t).unwrap();
    let mut out = Vec::new();
    b.drain_received(&mut out);
    assert_eq!(out, [rec(1)]);
    let t2 = t + Duration::from_millis(500);
    let before = b.status(t2);
    assert_eq!(b.handle_datagram(&d, t2), Err(Reject::Replay));
    let after = b.status(t2);
    assert_eq!(after.stats.replay, 1);
    assert_eq!(LinkStatus { stats: LinkStats { replay: 0, ..after.stats }, ..after }, before);
    b.drain_received(&mut out);
    assert_eq!(out, [rec(1)], "a replay delivers nothing");
    // Liveness was not refreshed by the replay.
    assert!(!b.status(t + Duration::from_millis(1000)).connected);
}

#[test]
fn reordering_within_the_replay_window_is_accepted_older_is_not() {
    let t = Instant::now();
    let mut a = SyncLink::new(config(1), t);
    let mut b = SyncLink::new(config(2), t);
    let ds: Vec<Vec<u8>> = (0..70).map(|i| data_datagram(&mut a, rec(i), t)).collect();
    for i in [2, 0, 1] {
        b.handle_datagram(&ds[i], t).unwrap();
    }
    b.handle_datagram(&ds[69], t).unwrap();
    // Counter 69 is the newest: 69 - 64 = 5 is the oldest the window still takes.
    b.handle_datagram(&ds[6], t).unwrap();
    assert_eq!(b.handle_datagram(&ds[4], t), Err(Reject::Replay));
    assert_eq!(b.handle_datagram(&ds[2], t), Err(Reject::Replay));
    let mut out = Vec::new();
    b.drain_received(&mut out);
    assert_eq!(out, [rec(0), rec(1), rec(2)]);
    assert_eq!(b.status(t).stats.replay, 2);
}

#[test]
fn peer_restart_resets_and_old_epoch_is_refused() {
    let t = Instant::now();
    let mut a1 = SyncLink::new(config(100), t);
    let mut b = SyncLink::new(config(50), t);
    for i in 0..3 {
        let d = data_datagram(&mut a1, rec(i), t);
        b.handle_datagram(&d, t).unwrap();
    }
    let stale = data_datagram(&mut a1, rec(3), t);
    // The peer restarts: a new epoch, its seqs and counters start over.
    let mut a2 = SyncLink::new(config(200), t);
    let d = data_datagram(&mut a2, rec(10), t);
    b.handle_datagram(&d, t).unwrap();
    let s = b.status(t);
    assert_eq!(s.peer_epoch, Some(200));
    assert_eq!(s.stats.peer_restarts, 1);
    assert_eq!(b.handle_datagram(&stale, t), Err(Reject::OldEpoch));
    assert_eq!(b.status(t).stats.old_epoch, 1);
    let mut out = Vec::new();
    b.drain_received(&mut out);
    assert_eq!(out, [rec(0), rec(1), rec(2), rec(10)]);
    // The new incarnation's next message is not taken for a replay of the old one's.
    let d = data_datagram(&mut a2, rec(11), t);
    b.handle_datagram(&d, t).unwrap();
    b.drain_received(&mut out);
    assert_eq!(out.last(), Some(&rec(11)));
}

#[test]
fn bulk_request_stream_and_end_make_the_requester_in_sync() {
    let mut sim = Sim::new([config(1), LinkConfig { workers: 2, ..config(2) }], 3, Faults::default());
    sim.run(10);
    assert!(!sim.status(0).in_sync);
    assert!(sim.status(0).workers_mismatch && sim.status(0).peer_workers == Some(2));
    sim.nodes[0].request_bulk();
    let mut asked = false;
    for _ in 0..100 {
        sim.step();
        if sim.nodes[1].take_bulk_request() {
            asked = true;
            break;
        }
    }
    assert!(asked, "the request reached the peer");
    assert!(sim.status(1).bulk_sending);
    sim.source[1] = (0..500).map(rec).collect();
    sim.run(50);
    assert_eq!(sim.status(0).bulk_receiving, Some(500));
    assert!(!sim.status(0).in_sync);
    sim.nodes[1].bulk_end();
    sim.run(50);
    let s = sim.status(0);
    assert!(s.in_sync, "{s:?}");
    assert_eq!(s.bulk_receiving, None);
    assert_eq!(s.last_bulk_streamed, Some(500));
    assert_eq!(sim.got[0].len(), 500);
    // One request, one bulk: the flags still in flight do not start another.
    sim.run(1000);
    assert!(!sim.nodes[1].take_bulk_request());
    // A later request is a new one.
    sim.nodes[0].request_bulk();
    sim.run(50);
    assert!(sim.nodes[1].take_bulk_request());
}

#[test]
fn bulk_request_survives_loss() {
    let mut sim = Sim::new([config(1), config(2)], 9, Faults { loss: 500, dup: 0, reorder: 0 });
    sim.nodes[0].request_bulk();
    let mut asked = false;
    for _ in 0..5000 {
        sim.step();
        if sim.nodes[1].take_bulk_request() {
            asked = true;
            break;
        }
    }
    assert!(asked);
    sim.source[1] = (0..300).map(rec).collect();
    sim.run(100);
    sim.nodes[1].bulk_end();
    sim.run(5000);
    assert!(sim.status(0).in_sync, "{:?}", sim.status(0));
    assert_eq!(sim.got[0].len(), 300);
}

#[test]
fn full_window_stops_queueing_until_acked() {
    let t = Instant::now();
    let cfg = LinkConfig { window: 4, ack_every: 100, ack_delay: Duration::from_millis(20), ..config(1) };
    let mut a = SyncLink::new(cfg, t);
    let mut b = SyncLink::new(config(2), t);
    let mut sent = Vec::new();
    let mut i = 0;
    while a.can_queue() {
        sent.push(data_datagram(&mut a, rec(i), t));
        i += 1;
    }
    assert_eq!(i, 4, "the window is 4 messages");
    let t1 = t + Duration::from_millis(30);
    let s = a.status(t1);
    assert_eq!((s.lag_records, s.lag_ms), (4, 30));
    for d in &sent[..2] {
        b.handle_datagram(d, t1).unwrap();
    }
    // b acks after its ack delay; the ack frees two messages.
    for d in transmit_all(&mut b, t1 + Duration::from_millis(20)) {
        a.handle_datagram(&d, t1).unwrap();
    }
    assert!(a.can_queue());
    assert_eq!(a.status(t1).lag_records, 2);
    for d in &sent[2..] {
        b.handle_datagram(d, t1).unwrap();
    }
    for d in transmit_all(&mut b, t1 + Duration::from_millis(60)) {
        a.handle_datagram(&d, t1).unwrap();
    }
    let s = a.status(t1);
    assert_eq!((s.lag_records, s.lag_ms), (0, 0));
}

#[test]
fn silence_means_peer_down() {
    let mut sim = Sim::new([config(1), config(2)], 5, Faults::default());
    // Heartbeats every 200 ms: the last one before the cut arrives at 201.
    sim.run(250);
    assert!(sim.status(0).connected);
    sim.faults.loss = 1000;
    sim.run(900);
    assert!(sim.status(0).connected);
    sim.run(100);
    assert!(!sim.status(0).connected);
    assert_eq!(sim.status(0).stats.peer_down, 1);
}

/// An authenticated datagram from `epoch` with this header and body.
fn forge(epoch: u64, counter: u64, seq: u32, oldest: u32, body: Body) -> Vec<u8> {
    let header = Header { epoch, counter, seq, oldest, workers: 4, ..Header::default() };
    wire::encode(&Message { header, body }, KEY)
}

#[test]
fn a_peer_cannot_make_memory_grow() {
    let t = Instant::now();
    let mut b = SyncLink::new(config(2), t);
    b.handle_datagram(&forge(1, 1, 0, 0, Body::Heartbeat { next_record: 0 }), t).unwrap();
    // Data far ahead of the reorder buffer is dropped, not buffered.
    for k in 0..100u32 {
        let body = Body::Data { record_index: 0, records: vec![rec(k)] };
        b.handle_datagram(&forge(1, 2 + u64::from(k), 5000 + k, 0, body), t).unwrap();
    }
    assert!(b.reorder.is_empty());
    assert_eq!(b.status(t).stats.dup_or_dropped, 100);
    // A heartbeat claiming billions of missing messages yields one bounded NACK.
    b.handle_datagram(&forge(1, 200, 2_000_000_000, 0, Body::Heartbeat { next_record: 0 }), t).unwrap();
    let d = transmit_all(&mut b, t);
    let nacks: Vec<_> = d
        .iter()
        .filter_map(|d| match wire::decode(d, KEY).unwrap().body {
            Body::Nack { ranges } => Some(ranges),
            _ => None,
        })
        .collect();
    assert_eq!(nacks, [vec![(0, 1_999_999_999)]]);
    // Skipping them is counted, not iterated.
    b.handle_datagram(&forge(1, 201, 2_000_000_000, 2_000_000_000, Body::Heartbeat { next_record: 0 }), t).unwrap();
    assert_eq!(b.status(t).stats.msgs_skipped, 2_000_000_000);
    // A NACK of a huge range resends at most what is held.
    let mut a = SyncLink::new(config(1), t);
    let _ = data_datagram(&mut a, rec(1), t);
    let nack = Body::Nack { ranges: vec![(0, u32::MAX / 2); wire::MAX_NACK_RANGES] };
    let h = Header { epoch: 2, counter: 1, ack_epoch: 1, workers: 4, ..Header::default() };
    a.handle_datagram(&wire::encode(&Message { header: h, body: nack }, KEY), t).unwrap();
    assert_eq!(a.to_send.len(), 1);
}

#[test]
fn wrapping_sequence_numbers() {
    assert!(seq_lt(u32::MAX, 0));
    assert!(seq_lt(u32::MAX - 5, 3));
    assert!(!seq_lt(3, u32::MAX - 5));
    assert!(!seq_lt(7, 7));
    // A link whose seqs wrap delivers across the wrap.
    let t = Instant::now();
    let mut a = SyncLink::new(config(1), t);
    a.next_seq = u32::MAX - 2;
    a.peer_acked = u32::MAX - 2;
    let mut b = SyncLink::new(config(2), t);
    let ds: Vec<_> = (0..6).map(|i| data_datagram(&mut a, rec(i), t)).collect();
    for i in [0, 2, 1, 5, 3, 4] {
        b.handle_datagram(&ds[i], t).unwrap();
    }
    let mut out = Vec::new();
    b.drain_received(&mut out);
    assert_eq!(out, (0..6).map(rec).collect::<Vec<_>>());
    for d in transmit_all(&mut b, t + Duration::from_millis(100)) {
        a.handle_datagram(&d, t).unwrap();
    }
    assert_eq!(a.status(t).lag_records, 0);
    assert!(a.held.is_empty());
}

#[test]
fn a_bulk_with_lost_records_does_not_make_the_requester_in_sync() {
    let f = Faults { loss: 300, dup: 0, reorder: 0 };
    let mut sim = Sim::new([small_queue(1), small_queue(2)], 11, f);
    sim.run(1000);
    sim.nodes[0].request_bulk();
    for _ in 0..5000 {
        sim.step();
        if sim.nodes[1].take_bulk_request() {
            break;
        }
    }
    assert!(sim.status(1).bulk_sending);
    sim.source[1] = (0..3000).map(rec).collect();
    while !sim.source[1].is_empty() {
        sim.step();
    }
    sim.nodes[1].bulk_end();
    sim.faults = Faults::default();
    sim.run(3000);
    let s = sim.status(0);
    assert!(s.stats.lost_received > 0, "{s:?}");
    assert_eq!(s.bulk_receiving, None, "the BULK_END arrived");
    assert!(!s.in_sync, "records were lost during the bulk: {s:?}");
    assert_eq!(s.last_bulk_streamed, Some(3000));
}

#[test]
fn a_restarted_peer_is_asked_again_for_an_unfinished_bulk() {
    let mut sim = Sim::new([config(1), config(2)], 13, Faults::default());
    sim.run(10);
    sim.nodes[0].request_bulk();
    sim.run(10);
    assert!(sim.nodes[1].take_bulk_request());
    // The peer restarts before streaming anything.
    let t = sim.now();
    sim.nodes[1] = SyncLink::new(config(3), t);
    sim.run(300);
    assert_eq!(sim.status(0).stats.peer_restarts, 1);
    assert!(sim.nodes[1].take_bulk_request(), "the new incarnation is asked");
    sim.source[1] = (0..10).map(rec).collect();
    sim.run(10);
    sim.nodes[1].bulk_end();
    sim.run(50);
    assert!(sim.status(0).in_sync);
    assert_eq!(sim.got[0].len(), 10);
}

/// A node in sync with its peer asks the peer's new incarnation again after a restart,
/// and is in sync once that one's bulk ends (and not before).
#[test]
fn a_restarted_peer_is_asked_again_after_a_finished_bulk() {
    let mut sim = Sim::new([config(1), config(2)], 17, Faults::default());
    sim.run(10);
    sim.nodes[0].request_bulk();
    sim.run(10);
    assert!(sim.nodes[1].take_bulk_request());
    sim.source[1] = (0..5).map(rec).collect();
    sim.run(10);
    sim.nodes[1].bulk_end();
    sim.run(50);
    assert!(sim.status(0).in_sync);
    let t = sim.now();
    sim.nodes[1] = SyncLink::new(config(3), t);
    sim.run(50);
    assert_eq!(sim.status(0).stats.peer_restarts, 1);
    assert!(!sim.status(0).in_sync, "not yet in sync with the new incarnation");
    assert!(sim.nodes[1].take_bulk_request(), "the new incarnation is asked");
    sim.nodes[1].bulk_end();
    sim.run(50);
    assert!(sim.status(0).in_sync, "in sync with the new incarnation");
}

#[test]
fn batches_fill_the_datagram() {
    let t = Instant::now();
    let mut a = SyncLink::new(config(1), t);
    // rec(i) for i not a multiple of 3 or 7 is an IPv4 connection: 39 bytes.
    let v4: Vec<u32> = (1..).filter(|i: &u32| !i.is_multiple_of(3) && !i.is_multiple_of(7)).take(100).collect();
    for &i in &v4 {
        a.queue(rec(i));
    }
    a.flush(t);
    let sizes: Vec<(usize, usize)> = transmit_all(&mut a, t)
        .iter()
        .filter_map(|d| match wire::decode(d, KEY).unwrap().body {
            Body::Data { records, .. } => Some((d.len(), records.len())),
            _ => None,
        })
        .collect();
    // (1400 - 48 - 10 - 32) / 39 = 33 records a datagram.
    assert_eq!(sizes, [(1377, 33), (1377, 33), (1377, 33), (129, 1)]);
}
