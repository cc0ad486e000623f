//! The VRRP state machine on a virtual clock: timers, preemption, priority 0, split
//! brain, equal priorities, tracking, step-down, and bad adverts.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use rvs_dataplane::wire::vrrp::VrrpRepr;

use super::*;

const GROUP: IpAddr = IpAddr::V4(Ipv4Addr::new(224, 0, 0, 18));
const ME: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 10, 0, 1));
const PEER: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 10, 0, 10));

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn addrs() -> Vec<IpAddr> {
    vec![IpAddr::V4(Ipv4Addr::new(10, 10, 0, 100)), IpAddr::V4(Ipv4Addr::new(10, 20, 0, 100))]
}

fn config(priority: u8) -> InstanceConfig {
    InstanceConfig {
        vrid: 51,
        version: 3,
        priority,
        advert_interval: ms(100),
        preempt: true,
        preempt_delay: Duration::ZERO,
        addresses: addrs(),
        primary: ME,
        garp_repeat: 5,
        garp_delay: Duration::from_secs(5),
    }
}

/// An advert as a peer at `src` sends it.
fn advert_from(version: u8, vrid: u8, priority: u8, interval_cs: u16, src: IpAddr, addresses: Vec<IpAddr>) -> Vec<u8> {
    let r = VrrpRepr { version, vrid, priority, interval_cs, addresses };
    let mut b = vec![0; r.buffer_len()];
    assert!(r.emit(&mut b, src, GROUP));
    b
}

fn advert(priority: u8) -> Vec<u8> {
    advert_from(3, 51, priority, 10, PEER, addrs())
}

fn actions(i: &mut Instance) -> Vec<Action> {
    i.take_actions().collect()
}

fn transitions(a: &[Action]) -> Vec<(State, State)> {
    a.iter()
        .filter_map(|a| match a {
            Action::Transition(t) => Some((t.from, t.to)),
            _ => None,
        })
        .collect()
}

/// Starts an instance at `t0` and lets its master-down timer run out: master.
fn master(priority: u8, t0: Instant) -> (Instance, Instant) {
    let mut i = Instance::new(config(priority));
    i.start(t0);
    let at = i.next_deadline().unwrap();
    i.poll(at);
    assert_eq!(i.state(), State::Master);
    actions(&mut i);
    (i, at)
}

#[test]
fn backup_becomes_master_after_master_down_interval() {
    let t0 = Instant::now();
    let mut i = Instance::new(config(100));
    assert_eq!(i.state(), State::Init);
    i.start(t0);
    assert_eq!(i.state(), State::Backup);
    // 3 × 100 ms + (256 − 100) × 100 ms / 256 = 300 ms + 60.9375 ms.
    assert_eq!(i.skew(), Duration::from_micros(60_937) + Duration::from_nanos(500));
    let down = t0 + ms(300) + i.skew();
    assert_eq!(i.next_deadline(), Some(down));
    i.poll(down - ms(1));
    assert_eq!(i.state(), State::Backup);
    actions(&mut i);
    i.poll(down);
    assert_eq!(i.state(), State::Master);
    let a = actions(&mut i);
    assert_eq!(transitions(&a), [(State::Backup, State::Master)]);
    assert_eq!(&a[1..], [Action::Advert { priority: 100 }, Action::Role { master: true }, Action::Garp { rounds: 5 }]);
    // Adverts every interval; the second gratuitous ARP burst after garp_master_delay.
    assert_eq!(i.next_deadline(), Some(down + ms(100)));
    i.poll(down + ms(100));
    assert_eq!(actions(&mut i), [Action::Advert { priority: 100 }]);
    let mut t = down + ms(100);
    let mut garps = 0;
    while t < down + Duration::from_secs(6) {
        t = i.next_deadline().unwrap();
        i.poll(t);
        garps += actions(&mut i).iter().filter(|a| matches!(a, Action::Garp { rounds: 5 })).count();
    }
    assert_eq!(garps, 1, "one more burst after 5 s, then no more");
    assert_eq!(i.counters().transitions, 2);
    assert_eq!(i.master(), Some((ME, 100)));
}

#[test]
fn version_2_timers_use_seconds() {
    let t0 = Instant::now();
    let mut i = Instance::new(InstanceConfig { version: 2, advert_interval: Duration::from_secs(1), ..config(100) });
    i.start(t0);
    // 3 × 1 s + (256 − 100) / 256 s.
    assert_eq!(
        i.next_deadline(),
        Some(t0 + Duration::from_secs(3) + Duration::from_millis(609) + Duration::from_micros(375))
    );
}

#[test]
fn backup_follows_a_higher_master_and_learns_its_interval() {
    let t0 = Instant::now();
    let mut i = Instance::new(config(100));
    i.start(t0);
    for k in 1..50 {
        let now = t0 + ms(k * 200);
        // The master advertises every 200 ms (20 cs): a v3 backup adopts that interval.
        i.receive(now, PEER, GROUP, 255, &advert_from(3, 51, 200, 20, PEER, addrs())).unwrap();
        i.poll(now);
        assert_eq!(i.state(), State::Backup);
        assert_eq!(i.next_deadline(), Some(now + ms(600) + ms(200) * 156 / 256));
    }
    assert_eq!(i.master(), Some((PEER, 200)));
    assert_eq!(i.counters().adverts_received, 49);
}

#[test]
fn preempt_takes_over_from_a_lower_master_and_nopreempt_does_not() {
    let t0 = Instant::now();
    let mut i = Instance::new(config(200));
    i.start(t0);
    // A lower-priority master's adverts do not reset the timer: take over on time.
    let down = i.next_deadline().unwrap();
    let mut now = t0;
    while now < down {
        i.receive(now, PEER, GROUP, 255, &advert(100)).unwrap();
        i.poll(now);
        assert_eq!(i.state(), State::Backup);
        now += ms(100);
    }
    i.poll(down);
    assert_eq!(i.state(), State::Master);

    let mut i = Instance::new(InstanceConfig { preempt: false, ..config(200) });
    i.start(t0);
    for k in 0..100 {
        let now = t0 + ms(k * 100);
        i.receive(now, PEER, GROUP, 255, &advert(100)).unwrap();
        i.poll(now);
    }
    assert_eq!(i.state(), State::Backup, "without preempt a lower master keeps the role");
}

#[test]
fn preempt_delay_tolerates_a_lower_master_for_that_long() {
    let t0 = Instant::now();
    let mut i = Instance::new(InstanceConfig { preempt_delay: Duration::from_secs(2), ..config(200) });
    i.start(t0);
    let mut now = t0;
    while i.state() == State::Backup {
        now += ms(100);
        assert!(now < t0 + Duration::from_secs(3), "never preempted");
        i.receive(now, PEER, GROUP, 255, &advert(100)).unwrap();
        i.poll(now);
    }
    // The first lower advert came at 100 ms: tolerated until 2.1 s, then the master-down
    // interval (about 0.32 s at priority 200) runs out.
    assert!(now >= t0 + ms(2100) + ms(300), "{:?}", now - t0);
    assert!(now <= t0 + ms(2100) + ms(500), "{:?}", now - t0);
}

/// A node waiting for its bulk resync does not preempt a lower master; once in sync (the
/// hold gone) it does, after the master-down interval.
#[test]
fn hold_preempt_keeps_a_lower_master_until_released() {
    let t0 = Instant::now();
    let mut i = Instance::new(config(200));
    i.start(t0);
    let hold =
        Tracking { hold_preempt: Some("bulk resync from the master not complete".into()), ..Tracking::default() };
    i.set_tracking(t0, hold);
    let mut now = t0;
    for _ in 0..50 {
        now += ms(100);
        i.receive(now, PEER, GROUP, 255, &advert(100)).unwrap();
        i.poll(now);
    }
    assert_eq!(i.state(), State::Backup, "held: the lower master keeps the role");
    i.set_tracking(now, Tracking::default());
    let released = now;
    while i.state() == State::Backup {
        now += ms(100);
        assert!(now < released + Duration::from_secs(1), "never preempted after the hold");
        i.receive(now, PEER, GROUP, 255, &advert(100)).unwrap();
        i.poll(now);
    }
    assert!(now >= released + ms(300), "{:?}", now - released);
}

#[test]
fn priority_zero_makes_the_backup_take_over_after_skew_only() {
    let t0 = Instant::now();
    let mut i = Instance::new(config(100));
    i.start(t0);
    i.receive(t0 + ms(50), PEER, GROUP, 255, &advert(200)).unwrap();
    i.receive(t0 + ms(100), PEER, GROUP, 255, &advert(0)).unwrap();
    assert_eq!(i.next_deadline(), Some(t0 + ms(100) + i.skew()));
    i.poll(t0 + ms(100) + i.skew());
    assert_eq!(i.state(), State::Master);
    assert_eq!(i.counters().priority_zero_received, 1);

    // A master hearing priority 0 answers with an advert at once.
    let (mut m, at) = master(100, t0);
    m.receive(at + ms(10), PEER, GROUP, 255, &advert(0)).unwrap();
    assert_eq!(actions(&mut m), [Action::Advert { priority: 100 }]);
    assert_eq!(m.state(), State::Master);
}

#[test]
fn split_brain_lower_yields_at_once_and_the_winner_garps_again() {
    let t0 = Instant::now();
    // We are master at 100 and hear 200: backup at once, addresses given up.
    let (mut m, at) = master(100, t0);
    m.receive(at + ms(10), PEER, GROUP, 255, &advert(200)).unwrap();
    assert_eq!(m.state(), State::Backup);
    let a = actions(&mut m);
    assert_eq!(a[0], Action::Role { master: false });
    assert_eq!(transitions(&a), [(State::Master, State::Backup)]);
    assert_eq!(m.master(), Some((PEER, 200)));

    // We are master at 200 and hear 100: keep the role, advert and one GARP round now,
    // not another round before SPLIT_BRAIN_GARP_GAP.
    let (mut m, at) = master(200, t0);
    m.receive(at + ms(10), PEER, GROUP, 255, &advert(100)).unwrap();
    assert_eq!(m.state(), State::Master);
    assert_eq!(actions(&mut m), [Action::Advert { priority: 200 }, Action::Garp { rounds: 1 }]);
    m.receive(at + ms(20), PEER, GROUP, 255, &advert(100)).unwrap();
    assert_eq!(actions(&mut m), [Action::Advert { priority: 200 }]);
    m.receive(at + ms(1010), PEER, GROUP, 255, &advert(100)).unwrap();
    assert_eq!(actions(&mut m), [Action::Advert { priority: 200 }, Action::Garp { rounds: 1 }]);
}

#[test]
fn equal_priority_is_broken_by_the_higher_address() {
    let t0 = Instant::now();
    // We (10.10.0.1) hear 10.10.0.10 at our priority: it wins.
    let (mut m, at) = master(100, t0);
    m.receive(at + ms(10), PEER, GROUP, 255, &advert(100)).unwrap();
    assert_eq!(m.state(), State::Backup);

    // We are 10.10.0.10 and hear 10.10.0.1 at our priority: we win.
    let mut i = Instance::new(InstanceConfig { primary: PEER, ..config(100) });
    i.start(t0);
    let at = i.next_deadline().unwrap();
    i.poll(at);
    actions(&mut i);
    i.receive(at + ms(10), ME, GROUP, 255, &advert_from(3, 51, 100, 10, ME, addrs())).unwrap();
    assert_eq!(i.state(), State::Master);
}

#[test]
fn bad_adverts_are_counted_and_change_nothing() {
    let t0 = Instant::now();
    for state in [State::Backup, State::Master] {
        let (mut i, at) = if state == State::Master {
            master(100, t0)
        } else {
            let mut i = Instance::new(config(100));
            i.start(t0);
            actions(&mut i);
            (i, t0)
        };
        let deadline = i.next_deadline();
        let now = at + ms(10);
        let good = advert(200);
        let mut bad_sum = good.clone();
        bad_sum[9] ^= 1;
        let other_set = advert_from(3, 51, 200, 10, PEER, vec![IpAddr::V4(Ipv4Addr::new(10, 10, 0, 100))]);
        let cases: Vec<(Vec<u8>, u8, IpAddr, Invalid)> = vec![
            (good.clone(), 64, PEER, Invalid::Ttl),
            (advert_from(2, 51, 200, 100, PEER, addrs()), 255, PEER, Invalid::Version),
            (advert_from(3, 52, 200, 10, PEER, addrs()), 255, PEER, Invalid::Vrid),
            (bad_sum, 255, PEER, Invalid::Checksum),
            (good[..12].to_vec(), 255, PEER, Invalid::Truncated),
            (good[..5].to_vec(), 255, PEER, Invalid::Truncated),
            (other_set, 255, PEER, Invalid::Addresses),
            (advert_from(3, 51, 200, 10, ME, addrs()), 255, ME, Invalid::OwnAddress),
        ];
        for (bytes, ttl, src, reason) in cases {
            assert_eq!(i.receive(now, src, GROUP, ttl, &bytes), Err(reason));
            assert!(i.counters().invalid(reason) >= 1, "{reason:?}");
            assert_eq!(i.state(), state, "{reason:?} changed the state");
            assert_eq!(i.next_deadline(), deadline, "{reason:?} moved a timer");
        }
        assert_eq!(i.counters().invalid(Invalid::Truncated), 2);
        assert_eq!(i.counters().adverts_received, 0);
        assert!(actions(&mut i).is_empty());
    }
}

#[test]
fn version_2_checks_auth_type_and_interval() {
    let t0 = Instant::now();
    let mut i = Instance::new(InstanceConfig { version: 2, advert_interval: Duration::from_secs(1), ..config(100) });
    i.start(t0);
    i.receive(t0, PEER, GROUP, 255, &advert_from(2, 51, 200, 100, PEER, addrs())).unwrap();
    assert_eq!(i.receive(t0, PEER, GROUP, 255, &advert_from(2, 51, 200, 200, PEER, addrs())), Err(Invalid::Interval));
    let mut auth = advert_from(2, 51, 200, 100, PEER, addrs());
    auth[4] = 1; // simple text password
                 // Keep the checksum right so the auth type is what is judged.
    let mut p = rvs_dataplane::wire::VrrpPacket::new_unchecked(&mut auth[..], Family::V4);
    p.fill_checksum(PEER, GROUP);
    assert_eq!(i.receive(t0, PEER, GROUP, 255, &auth), Err(Invalid::Auth));
}

#[test]
fn shutdown_sends_priority_zero_and_gives_up_the_addresses() {
    let t0 = Instant::now();
    let (mut m, at) = master(100, t0);
    m.shutdown(at + ms(5));
    let a = actions(&mut m);
    assert_eq!(&a[..2], [Action::Advert { priority: 0 }, Action::Role { master: false }]);
    assert_eq!(transitions(&a), [(State::Master, State::Init)]);
    assert_eq!(m.next_deadline(), None);
    let mut b = Instance::new(config(100));
    b.start(t0);
    actions(&mut b);
    b.shutdown(t0);
    assert!(!actions(&mut b).iter().any(|a| matches!(a, Action::Advert { .. })), "a backup sends nothing");
}

#[test]
fn step_down_resigns_and_holds_off_preemption_but_not_forever() {
    let t0 = Instant::now();
    let (mut m, at) = master(200, t0);
    assert!(m.step_down(at, Duration::from_secs(60)));
    assert!(!m.step_down(at, Duration::from_secs(60)), "only a master steps down");
    let a = actions(&mut m);
    assert_eq!(&a[..2], [Action::Advert { priority: 0 }, Action::Role { master: false }]);
    assert_eq!(m.state(), State::Backup);
    // The lower-priority peer takes over; we do not preempt it during the hold.
    let mut now = at;
    for _ in 0..100 {
        now += ms(100);
        m.receive(now, PEER, GROUP, 255, &advert(100)).unwrap();
        m.poll(now);
        assert_eq!(m.state(), State::Backup);
    }
    // The peer dies: the addresses still get an owner.
    let down = m.next_deadline().unwrap();
    m.poll(down);
    assert_eq!(m.state(), State::Master);
}

#[test]
fn tracking_faults_and_lowers_priority() {
    let t0 = Instant::now();
    let (mut m, at) = master(200, t0);
    m.set_tracking(at, Tracking { fault: Some("port `front` link down".into()), ..Tracking::default() });
    assert_eq!(m.state(), State::Fault);
    let a = actions(&mut m);
    assert_eq!(&a[..2], [Action::Advert { priority: 0 }, Action::Role { master: false }]);
    assert_eq!(m.last_transition().unwrap().1, "port `front` link down");
    assert_eq!(m.next_deadline(), None);
    // Adverts in fault change nothing.
    m.receive(at, PEER, GROUP, 255, &advert(100)).unwrap();
    assert_eq!(m.state(), State::Fault);
    m.set_tracking(at + ms(10), Tracking::default());
    assert_eq!(m.state(), State::Backup);
    // A decrement lowers the advertised priority, never below 1.
    let (mut m, at) = master(200, t0);
    m.set_tracking(at, Tracking { decrement: 250, ..Tracking::default() });
    assert_eq!(m.effective_priority(), 1);
    m.poll(at + ms(100));
    assert_eq!(actions(&mut m), [Action::Advert { priority: 1 }]);
    // A starting instance with a fault goes straight to fault.
    let mut i = Instance::new(config(100));
    i.set_tracking(t0, Tracking { fault: Some("worker 0 stalled".into()), ..Tracking::default() });
    i.start(t0);
    assert_eq!(i.state(), State::Fault);
}

/// An IPv6-only instance (VRRP over IPv6): primary addresses are link-local, adverts are
/// judged by the same rules with the hop limit for the TTL and the IPv6 pseudo-header in
/// the checksum; equal priorities are settled by the higher link-local address.
#[test]
fn ipv6_adverts_are_judged_like_ipv4_ones() {
    let group6: IpAddr = "ff02::12".parse().unwrap();
    let me6: IpAddr = "fe80::ff:fe00:101".parse().unwrap();
    let peer6: IpAddr = "fe80::ff:fe00:201".parse().unwrap();
    let addrs6: Vec<IpAddr> = vec!["2001:db8:10::100".parse().unwrap(), "2001:db8:10::254".parse().unwrap()];
    let config6 = InstanceConfig { addresses: addrs6.clone(), primary: me6, ..config(100) };
    let advert6 = |version: u8, vrid: u8, priority: u8, src: IpAddr, addresses: Vec<IpAddr>| {
        let r = VrrpRepr { version, vrid, priority, interval_cs: 10, addresses };
        let mut b = vec![0; r.buffer_len()];
        assert!(r.emit(&mut b, src, group6));
        b
    };
    let t0 = Instant::now();
    let mut i = Instance::new(config6.clone());
    i.start(t0);
    actions(&mut i);
    let deadline = i.next_deadline();
    let now = t0 + ms(10);
    let good = advert6(3, 51, 200, peer6, addrs6.clone());
    let mut bad_sum = good.clone();
    bad_sum[9] ^= 1;
    // A v2 message inside IPv6 (RFC 3768 has no IPv6 form).
    let mut v2 = good.clone();
    v2[0] = 0x21;
    let cases: Vec<(Vec<u8>, u8, IpAddr, Invalid)> = vec![
        (good.clone(), 1, peer6, Invalid::Ttl),
        (v2, 255, peer6, Invalid::Version),
        (advert6(3, 52, 200, peer6, addrs6.clone()), 255, peer6, Invalid::Vrid),
        (bad_sum, 255, peer6, Invalid::Checksum),
        // An IPv4 advert's address list, read as IPv6 addresses, runs short.
        (advert_from(3, 51, 200, 10, PEER, addrs()), 255, peer6, Invalid::Truncated),
        (good[..20].to_vec(), 255, peer6, Invalid::Truncated),
        (advert6(3, 51, 200, peer6, addrs6[..1].to_vec()), 255, peer6, Invalid::Addresses),
        (advert6(3, 51, 200, me6, addrs6.clone()), 255, me6, Invalid::OwnAddress),
    ];
    for (bytes, hop_limit, src, reason) in cases {
        assert_eq!(i.receive(now, src, group6, hop_limit, &bytes), Err(reason), "{reason:?}");
        assert_eq!(i.state(), State::Backup, "{reason:?} changed the state");
        assert_eq!(i.next_deadline(), deadline, "{reason:?} moved a timer");
    }
    assert_eq!(i.counters().adverts_received, 0);
    // A good advert: followed, its link-local source the master.
    i.receive(now, peer6, group6, 255, &good).unwrap();
    assert_eq!(i.master(), Some((peer6, 200)));
    // Equal priority as master: the higher link-local address wins.
    let (mut m, at) = {
        let mut m = Instance::new(config6.clone());
        m.start(t0);
        let at = m.next_deadline().unwrap();
        m.poll(at);
        actions(&mut m);
        (m, at)
    };
    assert_eq!(m.state(), State::Master);
    let lower: IpAddr = "fe80::ff:fe00:1".parse().unwrap();
    m.receive(at + ms(10), lower, group6, 255, &advert6(3, 51, 100, lower, addrs6.clone())).unwrap();
    assert_eq!(m.state(), State::Master, "a lower link-local address yields");
    m.receive(at + ms(20), peer6, group6, 255, &advert6(3, 51, 100, peer6, addrs6)).unwrap();
    assert_eq!(m.state(), State::Backup, "a higher link-local address wins");
}
