//! Every scheduler against its definition, through the public API only: 100k picks with
//! varied clients per scheduler; shares, determinism, load preference, and the rules that
//! hold for all (weight 0 and overloaded servers never picked, `None` when nobody can).
//! Plus the Maglev minimal-disruption property.

use std::net::Ipv4Addr;
use std::sync::Arc;

use proptest::prelude::*;
use rvs_dataplane::sched::{new_scheduler, SchedInput, SchedParams, SchedShared, Scheduler};
use rvs_dataplane::server::{RealServer, ServerStats};
use rvs_dataplane::types::{ForwardMode, SchedulerKind};

const PICKS: u32 = 100_000;
const WORKERS: usize = 2;

fn servers(weights: &[u32]) -> Vec<RealServer> {
    weights
        .iter()
        .enumerate()
        .map(|(i, &weight)| RealServer {
            addr: Ipv4Addr::new(10, 20, 0, 11 + i as u8).into(),
            port: 80,
            weight,
            forward: ForwardMode::Dr,
            upper: 0,
            lower: 0,
            stats: Arc::new(ServerStats::new(WORKERS)),
        })
        .collect()
}

/// Client `n`: addresses spread over 10.0.0.0/8, ports varying.
fn input(n: u32) -> SchedInput {
    SchedInput {
        client: 0x0a00_0000 | (n.wrapping_mul(2_654_435_761) >> 8),
        client_port: 1024 + (n % 60_000) as u16,
        vip: u32::from(Ipv4Addr::new(10, 10, 0, 100)),
        vport: 80,
        now_ns: u64::from(n) * 1_000,
    }
}

fn build(kind: SchedulerKind, servers: &[RealServer], worker: usize) -> Box<dyn Scheduler> {
    let shared = Arc::new(SchedShared::build(kind, servers, &SchedParams::default()).expect("builds"));
    new_scheduler(kind, shared, servers, worker, WORKERS)
}

/// Sets a server over its upper threshold.
fn overload(s: &RealServer) {
    s.stats.conn_opened(0, false);
    assert!(s.stats.update_overload(1, 0));
}

fn open(s: &RealServer, active: u64) {
    for _ in 0..active {
        s.stats.conn_opened(1, true);
    }
}

/// Shares of `picks` picks by `sched`, with inputs from `inp`.
fn shares(sched: &mut dyn Scheduler, servers: &[RealServer], picks: u32, inp: impl Fn(u32) -> SchedInput) -> Vec<f64> {
    let mut counts = vec![0u32; servers.len()];
    for n in 0..picks {
        counts[sched.pick(servers, &inp(n)).expect("a server")] += 1;
    }
    counts.iter().map(|&c| f64::from(c) / f64::from(picks)).collect()
}

fn assert_close(got: &[f64], want: &[f64], tolerance: f64, what: &str) {
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() <= tolerance, "{what}: shares {got:?}, want {want:?} ± {tolerance}");
    }
}

/// How a test derives the n-th input.
type InputFn = dyn Fn(u32) -> SchedInput;

const W321: [f64; 3] = [0.5, 1.0 / 3.0, 1.0 / 6.0];

#[test]
fn every_scheduler_skips_weight_zero_and_overloaded_and_returns_none_when_nobody_can() {
    for &kind in SchedulerKind::ALL {
        let servers = servers(&[3, 0, 2, 1]);
        overload(&servers[3]);
        for worker in 0..WORKERS {
            let mut s = build(kind, &servers, worker);
            for n in 0..PICKS / 10 {
                let p = s.pick(&servers, &input(n));
                assert!(matches!(p, Some(0) | Some(2)), "{kind}: picked {p:?}");
            }
        }
        let mut s = build(kind, &servers, 0);
        overload(&servers[0]);
        overload(&servers[2]);
        for n in 0..100 {
            assert_eq!(s.pick(&servers, &input(n)), None, "{kind}: all unavailable");
        }
        let quiet = self::servers(&[0, 0]);
        let mut s = build(kind, &quiet, 0);
        assert_eq!(s.pick(&quiet, &input(1)), None, "{kind}: all quiescent");
    }
}

#[test]
fn rr_is_equal_within_one_per_cycle_on_every_worker() {
    let servers = servers(&[1, 7, 2, 1, 5]);
    let mut firsts = Vec::new();
    for worker in 0..WORKERS {
        let mut s = build(SchedulerKind::Rr, &servers, worker);
        let mut counts = [0u32; 5];
        for n in 0..PICKS {
            let p = s.pick(&servers, &input(n)).unwrap();
            if n == 0 {
                firsts.push(p);
            }
            counts[p] += 1;
            let (lo, hi) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
            assert!(hi - lo <= 1, "after {n} picks: {counts:?}");
        }
        assert_eq!(counts, [PICKS / 5; 5]);
    }
    assert_ne!(firsts[0], firsts[1], "workers start at different servers");
}

#[test]
fn wrr_is_exact_over_whole_cycles() {
    let servers = servers(&[3, 2, 1]);
    for worker in 0..WORKERS {
        let mut s = build(SchedulerKind::Wrr, &servers, worker);
        let mut counts = [0u32; 3];
        for n in 1..=PICKS {
            counts[s.pick(&servers, &input(n)).unwrap()] += 1;
            if n % 6 == 0 {
                let c = n / 6;
                assert_eq!(counts, [3 * c, 2 * c, c], "after {n} picks");
            }
        }
    }
}

/// Runs `picks` picks, each opening an active connection on the chosen server.
fn closed_loop(kind: SchedulerKind, servers: &[RealServer], picks: u32) -> Vec<u64> {
    let mut s = build(kind, servers, 0);
    for n in 0..picks {
        let p = s.pick(servers, &input(n)).unwrap();
        servers[p].stats.conn_opened(0, true);
    }
    servers.iter().map(|s| s.stats.active_conns()).collect()
}

#[test]
fn lc_fills_the_least_loaded_first() {
    let servers = servers(&[1, 9, 1]);
    open(&servers[0], 1000);
    open(&servers[2], 400);
    let mut s = build(SchedulerKind::Lc, &servers, 0);
    for n in 0..400 {
        assert_eq!(s.pick(&servers, &input(n)), Some(1), "lc ignores weights");
        servers[1].stats.conn_opened(0, true);
    }
    let active = closed_loop(SchedulerKind::Lc, &servers, PICKS);
    let total: u64 = 1400 + 400 + u64::from(PICKS);
    for a in &active {
        assert!(a.abs_diff(total / 3) <= 1, "{active:?}");
    }
}

#[test]
fn wlc_and_sed_balance_load_per_weight() {
    let servers = servers(&[3, 2, 1]);
    open(&servers[2], 500);
    let mut s = build(SchedulerKind::Wlc, &servers, 0);
    assert_ne!(s.pick(&servers, &input(0)), Some(2), "the preloaded server waits");
    let active = closed_loop(SchedulerKind::Wlc, &servers, PICKS);
    let total = f64::from(PICKS) + 500.0;
    for (a, w) in active.iter().zip(W321) {
        assert!((*a as f64 - total * w).abs() <= 2.0, "wlc {active:?}");
    }
    let servers = self::servers(&[3, 2, 1]);
    let active = closed_loop(SchedulerKind::Sed, &servers, PICKS - 3);
    // sed equalises (active + 1) / weight.
    for (a, w) in active.iter().zip(W321) {
        assert!(((*a + 1) as f64 - 100_000.0 * w).abs() <= 1.0, "sed {active:?}");
    }
}

#[test]
fn nq_serves_idle_servers_first_then_is_sed() {
    let servers = servers(&[10, 1, 1]);
    open(&servers[0], 3);
    let mut s = build(SchedulerKind::Nq, &servers, 0);
    // sed would pick server 0: (3 + 1) / 10 < (0 + 1) / 1.
    let mut sed = build(SchedulerKind::Sed, &servers, 0);
    assert_eq!(sed.pick(&servers, &input(0)), Some(0));
    assert_eq!(s.pick(&servers, &input(0)), Some(1));
    servers[1].stats.conn_opened(0, true);
    assert_eq!(s.pick(&servers, &input(1)), Some(2));
    servers[2].stats.conn_opened(0, true);
    assert_eq!(s.pick(&servers, &input(2)), Some(0), "nobody idle: sed");
    let active = closed_loop(SchedulerKind::Nq, &servers, PICKS);
    let total = PICKS as f64 + 5.0;
    assert!((active[0] as f64 / total - 10.0 / 12.0).abs() < 0.001, "{active:?}");
}

#[test]
fn sessions_levels_active_sessions() {
    let servers = servers(&[1, 5, 2]);
    open(&servers[1], 10);
    let mut s = build(SchedulerKind::Sessions, &servers, 0);
    assert_eq!(s.pick(&servers, &input(0)), Some(2), "fewest sessions, heavier of the idle");
    let active = closed_loop(SchedulerKind::Sessions, &servers, PICKS);
    let total = u64::from(PICKS) + 10;
    for a in &active {
        assert!(a.abs_diff(total / 3) <= 1, "{active:?}");
    }
}

#[test]
fn hash_schedulers_are_deterministic_and_weight_proportional() {
    let servers = servers(&[3, 2, 1]);
    let by_vip = |n: u32| SchedInput { vip: 0x0a0a_0000 | n.wrapping_mul(2_654_435_761) >> 12, ..input(n) };
    let cases: [(SchedulerKind, &InputFn, f64); 5] = [
        (SchedulerKind::Sh, &input, 0.01),
        (SchedulerKind::Dh, &by_vip, 0.01),
        (SchedulerKind::Mh, &input, 0.01),
        (SchedulerKind::Conhash, &input, 0.03),
        (SchedulerKind::UserHash, &input, 0.03),
    ];
    for (kind, inp, tolerance) in cases {
        let mut a = build(kind, &servers, 0);
        let mut b = build(kind, &servers, 1);
        let got = shares(a.as_mut(), &servers, PICKS, inp);
        assert_close(&got, &W321, tolerance, kind.name());
        for n in 0..PICKS {
            let i = inp(n);
            let p = a.pick(&servers, &i);
            assert_eq!(p, b.pick(&servers, &i), "{kind}: workers agree");
            assert_eq!(p, a.pick(&servers, &i), "{kind}: same input, same server");
        }
    }
}

#[test]
fn hash_schedulers_keep_unaffected_clients_when_one_server_fails() {
    for kind in [SchedulerKind::Sh, SchedulerKind::Mh, SchedulerKind::Conhash, SchedulerKind::UserHash] {
        let servers = servers(&[1, 1, 1, 1]);
        let mut s = build(kind, &servers, 0);
        let before: Vec<usize> = (0..PICKS / 10).map(|n| s.pick(&servers, &input(n)).unwrap()).collect();
        overload(&servers[2]);
        let mut moved = [0u32; 4];
        for (n, &b) in before.iter().enumerate() {
            let p = s.pick(&servers, &input(n as u32)).unwrap();
            if b == 2 {
                moved[p] += 1;
            } else {
                assert_eq!(p, b, "{kind}: client {n} moved though its server is fine");
            }
        }
        assert_eq!(moved[2], 0, "{kind}");
        assert!(moved.iter().filter(|&&m| m > 0).count() >= 2, "{kind}: the failed server's clients spread: {moved:?}");
    }
}

#[test]
fn fo_and_ovf_rules() {
    let servers = servers(&[2, 4, 4, 1]);
    let mut fo = build(SchedulerKind::Fo, &servers, 0);
    assert!((0..PICKS).all(|n| fo.pick(&servers, &input(n)) == Some(1)), "fo: first of the heaviest, always");
    overload(&servers[1]);
    assert_eq!(fo.pick(&servers, &input(0)), Some(2));

    let servers = self::servers(&[2, 4, 4, 1]);
    let mut ovf = build(SchedulerKind::Ovf, &servers, 0);
    let mut order = Vec::new();
    while let Some(p) = ovf.pick(&servers, &input(0)) {
        servers[p].stats.conn_opened(0, true);
        order.push(p);
    }
    assert_eq!(order, [1, 1, 1, 1, 2, 2, 2, 2, 0, 0, 3], "heaviest until active reaches weight, then overflow");
    servers[2].stats.conn_moved(0, false);
    assert_eq!(ovf.pick(&servers, &input(0)), Some(2), "only active connections count");
}

#[test]
fn twos_is_roughly_weight_proportional_and_prefers_the_lighter() {
    let servers = servers(&[3, 2, 1]);
    let mut s = build(SchedulerKind::Twos, &servers, 0);
    let got = shares(s.as_mut(), &servers, PICKS, input);
    assert_close(&got, &W321, 0.01, "twos");
    let mut other = build(SchedulerKind::Twos, &servers, 1);
    let a: Vec<_> = (0..50).map(|n| s.pick(&servers, &input(n))).collect();
    let b: Vec<_> = (0..50).map(|n| other.pick(&servers, &input(n))).collect();
    assert_ne!(a, b, "workers draw from different generators");
    // Loaded per weight, server 0 now loses every draw it is compared in.
    open(&servers[0], 100);
    let got = shares(s.as_mut(), &servers, PICKS, input);
    // P(0) = P(both draws are 0) = 1/4.
    assert!((got[0] - 0.25).abs() < 0.01, "{got:?}");
}

#[test]
fn lblc_and_lblcr_stick_per_destination() {
    for kind in [SchedulerKind::Lblc, SchedulerKind::Lblcr] {
        let servers = servers(&[2, 2, 2]);
        let mut s = build(kind, &servers, 0);
        let first = s.pick(&servers, &input(0));
        assert!((0..PICKS / 10).all(|n| s.pick(&servers, &input(n)) == first), "{kind}: one VIP, one server");
        let i = first.unwrap();
        open(&servers[i], 3);
        let next = s.pick(&servers, &input(7)).unwrap();
        assert_ne!(next, i, "{kind}: overloaded (3 > 2 while others are idle) moves on");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Maglev's minimal disruption: removing one of N servers moves at most 1/N + 1% of
    /// flows (those of the removed server, plus a little).
    #[test]
    fn maglev_removal_moves_about_one_nth(n in 3usize..=20, removed in 0usize..20, seed in any::<u32>()) {
        let removed = removed % n;
        let all = servers(&vec![1; n]);
        let rest: Vec<RealServer> = all.iter().enumerate().filter(|(i, _)| *i != removed).map(|(_, s)| s.clone()).collect();
        let mut before = build(SchedulerKind::Mh, &all, 0);
        let mut after = build(SchedulerKind::Mh, &rest, 0);
        let samples = 50_000u32;
        let mut moved = 0u32;
        for k in 0..samples {
            let i = input(seed.wrapping_add(k.wrapping_mul(7919)));
            let b = all[before.pick(&all, &i).unwrap()].addr;
            let a = rest[after.pick(&rest, &i).unwrap()].addr;
            if a != b {
                moved += 1;
            }
        }
        let frac = f64::from(moved) / f64::from(samples);
        prop_assert!(frac <= 1.0 / n as f64 + 0.01, "n {} removed {}: moved {:.4}", n, removed, frac);
    }
}
