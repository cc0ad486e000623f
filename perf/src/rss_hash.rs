//! The cost of RSS-aware Full-NAT local ports (`rvs_dataplane::conn::owner`): ns per
//! Toeplitz hash of an IPv4 4-tuple, table-driven ([`RssSpec::hash`], what the data path
//! uses) and bit by bit ([`toeplitz_hash`], the definition), and ns per local port
//! allocation plus release with and without the NIC's spec (2 workers, 2 queues, the
//! Microsoft verification key, a 128-entry table `i % 2`).
//!
//! Each figure is the median of `runs` runs of `iters` operations over varying tuples,
//! timed per whole run; inputs go through `black_box` so nothing is hoisted.

use std::hint::black_box;
use std::net::Ipv4Addr;
use std::time::Instant;

use rvs_dataplane::conn::{toeplitz_hash, LocalPortAllocator, RssSpec};

/// The Microsoft RSS verification key.
const MS_KEY: [u8; 40] = [
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0, 0xd0, 0xca, 0x2b,
    0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac,
    0x01, 0xfa,
];

/// The figures, in ns.
#[derive(Debug, Clone, Copy)]
pub struct RssHashReport {
    /// Operations per run.
    pub iters: u64,
    /// Runs per figure.
    pub runs: u64,
    /// One table-driven hash.
    pub table_ns: f64,
    /// One bit-by-bit hash.
    pub bitwise_ns: f64,
    /// One local port allocation and its release, no spec.
    pub alloc_plain_ns: f64,
    /// The same with the NIC's spec (the search for an RSS-local port included).
    pub alloc_rss_ns: f64,
}

impl RssHashReport {
    /// One JSON object.
    pub fn to_json(&self) -> String {
        format!(
            "{{\"bench\":\"rss_hash\",\"iters\":{},\"runs\":{},\"toeplitz_table_ns\":{:.2},\"toeplitz_bitwise_ns\":{:.2},\
             \"lport_alloc_plain_ns\":{:.2},\"lport_alloc_rss_ns\":{:.2}}}",
            self.iters, self.runs, self.table_ns, self.bitwise_ns, self.alloc_plain_ns, self.alloc_rss_ns
        )
    }
}

fn median_ns(runs: u64, iters: u64, mut f: impl FnMut(u64)) -> f64 {
    f(iters / 10 + 1);
    let mut v: Vec<f64> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            f(iters);
            t.elapsed().as_nanos() as f64 / iters as f64
        })
        .collect();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Runs the four measurements.
pub fn run(iters: u64, runs: u64) -> RssHashReport {
    let reta: Vec<u16> = (0..128).map(|i| i % 2).collect();
    let spec = RssSpec::new(MS_KEY, &reta, 1);
    let server = Ipv4Addr::new(10, 20, 0, 11);
    let local = Ipv4Addr::new(10, 20, 0, 200);
    let table_ns = median_ns(runs, iters, |n| {
        let mut acc = 0u32;
        for i in 0..n {
            acc ^= spec.hash(black_box(server), black_box(i as u16), local, black_box((i >> 16) as u16));
        }
        black_box(acc);
    });
    let bitwise_ns = median_ns(runs, iters, |n| {
        let mut acc = 0u32;
        for i in 0..n {
            let mut input = [0u8; 12];
            input[0..4].copy_from_slice(&black_box(server).octets());
            input[4..8].copy_from_slice(&local.octets());
            input[8..10].copy_from_slice(&black_box(i as u16).to_be_bytes());
            input[10..12].copy_from_slice(&black_box((i >> 16) as u16).to_be_bytes());
            acc ^= toeplitz_hash(&MS_KEY, &input);
        }
        black_box(acc);
    });
    let alloc = |rss: Option<&RssSpec>| {
        let mut a = LocalPortAllocator::new(1, 2, &[local]);
        median_ns(runs, iters, |n| {
            for i in 0..n {
                let (addr, p) = a.alloc(&[local], server, black_box(i as u16), rss).expect("a free port");
                a.release(addr, p);
            }
        })
    };
    let alloc_plain_ns = alloc(None);
    let alloc_rss_ns = alloc(Some(&spec));
    RssHashReport { iters, runs, table_ns, bitwise_ns, alloc_plain_ns, alloc_rss_ns }
}
