//! Rate estimation the IPVS way (`net/netfilter/ipvs/ip_vs_est.c`), for services, real
//! servers and workers, plus the sliding window of each worker's burst latency.
//!
//! Contract:
//! * The control thread ticks one [`Estimator`] every [`ESTIMATION_INTERVAL`] (2 s) with
//!   the current cumulative counters ([`Samples`]); [`run`] is that loop. Readers
//!   (`GET /v1/stats`, `rvsadm --rate`, `/metrics`) take [`Estimator::estimates`].
//! * Per counter, as IPVS: `rate = Δcounter / interval`, scaled to fixed point (×2^10 for
//!   connections and packets, ×2^5 for bytes), and `avg += (rate − avg) / 4` — an
//!   exponentially weighted moving average with weight 1/4, so a step change reaches
//!   1 − (3/4)^k of its size after k ticks (≈ 68 % after 8 s, 90 % after 16 s). Reads
//!   round the fixed point to the nearest unit: `(avg + 0x1FF) >> 10` and
//!   `(avg + 0xF) >> 5`, as `ip_vs_read_estimator`.
//! * One difference from IPVS, whose timer is exact: the interval used is the measured
//!   time since the previous tick, so a late tick (a busy control thread) does not read
//!   as a burst. With exactly 2 s, `Δ × 2^10 / 2` is IPVS's `Δ << 9` to the bit.
//! * `bps` is **bytes** per second, as IPVS's `inbps`/`outbps` and ipvsadm's `InBPS`
//!   and `OutBPS` columns.
//! * A service or server seen for the first time starts at rate 0 from its current
//!   counters (its counters may be carried over from an earlier table, so its first
//!   delta would be its whole history); one missing from a tick's samples is forgotten.
//!   A counter that goes backwards restarts its baseline with a delta of 0.
//! * [`Estimator::zero`] is IPVS's `ip_vs_zero_estimator` for `ipvsadm -Z`: every
//!   average to 0, the baselines kept.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::config::ServiceKey;
use rvs_dataplane::latency::{LatencySnapshot, LatencySummary, LatencyWindow};
use rvs_dataplane::server::ServerStatsSnapshot;
use rvs_dataplane::service::ServiceTable;
use rvs_dataplane::stats::CountersSnapshot;
use serde::{Deserialize, Serialize};

/// How often the estimator is ticked (IPVS's `IPVS_EST_TICK`-based 2 s period).
pub const ESTIMATION_INTERVAL: Duration = Duration::from_secs(2);

/// Ticks in the burst-latency window: the quantiles cover the last 60 s.
pub const LATENCY_WINDOW_TICKS: usize = 30;

/// Estimated rates of a service or a real server (ipvsadm `--rate`'s columns).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rates {
    /// New connections per second.
    pub cps: u64,
    /// Packets per second client → server.
    pub in_pps: u64,
    /// Packets per second server → client (through rvs; 0 for DR and IPIP).
    pub out_pps: u64,
    /// Bytes per second client → server.
    pub in_bps: u64,
    /// Bytes per second server → client.
    pub out_bps: u64,
}

/// The five cumulative counters one estimator follows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Connections (a worker: connections created).
    pub conns: u64,
    /// Packets in (a worker: received).
    pub in_packets: u64,
    /// Packets out (a worker: transmitted).
    pub out_packets: u64,
    /// Bytes in (a worker: received).
    pub in_bytes: u64,
    /// Bytes out (a worker: transmitted).
    pub out_bytes: u64,
}

impl From<ServerStatsSnapshot> for Totals {
    fn from(s: ServerStatsSnapshot) -> Self {
        Totals {
            conns: s.conns,
            in_packets: s.packets_in,
            out_packets: s.packets_out,
            in_bytes: s.bytes_in,
            out_bytes: s.bytes_out,
        }
    }
}

impl From<&CountersSnapshot> for Totals {
    fn from(c: &CountersSnapshot) -> Self {
        Totals {
            conns: c.conns_created,
            in_packets: c.rx_packets,
            out_packets: c.tx_packets,
            in_bytes: c.rx_bytes,
            out_bytes: c.tx_bytes,
        }
    }
}

/// Fixed-point shift of connection and packet averages (IPVS: "scaled by 2^10").
const PPS_SHIFT: u32 = 10;
/// Fixed-point shift of byte averages (IPVS: "scaled by 2^5").
const BPS_SHIFT: u32 = 5;

/// One moving average in IPVS's fixed point.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Avg {
    last: u64,
    avg: i64,
}

impl Avg {
    fn start(cur: u64) -> Avg {
        Avg { last: cur, avg: 0 }
    }

    /// IPVS's `rate = (n − last) << shift−1; avg += (rate − avg) >> 2`, with the shift
    /// generalised to the measured interval.
    fn update(&mut self, cur: u64, elapsed_ns: u64, shift: u32) {
        let delta = cur.saturating_sub(self.last);
        self.last = cur;
        let scaled = (u128::from(delta) << shift) * 1_000_000_000 / u128::from(elapsed_ns.max(1));
        let rate = i64::try_from(scaled).unwrap_or(i64::MAX);
        // Both are in [0, i64::MAX], so the difference cannot overflow; an arithmetic
        // shift as IPVS's `>> 2` on s64 (rounds towards −∞, keeps avg ≥ min(rate)).
        self.avg += (rate - self.avg) >> 2;
    }

    /// `ip_vs_read_estimator`: round to the nearest unit.
    fn read(&self, shift: u32) -> u64 {
        let half = (1i64 << (shift - 1)) - 1;
        u64::try_from(self.avg.saturating_add(half) >> shift).unwrap_or(0)
    }
}

/// IPVS's `struct ip_vs_estimator`: the five averages of one object.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Est {
    conns: Avg,
    in_packets: Avg,
    out_packets: Avg,
    in_bytes: Avg,
    out_bytes: Avg,
}

impl Est {
    fn start(t: Totals) -> Est {
        Est {
            conns: Avg::start(t.conns),
            in_packets: Avg::start(t.in_packets),
            out_packets: Avg::start(t.out_packets),
            in_bytes: Avg::start(t.in_bytes),
            out_bytes: Avg::start(t.out_bytes),
        }
    }

    fn update(&mut self, t: Totals, elapsed_ns: u64) {
        self.conns.update(t.conns, elapsed_ns, PPS_SHIFT);
        self.in_packets.update(t.in_packets, elapsed_ns, PPS_SHIFT);
        self.out_packets.update(t.out_packets, elapsed_ns, PPS_SHIFT);
        self.in_bytes.update(t.in_bytes, elapsed_ns, BPS_SHIFT);
        self.out_bytes.update(t.out_bytes, elapsed_ns, BPS_SHIFT);
    }

    fn zero(&mut self) {
        for a in [&mut self.conns, &mut self.in_packets, &mut self.out_packets, &mut self.in_bytes, &mut self.out_bytes]
        {
            a.avg = 0;
        }
    }

    fn read(&self) -> Rates {
        Rates {
            cps: self.conns.read(PPS_SHIFT),
            in_pps: self.in_packets.read(PPS_SHIFT),
            out_pps: self.out_packets.read(PPS_SHIFT),
            in_bps: self.in_bytes.read(BPS_SHIFT),
            out_bps: self.out_bytes.read(BPS_SHIFT),
        }
    }
}

/// A real server's identity for its estimator: its service and its address and port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServerKey {
    /// The virtual service.
    pub service: ServiceKey,
    /// The real server.
    pub addr: SocketAddr,
}

/// One service's counters at a tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSample {
    /// The service.
    pub key: ServiceKey,
    /// Its service-wide counters.
    pub stats: ServerStatsSnapshot,
    /// Its real servers' counters, in configuration order.
    pub servers: Vec<(SocketAddr, ServerStatsSnapshot)>,
}

/// One worker's counters at a tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerSample {
    /// The worker's index.
    pub index: u16,
    /// Connections created, packets and bytes received and sent.
    pub totals: Totals,
    /// Its cumulative burst-latency histogram.
    pub latency: LatencySnapshot,
}

impl WorkerSample {
    /// A worker's sample from its counters and its latency histogram's snapshot.
    pub fn new(index: u16, counters: &CountersSnapshot, latency: LatencySnapshot) -> WorkerSample {
        WorkerSample { index, totals: counters.into(), latency }
    }
}

/// Everything one tick reads: raw cumulative counters (not the `-Z` baseline-subtracted
/// ones — the estimator keeps its own baselines).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Samples {
    /// Every service, in table order (the order of [`Estimates::services`]).
    pub services: Vec<ServiceSample>,
    /// Every worker.
    pub workers: Vec<WorkerSample>,
}

impl Samples {
    /// The services' and servers' counters from the published `table`, and `workers`.
    pub fn from_table(table: &ServiceTable, workers: Vec<WorkerSample>) -> Samples {
        let services = table
            .services()
            .iter()
            .map(|s| ServiceSample {
                key: ServiceKey::from(s.key),
                stats: s.stats.snapshot(),
                servers: s.servers.iter().map(|r| (SocketAddr::new(r.addr, r.port), r.stats.snapshot())).collect(),
            })
            .collect();
        Samples { services, workers }
    }
}

/// A worker's estimator and latency window.
#[derive(Debug, Clone)]
struct WorkerEst {
    est: Est,
    latency: LatencyWindow,
}

/// The rates of every service, server and worker; ticked by the control thread, read by
/// the API. See the module docs.
#[derive(Debug, Clone)]
pub struct Estimator {
    services: BTreeMap<ServiceKey, Est>,
    servers: BTreeMap<ServerKey, Est>,
    workers: BTreeMap<u16, WorkerEst>,
    /// The last tick's services and servers, in table order, for [`Estimator::estimates`].
    layout: Vec<(ServiceKey, Vec<SocketAddr>)>,
    latency_ticks: usize,
}

impl Default for Estimator {
    fn default() -> Self {
        Estimator::new()
    }
}

impl Estimator {
    /// An estimator with no objects and a latency window of [`LATENCY_WINDOW_TICKS`].
    pub fn new() -> Estimator {
        Estimator::with_latency_window(LATENCY_WINDOW_TICKS)
    }

    /// An estimator whose latency quantiles cover the last `ticks` ticks.
    pub fn with_latency_window(ticks: usize) -> Estimator {
        Estimator {
            services: BTreeMap::new(),
            servers: BTreeMap::new(),
            workers: BTreeMap::new(),
            layout: Vec::new(),
            latency_ticks: ticks.max(1),
        }
    }

    /// One estimation step: `elapsed` since the previous tick (nominally
    /// [`ESTIMATION_INTERVAL`]; a zero `elapsed` only registers new objects and forgets
    /// gone ones), and every object's counters now.
    pub fn tick(&mut self, elapsed: Duration, samples: &Samples) {
        let elapsed_ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        let mut seen_services = BTreeSet::new();
        let mut seen_servers = BTreeSet::new();
        self.layout.clear();
        for s in &samples.services {
            seen_services.insert(s.key);
            step(&mut self.services, s.key, s.stats.into(), elapsed_ns);
            for (addr, stats) in &s.servers {
                let key = ServerKey { service: s.key, addr: *addr };
                seen_servers.insert(key);
                step(&mut self.servers, key, (*stats).into(), elapsed_ns);
            }
            self.layout.push((s.key, s.servers.iter().map(|(a, _)| *a).collect()));
        }
        self.services.retain(|k, _| seen_services.contains(k));
        self.servers.retain(|k, _| seen_servers.contains(k));

        let mut seen_workers = BTreeSet::new();
        for w in &samples.workers {
            seen_workers.insert(w.index);
            match self.workers.get_mut(&w.index) {
                Some(e) => {
                    if elapsed_ns > 0 {
                        e.est.update(w.totals, elapsed_ns);
                    }
                    e.latency.push(w.latency.clone());
                }
                None => {
                    let mut latency = LatencyWindow::new(self.latency_ticks);
                    latency.push(w.latency.clone());
                    self.workers.insert(w.index, WorkerEst { est: Est::start(w.totals), latency });
                }
            }
        }
        self.workers.retain(|k, _| seen_workers.contains(k));
    }

    /// `ipvsadm -Z`: every rate back to 0 (IPVS's `ip_vs_zero_estimator`). Latency
    /// windows are kept.
    pub fn zero(&mut self) {
        self.services.values_mut().for_each(Est::zero);
        self.servers.values_mut().for_each(Est::zero);
        self.workers.values_mut().for_each(|w| w.est.zero());
    }

    /// The rates of the service at `key`, if it was in the last tick.
    pub fn service(&self, key: &ServiceKey) -> Option<Rates> {
        self.services.get(key).map(Est::read)
    }

    /// The rates of a real server, if it was in the last tick.
    pub fn server(&self, key: &ServerKey) -> Option<Rates> {
        self.servers.get(key).map(Est::read)
    }

    /// Worker `index`'s rates (`cps` connections created, `in_*` received, `out_*` sent).
    pub fn worker(&self, index: u16) -> Option<Rates> {
        self.workers.get(&index).map(|w| w.est.read())
    }

    /// Worker `index`'s burst latency: quantiles over the window, cumulative count and
    /// sum.
    pub fn worker_latency(&self, index: u16) -> Option<LatencySummary> {
        self.workers.get(&index).map(|w| w.latency.summary())
    }

    /// Every worker's latency window merged: the daemon-wide quantiles.
    pub fn merged_latency(&self) -> LatencySummary {
        let mut window = LatencySnapshot::new();
        let mut total = LatencySnapshot::new();
        for w in self.workers.values() {
            window.merge(&w.latency.window());
            total.merge(w.latency.total());
        }
        LatencySummary { count: total.count(), sum_ns: total.sum_ns(), ..window.summary() }
    }

    /// Everything, for JSON and `/metrics`: services and servers in the last tick's
    /// order, workers by index.
    pub fn estimates(&self) -> Estimates {
        let services = self
            .layout
            .iter()
            .map(|(key, servers)| ServiceRates {
                protocol: key.proto.name().to_string(),
                address: key.vip.to_string(),
                port: key.port,
                rates: self.service(key).unwrap_or_default(),
                servers: servers
                    .iter()
                    .map(|addr| ServerRates {
                        address: addr.ip().to_string(),
                        port: addr.port(),
                        rates: self.server(&ServerKey { service: *key, addr: *addr }).unwrap_or_default(),
                    })
                    .collect(),
            })
            .collect();
        let workers = self
            .workers
            .iter()
            .map(|(&index, w)| {
                let r = w.est.read();
                WorkerRates {
                    index,
                    rx_pps: r.in_pps,
                    tx_pps: r.out_pps,
                    rx_bps: r.in_bps,
                    tx_bps: r.out_bps,
                    cps: r.cps,
                    burst_latency: w.latency.summary(),
                }
            })
            .collect();
        Estimates { services, workers }
    }
}

/// Updates (or starts) the estimator of `key`.
fn step<K: Ord>(map: &mut BTreeMap<K, Est>, key: K, totals: Totals, elapsed_ns: u64) {
    match map.get_mut(&key) {
        Some(e) if elapsed_ns > 0 => e.update(totals, elapsed_ns),
        Some(_) => {}
        None => {
            map.insert(key, Est::start(totals));
        }
    }
}

/// The estimator's output, JSON-ready; names mirror `/v1/status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Estimates {
    /// Every service with its servers.
    pub services: Vec<ServiceRates>,
    /// Every worker, by index.
    pub workers: Vec<WorkerRates>,
}

impl Estimates {
    /// The service with this protocol name, address and port (as `/v1/status` spells
    /// them).
    pub fn service(&self, protocol: &str, address: &str, port: u16) -> Option<&ServiceRates> {
        self.services.iter().find(|s| s.protocol == protocol && s.address == address && s.port == port)
    }

    /// Worker `index`.
    pub fn worker(&self, index: u16) -> Option<&WorkerRates> {
        self.workers.iter().find(|w| w.index == index)
    }
}

/// One service's rates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceRates {
    /// `tcp` or `udp`.
    pub protocol: String,
    /// The VIP.
    pub address: String,
    /// The virtual port.
    pub port: u16,
    /// Service-wide rates.
    pub rates: Rates,
    /// Its servers' rates, in configuration order.
    pub servers: Vec<ServerRates>,
}

impl ServiceRates {
    /// The server at `address`:`port`.
    pub fn server(&self, address: &str, port: u16) -> Option<&ServerRates> {
        self.servers.iter().find(|r| r.address == address && r.port == port)
    }
}

/// One real server's rates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerRates {
    /// Its address.
    pub address: String,
    /// Its port.
    pub port: u16,
    /// Its rates.
    pub rates: Rates,
}

/// One worker's rates and burst latency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerRates {
    /// The worker's index.
    pub index: u16,
    /// Frames received per second.
    pub rx_pps: u64,
    /// Frames sent per second.
    pub tx_pps: u64,
    /// Bytes received per second.
    pub rx_bps: u64,
    /// Bytes sent per second.
    pub tx_bps: u64,
    /// Connections created per second.
    pub cps: u64,
    /// Burst processing time: quantiles over the last [`LATENCY_WINDOW_TICKS`] ticks,
    /// count and sum since start.
    pub burst_latency: LatencySummary,
}

/// The estimator as the control thread shares it between [`run`] and the handlers.
pub type SharedEstimator = Arc<Mutex<Estimator>>;

/// A new, empty [`SharedEstimator`].
pub fn shared() -> SharedEstimator {
    Arc::new(Mutex::new(Estimator::new()))
}

/// Locks the estimator; a panic elsewhere while it was held leaves consistent numbers
/// (every update is a plain store), so a poisoned lock is used as is.
pub fn lock(estimator: &SharedEstimator) -> MutexGuard<'_, Estimator> {
    estimator.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Ticks `estimator` every [`ESTIMATION_INTERVAL`] with `sample()` until the task is
/// dropped or aborted. The first tick is immediate and only sets the baselines.
pub async fn run(estimator: SharedEstimator, sample: impl FnMut() -> Samples) {
    run_every(estimator, ESTIMATION_INTERVAL, sample).await
}

/// [`run`] with another period (tests).
pub async fn run_every(estimator: SharedEstimator, period: Duration, mut sample: impl FnMut() -> Samples) {
    let mut every = tokio::time::interval(period);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last: Option<tokio::time::Instant> = None;
    loop {
        every.tick().await;
        let now = tokio::time::Instant::now();
        let elapsed = last.map_or(Duration::ZERO, |l| now.saturating_duration_since(l));
        last = Some(now);
        let samples = sample();
        lock(&estimator).tick(elapsed, &samples);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvs_dataplane::latency::BurstLatency;
    use rvs_dataplane::types::L4Proto;
    use std::net::Ipv4Addr;

    const TWO: Duration = ESTIMATION_INTERVAL;

    fn key() -> ServiceKey {
        ServiceKey { proto: L4Proto::Tcp, vip: Ipv4Addr::new(10, 10, 0, 100).into(), port: 80 }
    }

    fn rs() -> SocketAddr {
        SocketAddr::new(Ipv4Addr::new(10, 20, 0, 11).into(), 80)
    }

    fn snap(conns: u64, pkts: u64, bytes: u64) -> ServerStatsSnapshot {
        ServerStatsSnapshot {
            conns,
            packets_in: pkts,
            packets_out: pkts / 2,
            bytes_in: bytes,
            bytes_out: bytes * 3,
            ..Default::default()
        }
    }

    fn samples(conns: u64, pkts: u64, bytes: u64) -> Samples {
        Samples {
            services: vec![ServiceSample {
                key: key(),
                stats: snap(conns, pkts, bytes),
                servers: vec![(rs(), snap(conns / 2, pkts / 2, bytes / 2))],
            }],
            workers: vec![],
        }
    }

    /// IPVS's estimator written out literally (`estimation_timer` + `ip_vs_read_estimator`
    /// for one pps counter), to compare with.
    fn ipvs_pps(deltas: &[u64]) -> Vec<u64> {
        let mut avg: i64 = 0;
        deltas
            .iter()
            .map(|&d| {
                let rate = (d << 9) as i64;
                avg += (rate - avg) >> 2;
                ((avg + 0x1FF) >> 10) as u64
            })
            .collect()
    }

    #[test]
    fn matches_ipvs_bit_for_bit_at_two_seconds() {
        let deltas = [0u64, 1, 7, 2_000, 2_000, 2_000, 13, 0, 0, 999_999, 5, 0, 0, 0, 0, 0, 0, 0];
        let mut e = Estimator::new();
        let mut total = 0;
        e.tick(Duration::ZERO, &samples(0, total, 0));
        let mut got = Vec::new();
        for d in deltas {
            total += d;
            e.tick(TWO, &samples(0, total, 0));
            got.push(e.service(&key()).unwrap().in_pps);
        }
        assert_eq!(got, ipvs_pps(&deltas));
    }

    #[test]
    fn steady_rate_converges() {
        let mut e = Estimator::new();
        // 1000 conn/s, 50 000 pkt/s, 40 MB/s, sampled every 2 s.
        for t in 0..100u64 {
            let elapsed = if t == 0 { Duration::ZERO } else { TWO };
            e.tick(elapsed, &samples(t * 2_000, t * 100_000, t * 80_000_000));
        }
        let r = e.service(&key()).unwrap();
        assert_eq!(r, Rates { cps: 1_000, in_pps: 50_000, out_pps: 25_000, in_bps: 40_000_000, out_bps: 120_000_000 });
        let s = e.server(&ServerKey { service: key(), addr: rs() }).unwrap();
        assert_eq!(s, Rates { cps: 500, in_pps: 25_000, out_pps: 12_500, in_bps: 20_000_000, out_bps: 60_000_000 });
    }

    #[test]
    fn step_change_decays_like_ipvs() {
        let mut e = Estimator::new();
        let mut pkts = 0;
        e.tick(Duration::ZERO, &samples(0, pkts, 0));
        for _ in 0..60 {
            pkts += 20_000; // 10 000 pps
            e.tick(TWO, &samples(0, pkts, 0));
        }
        assert_eq!(e.service(&key()).unwrap().in_pps, 10_000);
        // Traffic stops: each tick keeps 3/4 of the average.
        let mut seen = Vec::new();
        for _ in 0..6 {
            e.tick(TWO, &samples(0, pkts, 0));
            seen.push(e.service(&key()).unwrap().in_pps);
        }
        let expect: Vec<u64> = (1..=6).map(|k| (10_000.0 * 0.75f64.powi(k)).round() as u64).collect();
        for (g, x) in seen.iter().zip(&expect) {
            assert!(g.abs_diff(*x) <= 1, "{seen:?} vs {expect:?}");
        }
        // And a step up reaches 1 − (3/4)^k of the new rate.
        let mut e = Estimator::new();
        e.tick(Duration::ZERO, &samples(0, 0, 0));
        e.tick(TWO, &samples(0, 8_000, 0));
        assert_eq!(e.service(&key()).unwrap().in_pps, 1_000); // 4000 × 1/4
        e.tick(TWO, &samples(0, 16_000, 0));
        assert_eq!(e.service(&key()).unwrap().in_pps, 1_750); // 4000 × 7/16
    }

    #[test]
    fn measured_interval_scales_and_zero_interval_is_ignored() {
        let mut e = Estimator::new();
        e.tick(Duration::ZERO, &samples(0, 0, 0));
        for t in 1..40u64 {
            // Late ticks: 4 s apart, 4 s of traffic at 1000 pps each.
            e.tick(Duration::from_secs(4), &samples(0, t * 4_000, 0));
        }
        assert_eq!(e.service(&key()).unwrap().in_pps, 1_000);
        e.tick(Duration::ZERO, &samples(0, 39 * 4_000 + 1_000_000, 0));
        assert_eq!(e.service(&key()).unwrap().in_pps, 1_000, "no update without elapsed time");
    }

    #[test]
    fn new_objects_start_at_zero_and_gone_ones_are_forgotten() {
        let mut e = Estimator::new();
        // A server with a long history joins: no spike.
        e.tick(TWO, &samples(1_000_000, 1_000_000_000, 1 << 40));
        assert_eq!(e.service(&key()), Some(Rates::default()));
        e.tick(TWO, &samples(1_000_000, 1_000_000_000, 1 << 40));
        assert_eq!(e.service(&key()), Some(Rates::default()));
        // Counters going backwards (a re-created object): delta 0, new baseline.
        e.tick(TWO, &samples(0, 0, 0));
        assert_eq!(e.service(&key()), Some(Rates::default()));
        e.tick(TWO, &samples(0, 8_000, 0));
        assert_eq!(e.service(&key()).unwrap().in_pps, 1_000);
        e.tick(TWO, &Samples::default());
        assert_eq!(e.service(&key()), None);
        assert_eq!(e.server(&ServerKey { service: key(), addr: rs() }), None);
        assert!(e.estimates().services.is_empty());
    }

    #[test]
    fn zero_resets_averages_not_baselines() {
        let mut e = Estimator::new();
        e.tick(Duration::ZERO, &samples(0, 0, 0));
        e.tick(TWO, &samples(400, 8_000, 0));
        assert!(e.service(&key()).unwrap().in_pps > 0);
        e.zero();
        assert_eq!(e.service(&key()), Some(Rates::default()));
        e.tick(TWO, &samples(400, 8_000, 0));
        assert_eq!(e.service(&key()), Some(Rates::default()), "no traffic since: still 0");
    }

    #[test]
    fn workers_rates_latency_and_json() {
        let mut e = Estimator::with_latency_window(2);
        let lat = BurstLatency::new();
        let mut c = CountersSnapshot::default();
        let sample = |c: &CountersSnapshot, lat: &BurstLatency| Samples {
            services: samples(0, 0, 0).services,
            workers: vec![WorkerSample::new(0, c, lat.snapshot()), WorkerSample::new(1, c, LatencySnapshot::new())],
        };
        e.tick(Duration::ZERO, &sample(&c, &lat));
        for _ in 0..50 {
            c.rx_packets += 2_000;
            c.tx_packets += 1_000;
            c.rx_bytes += 2_000 * 64;
            c.conns_created += 20;
            lat.record(1_000);
            e.tick(TWO, &sample(&c, &lat));
        }
        let w = e.estimates().workers;
        assert_eq!(w.len(), 2);
        assert_eq!((w[0].rx_pps, w[0].tx_pps, w[0].rx_bps, w[0].tx_bps, w[0].cps), (1_000, 500, 64_000, 0, 10));
        assert_eq!(e.worker(0).unwrap().in_pps, 1_000);
        let l = e.worker_latency(0).unwrap();
        assert_eq!((l.count, l.sum_ns), (50, 50_000));
        let at_1000 = rvs_dataplane::latency::bucket_value(rvs_dataplane::latency::bucket_index(1_000));
        assert_eq!(l.p50_ns, Some(at_1000));
        assert_eq!(e.worker_latency(1).unwrap().p99_ns, None);
        let m = e.merged_latency();
        assert_eq!((m.count, m.p999_ns), (50, Some(at_1000)));

        let est = e.estimates();
        let v = serde_json::to_value(&est).unwrap();
        assert_eq!(v["services"][0]["protocol"], "tcp");
        assert_eq!(v["services"][0]["address"], "10.10.0.100");
        assert_eq!(v["services"][0]["rates"]["cps"], 0);
        assert_eq!(v["services"][0]["servers"][0]["address"], "10.20.0.11");
        assert_eq!(v["workers"][0]["burst_latency"]["p50_ns"], at_1000);
        assert_eq!(v["workers"][1]["burst_latency"]["p99_ns"], serde_json::Value::Null);
        let back: Estimates = serde_json::from_value(v).unwrap();
        assert_eq!(back, est);
        assert!(est.service("tcp", "10.10.0.100", 80).and_then(|s| s.server("10.20.0.11", 80)).is_some());
        assert!(est.worker(1).is_some());

        // A worker that goes away is forgotten.
        e.tick(TWO, &Samples::default());
        assert!(e.estimates().workers.is_empty());
    }

    #[tokio::test]
    async fn run_ticks_with_the_measured_interval() {
        let est = shared();
        let counter = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let c2 = Arc::clone(&counter);
        let task = tokio::spawn(run_every(Arc::clone(&est), Duration::from_millis(20), move || {
            let n = c2.fetch_add(4_000, std::sync::atomic::Ordering::Relaxed);
            samples(0, n, 0)
        }));
        // Real time on a shared machine: wait for a few ticks, assert loosely.
        for _ in 0..200 {
            tokio::time::sleep(Duration::from_millis(20)).await;
            if counter.load(std::sync::atomic::Ordering::Relaxed) >= 12_000 {
                break;
            }
        }
        task.abort();
        assert!(counter.load(std::sync::atomic::Ordering::Relaxed) >= 12_000);
        assert!(lock(&est).service(&key()).unwrap().in_pps > 0, "4000 packets every ~20 ms");
    }
}
