//! Per-worker latency of the poll loop's burst processing: a fixed log-linear histogram
//! written on the fast path, merged and read on the control path.
//!
//! Contract:
//! * [`BurstLatency::record`] costs one leading-zero count, two shifts and two relaxed
//!   load + store pairs (a bucket and the running sum): no allocation, no lock, no
//!   syscall, no read-modify-write. Like [`crate::stats::Counter`], only the owning worker
//!   records; anyone may read (the control plane holds an `Arc`).
//! * Buckets are HdrHistogram's layout with 5 sub-bucket bits: values below 32 ns have a
//!   bucket each; above, every power of two `[2^h, 2^(h+1))` is cut into 32 equal
//!   buckets. A value is reported as its bucket's midpoint, so a reported quantile is
//!   within [`RELATIVE_ERROR`] (1/64 ≈ 1.6 %) of the exact sample at that rank, and exact
//!   below 32 ns. Values above [`MAX_TRACKABLE_NS`] (≈ 68.7 s) are counted in the last
//!   bucket; the sum keeps their true value.
//! * 1024 buckets × 8 bytes = 8 KiB per worker; a record touches one cache line of it
//!   plus the sum's.
//! * Buckets only grow. "Latency over the last minute" is the difference of two
//!   snapshots ([`LatencySnapshot::since`], kept by a [`LatencyWindow`]), the way
//!   `ipvsadm -Z` is a baseline and not a reset.
//! * Reads are relaxed: a snapshot taken while the worker records may see the sum one
//!   burst ahead of the buckets; never a torn or decreasing value.
//!
//! The worker hook measures the time from the poll's clock read to the end of the poll,
//! for polls that received something (an empty poll is not a burst):
//!
//! ```ignore
//! let t0 = clock();
//! let n = self.poll_once(t0);
//! if n > 0 {
//!     self.tx.counters.burst_latency.record(clock().saturating_sub(t0));
//! }
//! ```
//!
//! That is one extra clock read per non-empty poll (rvsd's clock is `Instant::elapsed`,
//! a vDSO `clock_gettime`, ≈ 20 ns, no syscall) plus the record above, amortised over
//! the burst's up-to-32 packets per port.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// Sub-bucket bits: each power of two is cut into `2^SUB_BITS` buckets.
pub const SUB_BITS: u32 = 5;
/// Buckets per power of two (and the number of exact buckets at the bottom).
const SUB: u64 = 1 << SUB_BITS;
/// Highest bit position a tracked value may have: values below `2^(MAX_BIT + 1)`.
const MAX_BIT: u32 = 35;
/// The largest value with its own bucket, in ns (2^36 − 1 ns ≈ 68.7 s). Larger values
/// land in the last bucket.
pub const MAX_TRACKABLE_NS: u64 = (1 << (MAX_BIT + 1)) - 1;
/// Number of buckets: one group of exact values, then one group per power of two from
/// `2^SUB_BITS` to `2^MAX_BIT`.
pub const BUCKETS: usize = ((MAX_BIT - SUB_BITS + 2) as usize) << SUB_BITS;
/// Bound on `|reported − exact| / exact` for a quantile: half a bucket's width over the
/// bucket's lowest value, `2^(s−1) / 2^(s+SUB_BITS)` = 1/64.
pub const RELATIVE_ERROR: f64 = 1.0 / (2u64 << SUB_BITS) as f64;

/// The bucket of a value in ns (values above [`MAX_TRACKABLE_NS`] go to the last one).
#[inline]
pub const fn bucket_index(ns: u64) -> usize {
    let v = if ns > MAX_TRACKABLE_NS { MAX_TRACKABLE_NS } else { ns };
    if v < SUB {
        return v as usize;
    }
    // h >= SUB_BITS: the highest set bit; keep SUB_BITS bits below it.
    let h = 63 - v.leading_zeros();
    let shift = h - SUB_BITS;
    (((shift + 1) as usize) << SUB_BITS) + ((v >> shift) - SUB) as usize
}

/// The lowest and highest value (inclusive, ns) of bucket `i` (`i < BUCKETS`).
pub const fn bucket_bounds(i: usize) -> (u64, u64) {
    let group = (i >> SUB_BITS) as u32;
    let sub = (i as u64) & (SUB - 1);
    if group == 0 {
        return (sub, sub);
    }
    let shift = group - 1;
    let low = (SUB + sub) << shift;
    (low, low + (1 << shift) - 1)
}

/// The value reported for bucket `i`: its midpoint (exact for the first 32 buckets).
pub const fn bucket_value(i: usize) -> u64 {
    let (low, high) = bucket_bounds(i);
    low + (high - low) / 2
}

/// One worker's burst-latency histogram. Written by that worker only
/// ([`BurstLatency::record`]), read by anyone ([`BurstLatency::snapshot`]). Cache-line
/// aligned so that it shares no line with another worker's data.
#[repr(align(64))]
pub struct BurstLatency {
    buckets: [AtomicU64; BUCKETS],
    sum_ns: AtomicU64,
}

impl Default for BurstLatency {
    fn default() -> Self {
        BurstLatency { buckets: std::array::from_fn(|_| AtomicU64::new(0)), sum_ns: AtomicU64::new(0) }
    }
}

impl std::fmt::Debug for BurstLatency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.snapshot();
        f.debug_struct("BurstLatency").field("count", &s.count()).field("sum_ns", &s.sum_ns()).finish()
    }
}

/// Single-writer add: a relaxed load and store (see [`crate::stats::Counter`] for why
/// not `fetch_add`).
#[inline]
fn bump(c: &AtomicU64, by: u64) {
    c.store(c.load(Ordering::Relaxed).wrapping_add(by), Ordering::Relaxed);
}

impl BurstLatency {
    /// An empty histogram.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one burst that took `ns` nanoseconds. Call only from the owning worker.
    #[inline]
    pub fn record(&self, ns: u64) {
        bump(&self.buckets[bucket_index(ns)], 1);
        bump(&self.sum_ns, ns);
    }

    /// A plain copy of the buckets (allocates; control path only).
    pub fn snapshot(&self) -> LatencySnapshot {
        LatencySnapshot {
            counts: self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).collect(),
            sum_ns: self.sum_ns.load(Ordering::Relaxed),
        }
    }
}

/// A point-in-time copy of one or more [`BurstLatency`] histograms (merged with
/// [`LatencySnapshot::merge`]), or the difference of two ([`LatencySnapshot::since`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LatencySnapshot {
    counts: Vec<u64>,
    sum_ns: u64,
}

impl Default for LatencySnapshot {
    fn default() -> Self {
        LatencySnapshot { counts: vec![0; BUCKETS], sum_ns: 0 }
    }
}

impl LatencySnapshot {
    /// An empty snapshot.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of bursts recorded.
    pub fn count(&self) -> u64 {
        self.counts.iter().fold(0u64, |a, &c| a.wrapping_add(c))
    }

    /// Sum of the recorded durations, in ns (exact, not bucketed).
    pub fn sum_ns(&self) -> u64 {
        self.sum_ns
    }

    /// The non-empty buckets as `(lowest ns, highest ns, count)`, in increasing order.
    pub fn buckets(&self) -> impl Iterator<Item = (u64, u64, u64)> + '_ {
        self.counts.iter().enumerate().filter(|(_, &c)| c > 0).map(|(i, &c)| {
            let (lo, hi) = bucket_bounds(i);
            (lo, hi, c)
        })
    }

    /// Adds `other` into `self` (several workers into one daemon-wide histogram).
    pub fn merge(&mut self, other: &LatencySnapshot) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a = a.wrapping_add(*b);
        }
        self.sum_ns = self.sum_ns.wrapping_add(other.sum_ns);
    }

    /// The bursts recorded after `earlier` (a snapshot of the same histogram): `self −
    /// earlier`, bucket by bucket (saturating, so a mismatched pair gives no garbage).
    pub fn since(&self, earlier: &LatencySnapshot) -> LatencySnapshot {
        LatencySnapshot {
            counts: self.counts.iter().zip(&earlier.counts).map(|(a, b)| a.saturating_sub(*b)).collect(),
            sum_ns: self.sum_ns.saturating_sub(earlier.sum_ns),
        }
    }

    /// The `q`-quantile in ns (`q` clamped to `[0, 1]`): the value of rank
    /// `max(1, ⌈q·count⌉)` in sorted order, within [`RELATIVE_ERROR`] of the exact sample
    /// of that rank. `None` when nothing was recorded.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        let count = self.count();
        if count == 0 {
            return None;
        }
        let q = if q.is_nan() { 0.0 } else { q.clamp(0.0, 1.0) };
        // f64 holds integers exactly up to 2^53 bursts (centuries of polling).
        let rank = ((q * count as f64).ceil() as u64).clamp(1, count);
        let mut seen = 0u64;
        for (i, &c) in self.counts.iter().enumerate() {
            seen = seen.wrapping_add(c);
            if seen >= rank {
                return Some(bucket_value(i));
            }
        }
        // Unreachable while `count` is the buckets' sum; the last bucket is the answer.
        Some(bucket_value(BUCKETS - 1))
    }

    /// Count, sum and the p50 / p99 / p99.9 quantiles.
    pub fn summary(&self) -> LatencySummary {
        LatencySummary {
            count: self.count(),
            sum_ns: self.sum_ns,
            p50_ns: self.quantile(0.5),
            p99_ns: self.quantile(0.99),
            p999_ns: self.quantile(0.999),
        }
    }

    /// The same data as an [`hdrhistogram::Histogram`] (3 significant digits, 1 ns to
    /// [`MAX_TRACKABLE_NS`]), each bucket recorded at its midpoint: for tools that want
    /// HdrHistogram's API or its serialised form. Its quantiles add HdrHistogram's own
    /// 0.1 % to [`RELATIVE_ERROR`].
    pub fn to_hdr(&self) -> Result<hdrhistogram::Histogram<u64>, hdrhistogram::CreationError> {
        let mut h = hdrhistogram::Histogram::<u64>::new_with_bounds(1, MAX_TRACKABLE_NS, 3)?;
        for (i, &c) in self.counts.iter().enumerate() {
            if c > 0 {
                // Every midpoint is within the histogram's bounds, and saturating keeps
                // counts sane even then.
                h.saturating_record_n(bucket_value(i), c);
            }
        }
        Ok(h)
    }

    /// The non-zero buckets, to keep many snapshots cheaply ([`LatencyWindow`]).
    fn sparse(&self) -> Sparse {
        Sparse {
            entries: self.counts.iter().enumerate().filter(|(_, &c)| c > 0).map(|(i, &c)| (i as u16, c)).collect(),
            sum_ns: self.sum_ns,
        }
    }

    fn subtract_sparse(&self, earlier: &Sparse) -> LatencySnapshot {
        let mut out = self.clone();
        for &(i, c) in &earlier.entries {
            if let Some(a) = out.counts.get_mut(usize::from(i)) {
                *a = a.saturating_sub(c);
            }
        }
        out.sum_ns = out.sum_ns.saturating_sub(earlier.sum_ns);
        out
    }
}

/// Count, sum and quantiles of a [`LatencySnapshot`], for JSON (`/v1/status`) and
/// Prometheus. Quantiles are `None` (JSON `null`) when nothing was recorded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Bursts counted.
    pub count: u64,
    /// Their total duration, ns.
    pub sum_ns: u64,
    /// Median, ns.
    pub p50_ns: Option<u64>,
    /// 99th percentile, ns.
    pub p99_ns: Option<u64>,
    /// 99.9th percentile, ns.
    pub p999_ns: Option<u64>,
}

/// A cumulative snapshot kept as its non-zero buckets only.
#[derive(Debug, Clone, Default)]
struct Sparse {
    entries: Vec<(u16, u64)>,
    sum_ns: u64,
}

/// A sliding window over one histogram's cumulative snapshots (reader side): push a
/// snapshot at every tick, read the bursts of the last `ticks` ticks. Memory: the
/// non-zero buckets of `ticks` snapshots plus one full snapshot.
#[derive(Debug, Clone)]
pub struct LatencyWindow {
    ticks: usize,
    older: VecDeque<Sparse>,
    latest: LatencySnapshot,
}

impl LatencyWindow {
    /// A window spanning the last `ticks` ticks (at least one).
    pub fn new(ticks: usize) -> Self {
        LatencyWindow { ticks: ticks.max(1), older: VecDeque::new(), latest: LatencySnapshot::new() }
    }

    /// Adds the cumulative snapshot taken now.
    pub fn push(&mut self, snapshot: LatencySnapshot) {
        let prev = std::mem::replace(&mut self.latest, snapshot);
        self.older.push_back(prev.sparse());
        while self.older.len() > self.ticks {
            self.older.pop_front();
        }
    }

    /// The bursts recorded within the window (since the oldest kept snapshot; everything
    /// since start while fewer than `ticks` ticks have passed).
    pub fn window(&self) -> LatencySnapshot {
        match self.older.front() {
            Some(oldest) => self.latest.subtract_sparse(oldest),
            None => self.latest.clone(),
        }
    }

    /// The latest cumulative snapshot (everything since start).
    pub fn total(&self) -> &LatencySnapshot {
        &self.latest
    }

    /// Quantiles over the window, with the cumulative count and sum (Prometheus summary
    /// convention: windowed quantiles, cumulative `_count` and `_sum`).
    pub fn summary(&self) -> LatencySummary {
        let w = self.window().summary();
        LatencySummary { count: self.latest.count(), sum_ns: self.latest.sum_ns(), ..w }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn layout_is_contiguous_and_monotonic() {
        assert_eq!(BUCKETS, 1024);
        assert_eq!(bucket_index(0), 0);
        assert_eq!(bucket_index(31), 31);
        assert_eq!(bucket_index(32), 32);
        assert_eq!(bucket_index(63), 63);
        assert_eq!(bucket_index(64), 64);
        assert_eq!(bucket_index(65), 64);
        assert_eq!(bucket_index(MAX_TRACKABLE_NS), BUCKETS - 1);
        assert_eq!(bucket_index(u64::MAX), BUCKETS - 1);
        let mut next = 0u64;
        for i in 0..BUCKETS {
            let (lo, hi) = bucket_bounds(i);
            assert_eq!(lo, next, "bucket {i} starts where {} ended", i.saturating_sub(1));
            assert!(hi >= lo);
            assert_eq!(bucket_index(lo), i);
            assert_eq!(bucket_index(hi), i);
            let mid = bucket_value(i);
            assert!(lo <= mid && mid <= hi);
            // Half the width over the lowest value is the documented bound; below 32
            // every bucket holds one value, reported exactly.
            if lo < SUB {
                assert_eq!((lo, hi, mid), (i as u64, i as u64, i as u64));
            } else {
                assert!(((hi - lo + 1) as f64 / 2.0) / lo as f64 <= RELATIVE_ERROR);
            }
            next = hi + 1;
        }
        assert_eq!(next, MAX_TRACKABLE_NS + 1);
    }

    #[test]
    fn record_count_sum_and_empty_quantiles() {
        let h = BurstLatency::new();
        assert_eq!(h.snapshot().quantile(0.5), None);
        assert_eq!(h.snapshot().summary(), LatencySummary::default());
        for ns in [10, 20, 30, 1_000, 1_000_000] {
            h.record(ns);
        }
        h.record(u64::MAX / 2);
        let s = h.snapshot();
        assert_eq!(s.count(), 6);
        assert_eq!(s.sum_ns(), 1_001_060 + u64::MAX / 2);
        assert_eq!(s.quantile(0.0), Some(10));
        assert_eq!(s.quantile(0.5), Some(30));
        assert_eq!(s.quantile(1.0), Some(bucket_value(BUCKETS - 1)));
        assert_eq!(s.quantile(f64::NAN), Some(10));
        assert_eq!(s.buckets().count(), 6);
        assert!(format!("{h:?}").contains("count: 6"));
    }

    #[test]
    fn merge_and_since() {
        let (a, b) = (BurstLatency::new(), BurstLatency::new());
        (0..100).for_each(|i| a.record(1_000 + i));
        (0..100).for_each(|i| b.record(100_000 + i));
        let mut m = a.snapshot();
        m.merge(&b.snapshot());
        assert_eq!(m.count(), 200);
        let p = m.quantile(0.25).unwrap();
        assert!((p as f64 - 1_049.0).abs() / 1_049.0 <= RELATIVE_ERROR, "{p}");
        let p = m.quantile(0.99).unwrap();
        assert!((p as f64 - 100_097.0).abs() / 100_097.0 <= RELATIVE_ERROR, "{p}");
        let before = a.snapshot();
        a.record(5_000_000);
        let d = a.snapshot().since(&before);
        assert_eq!((d.count(), d.sum_ns()), (1, 5_000_000));
        assert!(d.quantile(0.5).unwrap().abs_diff(5_000_000) as f64 <= 5_000_000.0 * RELATIVE_ERROR);
        // Saturating both ways.
        assert_eq!(before.since(&a.snapshot()).count(), 0);
    }

    #[test]
    fn hdr_agrees_with_direct_quantiles() {
        let h = BurstLatency::new();
        for i in 1..=10_000u64 {
            h.record(i * 37);
        }
        let s = h.snapshot();
        let hdr = s.to_hdr().unwrap();
        assert_eq!(hdr.len(), 10_000);
        for q in [0.5, 0.99, 0.999] {
            // The exact sample of rank ⌈q·n⌉; HdrHistogram may round the rank to a
            // neighbour (37 ns away, negligible here).
            let exact = ((q * 10_000f64).ceil() * 37.0).max(37.0);
            let direct = s.quantile(q).unwrap() as f64;
            let via = hdr.value_at_quantile(q) as f64;
            assert!((direct - exact).abs() / exact <= RELATIVE_ERROR, "q {q}: {direct} vs {exact}");
            assert!((via - exact).abs() / exact <= RELATIVE_ERROR + 0.002, "q {q}: {via} vs {exact}");
        }
    }

    #[test]
    fn window_slides() {
        let h = BurstLatency::new();
        let mut w = LatencyWindow::new(2);
        h.record(100);
        w.push(h.snapshot()); // tick 1: {100}
        h.record(200_000);
        w.push(h.snapshot()); // tick 2: {100, 200000}
        assert_eq!(w.window().count(), 2, "window covers everything until it is full");
        h.record(300);
        w.push(h.snapshot()); // tick 3: the window is ticks 2 and 3
        assert_eq!(w.window().count(), 2);
        assert_eq!(w.window().quantile(0.0), Some(bucket_value(bucket_index(300))));
        h.record(400);
        w.push(h.snapshot());
        w.push(h.snapshot());
        assert_eq!(w.window().count(), 1, "only 400 within the last two ticks");
        let sum = w.summary();
        assert_eq!((sum.count, sum.sum_ns), (4, 200_800));
        assert_eq!(sum.p50_ns, Some(bucket_value(bucket_index(400))));
        assert_eq!(w.total().count(), 4);
        w.push(h.snapshot());
        w.push(h.snapshot());
        let idle = w.summary();
        assert_eq!((idle.count, idle.p99_ns), (4, None), "no bursts in the window");
    }

    fn check_quantiles(mut values: Vec<u64>, qs: &[f64]) -> Result<(), TestCaseError> {
        let h = BurstLatency::new();
        for &v in &values {
            h.record(v);
        }
        values.sort_unstable();
        let s = h.snapshot();
        prop_assert_eq!(s.count(), values.len() as u64);
        for &q in qs {
            let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
            let exact = values[rank - 1];
            let got = s.quantile(q).unwrap_or(0);
            let err = got.abs_diff(exact) as f64;
            prop_assert!(err <= exact as f64 * RELATIVE_ERROR, "q {} got {} exact {}", q, got, exact);
            if exact < SUB {
                prop_assert_eq!(got, exact);
            }
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn quantiles_within_relative_error(
            values in prop::collection::vec(0u64..=MAX_TRACKABLE_NS, 1..2_000),
            qs in prop::collection::vec(0.0f64..=1.0, 1..8),
        ) {
            let mut qs = qs;
            qs.extend([0.5, 0.99, 0.999]);
            check_quantiles(values, &qs)?;
        }

        #[test]
        fn realistic_latencies(
            // Log-uniform from 50 ns to 5 ms, like burst times.
            exps in prop::collection::vec(0.0f64..1.0, 1..5_000),
        ) {
            let values = exps.iter().map(|e| (50.0 * 100_000f64.powf(*e)) as u64).collect();
            check_quantiles(values, &[0.5, 0.9, 0.99, 0.999, 1.0])?;
        }

        #[test]
        fn merged_workers_equal_one_histogram(
            a in prop::collection::vec(0u64..10_000_000, 0..500),
            b in prop::collection::vec(0u64..10_000_000, 0..500),
        ) {
            let (ha, hb, hall) = (BurstLatency::new(), BurstLatency::new(), BurstLatency::new());
            a.iter().for_each(|&v| { ha.record(v); hall.record(v); });
            b.iter().for_each(|&v| { hb.record(v); hall.record(v); });
            let mut m = ha.snapshot();
            m.merge(&hb.snapshot());
            prop_assert_eq!(m, hall.snapshot());
        }
    }
}
