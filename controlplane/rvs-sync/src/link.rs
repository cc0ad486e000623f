//! The reliability layer between the two nodes of a pair: conntrackd's FT-FW model as a
//! sans-IO state machine. [`SyncLink`] takes datagrams and `Instant`s in and hands
//! datagrams and records out; it never reads a clock, opens a socket or blocks.
//!
//! Sending: records are batched into DATA messages (up to `max_datagram` bytes), numbered
//! with consecutive data seqs and held in a bounded resend queue until the peer
//! acknowledges them cumulatively. A full resend queue drops its oldest message, whose
//! records are then counted lost. The window (`window` unacknowledged messages) is the
//! pacing: while it is full [`SyncLink::can_queue`] is false and the caller leaves records
//! in its rings.
//!
//! Receiving: messages are delivered in seq order, each once; out-of-order ones wait in a
//! bounded reorder buffer. Gaps (seen from a later message, or from the sender's next seq
//! that every non-data message carries, so a lost tail is seen by the next heartbeat) are
//! NACKed, at most once per `nack_interval`. The sender resends what it still holds; every
//! message carries the oldest seq the sender holds, and the receiver gives up on anything
//! older. Records carry a running index, so both ends count the records lost.
//! Retransmission is only NACK-driven, as in FT-FW: no retransmission timer, so a dead
//! peer costs no traffic beyond heartbeats.
//!
//! Acknowledgements are cumulative, sent after `ack_every` data messages or `ack_delay`,
//! and carried by every message (so DATA and heartbeats piggyback them).
//!
//! Epochs: each node's epoch is its start time; a message with a larger epoch than the
//! known peer epoch means the peer restarted, and the receive state restarts from it. A
//! smaller epoch is refused. Anti-replay: a sliding window over the per-message counter,
//! per peer epoch. A datagram that fails authentication, replays or comes from an old
//! epoch changes nothing, not even liveness.
//!
//! Bulk resync: [`SyncLink::request_bulk`] sets the WANT_BULK flag on every message until
//! the peer's BULK_END is delivered; the peer sees it through
//! [`SyncLink::take_bulk_request`], streams its table with `queue` and ends with
//! [`SyncLink::bulk_end`].

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rvs_dataplane::sync::SyncRecord;

use crate::wire::{self, Body, DecodeError, Flags, Header, Message, MAX_NACK_RANGES};

/// `a` comes before `b` in wrapping sequence order.
pub const fn seq_lt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

/// The link's settings.
#[derive(Debug, Clone)]
pub struct LinkConfig {
    /// The shared HMAC-SHA256 key.
    pub key: Vec<u8>,
    /// This node's epoch: its start time in µs since the UNIX epoch (larger after a
    /// restart). Must not be 0 (0 means "no epoch" on the wire).
    pub epoch: u64,
    /// This node's data path worker count, told to the peer.
    pub workers: u16,
    /// The largest datagram built (bytes, HMAC included).
    pub max_datagram: usize,
    /// DATA/BULK_END messages kept for retransmission.
    pub resend_capacity: usize,
    /// At most this many unacknowledged data messages before `can_queue` says no.
    pub window: usize,
    /// Out-of-order messages buffered by the receiver.
    pub reorder_capacity: usize,
    /// A heartbeat is sent after this long without sending anything.
    pub heartbeat: Duration,
    /// The peer is down after this long without an accepted datagram.
    pub dead_after: Duration,
    /// Acknowledge after this many data messages received...
    pub ack_every: usize,
    /// ... or this long after the first one not yet acknowledged.
    pub ack_delay: Duration,
    /// At most one NACK per this interval.
    pub nack_interval: Duration,
    /// Anti-replay window, in messages (1..=64).
    pub replay_window: u32,
}

impl LinkConfig {
    /// The defaults with this key, epoch and worker count.
    pub fn new(key: Vec<u8>, epoch: u64, workers: u16) -> Self {
        LinkConfig {
            key,
            epoch,
            workers,
            max_datagram: 1400,
            resend_capacity: 4096,
            window: 1024,
            reorder_capacity: 1024,
            heartbeat: Duration::from_millis(200),
            dead_after: Duration::from_secs(1),
            ack_every: 16,
            ack_delay: Duration::from_millis(20),
            nack_interval: Duration::from_millis(50),
            replay_window: 64,
        }
    }
}

/// Why a datagram was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Reject {
    /// The HMAC did not verify: wrong key or altered datagram.
    #[error("HMAC does not verify")]
    BadHmac,
    /// A message counter already seen, or older than the anti-replay window.
    #[error("replayed or too old message")]
    Replay,
    /// Authenticated but malformed.
    #[error("malformed: {0}")]
    Malformed(DecodeError),
    /// From an epoch older than the peer's current one.
    #[error("message from an old peer epoch")]
    OldEpoch,
}

/// Counters of a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LinkStats {
    /// Datagrams sent (any type, resends included).
    pub msgs_sent: u64,
    /// Records sent in DATA messages (first transmissions).
    pub records_sent: u64,
    /// Datagrams accepted.
    pub msgs_received: u64,
    /// Records delivered to the caller.
    pub records_received: u64,
    /// Data messages retransmitted.
    pub msgs_resent: u64,
    /// Records retransmitted.
    pub records_resent: u64,
    /// Records dropped from a full resend queue before the peer acknowledged them. The
    /// peer may still have received some of them (its ack was on its way), so this is at
    /// least the peer's `lost_received`, and 0 only if that is 0.
    pub lost_sent: u64,
    /// Records the peer sent that we will never get (skipped, as the peer told).
    pub lost_received: u64,
    /// Data messages skipped by the receiver (the sender no longer held them).
    pub msgs_skipped: u64,
    /// Data messages received twice or beyond the reorder buffer.
    pub dup_or_dropped: u64,
    /// Rejected: bad HMAC.
    pub bad_hmac: u64,
    /// Rejected: replay.
    pub replay: u64,
    /// Rejected: malformed.
    pub malformed: u64,
    /// Rejected: old epoch.
    pub old_epoch: u64,
    /// NACKs sent.
    pub nacks_sent: u64,
    /// NACKs received.
    pub nacks_received: u64,
    /// Times the peer restarted (a larger epoch).
    pub peer_restarts: u64,
    /// Times the peer went silent for `dead_after` (seen by `tick`).
    pub peer_down: u64,
}

/// What a link is doing, for the caller and the operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkStatus {
    /// An accepted datagram arrived within `dead_after`.
    pub connected: bool,
    /// The peer's epoch, once heard.
    pub peer_epoch: Option<u64>,
    /// The peer's worker count, once heard.
    pub peer_workers: Option<u16>,
    /// The peer's worker count differs from ours (the caller decides what that means).
    pub workers_mismatch: bool,
    /// We asked for a bulk resync, its BULK_END was delivered with no record lost since
    /// the request, and no gap is outstanding.
    pub in_sync: bool,
    /// While our bulk request is outstanding: records delivered since the request.
    pub bulk_receiving: Option<u64>,
    /// The record count the peer's last delivered BULK_END announced.
    pub last_bulk_streamed: Option<u32>,
    /// We are streaming a bulk resync to the peer.
    pub bulk_sending: bool,
    /// Records queued or sent but not yet acknowledged.
    pub lag_records: usize,
    /// Age of the oldest unacknowledged data message, in ms.
    pub lag_ms: u64,
    /// Counters.
    pub stats: LinkStats,
}

/// A data message held for retransmission.
#[derive(Debug)]
struct Held {
    seq: u32,
    body: Body,
    records: usize,
    first_sent: Option<Instant>,
    /// In `to_send`.
    queued: bool,
}

/// A received data message waiting for delivery.
#[derive(Debug)]
enum Slot {
    Data { record_index: u64, records: Vec<SyncRecord> },
    BulkEnd { record_index: u64, streamed: u32 },
}

/// One end of a sync link. See the module docs.
#[derive(Debug)]
pub struct SyncLink {
    cfg: LinkConfig,
    counter: u64,
    last_sent: Option<Instant>,
    heartbeat_now: bool,
    stats: LinkStats,

    // Sending.
    next_seq: u32,
    next_record: u64,
    batch: Vec<SyncRecord>,
    batch_bytes: usize,
    held: VecDeque<Held>,
    to_send: VecDeque<u32>,
    peer_acked: u32,
    bulk_sending: bool,
    bulk_streamed: u32,
    bulk_end_seq: Option<u32>,
    bulk_requested: bool,

    // Receiving.
    peer_epoch: Option<u64>,
    peer_workers: Option<u16>,
    last_heard: Option<Instant>,
    was_connected: bool,
    replay_top: u64,
    replay_bits: u64,
    replay_seen: bool,
    expected: u32,
    peer_next: u32,
    reorder: VecDeque<Option<Slot>>,
    expected_record: Option<u64>,
    delivered: Vec<SyncRecord>,
    ack_pending: usize,
    ack_due: Option<Instant>,
    last_nack: Option<Instant>,
    want_bulk: bool,
    bulk_received: u64,
    lost_at_request: u64,
    bulk_done: bool,
    bulk_clean: bool,
    last_bulk_streamed: Option<u32>,
}

impl SyncLink {
    /// A link with nothing sent or heard yet.
    pub fn new(mut cfg: LinkConfig, now: Instant) -> Self {
        let _ = now;
        cfg.replay_window = cfg.replay_window.clamp(1, 64);
        cfg.resend_capacity = cfg.resend_capacity.max(1);
        cfg.window = cfg.window.max(1);
        cfg.ack_every = cfg.ack_every.max(1);
        // At least one record of the largest kind (a v6 connection) must fit.
        cfg.max_datagram = cfg.max_datagram.clamp(wire::data_datagram_len(87), 65_000);
        SyncLink {
            cfg,
            counter: 1,
            last_sent: None,
            heartbeat_now: true,
            stats: LinkStats::default(),
            next_seq: 0,
            next_record: 0,
            batch: Vec::new(),
            batch_bytes: 0,
            held: VecDeque::new(),
            to_send: VecDeque::new(),
            peer_acked: 0,
            bulk_sending: false,
            bulk_streamed: 0,
            bulk_end_seq: None,
            bulk_requested: false,
            peer_epoch: None,
            peer_workers: None,
            last_heard: None,
            was_connected: false,
            replay_top: 0,
            replay_bits: 0,
            replay_seen: false,
            expected: 0,
            peer_next: 0,
            reorder: VecDeque::new(),
            expected_record: None,
            delivered: Vec::new(),
            ack_pending: 0,
            ack_due: None,
            last_nack: None,
            want_bulk: false,
            bulk_received: 0,
            lost_at_request: 0,
            bulk_done: false,
            bulk_clean: false,
            last_bulk_streamed: None,
        }
    }

    /// Data messages sent (or built) and not yet acknowledged.
    fn in_flight(&self) -> usize {
        self.next_seq.wrapping_sub(self.peer_acked) as usize
    }

    /// Whether the window has room: while false, the caller leaves records in its rings.
    /// `queue` still accepts records then, at the risk of pushing unacknowledged messages
    /// out of the resend queue.
    pub fn can_queue(&self) -> bool {
        self.in_flight() < self.cfg.window
    }

    /// Adds a record to the current batch; a full batch becomes a DATA message.
    pub fn queue(&mut self, rec: SyncRecord) {
        let len = wire::record_len(&rec);
        if !self.batch.is_empty()
            && (wire::data_datagram_len(self.batch_bytes + len) > self.cfg.max_datagram
                || self.batch.len() == usize::from(u16::MAX))
        {
            self.close_batch();
        }
        self.batch.push(rec);
        self.batch_bytes += len;
        if self.bulk_sending {
            self.bulk_streamed = self.bulk_streamed.wrapping_add(1);
        }
    }

    /// Closes a partial batch into a DATA message (call once per turn).
    pub fn flush(&mut self, now: Instant) {
        let _ = now;
        self.close_batch();
    }

    fn close_batch(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let records = std::mem::take(&mut self.batch);
        self.batch_bytes = 0;
        let n = records.len();
        let body = Body::Data { record_index: self.next_record, records };
        self.next_record += n as u64;
        self.push_held(body, n);
    }

    fn push_held(&mut self, body: Body, records: usize) {
        if self.held.len() >= self.cfg.resend_capacity {
            if let Some(old) = self.held.pop_front() {
                self.stats.lost_sent += old.records as u64;
            }
        }
        let seq = self.next_seq;
        self.next_seq = seq.wrapping_add(1);
        self.held.push_back(Held { seq, body, records, first_sent: None, queued: true });
        self.to_send.push_back(seq);
    }

    fn oldest_held(&self) -> u32 {
        self.held.front().map_or(self.next_seq, |h| h.seq)
    }

    fn held_index(&self, seq: u32) -> Option<usize> {
        let front = self.held.front()?.seq;
        let i = seq.wrapping_sub(front) as usize;
        (i < self.held.len()).then_some(i)
    }

    /// Asks the peer for its whole table; retried (a flag on every message) until the
    /// peer's BULK_END is delivered.
    pub fn request_bulk(&mut self) {
        self.want_bulk = true;
        self.bulk_received = 0;
        self.lost_at_request = self.stats.lost_received;
        self.bulk_done = false;
        self.heartbeat_now = true;
    }

    /// Whether the peer asked for a bulk resync (once per request). If so, the caller
    /// streams its whole table with `queue` and then calls [`SyncLink::bulk_end`].
    pub fn take_bulk_request(&mut self) -> bool {
        if !self.bulk_requested {
            return false;
        }
        self.bulk_requested = false;
        self.bulk_sending = true;
        self.bulk_streamed = 0;
        true
    }

    /// Ends the bulk stream: a reliable BULK_END after the records queued so far.
    pub fn bulk_end(&mut self) {
        self.close_batch();
        let body = Body::BulkEnd { record_index: self.next_record, streamed: self.bulk_streamed };
        self.bulk_end_seq = Some(self.next_seq);
        self.bulk_sending = false;
        self.push_held(body, 0);
    }

    /// Moves the records delivered so far (in order, each once) to `out`. Call every turn:
    /// undrained records stay in memory.
    pub fn drain_received(&mut self, out: &mut Vec<SyncRecord>) {
        out.append(&mut self.delivered);
    }

    /// Timers that need no datagram: counts the peer going silent. Heartbeats, acks and
    /// NACKs are due through [`SyncLink::poll_transmit`].
    pub fn tick(&mut self, now: Instant) {
        let connected = self.connected(now);
        if self.was_connected && !connected {
            self.stats.peer_down += 1;
        }
        self.was_connected = connected;
    }

    fn connected(&self, now: Instant) -> bool {
        self.last_heard.is_some_and(|t| now.saturating_duration_since(t) < self.cfg.dead_after)
    }

    /// The link's state and counters.
    pub fn status(&self, now: Instant) -> LinkStatus {
        let unacked = self.held.iter().filter(|h| !seq_lt(h.seq, self.peer_acked));
        let lag_records = self.batch.len() + unacked.map(|h| h.records).sum::<usize>();
        let lag_ms = self
            .held
            .iter()
            .find_map(|h| h.first_sent)
            .map_or(0, |t| now.saturating_duration_since(t).as_millis() as u64);
        LinkStatus {
            connected: self.connected(now),
            peer_epoch: self.peer_epoch,
            peer_workers: self.peer_workers,
            workers_mismatch: self.peer_workers.is_some_and(|w| w != self.cfg.workers),
            in_sync: self.bulk_done && self.bulk_clean && self.no_gap(),
            bulk_receiving: self.want_bulk.then_some(self.bulk_received),
            last_bulk_streamed: self.last_bulk_streamed,
            bulk_sending: self.bulk_sending,
            lag_records,
            lag_ms,
            stats: self.stats,
        }
    }

    fn no_gap(&self) -> bool {
        self.reorder.is_empty() && self.expected == self.peer_next
    }

    fn header(&mut self, seq: u32) -> Header {
        let mut flags = 0;
        if self.want_bulk {
            flags |= Flags::WANT_BULK;
        }
        if self.bulk_sending {
            flags |= Flags::BULK_SENDING;
        }
        let counter = self.counter;
        self.counter += 1;
        Header {
            epoch: self.cfg.epoch,
            counter,
            seq,
            oldest: self.oldest_held(),
            ack: self.expected,
            ack_epoch: self.peer_epoch.unwrap_or(0),
            workers: self.cfg.workers,
            flags: Flags(flags),
        }
    }

    fn emit(&mut self, seq: u32, body: Body, now: Instant) -> Vec<u8> {
        let header = self.header(seq);
        self.ack_pending = 0;
        self.ack_due = None;
        self.heartbeat_now = false;
        self.last_sent = Some(now);
        self.stats.msgs_sent += 1;
        wire::encode(&Message { header, body }, &self.cfg.key)
    }

    /// The next datagram to send, if any: NACK, data (new or resent), ACK, heartbeat.
    /// Call until it returns `None`.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Vec<u8>> {
        if let Some(ranges) = self.nack_due(now) {
            self.last_nack = Some(now);
            self.stats.nacks_sent += 1;
            return Some(self.emit(self.next_seq, Body::Nack { ranges }, now));
        }
        while let Some(seq) = self.to_send.pop_front() {
            let Some(i) = self.held_index(seq) else { continue };
            let h = &mut self.held[i];
            h.queued = false;
            let records = h.records as u64;
            let body = h.body.clone();
            if h.first_sent.is_none() {
                h.first_sent = Some(now);
                self.stats.records_sent += records;
            } else {
                self.stats.msgs_resent += 1;
                self.stats.records_resent += records;
            }
            return Some(self.emit(seq, body, now));
        }
        let ack_due = self.ack_pending >= self.cfg.ack_every || self.ack_due.is_some_and(|t| now >= t);
        if ack_due {
            return Some(self.emit(self.next_seq, Body::Ack, now));
        }
        let idle = self.last_sent.is_none_or(|t| now.saturating_duration_since(t) >= self.cfg.heartbeat);
        if self.heartbeat_now || idle {
            return Some(self.emit(self.next_seq, Body::Heartbeat { next_record: self.next_record }, now));
        }
        None
    }

    fn nack_due(&self, now: Instant) -> Option<Vec<(u32, u32)>> {
        if self.peer_epoch.is_none() || self.no_gap() {
            return None;
        }
        if self.last_nack.is_some_and(|t| now.saturating_duration_since(t) < self.cfg.nack_interval) {
            return None;
        }
        let mut ranges = Vec::new();
        let mut run: Option<u32> = None;
        for (i, slot) in self.reorder.iter().enumerate() {
            let seq = self.expected.wrapping_add(i as u32);
            match (slot, run) {
                (None, None) => run = Some(seq),
                (Some(_), Some(from)) => {
                    ranges.push((from, seq.wrapping_sub(1)));
                    run = None;
                }
                _ => {}
            }
        }
        let end = self.expected.wrapping_add(self.reorder.len() as u32);
        if seq_lt(end, self.peer_next) {
            run = run.or(Some(end));
        }
        if let Some(from) = run {
            let to = if seq_lt(end, self.peer_next) { self.peer_next.wrapping_sub(1) } else { end.wrapping_sub(1) };
            ranges.push((from, to));
        }
        ranges.truncate(MAX_NACK_RANGES);
        (!ranges.is_empty()).then_some(ranges)
    }

    fn replay_ok(&self, c: u64) -> bool {
        if !self.replay_seen || c > self.replay_top {
            return true;
        }
        let d = self.replay_top - c;
        d < u64::from(self.cfg.replay_window) && self.replay_bits & (1 << d) == 0
    }

    fn replay_mark(&mut self, c: u64) {
        if !self.replay_seen {
            self.replay_seen = true;
            self.replay_top = c;
            self.replay_bits = 1;
        } else if c > self.replay_top {
            let shift = c - self.replay_top;
            self.replay_bits = if shift >= 64 { 0 } else { self.replay_bits << shift };
            self.replay_bits |= 1;
            self.replay_top = c;
        } else {
            self.replay_bits |= 1 << (self.replay_top - c);
        }
    }

    /// Takes in one datagram from the peer. A refused datagram changes nothing but the
    /// refusal counter.
    pub fn handle_datagram(&mut self, bytes: &[u8], now: Instant) -> Result<(), Reject> {
        let msg = match wire::decode(bytes, &self.cfg.key) {
            Ok(m) => m,
            Err(DecodeError::BadHmac) => {
                self.stats.bad_hmac += 1;
                return Err(Reject::BadHmac);
            }
            Err(e) => {
                // The length checks come before the HMAC: an unauthenticated datagram of
                // the wrong length is counted as malformed.
                self.stats.malformed += 1;
                return Err(Reject::Malformed(e));
            }
        };
        let h = msg.header;
        let restart = match self.peer_epoch {
            Some(e) if h.epoch < e => {
                self.stats.old_epoch += 1;
                return Err(Reject::OldEpoch);
            }
            Some(e) if h.epoch == e => false,
            _ => true,
        };
        if !restart && !self.replay_ok(h.counter) {
            self.stats.replay += 1;
            return Err(Reject::Replay);
        }
        if restart {
            let again = self.peer_epoch.is_some();
            if again {
                self.stats.peer_restarts += 1;
            }
            self.reset_receive(&msg);
            // In sync means in sync with the peer's current incarnation: ask it for its
            // table too (a restarted node's table is small, and streams fast).
            if again && !self.want_bulk {
                self.request_bulk();
            }
        }
        self.replay_mark(h.counter);
        self.stats.msgs_received += 1;
        self.last_heard = Some(now);
        self.peer_workers = Some(h.workers);

        if h.ack_epoch == self.cfg.epoch {
            self.handle_ack(h.ack);
        }
        if h.flags.has(Flags::WANT_BULK) && !self.bulk_sending && !self.bulk_requested {
            // A request still in flight after our BULK_END was sent is the same request:
            // only one sent once the peer has our BULK_END is a new one.
            let answered = self.bulk_end_seq.is_some_and(|s| !(h.ack_epoch == self.cfg.epoch && seq_lt(s, h.ack)));
            if !answered {
                self.bulk_requested = true;
            }
        }

        let data_seq = match msg.body {
            Body::Data { .. } | Body::BulkEnd { .. } => Some(h.seq),
            _ => None,
        };
        let peer_next = data_seq.map_or(h.seq, |s| s.wrapping_add(1));
        if seq_lt(self.peer_next, peer_next) {
            self.peer_next = peer_next;
        }
        if seq_lt(self.expected, h.oldest) {
            self.skip_to(h.oldest);
        }
        match msg.body {
            Body::Data { record_index, records } => self.receive_data(h.seq, Slot::Data { record_index, records }, now),
            Body::BulkEnd { record_index, streamed } => {
                self.receive_data(h.seq, Slot::BulkEnd { record_index, streamed }, now)
            }
            Body::Nack { ranges } => self.handle_nack(&ranges),
            Body::Heartbeat { next_record } => {
                if self.no_gap() && h.seq == self.expected {
                    self.account(next_record, 0);
                }
            }
            Body::Ack => {}
        }
        self.deliver();
        Ok(())
    }

    fn reset_receive(&mut self, msg: &Message) {
        self.peer_epoch = Some(msg.header.epoch);
        self.replay_seen = false;
        self.replay_bits = 0;
        self.replay_top = 0;
        self.expected = msg.header.oldest;
        self.peer_next = msg.header.oldest;
        self.reorder.clear();
        self.expected_record = None;
        self.ack_pending = 0;
        self.ack_due = None;
        self.last_nack = None;
        self.bulk_done = false;
        self.bulk_end_seq = None;
        self.bulk_requested = false;
        if let Body::Heartbeat { next_record } = msg.body {
            if msg.header.oldest == msg.header.seq {
                self.expected_record = Some(next_record);
            }
        }
    }

    fn handle_ack(&mut self, ack: u32) {
        // Only an ack within what we sent moves the window.
        if !seq_lt(self.peer_acked, ack) || seq_lt(self.next_seq, ack) {
            return;
        }
        self.peer_acked = ack;
        while self.held.front().is_some_and(|h| seq_lt(h.seq, ack)) {
            self.held.pop_front();
        }
    }

    fn handle_nack(&mut self, ranges: &[(u32, u32)]) {
        self.stats.nacks_received += 1;
        let oldest = self.oldest_held();
        for &(from, to) in ranges {
            if seq_lt(to, from) {
                continue;
            }
            if seq_lt(from, oldest) {
                // Gone: the next message tells the peer to skip (its `oldest`).
                self.heartbeat_now = true;
            }
            let from = if seq_lt(from, oldest) { oldest } else { from };
            let mut seq = from;
            // Bounded by what we hold, whatever the range says.
            while !seq_lt(to, seq) {
                let Some(i) = self.held_index(seq) else { break };
                let h = &mut self.held[i];
                if !h.queued && h.first_sent.is_some() {
                    h.queued = true;
                    self.to_send.push_back(seq);
                }
                seq = seq.wrapping_add(1);
            }
        }
    }

    fn receive_data(&mut self, seq: u32, slot: Slot, now: Instant) {
        self.ack_pending += 1;
        if self.ack_due.is_none() {
            self.ack_due = Some(now + self.cfg.ack_delay);
        }
        if seq_lt(seq, self.expected) {
            self.stats.dup_or_dropped += 1;
            return;
        }
        let off = seq.wrapping_sub(self.expected) as usize;
        if off >= self.cfg.reorder_capacity {
            self.stats.dup_or_dropped += 1;
            return;
        }
        if self.reorder.len() <= off {
            self.reorder.resize_with(off + 1, || None);
        }
        if self.reorder[off].is_some() {
            self.stats.dup_or_dropped += 1;
        } else {
            self.reorder[off] = Some(slot);
        }
    }

    /// Gives up on every message before `to`: delivers the buffered ones, counts the rest.
    fn skip_to(&mut self, to: u32) {
        let n = to.wrapping_sub(self.expected) as usize;
        for _ in 0..n.min(self.reorder.len()) {
            match self.reorder.pop_front().flatten() {
                Some(slot) => self.deliver_slot(slot),
                None => self.stats.msgs_skipped += 1,
            }
            self.expected = self.expected.wrapping_add(1);
        }
        let rest = to.wrapping_sub(self.expected);
        self.stats.msgs_skipped += u64::from(rest);
        self.expected = to;
    }

    fn deliver(&mut self) {
        while let Some(Some(_)) = self.reorder.front() {
            if let Some(Some(slot)) = self.reorder.pop_front() {
                self.deliver_slot(slot);
            }
            self.expected = self.expected.wrapping_add(1);
        }
    }

    /// Counts the records between the last delivered one and `index` as lost.
    fn account(&mut self, index: u64, n: usize) {
        let end = index + n as u64;
        match self.expected_record {
            Some(e) => {
                self.stats.lost_received += index.saturating_sub(e);
                self.expected_record = Some(e.max(end));
            }
            None => self.expected_record = Some(end),
        }
    }

    fn deliver_slot(&mut self, slot: Slot) {
        match slot {
            Slot::Data { record_index, records } => {
                self.account(record_index, records.len());
                self.stats.records_received += records.len() as u64;
                if self.want_bulk {
                    self.bulk_received += records.len() as u64;
                }
                self.delivered.extend(records);
            }
            Slot::BulkEnd { record_index, streamed } => {
                self.account(record_index, 0);
                self.last_bulk_streamed = Some(streamed);
                if self.want_bulk {
                    self.want_bulk = false;
                    self.bulk_done = true;
                    self.bulk_clean = self.stats.lost_received == self.lost_at_request;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
