//! Ownership and Full-NAT local ports: every allocated port belongs to its worker, no
//! port is handed out twice, release works, and with an RSS spec the reply of every
//! allocated port hashes to the worker's queue unless the allocator counted a miss.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use proptest::prelude::*;
use rvs_dataplane::conn::{client_owner, lport_owner, toeplitz_hash, LocalPortAllocator, RssSpec};

const SERVER: Ipv4Addr = Ipv4Addr::new(10, 20, 0, 11);

fn locals(n: usize) -> Vec<Ipv4Addr> {
    (0..n).map(|i| Ipv4Addr::new(10, 20, 0, 200 + i as u8)).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn allocated_ports_are_owned_unique_and_rss_local(
        workers in 1usize..8,
        worker_pick in any::<usize>(),
        nlocal in 1usize..4,
        key in proptest::collection::vec(any::<u8>(), 40),
        reta_len in prop_oneof![Just(128usize), Just(512), 1usize..300],
        queues in 1u16..8,
        reta_seed in any::<u64>(),
        sports in proptest::collection::vec(any::<u16>(), 1..8),
        ops in proptest::collection::vec((any::<bool>(), any::<usize>()), 1..400),
    ) {
        let worker = worker_pick % workers;
        let la = locals(nlocal);
        let mut key40 = [0u8; 40];
        key40.copy_from_slice(&key);
        let mut s = reta_seed | 1;
        let reta: Vec<u16> = (0..reta_len)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s % u64::from(queues)) as u16
            })
            .collect();
        let spec = RssSpec::new(key40, &reta, worker % usize::from(queues));
        let mut a = LocalPortAllocator::new(worker, workers, &la);
        let mut held: Vec<(Ipv4Addr, u16)> = vec![];
        let mut in_use: HashSet<(Ipv4Addr, u16)> = HashSet::new();
        let mut misdirected = 0u64;
        for (i, (alloc, pick)) in ops.into_iter().enumerate() {
            if alloc || held.is_empty() {
                let sport = sports[i % sports.len()];
                let Some((addr, p)) = a.alloc(&la, SERVER, sport, Some(&spec)) else { continue };
                prop_assert!(la.contains(&addr));
                prop_assert!(p >= 1024);
                prop_assert_eq!(lport_owner(p, workers), worker);
                prop_assert!(in_use.insert((addr, p)), "{}:{} allocated twice", addr, p);
                if spec.queue(SERVER, sport, addr, p).map(usize::from) != Some(spec.queue_of_worker()) {
                    misdirected += 1;
                }
                held.push((addr, p));
            } else {
                let (addr, p) = held.swap_remove(pick % held.len());
                prop_assert!(a.release(addr, p));
                prop_assert!(!a.release(addr, p), "second release accepted");
                in_use.remove(&(addr, p));
            }
        }
        prop_assert!(misdirected <= a.rss_misses(), "{} misdirected, {} counted", misdirected, a.rss_misses());
        // Whether the search *finds* matching ports depends on the key (Toeplitz is linear:
        // a degenerate key may map every port of this worker to other queues); that is
        // checked with a real key in `rss_filter_steers_every_reply_with_a_real_key`.
    }

    #[test]
    fn table_toeplitz_equals_the_bitwise_definition(
        key in proptest::collection::vec(any::<u8>(), 40),
        src in any::<u32>(), dst in any::<u32>(), sport in any::<u16>(), dport in any::<u16>(),
    ) {
        let mut key40 = [0u8; 40];
        key40.copy_from_slice(&key);
        let spec = RssSpec::new(key40, &[0, 1], 0);
        let mut input = Vec::new();
        input.extend_from_slice(&src.to_be_bytes());
        input.extend_from_slice(&dst.to_be_bytes());
        input.extend_from_slice(&sport.to_be_bytes());
        input.extend_from_slice(&dport.to_be_bytes());
        let h = toeplitz_hash(&key40, &input);
        prop_assert_eq!(spec.hash(Ipv4Addr::from(src), sport, Ipv4Addr::from(dst), dport), h);
        prop_assert_eq!(spec.queue(Ipv4Addr::from(src), sport, Ipv4Addr::from(dst), dport), Some((h % 2) as u16));
    }

    #[test]
    fn client_owner_is_a_worker(ip in any::<u32>(), port in any::<u16>(), workers in 0usize..64) {
        let o = client_owner(Ipv4Addr::from(ip), port, workers);
        prop_assert!(o < workers.max(1));
        if workers <= 1 {
            prop_assert_eq!(o, 0);
        }
    }
}

/// Clients spread over every worker, each getting its fair share within 10 %: from one
/// address many ports, and from many addresses one port (a constant or a hash of only the
/// address or only the port would fail).
#[test]
fn client_owner_spreads_clients_over_every_worker() {
    const N: usize = 60_000;
    for workers in [2usize, 3, 4, 7, 16] {
        let from_ports = (0..N).map(|i| client_owner(Ipv4Addr::new(10, 0, 0, 2), 1024 + i as u16, workers));
        let from_addrs = (0..N).map(|i| client_owner(Ipv4Addr::from(0x0a00_0000 + i as u32), 40000, workers));
        for (what, owners) in [("ports", from_ports.collect::<Vec<_>>()), ("addresses", from_addrs.collect())] {
            let mut per = vec![0usize; workers];
            for o in owners {
                per[o] += 1;
            }
            let fair = N / workers;
            assert!(
                per.iter().all(|&n| n.abs_diff(fair) * 10 <= fair),
                "{workers} workers, clients varying in {what}: {per:?} (fair share {fair})"
            );
        }
    }
}

/// The Microsoft verification key, as a NIC would have it.
const MS_KEY: [u8; 40] = [
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0, 0xd0, 0xca, 0x2b,
    0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac,
    0x01, 0xfa,
];

#[test]
fn rss_filter_steers_every_reply_with_a_real_key() {
    // 4 workers on 4 queues, DPDK's default RETA (entry i → queue i % 4).
    let la = locals(2);
    for worker in 0..4 {
        let reta: Vec<u16> = (0..128).map(|i| i % 4).collect();
        let spec = RssSpec::new(MS_KEY, &reta, worker);
        let mut a = LocalPortAllocator::new(worker, 4, &la);
        let (mut plain, mut steered) = (LocalPortAllocator::new(worker, 4, &la), 0);
        for i in 0..2000u16 {
            let server = Ipv4Addr::new(10, 20, 0, 11 + (i % 3) as u8);
            let sport = 80 + i % 5;
            let (addr, p) = a.alloc(&la, server, sport, Some(&spec)).unwrap();
            assert_eq!(spec.queue(server, sport, addr, p), Some(worker as u16));
            let (addr, p) = plain.alloc(&la, server, sport, None).unwrap();
            steered += usize::from(spec.queue(server, sport, addr, p) == Some(worker as u16));
        }
        assert_eq!(a.rss_misses(), 0);
        // Without the filter, about a quarter of the replies would reach their owner.
        assert!(steered < 1000, "{steered}");
    }
}

#[test]
fn exhaustion_with_rss_and_many_workers() {
    // 4000 workers: 16 ports per address, so the allocator runs dry and the RSS search
    // sees fewer candidates than its bound.
    let la = locals(2);
    let spec = RssSpec::new([0x6d; 40], &[0, 1, 2, 3], 2);
    let mut a = LocalPortAllocator::new(3999, 4000, &la);
    let per_addr = (1024..=65535u32).filter(|p| p % 4000 == 3999).count();
    assert_eq!(a.available(la[0]), per_addr);
    let mut got = HashSet::new();
    while let Some(x) = a.alloc(&la, SERVER, 443, Some(&spec)) {
        assert!(got.insert(x));
        assert_eq!(lport_owner(x.1, 4000), 3999);
    }
    assert_eq!(got.len(), 2 * per_addr);
    assert_eq!(a.available(la[1]), 0);
    // Unknown addresses are skipped; a worker with no ports (more workers than ports)
    // simply has none.
    assert_eq!(a.alloc(&[Ipv4Addr::new(1, 2, 3, 4)], SERVER, 443, None), None);
    let mut none = LocalPortAllocator::new(70_000, 100_000, &la);
    assert_eq!(none.alloc(&la, SERVER, 443, Some(&spec)), None);
    let mut zero = LocalPortAllocator::new(5, 0, &la);
    assert!(zero.alloc(&la, SERVER, 443, None).is_some());
}
