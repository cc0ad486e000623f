//! Property: whatever bytes arrive, the worker never panics and every packet is accounted
//! for exactly once (`rx + originated == tx + consumed + Σ drops + parked`).

mod common;

use common::*;
use proptest::prelude::*;

/// Frames close to what the worker accepts, so that mutations reach deep checks.
fn templates() -> Vec<(rvs_dataplane::types::PortId, Vec<u8>)> {
    let tcp = {
        let mut t = vec![0u8; 20];
        t[12] = 0x50;
        t
    };
    vec![
        (FRONT, arp_request(CLIENT_MAC, CLIENT_IP, FRONT_IP)),
        (FRONT, arp_request(ROUTER_MAC, ROUTER_IP, VIP)),
        (FRONT, arp_reply(ROUTER_MAC, ROUTER_IP, FRONT_MAC, FRONT_IP)),
        (BACK, arp_request(RS_MAC, RS_IP, LOCAL_IP)),
        (FRONT, ping(CLIENT_MAC, CLIENT_IP, FRONT_IP, 1)),
        (FRONT, ping(ROUTER_MAC, FAR_CLIENT, VIP, 2)),
        (FRONT, pad60(eth(FRONT_MAC, CLIENT_MAC, ETH_IPV4, &ipv4(Ip::new(CLIENT_IP, VIP, 6), &tcp)))),
    ]
}

#[derive(Debug, Clone)]
enum Input {
    /// A template with byte edits and a new length.
    Mutated { template: usize, edits: Vec<(usize, u8)>, len: usize },
    /// Raw bytes, with our MAC as destination when `ours`.
    Raw { bytes: Vec<u8>, ours: bool, back: bool },
}

fn input() -> impl Strategy<Value = Input> {
    prop_oneof![
        (0..7usize, proptest::collection::vec((0..80usize, any::<u8>()), 0..6), 0..100usize)
            .prop_map(|(template, edits, len)| Input::Mutated { template, edits, len }),
        (proptest::collection::vec(any::<u8>(), 0..120), any::<bool>(), any::<bool>())
            .prop_map(|(bytes, ours, back)| Input::Raw { bytes, ours, back }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_frames_never_panic_and_are_counted_once(
        batches in proptest::collection::vec(proptest::collection::vec(input(), 0..40), 1..5),
        tx_room in proptest::option::of(0..50usize),
        pool_limit in proptest::option::of(0..4usize),
    ) {
        let pool = pool_limit.map_or_else(rvs_drivers::mem::MemPool::new, rvs_drivers::mem::MemPool::with_limit);
        let mut w = rvs_dataplane::worker::Worker::new(&lab_config(), queues(), pool, rvs_dataplane::l2l3::neigh::NeighSync::none()).unwrap();
        w.queue_mut(FRONT).unwrap().set_tx_room(tx_room);
        let templates = templates();
        let mut injected = 0u64;
        for (i, batch) in batches.into_iter().enumerate() {
            for inp in batch {
                let (port, frame) = match inp {
                    Input::Mutated { template, edits, len } => {
                        let (port, mut f) = templates[template].clone();
                        for (at, v) in edits {
                            if let Some(b) = f.get_mut(at) {
                                *b = v;
                            }
                        }
                        f.resize(len.min(f.len() + 20), 0);
                        (port, f)
                    }
                    Input::Raw { mut bytes, ours, back } => {
                        let (port, mac) = if back { (BACK, BACK_MAC) } else { (FRONT, FRONT_MAC) };
                        if ours && bytes.len() >= 6 {
                            bytes[..6].copy_from_slice(&mac);
                        }
                        (port, bytes)
                    }
                };
                inject(&mut w, port, &frame);
                injected += 1;
            }
            // Seconds apart, so the neighbour timers run too.
            while w.poll_once(i as u64 * SEC) > 0 {}
            assert_accounting(&w);
        }
        for t in 10..14 {
            w.poll_once(t * SEC);
        }
        assert_accounting(&w);
        prop_assert_eq!(snapshot(&w).rx_packets, injected);
        prop_assert_eq!(w.neighbours().parked(), 0, "everything resolved or given up after 4 s");
    }
}
